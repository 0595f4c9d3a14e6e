#!/usr/bin/env bash
# CPU cost of the local P/D stack: 1 prefill + 3 decode nodes (+ router) serving N concurrent
# streams for D seconds, measured from /proc as the CPU time of the stack's processes.
# Usage: benches/sim_cpu.sh [STREAMS] [SECONDS]   (needs target/release/pdchaos)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/pdchaos
STREAMS=${1:-200}
SECS=${2:-20}
LOG=$(mktemp)
$BIN sim up --prefill 1 --decode 3 --profile thinking --no-toxiproxy >"$LOG" 2>&1 &
UP=$!
trap 'kill $UP 2>/dev/null; wait $UP 2>/dev/null; rm -f "$LOG"' EXIT
for _ in $(seq 100); do grep -q "OpenAI API" "$LOG" && break; sleep 0.1; done
URL=$(awk '/OpenAI API/ {print $3}' "$LOG")
PIDS=$(awk '/node:/ {print $5}' "$LOG" | tr '\n' ' ')
cpu() { local t=0; for p in $PIDS; do set -- $(sed 's/.*) //' /proc/$p/stat); t=$((t + ${12} + ${13})); done; echo $t; }
HZ=$(getconf CLK_TCK)
C0=$(cpu); T0=$(date +%s.%N)
$BIN load --url "$URL" --model sim -c "$STREAMS" --duration "${SECS}s" --timeout-first-token 60s -q --json /tmp/sim_cpu.json >/dev/null
C1=$(cpu); T1=$(date +%s.%N)
python3 - "$C0" "$C1" "$T0" "$T1" "$HZ" "$STREAMS" <<'PY'
import json, sys
c0, c1, t0, t1, hz, n = map(float, sys.argv[1:])
s = json.load(open("/tmp/sim_cpu.json"))
cpu = (c1 - c0) / hz
wall = t1 - t0
print(f"1P+3D, {int(n)} concurrent streams, {wall:.1f} s: stack CPU {cpu:.2f} s = {100*cpu/wall:.0f}% of one core; "
      f"{s['requests']['ok']} ok of {s['requests']['total']}, decode p50 {s['decode_tps']['p50']:.1f} tok/s, TTFT p50 {s['ttft_ms']['p50']:.0f} ms")
PY
