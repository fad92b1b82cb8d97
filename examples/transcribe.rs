//! Streams a WAV file to the service and prints every server event as one JSON line.
//!
//! ```text
//! cargo run --example transcribe -- [--url URL] [--param KEY=VALUE]... [--no-format-turns] [--fast] [--resilient] FILE.wav
//! ```
//!
//! Contract (other tools script this):
//! - stdout: one JSON object per server event, the message's fields as received, plus
//!   `"final": true|false` on `Turn` messages (true exactly once per `turn_order`).
//! - stderr: each error as `{"error": {"kind": "...", "code": <int or null>, "message": "..."}}`.
//! - exit status 0 only when the session ended with `Termination`.
//! - `--resilient` streams through a `ResilientSession` (reconnects, replays, rolls over; see
//!   `assemblyai_streaming::resilient`): server events keep the format above (on one timeline),
//!   and its own events are lines `{"type":"Reconnected","attempt":…,"downtime_ms":…,
//!   "replayed_ms":…,"session_id":…,"cause":{"kind":…,"code":…,"message":…}}`,
//!   `{"type":"RolledOver","replayed_ms":…,"session_id":…}` and
//!   `{"type":"AudioGap","start_ms":…,"duration_ms":…}`.
//!
//! The key comes from `ASSEMBLYAI_API_KEY`; `--url` takes a base such as `ws://127.0.0.1:8080`.

use std::io::Write;
use std::process::ExitCode;

use assemblyai_streaming::audio::{paced, read_wav};
use assemblyai_streaming::resilient::{ResilientEvent, ResilientSession};
use assemblyai_streaming::{ConnectionParams, Error, StreamingClient, TurnEvent};
use futures::{SinkExt, StreamExt};

struct Args {
    url: Option<String>,
    params: Vec<(String, String)>,
    format_turns: bool,
    fast: bool,
    resilient: bool,
    file: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: transcribe [--url URL] [--param KEY=VALUE]... [--no-format-turns] [--fast] [--resilient] FILE.wav"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        url: None,
        params: Vec::new(),
        format_turns: true,
        fast: false,
        resilient: false,
        file: String::new(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => parsed.url = Some(args.next().unwrap_or_else(|| usage())),
            "--param" => {
                let kv = args.next().unwrap_or_else(|| usage());
                let Some((k, v)) = kv.split_once('=') else {
                    usage()
                };
                parsed.params.push((k.to_string(), v.to_string()));
            }
            "--no-format-turns" => parsed.format_turns = false,
            "--fast" => parsed.fast = true,
            "--resilient" => parsed.resilient = true,
            "-h" | "--help" => usage(),
            _ if parsed.file.is_empty() && !arg.starts_with("--") => parsed.file = arg,
            _ => usage(),
        }
    }
    if parsed.file.is_empty() {
        usage()
    }
    parsed
}

fn print_error(e: &Error) {
    let line = serde_json::json!({"error": {"kind": e.kind(), "code": e.code(), "message": e.to_string()}});
    eprintln!("{line}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = parse_args();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            print_error(&e);
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<bool, Error> {
    let mut params = ConnectionParams::new().format_turns(args.format_turns);
    for (k, v) in &args.params {
        params = params.extra(k, v);
    }
    let sample_rate = params.sample_rate();
    let params_encoding = params.audio_encoding();
    let (chunks, _info) = read_wav(&args.file, sample_rate)?;

    let mut builder = StreamingClient::builder();
    if let Some(url) = &args.url {
        builder = builder.base_url(url);
    }
    if args.resilient {
        return run_resilient(args, builder, params, chunks).await;
    }
    let session = builder.build()?.connect(params).await?;
    let (mut sink, mut events) = session.split();

    // Any WAV: other rates, channel counts and sample formats are converted (resampled with
    // the same path as the microphone) to the session's 16-bit mono at its rate.
    let encoding = params_encoding;
    let sender = tokio::spawn(async move {
        if args.fast {
            for chunk in chunks {
                sink.send(chunk).await?;
            }
        } else {
            let mut audio = std::pin::pin!(paced(chunks, sample_rate, encoding));
            while let Some(chunk) = audio.next().await {
                sink.send(chunk).await?;
            }
        }
        sink.close().await
    });

    let mut terminated = false;
    let mut stdout = std::io::stdout().lock();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => terminated |= print_event(&mut stdout, event),
            Err(e) => print_error(&e),
        }
    }
    // A send error means the session ended; its cause was already printed from the stream.
    let _ = sender.await;
    Ok(terminated)
}

/// Prints one server event as a JSON line; `true` for `Termination`.
fn print_event(stdout: &mut impl Write, event: TurnEvent) -> bool {
    let is_final = match &event {
        TurnEvent::Partial(_) => Some(false),
        TurnEvent::Final(_) => Some(true),
        _ => None,
    };
    let terminated = matches!(event, TurnEvent::Termination(_));
    let mut value = serde_json::to_value(event.into_message()).unwrap_or_default();
    if let (Some(f), Some(obj)) = (is_final, value.as_object_mut()) {
        obj.insert("final".into(), f.into());
    }
    print_line(stdout, &value);
    terminated
}

fn print_line(stdout: &mut impl Write, value: &serde_json::Value) {
    let _ = writeln!(stdout, "{value}");
    let _ = stdout.flush();
}

/// `--resilient`: the same output through a `ResilientSession`, plus its own events.
async fn run_resilient(
    args: Args,
    builder: assemblyai_streaming::StreamingClientBuilder,
    params: ConnectionParams,
    chunks: Vec<assemblyai_streaming::AudioChunk>,
) -> Result<bool, Error> {
    let (sample_rate, encoding) = (params.sample_rate(), params.audio_encoding());
    let session = ResilientSession::builder(builder, params).connect().await?;
    let (mut sink, mut events) = session.split();
    let sender = tokio::spawn(async move {
        if args.fast {
            for chunk in chunks {
                sink.send(chunk).await?;
            }
        } else {
            let mut audio = std::pin::pin!(paced(chunks, sample_rate, encoding));
            while let Some(chunk) = audio.next().await {
                sink.send(chunk).await?;
            }
        }
        sink.close().await
    });
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let mut terminated = false;
    let mut stdout = std::io::stdout().lock();
    while let Some(event) = events.next().await {
        match event {
            Ok(ResilientEvent::Turn(event)) => terminated |= print_event(&mut stdout, event),
            Ok(ResilientEvent::Reconnected {
                attempt,
                downtime,
                replayed,
                session_id,
                cause,
            }) => print_line(
                &mut stdout,
                &serde_json::json!({"type": "Reconnected", "attempt": attempt,
                    "downtime_ms": ms(downtime), "replayed_ms": ms(replayed), "session_id": session_id,
                    "cause": {"kind": cause.kind(), "code": cause.code(), "message": cause.to_string()}}),
            ),
            Ok(ResilientEvent::RolledOver {
                replayed,
                session_id,
            }) => print_line(
                &mut stdout,
                &serde_json::json!({"type": "RolledOver", "replayed_ms": ms(replayed), "session_id": session_id}),
            ),
            Ok(ResilientEvent::AudioGap { start, duration }) => print_line(
                &mut stdout,
                &serde_json::json!({"type": "AudioGap", "start_ms": ms(start), "duration_ms": ms(duration)}),
            ),
            Ok(_) => {}
            Err(e) => print_error(&e),
        }
    }
    let _ = sender.await;
    Ok(terminated)
}
