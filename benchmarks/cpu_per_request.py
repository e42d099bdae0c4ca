"""In-process CPU per request: a standalone ZabbyServer with the in-memory committer,
fed frames through ClientConnection.data_received (32 requests per read), transport a no-op.

    PYTHONPATH=src python benchmarks/cpu_per_request.py   # min of 5 runs each, microseconds
"""
import asyncio
import time

from zabby.server.config import ServerConfig
from zabby.server.connection import ClientConnection
from zabby.server.core import ZabbyServer
from zabby.wire import (
    ACL,
    ConnectRequest,
    CreateRequest,
    Id,
    Op,
    encode_connect_request,
    encode_request,
)
from zabby.wire.records import DeleteRequest, SetDataRequest
from zabby.wire.records import PathWatchRequest as GetDataRequest


class FakeTransport:
    """Takes every write; the server never sees back-pressure."""

    def __init__(self) -> None:
        self.protocol = None

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 5555) if name == "peername" else default

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def write(self, data) -> None:
        pass

    def drain(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def abort(self) -> None:
        pass

    close = abort


def run(kind, n=60000, batch=32):
    async def main():
        server = ZabbyServer(ServerConfig(max_client_cnxns=0))
        conn = ClientConnection(server)
        t = FakeTransport()
        t.protocol = conn
        conn.connection_made(t)
        conn.data_received(encode_connect_request(ConnectRequest(0, 0, 30000, 0, b"\0" * 16)))
        await asyncio.sleep(0)
        acl = [ACL(31, Id("world", "anyone"))]
        conn.data_received(encode_request(1, Op.CREATE, CreateRequest("/k", b"x" * 128, acl, 0)))
        await asyncio.sleep(0)
        t.drain()
        conn.data_received(encode_request(2, Op.CREATE, CreateRequest("/c", b"", acl, 0)))
        await asyncio.sleep(0)
        t.drain()
        xid = 3
        frames = []
        for i in range(n):
            if kind == "create":  # the bench's create workload: sequential create, delete
                if i % 2 == 0:
                    frames.append(encode_request(xid, Op.CREATE,
                                                 CreateRequest("/c/c-", b"y" * 128, acl, 2)))
                else:  # the sequence number counts the parent's creates
                    frames.append(encode_request(xid, Op.DELETE,
                                                 DeleteRequest(f"/c/c-{i // 2:010d}", -1)))
            elif kind == "write" or (kind == "mixed" and i % 5 == 0):
                frames.append(encode_request(xid, Op.SET_DATA, SetDataRequest("/k", b"y" * 128, -1)))
            else:
                frames.append(encode_request(xid, Op.GET_DATA, GetDataRequest("/k", False)))
            xid += 1
        chunks = [b"".join(frames[i:i + batch]) for i in range(0, n, batch)]
        c0 = time.process_time()
        for ch in chunks:
            conn.data_received(ch)
            t.drain()
        await asyncio.sleep(0)
        c1 = time.process_time()
        return (c1 - c0) / n * 1e6
    return asyncio.run(main())

if __name__ == "__main__":
    res = {k: min(run(k) for _ in range(5)) for k in ("read", "write", "mixed", "create")}
    print(" ".join(f"{k}={v:.2f}us" for k, v in res.items()))
