//! Streams a WAV file to the service and prints every server event as one JSON line.
//!
//! ```text
//! cargo run --example transcribe -- [--url URL] [--param KEY=VALUE]... [--no-format-turns] [--fast]
//!     [--format json|vtt|srt] FILE.wav
//! ```
//!
//! Contract (other tools script this):
//! - stdout, `--format json` (the default): one JSON object per server event, the message's
//!   fields as received, plus `"final": true|false` on `Turn` messages (true exactly once per
//!   `turn_order`).
//! - stdout, `--format vtt` / `--format srt`: the final turns as one WebVTT / SubRip file, written
//!   when the session has ended (cues from the word timings; see `assemblyai_streaming::captions`).
//! - stderr: each error as `{"error": {"kind": "...", "code": <int or null>, "message": "..."}}`.
//! - exit status 0 only when the session ended with `Termination`.
//!
//! The key comes from `ASSEMBLYAI_API_KEY`; `--url` takes a base such as `ws://127.0.0.1:8080`.

use std::io::Write;
use std::process::ExitCode;

use assemblyai_streaming::audio::{paced, read_wav};
use assemblyai_streaming::captions::Transcript;
use assemblyai_streaming::{ConnectionParams, Error, StreamingClient, TurnEvent};
use futures::{SinkExt, StreamExt};

struct Args {
    url: Option<String>,
    params: Vec<(String, String)>,
    format_turns: bool,
    fast: bool,
    format: Format,
    file: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Vtt,
    Srt,
}

fn usage() -> ! {
    eprintln!(
        "usage: transcribe [--url URL] [--param KEY=VALUE]... [--no-format-turns] [--fast] [--format json|vtt|srt] FILE.wav"
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
        format: Format::Json,
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
            "--format" => {
                parsed.format = match args.next().as_deref() {
                    Some("json") => Format::Json,
                    Some("vtt") => Format::Vtt,
                    Some("srt") => Format::Srt,
                    _ => usage(),
                }
            }
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
    let mut transcript = Transcript::new();
    let mut stdout = std::io::stdout().lock();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let is_final = match &event {
                    TurnEvent::Partial(_) => Some(false),
                    TurnEvent::Final(_) => Some(true),
                    TurnEvent::Termination(_) => {
                        terminated = true;
                        None
                    }
                    _ => None,
                };
                if args.format != Format::Json {
                    transcript.push_event(&event);
                    continue;
                }
                let mut value = serde_json::to_value(event.into_message()).unwrap_or_default();
                if let (Some(f), Some(obj)) = (is_final, value.as_object_mut()) {
                    obj.insert("final".into(), f.into());
                }
                let _ = writeln!(stdout, "{value}");
                let _ = stdout.flush();
            }
            Err(e) => print_error(&e),
        }
    }
    match args.format {
        Format::Json => {}
        Format::Vtt => {
            let _ = write!(stdout, "{}", transcript.to_webvtt(None));
        }
        Format::Srt => {
            let _ = write!(stdout, "{}", transcript.to_srt(None));
        }
    }
    let _ = stdout.flush();
    // A send error means the session ended; its cause was already printed from the stream.
    let _ = sender.await;
    Ok(terminated)
}
