import os, sys, tempfile, time, subprocess
from pathlib import Path
from zabby.testing.servers import ZabbyEnsemble
from zabby.bench.compare import server_settings
from zabby.bench.runner import run_bench
from zabby.bench.workloads import BenchConfig
src = sys.argv[1]
work = Path(tempfile.mkdtemp(prefix="hops-cpu-"))
ens = ZabbyEnsemble(work, 3, start=False, **server_settings())
for m in ens.members.values():
    m.env = (lambda src=src: {**os.environ, "PYTHONPATH": src})
ens.start(timeout=60)
def procs():
    out = {}
    for sid, m in ens.members.items():
        out[f"s{sid}"] = m.pid
        for c in subprocess.run(["pgrep", "-P", str(m.pid)], capture_output=True, text=True).stdout.split():
            out[f"s{sid}.child{c}"] = int(c)
    return out
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) / os.sysconf("SC_CLK_TCK"), int(f[12]) / os.sysconf("SC_CLK_TCK"))
try:
    leader = ens.leader()
    hosts = ens.hosts
    run_bench(BenchConfig(hosts=hosts, workload="write", sessions=1, outstanding=1, warmup=0.5, duration=2, progress=False))
    ps = procs()
    c0 = {k: cpu(p) for k, p in ps.items()}
    if len(sys.argv) > 2 and sys.argv[2] == "idle":
        time.sleep(5)
        res = {"ops": 5000, "duration_s": 5, "wall_s": 5, "latency_ms": {"p50": 0}}
    else:
        res = run_bench(BenchConfig(hosts=hosts, workload="write", sessions=int(sys.argv[2]) if len(sys.argv) > 2 else 1, outstanding=1, warmup=0.5, duration=5, progress=False))
    c1 = {k: cpu(p) for k, p in ps.items()}
    n = res["ops"] / res["duration_s"] * (res["wall_s"])
    print(f"leader s{leader}; ops {res['ops']} p50 {res['latency_ms']['p50']}")
    for k in ps:
        print(f"  {k:20s} user {1e6 * (c1[k][0] - c0[k][0]) / n:7.1f} sys {1e6 * (c1[k][1] - c0[k][1]) / n:7.1f} us CPU per write")
finally:
    ens.stop()
