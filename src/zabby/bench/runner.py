"""``run_bench``: setup, N sessions in one or more processes, cleanup, one result dict."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import resource
import struct
import sys
import time
from collections.abc import Callable

from ..wire import CreateRequest, DeleteRequest, Err, Op, PathWatchRequest, SetDataRequest
from .client import OPEN_ACL, BenchError, Session, connect, parse_hosts
from .hist import Histogram
from .workloads import PACED, WORKLOADS, BenchConfig, run_worker

__all__ = ["BenchConfig", "BenchError", "run_bench", "validate"]


def _new_loop():
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def arun(coro):
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        return runner.run(coro)


def validate(cfg: BenchConfig) -> None:
    if cfg.workload not in WORKLOADS:
        raise BenchError(f"unknown workload {cfg.workload!r} (one of {', '.join(WORKLOADS)})")
    for name in ("sessions", "outstanding", "keys", "procs"):
        if getattr(cfg, name) < 1:
            raise BenchError(f"--{name} must be at least 1")
    if cfg.workload == "multi" and cfg.keys < 4:
        raise BenchError("the multi workload needs --keys of at least 4")
    if cfg.duration <= 0 or cfg.warmup < 0 or cfg.value_size < 0:
        raise BenchError("--duration must be > 0, --warmup and --value-size >= 0")
    if cfg.rate < 0:
        raise BenchError("--rate must be >= 0 (0: closed loop)")
    if cfg.rate > 0 and cfg.workload not in PACED:
        raise BenchError(f"--rate applies to {', '.join(PACED)}, not to {cfg.workload}")
    if not 0 <= cfg.read_pct <= 100:
        raise BenchError("--read-pct must be between 0 and 100")
    if not cfg.prefix.startswith("/") or cfg.prefix == "/" or cfg.prefix.endswith("/"):
        raise BenchError("--prefix must be an absolute znode path other than /")
    parse_hosts(cfg.hosts)


# --------------------------------------------------------------- setup / cleanup
async def _pipelined(sess: Session, reqs, window: int = 512) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for i in range(0, len(reqs), window):
        futs = [sess.request(op, body) for op, body in reqs[i : i + window]]
        out.extend(await asyncio.gather(*futs))
    return out


async def _admin(cfg: BenchConfig) -> tuple:
    host, port = parse_hosts(cfg.hosts)[0]
    return await connect(host, port, lambda: Session(cfg.session_timeout_ms), cfg.connect_timeout)


async def setup(cfg: BenchConfig) -> None:
    """Create the prefix and the keys the workload uses (values of value_size bytes)."""
    if cfg.workload == "session":
        # nothing to create; still fail fast when no host answers
        for host, port in parse_hosts(cfg.hosts):
            tr, sess = await connect(host, port, lambda: Session(cfg.session_timeout_ms),
                                     cfg.connect_timeout)
            await sess.close()
        return
    tr, sess = await _admin(cfg)
    try:
        for host, port in parse_hosts(cfg.hosts)[1:]:
            t2, s2 = await connect(host, port, lambda: Session(cfg.session_timeout_ms),
                                   cfg.connect_timeout)
            await s2.close()
        value = (b"zabby-bench-" * (cfg.value_size // 12 + 1))[: cfg.value_size]
        err, _ = await sess.request(Op.CREATE, CreateRequest(cfg.prefix, b"", OPEN_ACL, 0))
        if err not in (0, Err.NODEEXISTS):
            raise BenchError(f"cannot create {cfg.prefix}: {_err_name(err)}")
        if cfg.workload == "watch":
            paths = [f"{cfg.prefix}/watch"]
        elif cfg.workload == "create":
            paths = []
        else:
            paths = [cfg.key(i) for i in range(cfg.keys)]
        res = await _pipelined(sess, [(Op.CREATE, CreateRequest(p, value, OPEN_ACL, 0))
                                      for p in paths])
        existing = [p for p, (err, _) in zip(paths, res, strict=True) if err == Err.NODEEXISTS]
        bad = [(p, err) for p, (err, _) in zip(paths, res, strict=True)
               if err not in (0, Err.NODEEXISTS)]
        if bad:
            raise BenchError(f"cannot create {bad[0][0]}: {_err_name(bad[0][1])}")
        await _pipelined(sess, [(Op.SET_DATA, SetDataRequest(p, value, -1)) for p in existing])
    finally:
        await sess.close()


async def cleanup(cfg: BenchConfig) -> None:
    """Delete the prefix and everything directly under it."""
    tr, sess = await _admin(cfg)
    try:
        err, body = await sess.request(Op.GET_CHILDREN, PathWatchRequest(cfg.prefix, False))
        if err == 0:
            children = _decode_strings(body)
            await _pipelined(sess, [(Op.DELETE, DeleteRequest(f"{cfg.prefix}/{c}", -1))
                                    for c in children])
        await sess.request(Op.DELETE, DeleteRequest(cfg.prefix, -1))
    finally:
        await sess.close()


def _decode_strings(body: bytes) -> list[str]:
    (n,) = struct.unpack_from(">i", body, 0)
    pos = 4
    out = []
    for _ in range(max(n, 0)):
        (ln,) = struct.unpack_from(">i", body, pos)
        out.append(body[pos + 4 : pos + 4 + ln].decode())
        pos += 4 + ln
    return out


def _err_name(err: int) -> str:
    try:
        return f"{Err(err).name} ({err})"
    except ValueError:
        return str(err)


# --------------------------------------------------------------- progress
# bar(elapsed s, warm-up + measured s, requests completed, errors): the caller draws
# it (``zabby bench`` on a terminal); called about four times a second
BarHook = Callable[[float, float, int, int], None]


class _Progress:
    def __init__(self, cfg: BenchConfig, enabled: bool, bar: BarHook | None = None) -> None:
        self.cfg = cfg
        self.enabled = enabled
        self.bar = bar if enabled else None
        self.last_t = time.perf_counter()
        self.last_n = 0
        self.t0 = self.last_t

    def show(self, completed: int, errors: int) -> None:
        now = time.perf_counter()
        if self.bar is not None:
            self.bar(max(0.0, now - self.t0), self.cfg.warmup + self.cfg.duration,
                     completed, errors)
            return
        if not self.enabled or now - self.last_t < 1.0:
            return
        rate = (completed - self.last_n) / (now - self.last_t)
        el = now - self.t0
        phase = "warmup" if el < self.cfg.warmup else "run"
        msg = f"[{el:6.1f}s {phase:>6}] {rate:>10,.0f} ops/s"
        if errors:
            msg += f"  errors {errors}"
        print(msg, file=sys.stderr, flush=True)
        self.last_t, self.last_n = now, completed


# --------------------------------------------------------------- workers
def _proc_main(cfg: BenchConfig, index: int, conn, counter) -> None:
    addrs = parse_hosts(cfg.hosts)

    async def go() -> int:
        conn.send(("ready", None))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, conn.recv)

    def report(st) -> None:
        counter[2 * index] = st.completed
        counter[2 * index + 1] = st.errors

    try:
        res = arun(run_worker(cfg, index, cfg.procs, addrs, go, report))
        conn.send(("result", res))
    except BenchError as e:
        conn.send(("error", str(e)))
    except BaseException as e:  # report, never hang the parent
        conn.send(("error", f"worker {index} failed: {type(e).__name__}: {e}"))
    finally:
        conn.close()


def _run_procs(cfg: BenchConfig, progress: _Progress) -> list[dict]:
    ctx = mp.get_context("fork")
    counter = ctx.Array("q", 2 * cfg.procs, lock=False)
    pipes, procs = [], []
    for i in range(cfg.procs):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_proc_main, args=(cfg, i, child, counter), daemon=True)
        p.start()
        child.close()
        pipes.append(parent)
        procs.append(p)
    try:
        for parent in pipes:
            kind, payload = parent.recv()
            if kind == "error":
                raise BenchError(payload)
        start = time.perf_counter_ns() + 20_000_000
        for parent in pipes:
            parent.send(start)
        progress.t0 = progress.last_t = time.perf_counter() + 0.02
        results = []
        for parent in pipes:
            while not parent.poll(0.2):
                progress.show(sum(counter[0::2]), sum(counter[1::2]))
            kind, payload = parent.recv()
            if kind == "error":
                raise BenchError(payload)
            results.append(payload)
        return results
    except EOFError:
        raise BenchError("a worker process died") from None
    finally:
        for p in procs:
            p.join(2)
            if p.is_alive():
                p.terminate()


def _run_inline(cfg: BenchConfig, progress: _Progress) -> list[dict]:
    addrs = parse_hosts(cfg.hosts)

    async def go() -> int:
        progress.t0 = progress.last_t = time.perf_counter()
        return time.perf_counter_ns()

    def report(st) -> None:
        progress.show(st.completed, st.errors)

    return [arun(run_worker(cfg, 0, 1, addrs, go, report))]


# --------------------------------------------------------------- entry point
def run_bench(cfg: BenchConfig, bar: BarHook | None = None) -> dict:
    """Run one benchmark; raises BenchError when the target cannot be used.

    With cfg.progress, `bar` (if given) hears the progress instead of the
    once-a-second lines on stderr."""
    validate(cfg)
    if cfg.workload == "watch" and cfg.procs > 1:
        cfg.procs = 1  # one process sees every notification; the rounds are sequential
    cfg.procs = min(cfg.procs, cfg.sessions)
    progress = _Progress(cfg, cfg.progress, bar)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    arun(setup(cfg))
    try:
        t0 = time.perf_counter()
        workers = _run_procs(cfg, progress) if cfg.procs > 1 else _run_inline(cfg, progress)
        wall = time.perf_counter() - t0
    finally:
        if cfg.cleanup:
            try:
                arun(cleanup(cfg))
            except (BenchError, ConnectionError, OSError):
                pass
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    return _aggregate(cfg, workers, wall, ru0, ru1)


def _aggregate(cfg: BenchConfig, workers: list[dict], wall: float, ru0, ru1) -> dict:
    kinds = workers[0]["kinds"]
    total = Histogram()
    per_kind = {}
    ops_by_kind = {}
    for k, name in enumerate(kinds):
        h = Histogram()
        for w in workers:
            h.merge_counts(w["hists"][k])
        total.merge_counts(h.counts)
        ops_by_kind[name] = sum(w["ops"][k] for w in workers)
        per_kind[name] = h
    ops = sum(ops_by_kind.values())
    errors = sum(w["errors"] for w in workers)
    codes: dict[str, int] = {}
    for w in workers:
        for c, n in w["error_codes"].items():
            codes[c] = codes.get(c, 0) + n
    cpu = sum(w["cpu_s"] for w in workers)
    run_wall = max(w["wall_s"] for w in workers)
    res = {
        "workload": cfg.workload,
        "hosts": cfg.hosts,
        "sessions": cfg.sessions,
        "outstanding": cfg.outstanding,
        "procs": cfg.procs,
        "warmup_s": cfg.warmup,
        "duration_s": cfg.duration,
        "value_size": cfg.value_size,
        "keys": cfg.keys,
        "ops": ops,
        "ops_per_sec": round(ops / cfg.duration, 1),
        "errors": errors,
        "error_codes": codes,
        "lost_sessions": sum(w["lost"] for w in workers),
        "latency_ms": total.summary_ms(),
        "client_cpu_s": round(cpu, 3),
        # share of one core the load generator used while running (summed over procs)
        "client_cpu_pct": round(100 * cpu / run_wall, 1) if run_wall else 0.0,
        "client_cpu_pct_of_machine": round(100 * cpu / run_wall / (os.cpu_count() or 1), 1)
        if run_wall else 0.0,
        "wall_s": round(wall, 3),
    }
    if cfg.workload == "mixed":
        res["read_pct"] = cfg.read_pct
    if cfg.rate > 0:
        # open loop: what was offered, and what could not be sent (PACED_CAP in flight)
        res["offered_per_sec"] = cfg.rate
        res["missed"] = sum(w["missed"] for w in workers)
    if len(kinds) > 1:
        res["by_kind"] = {
            name: {"ops": ops_by_kind[name],
                   "ops_per_sec": round(ops_by_kind[name] / cfg.duration, 1),
                   "latency_ms": per_kind[name].summary_ms()}
            for name in kinds
        }
    if cfg.workload == "watch":
        res["watchers"] = cfg.sessions
        res["notifications"] = sum(w.get("notifications", 0) for w in workers)
        res["notifications_per_sec"] = round(res["notifications"] / cfg.duration, 1)
    return res
