#!/bin/bash
# abrun.sh SRC W M PORT -> one line
S=$1; W=$2; M=$3; P=$4
D=/tmp/ab/data-$P; rm -rf $D; mkdir -p $D
printf "tickTime=2000\ndataDir=$D\nclientPort=$P\nmaxClientCnxns=0\nadmin.enableServer=false\n" > /tmp/ab/zoo-$P.cfg
cd /work/main
PYTHONPATH=$S .venv/bin/python -m zabby serve -c /tmp/ab/zoo-$P.cfg > /tmp/ab/srv-$P.log 2>&1 &
SP=$!
sleep 1.5
.venv/bin/zabby bench --hosts 127.0.0.1:$P -w mixed -n 32 -m 1 -d 3 --warmup 0 --no-progress --quiet > /dev/null
.venv/bin/zabby bench --hosts 127.0.0.1:$P -w $W -n 32 -m $M -d 5 --warmup 1 --no-progress --quiet > /tmp/ab/last-$P.json
kill $SP; wait $SP 2>/dev/null
python3 -c "import json;d=json.loads(open('/tmp/ab/last-$P.json').read().strip().splitlines()[-1]);print(f\"{d['ops_per_sec']:.0f} p50={d['latency_ms']['p50']}\")"
