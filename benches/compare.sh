#!/usr/bin/env bash
# Same load, same audio, same emulator: this crate's client (examples/load.rs) next to the
# official AssemblyAI Python SDK (assemblyai 1.8.2, benches/python_sdk_load.py), in one run.
#
#   benches/compare.sh [N_SESSIONS] [SECONDS]          (default 100 30)
#
# Builds the release examples, starts the standalone emulator once (send-time stamps on, the
# bundled speech's script), creates a throwaway virtualenv with assemblyai==1.8.2 (set VENV=DIR
# to reuse one), runs both clients one after the other against that emulator, and prints a
# table with both and the ratio Python / Rust. The JSON of each run is kept in $OUT (default a
# temporary directory, printed at the end).
set -euo pipefail

N=${1:-100}
S=${2:-30}
KEY=compare-key
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/aai-compare.XXXXXX)}
mkdir -p "$OUT"
cd "$ROOT"

cargo build --release --quiet --example load --example emulator

EMU_PID=
TMP_VENV=
cleanup() {
    if [ -n "$EMU_PID" ]; then kill "$EMU_PID" 2>/dev/null || true; wait "$EMU_PID" 2>/dev/null || true; fi
    if [ -n "$TMP_VENV" ]; then rm -rf "$TMP_VENV"; fi
}
trap cleanup EXIT

if [ -n "${VENV:-}" ] && [ -x "$VENV/bin/python" ]; then
    PY="$VENV/bin/python"
else
    TMP_VENV=$(mktemp -d /tmp/aai-venv.XXXXXX)
    python3 -m venv "$TMP_VENV"
    "$TMP_VENV/bin/pip" install --quiet assemblyai==1.8.2
    PY="$TMP_VENV/bin/python"
fi
"$PY" -c 'import assemblyai, sys; assert assemblyai.__version__ == "1.8.2", assemblyai.__version__'

# The emulator, once, for both clients.
mkfifo "$OUT/emulator.out"
target/release/examples/emulator --port 0 --api-key "$KEY" --stamp-send-time \
    --script examples/assets/sample.script.json >"$OUT/emulator.out" 2>"$OUT/emulator.err" &
EMU_PID=$!
exec 3<"$OUT/emulator.out"
read -r URL <&3
case "$URL" in ws://*) ;; *) echo "emulator did not start: $URL" >&2; exit 1 ;; esac
# Keep draining its stdout so it never blocks on a full pipe.
cat <&3 >/dev/null &

emu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$EMU_PID/stat"; }

echo "emulator $URL (pid $EMU_PID); $N sessions x $S s of speech each" >&2

echo "running the Rust client..." >&2
ASSEMBLYAI_API_KEY=$KEY target/release/examples/load --url "$URL" --sessions "$N" --seconds "$S" \
    --emulator-pid "$EMU_PID" --json "$OUT/rust.json" >"$OUT/rust.txt"

sleep 2
echo "running the Python SDK..." >&2
T0=$(emu_ticks); W0=$(date +%s.%N)
"$PY" benches/python_sdk_load.py --url "$URL" --key "$KEY" --sessions "$N" --seconds "$S" \
    --wav examples/assets/sample.wav >"$OUT/python.json"
T1=$(emu_ticks); W1=$(date +%s.%N)
python3 - "$OUT/python.json" "$T0" "$T1" "$W0" "$W1" <<'EOF'
import json, sys
path, t0, t1, w0, w1 = sys.argv[1], *map(float, sys.argv[2:])
d = json.load(open(path))
d["emulator_cpu_seconds"] = (t1 - t0) / 100
d["emulator_cpu_percent_of_one_core"] = 100 * (t1 - t0) / 100 / (w1 - w0)
json.dump(d, open(path, "w"), indent=2)
EOF

python3 - "$OUT/rust.json" "$OUT/python.json" "$N" "$S" <<'EOF'
import json, sys
rust, py = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
n, s = sys.argv[3], sys.argv[4]
rows = [
    ("sessions completed / requested", lambda d: f'{d["sessions_completed"]} / {d["sessions_requested"]}', None),
    ("errors", lambda d: json.dumps(d["errors"]) if d["errors"] else "none", None),
    ("Turns received (latency samples)", lambda d: str(d["latency_samples"]), None),
    ("client CPU s per session-minute", lambda d: f'{d["client_cpu_seconds_per_session_minute"]:.4f}', "client_cpu_seconds_per_session_minute"),
    ("client CPU, % of one core", lambda d: f'{d["client_cpu_percent_of_one_core"]:.1f}', "client_cpu_percent_of_one_core"),
    ("peak RSS (MiB)", lambda d: f'{d["peak_rss_kb"] / 1024:.1f}', "peak_rss_kb"),
    ("RSS per session (KiB)", lambda d: f'{d["rss_per_session_kb"]:.0f}', "rss_per_session_kb"),
    ("client-added latency p50 (ms)", lambda d: f'{d["latency_ms_p50"]:.3f}', "latency_ms_p50"),
    ("client-added latency p99 (ms)", lambda d: f'{d["latency_ms_p99"]:.3f}', "latency_ms_p99"),
    ("client-added latency max (ms)", lambda d: f'{d["latency_ms_max"]:.1f}', "latency_ms_max"),
    ("emulator CPU, % of one core", lambda d: f'{d["emulator_cpu_percent_of_one_core"]:.1f}', None),
    ("load average (1 min) before / after", lambda d: f'{d["loadavg_1min_before"]} / {d["loadavg_1min_after"]}', None),
]
print(f"\n{n} sessions x {s} s, 50 ms frames at real time, same emulator and audio\n")
print("| metric | Rust (this crate) | Python SDK 1.8.2 | Python / Rust |")
print("|---|---:|---:|---:|")
for name, fmt, key in rows:
    def cell(d):
        try:
            return fmt(d)
        except (KeyError, TypeError):
            return "n/a"
    ratio = ""
    if key:
        try:
            ratio = f"{py[key] / rust[key]:.1f}x"
        except (KeyError, TypeError, ZeroDivisionError):
            ratio = "n/a"
    print(f"| {name} | {cell(rust)} | {cell(py)} | {ratio} |")
EOF
echo "raw results: $OUT" >&2
