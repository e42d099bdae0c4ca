"""A/B: zabby ensembles from several source trees and ZooKeeper, one session, one setData
at a time, on the first listed member (as `zabby bench compare`), rounds interleaved."""
import os, sys, statistics, tempfile, time, json
from pathlib import Path
from zabby.bench.compare import start_target, Target, measure, prime, server_settings
from zabby.testing.servers import ZabbyEnsemble

variants = dict(a.split("=", 1) for a in sys.argv[1].split(","))  # label=srcdir
rounds = int(sys.argv[2]); dur = float(sys.argv[3])
with_zk = len(sys.argv) <= 4 or sys.argv[4] != "nozk"
work = Path(tempfile.mkdtemp(prefix="hops-ab-"))
targets = {}
opts = dict(sessions=1, warmup=1.0, duration=dur, value_size=128, keys=1000, read_pct=80.0,
            procs=1, prime=5.0)
try:
    for label, src in variants.items():
        ens = ZabbyEnsemble(work / label, 3, start=False, **server_settings())
        for m in ens.members.values():
            m.env = (lambda src=src: {**os.environ, "PYTHONPATH": src})
        ens.start(timeout=60)
        targets[label] = Target("zabby", "ensemble", ens, list(ens.members.values()))
    if with_zk:
        targets["zk"] = start_target("zookeeper", "ensemble", work / "zk")
    for t in targets.values():
        prime(t, opts)
    res = {k: [] for k in targets}
    order = list(targets)
    for r in range(rounds):
        for k in (order if r % 2 == 0 else order[::-1]):
            x = measure(targets[k], "write", 1, opts)
            lat = x["latency_ms"]
            res[k].append((lat["p50"], lat["p99"], x["ops_per_sec"]))
            print(f"round {r} {k:6s} p50 {lat['p50']:.3f} p99 {lat['p99']:.3f} ops {x['ops_per_sec']:.0f}", flush=True)
    print("medians:")
    for k, v in res.items():
        p50 = statistics.median(a for a, _, _ in v); p99 = statistics.median(b for _, b, _ in v)
        line = f"  {k:6s} p50 {p50:.3f} ms  p99 {p99:.3f} ms"
        if "zk" in res:
            zp50 = statistics.median(a for a, _, _ in res["zk"]); zp99 = statistics.median(b for _, b, _ in res["zk"])
            line += f"   ratio to ZooKeeper p50 {p50 / zp50:.2f} p99 {p99 / zp99:.2f}"
        print(line)
    json.dump(res, open("ab-last.json", "w"))
finally:
    for t in targets.values():
        try:
            t.stop()
        except Exception as e:
            print("stop failed", e)
