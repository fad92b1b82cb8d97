#!/bin/sh
# Regenerates sample.wav, the bundled spoken sample of the `mic_translate` example: three
# English sentences (the texts of sample.script.json) spoken by espeak-ng (en-us), with 1.5 s
# of silence between sentences so that turn detection ends a turn after each one.
# Output: 16 kHz mono 16-bit PCM WAV. Needs espeak-ng and sox
# (apt-get install espeak-ng sox). Run from anywhere: ./examples/assets/make_sample.sh
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say() { # $1 = index, $2 = text, $3 = seconds of silence after it
    espeak-ng -v en-us -s 175 -w "$tmp/raw$1.wav" "$2"
    # Resample to 16 kHz mono s16, trim espeak's own leading/trailing silence, then add
    # exactly the pause wanted.
    sox "$tmp/raw$1.wav" -r 16000 -c 1 -b 16 -e signed-integer "$tmp/s$1.wav" \
        silence 1 0.02 0.1% reverse silence 1 0.02 0.1% reverse pad 0 "$3"
}

say 1 "Hello, and welcome to the live translation demo." 1.5
say 2 "Today we are testing real-time speech recognition." 1.5
say 3 "Thank you for listening, and have a great day." 1.0

# 0.3 s of silence before the first sentence, like a speaker who starts after a moment.
sox "$tmp/s1.wav" "$tmp/s2.wav" "$tmp/s3.wav" sample.wav pad 0.3 0
sox sample.wav -n stat 2>&1 | grep -E 'Length|RMS +amplitude'
