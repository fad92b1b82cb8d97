"""Drives the official AssemblyAI Python SDK (assemblyai==1.8.2) against the local emulator.

usage: sdk_driver.py API_HOST API_KEY AUDIO.raw [--temporary-token]

Streams AUDIO.raw (16 kHz mono s16le) in 50 ms chunks at real-time pace with
format_turns=True, terminates gracefully, and prints one JSON object describing
everything the SDK delivered to its handlers. With --temporary-token, it first mints
a temporary token from the emulator's GET /v3/token (plain HTTP: the SDK's own
create_temporary_token always uses https) and connects with that token, which the
SDK sends in the Authorization header.
"""

import json
import sys
import urllib.request
import threading
import time

from assemblyai.streaming.v3 import (
    StreamingClient,
    StreamingClientOptions,
    StreamingEvents,
    StreamingParameters,
)


def main() -> None:
    api_host, api_key, audio_path = sys.argv[1], sys.argv[2], sys.argv[3]
    use_token = "--temporary-token" in sys.argv[4:]
    with open(audio_path, "rb") as f:
        audio = f.read()

    report = {
        "begin_id": None,
        "partials": 0,
        "finals": [],
        "termination": None,
        "errors": [],
    }
    lock = threading.Lock()

    def on_begin(_client, event):
        with lock:
            report["begin_id"] = event.id

    def on_turn(_client, event):
        with lock:
            if event.end_of_turn:
                report["finals"].append(
                    {"transcript": event.transcript, "formatted": event.turn_is_formatted}
                )
            else:
                report["partials"] += 1

    def on_termination(_client, event):
        with lock:
            report["termination"] = {
                "audio_duration_seconds": event.audio_duration_seconds,
                "session_duration_seconds": event.session_duration_seconds,
            }

    def on_error(_client, error):
        with lock:
            report["errors"].append({"message": str(error), "code": getattr(error, "code", None)})

    if use_token:
        http_host = api_host.replace("ws://", "http://", 1)
        request = urllib.request.Request(
            f"{http_host}/v3/token?expires_in_seconds=60&max_session_duration_seconds=600",
            headers={"Authorization": api_key},
        )
        with urllib.request.urlopen(request) as response:
            token = json.load(response)["token"]
        options = StreamingClientOptions(token=token, api_host=api_host)
    else:
        options = StreamingClientOptions(api_key=api_key, api_host=api_host)
    client = StreamingClient(options)
    client.on(StreamingEvents.Begin, on_begin)
    client.on(StreamingEvents.Turn, on_turn)
    client.on(StreamingEvents.Termination, on_termination)
    client.on(StreamingEvents.Error, on_error)

    client.connect(
        StreamingParameters(
            sample_rate=16000,
            speech_model="universal-streaming-english",
            format_turns=True,
        )
    )

    chunk = 1600  # 50 ms
    start = time.monotonic()
    for i in range(0, len(audio), chunk):
        if report["errors"]:
            break
        piece = audio[i : i + chunk]
        if len(piece) < chunk:
            piece = piece + b"\x00" * (chunk - len(piece))
        client.stream(piece)
        # Real-time pace against an absolute schedule, so delays do not accumulate.
        target = start + (i // chunk + 1) * 0.05
        time.sleep(max(0.0, target - time.monotonic()))

    client.disconnect(terminate=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
