import sys; sys.path.insert(0, "/work/main/benchmarks")
import cpu_per_request as c
out = []
for k in ("read","write","mixed"):
    out.append(f"{k} b1={min(c.run(k, n=30000, batch=1) for _ in range(3)):.2f} b32={min(c.run(k, n=30000, batch=32) for _ in range(3)):.2f}")
print(" | ".join(out))
