#!/usr/bin/env python3
"""The official AssemblyAI Python SDK (assemblyai 1.8.2) under the same load as `examples/load.rs`.

N sessions in one process (the SDK's threaded StreamingClient), each streaming the same speech
at real-time pace in 50 ms chunks for S seconds against the same emulator. Prints one JSON
object: sessions, errors, events, CPU seconds per session-minute, peak RSS, and the latency from
the emulator's send-time stamp to the moment the SDK hands the Turn to its handler.

Usage: python_sdk_load.py --url ws://127.0.0.1:PORT --key KEY --sessions N --seconds S --wav FILE
"""
import argparse
import json
import resource
import sys
import threading
import time
import wave

import assemblyai.streaming.v3.client as sdk_client
from assemblyai.streaming.v3 import (
    StreamingClient,
    StreamingClientOptions,
    StreamingEvents,
    StreamingParameters,
)

STAMP = "_emulator_sent_at_ns"
_local = threading.local()


class _StampingJson:
    """Wraps the SDK's `json` module reference to read the emulator's send stamp on parse."""

    JSONDecodeError = json.JSONDecodeError

    @staticmethod
    def loads(data, *args, **kwargs):
        value = json.loads(data, *args, **kwargs)
        _local.sent_ns = value.get(STAMP) if isinstance(value, dict) else None
        return value

    def __getattr__(self, name):
        return getattr(json, name)


sdk_client.json = _StampingJson()


def _vm_rss_kb():
    """Resident set size now, in KiB (Linux), to subtract the interpreter's own footprint."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--sessions", type=int, required=True)
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--wav", required=True)
    ap.add_argument("--ramp-ms", type=int, default=2000)
    args = ap.parse_args()

    with wave.open(args.wav, "rb") as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        pcm = w.readframes(w.getnframes())
    chunk_bytes = 1600  # 50 ms at 16 kHz s16
    chunks = [pcm[i:i + chunk_bytes] for i in range(0, len(pcm) - chunk_bytes + 1, chunk_bytes)]

    lock = threading.Lock()
    latencies_ms = []
    stats = {"connected": 0, "completed": 0, "events": 0, "errors": {}}

    def on_turn(_client, _event):
        sent = getattr(_local, "sent_ns", None)
        with lock:
            stats["events"] += 1
            if sent:
                latencies_ms.append((time.time_ns() - sent) / 1e6)

    def on_termination(_client, _event):
        with lock:
            stats["completed"] += 1

    def on_error(_client, error):
        with lock:
            key = str(getattr(error, "code", None) or type(error).__name__)
            stats["errors"][key] = stats["errors"].get(key, 0) + 1

    def session(index):
        time.sleep(args.ramp_ms / 1000 * index / args.sessions)
        client = StreamingClient(StreamingClientOptions(api_key=args.key, api_host=args.url))
        client.on(StreamingEvents.Turn, on_turn)
        client.on(StreamingEvents.Termination, on_termination)
        client.on(StreamingEvents.Error, on_error)
        try:
            client.connect(StreamingParameters(
                sample_rate=16000, format_turns=True, speech_model="universal-streaming-english"))
        except Exception as exc:  # counted, never fatal
            on_error(None, exc)
            return
        with lock:
            stats["connected"] += 1
        start = time.monotonic()
        n = args.seconds * 1000 // 50
        for i in range(n):
            delay = start + i * 0.05 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            client.stream(chunks[i % len(chunks)])
        client.disconnect(terminate=True)

    load_before = _loadavg()
    rss_before_kb = _vm_rss_kb()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.monotonic()
    threads = [threading.Thread(target=session, args=(i,)) for i in range(args.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - wall0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
    latencies_ms.sort()

    def pct(p):
        if not latencies_ms:
            return None
        return latencies_ms[min(len(latencies_ms) - 1, max(0, int(len(latencies_ms) * p + 0.999999) - 1))]

    session_minutes = args.sessions * args.seconds / 60
    print(json.dumps({
        "client": "assemblyai-python-sdk 1.8.2",
        "sessions_requested": args.sessions,
        "sessions_connected": stats["connected"],
        "sessions_completed": stats["completed"],
        "errors": stats["errors"],
        "events_received": stats["events"],
        "latency_samples": len(latencies_ms),
        "wall_seconds": wall,
        "client_cpu_seconds": cpu,
        "client_cpu_seconds_per_session_minute": cpu / session_minutes,
        "client_cpu_percent_of_one_core": 100 * cpu / wall,
        "peak_rss_kb": usage.ru_maxrss,
        "rss_per_session_kb": max(0, usage.ru_maxrss - rss_before_kb) / args.sessions,
        "latency_ms_p50": pct(0.50),
        "latency_ms_p99": pct(0.99),
        "latency_ms_max": latencies_ms[-1] if latencies_ms else None,
        "loadavg_1min_before": load_before,
        "loadavg_1min_after": _loadavg(),
    }))


if __name__ == "__main__":
    sys.exit(main())
