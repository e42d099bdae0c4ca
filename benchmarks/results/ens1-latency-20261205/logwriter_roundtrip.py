"""LogWriter round trip vs inline pwrite+fdatasync: python logwriter_roundtrip.py [N] [module]"""
import asyncio, os, sys, time, statistics, tempfile
import uvloop
import importlib
# argv[2]: the module holding LogWriter (a copy of an older fsync_helper.py on sys.path)
LogWriter = importlib.import_module(sys.argv[2] if len(sys.argv) > 2 else "zabby.server.fsync_helper").LogWriter
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
d = tempfile.mkdtemp(dir="/var/tmp")
fd = os.open(os.path.join(d, "log"), os.O_RDWR | os.O_CREAT)
os.posix_fallocate(fd, 0, 64 << 20)
os.fsync(fd)
async def main():
    loop = asyncio.get_running_loop()
    w = LogWriter(loop)
    data = b"y" * 300
    lat = []
    off = 0
    for i in range(N):
        fut = loop.create_future()
        t0 = time.perf_counter_ns()
        w.write_sync(fd, off, data, lambda e: fut.set_result(e), key=1)
        e = await fut
        lat.append((time.perf_counter_ns() - t0) / 1000)
        off += 300
        await asyncio.sleep(0.0005)
    w.close()
    lat.sort()
    print(f"logwriter p50 {statistics.median(lat):.0f} us p90 {lat[int(.9*N)]:.0f} p99 {lat[int(.99*N)]:.0f}")
    lat = []
    off = 0
    for i in range(N):
        t0 = time.perf_counter_ns()
        os.pwrite(fd, data, off); os.fdatasync(fd)
        lat.append((time.perf_counter_ns() - t0) / 1000)
        off += 300
        await asyncio.sleep(0.0005)
    lat.sort()
    print(f"inline    p50 {statistics.median(lat):.0f} us p90 {lat[int(.9*N)]:.0f} p99 {lat[int(.99*N)]:.0f}")
uvloop.run(main())
import shutil; shutil.rmtree(d)
