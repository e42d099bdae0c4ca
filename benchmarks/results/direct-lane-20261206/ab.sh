#!/bin/bash
# ab.sh DIRECT W N M PORT: zabby standalone from /work/main/src with ZABBY_LOG_DIRECT_MAX=DIRECT; bench N sessions x M
DIRECT=$1; W=$2; N=$3; M=$4; PORT=$5
D=/tmp/ab/data-$PORT; rm -rf $D; mkdir -p $D
printf "tickTime=2000\ndataDir=$D\nclientPort=$PORT\nclientPortAddress=127.0.0.1\n" > $D/zoo.cfg
ZABBY_LOG_DIRECT_MAX=$DIRECT PYTHONPATH=/work/main/src ZABBY_NO_PROGRESS=1 /work/main/.venv/bin/python -m zabby serve -c $D/zoo.cfg > $D/log 2>&1 &
PID=$!
for i in $(seq 50); do (echo ruok | nc -q1 127.0.0.1 $PORT 2>/dev/null | grep -q imok) && break; sleep 0.1; done
/work/main/.venv/bin/zabby bench --hosts 127.0.0.1:$PORT -w $W -n $N -m $M --warmup 1 --duration 2 --quiet --no-progress --json > /dev/null 2>&1
T0=$(awk '{print $14+$15}' /proc/$PID/stat)
OUT=$(/work/main/.venv/bin/zabby bench --hosts 127.0.0.1:$PORT -w $W -n $N -m $M --warmup 0.5 --duration 5 --no-progress --json 2>/dev/null | tail -1)
T1=$(awk '{print $14+$15}' /proc/$PID/stat)
kill $PID; wait $PID 2>/dev/null
python3 - "$OUT" $T0 $T1 $DIRECT $W $N $M <<PY
import json,sys
o=json.loads(sys.argv[1]); t=(int(sys.argv[3])-int(sys.argv[2]))/100
print(f"direct={sys.argv[4]} {sys.argv[5]} {sys.argv[6]}x{sys.argv[7]}: ops/s {o.get('ops_per_sec', o.get('throughput')):.0f}  p50 {o['latency_ms']['p50']} p99 {o['latency_ms']['p99']} cpu {t:.2f}s", flush=True)
PY
