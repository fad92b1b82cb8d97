//! Streams a WAV file to the service and prints every server event as one JSON line.
//!
//! ```text
//! cargo run --example transcribe -- [--url URL] [--param KEY=VALUE]... [--no-format-turns] [--fast]
//!     [--format json|vtt|srt] [--channels mix|separate] [--resilient] FILE.wav
//! ```
//!
//! Contract (other tools script this):
//! - stdout, `--format json` (the default): one JSON object per server event, the message's
//!   fields as received, plus `"final": true|false` on `Turn` messages (true exactly once per
//!   `turn_order`).
//! - stdout, `--format vtt` / `--format srt`: the final turns as one WebVTT / SubRip file, written
//!   when the session has ended (cues from the word timings; see `assemblyai_streaming::captions`).
//! - `--channels mix` (the default) sends the downmix of all channels to one session;
//!   `--channels separate` opens one session per channel (`assemblyai_streaming::channels`),
//!   merges their events in audio-time order and adds `"channel": N` (0-based) to every JSON
//!   line and error line; captions then name the channel as each cue's speaker.
//! - stderr: each error as `{"error": {"kind": "...", "code": <int or null>, "message": "..."}}`.
//! - exit status 0 only when the session (every session, with `--channels separate`) ended with
//!   `Termination`.
//! - `--resilient` streams through a `ResilientSession` (reconnects, replays, rolls over; see
//!   `assemblyai_streaming::resilient`; not with `--channels separate`): server events keep the
//!   format above (on one timeline), and its own events are lines (on stdout with `--format
//!   json`, else on stderr) `{"type":"Reconnected","attempt":…,"downtime_ms":…,
//!   "replayed_ms":…,"session_id":…,"cause":{"kind":…,"code":…,"message":…}}`,
//!   `{"type":"RolledOver","replayed_ms":…,"session_id":…}` and
//!   `{"type":"AudioGap","start_ms":…,"duration_ms":…}`.
//!
//! The key comes from `ASSEMBLYAI_API_KEY`; `--url` takes a base such as `ws://127.0.0.1:8080`.
//! Checked before anything connects, each as an error line with exit status 1: FILE.wav must
//! be readable (an `io` error naming it), and the key must be set (a `config` error saying to
//! set it, or to start the emulator, `cargo run --example emulator`, and pass its URL with
//! `--url` and its key in the variable). `--help` describes every flag (exit 0); usage errors name the flag and
//! exit 2. `RUST_LOG=debug` logs the session lifecycle to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use assemblyai_streaming::audio::{paced, read_wav};
use assemblyai_streaming::captions::{self, Transcript};
use assemblyai_streaming::channels::MergedChannels;
use assemblyai_streaming::resilient::{ResilientEvent, ResilientSession};
use assemblyai_streaming::{
    API_KEY_ENV, AudioChunk, ConnectionParams, Encoding, Error, StreamingClient, TurnEvent,
};
use futures::{SinkExt, StreamExt};

/// Streams a WAV file to the service and prints every server event as one JSON line.
///
/// The key comes from ASSEMBLYAI_API_KEY. Without one, either set it to your AssemblyAI key, or
/// start the local emulator (`cargo run --example emulator`) and pass the URL it prints with
/// --url, with ASSEMBLYAI_API_KEY set to the key it prints.
///
/// stdout: one JSON object per server event (`"final": true|false` on Turn messages), or the
/// final turns as WebVTT/SubRip with --format. stderr: each error as
/// {"error": {"kind": "...", "code": <int or null>, "message": "..."}}. Exit status 0 only when
/// every session ended with Termination; 1 otherwise; 2 for a usage error.
#[derive(Debug, clap::Parser)]
#[command(name = "transcribe")]
struct Args {
    /// Base URL of the service, such as ws://127.0.0.1:8080 (the emulator's first line).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Extra connection parameter sent in the query string; repeat for more.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = key_value)]
    params: Vec<(String, String)>,
    /// Ask for unformatted turns only (format_turns=false).
    #[arg(long = "no-format-turns", action = clap::ArgAction::SetFalse)]
    format_turns: bool,
    /// Send the audio as fast as the socket takes it instead of at real-time pace. A service
    /// that enforces real time (the real one; the emulator unless started with a large
    /// --realtime-tolerance-ms) ends such a session with close code 3007 "Audio Transmission
    /// Rate Exceeded".
    #[arg(long)]
    fast: bool,
    /// Output: one JSON line per event, or the final turns as a WebVTT or SubRip file.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// `mix` sends the downmix of all channels to one session; `separate` opens one session
    /// per channel and adds "channel": N to every line.
    #[arg(long, value_enum, default_value = "mix")]
    channels: Channels,
    /// Stream through a ResilientSession (reconnects, replays, rolls over); not with
    /// `--channels separate`.
    #[arg(long)]
    resilient: bool,
    /// The WAV file to stream (any rate, channel count and sample format; converted).
    #[arg(value_name = "FILE.wav")]
    file: PathBuf,
}

/// `KEY=VALUE` of `--param`.
fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}

/// One thing to print: a server event (tagged with its channel), or a line of the resilient
/// session's own.
enum Item {
    Event(Option<u16>, Result<TurnEvent, Error>),
    Note(serde_json::Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Json,
    Vtt,
    Srt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Channels {
    Mix,
    Separate,
}

fn parse_args() -> Args {
    use clap::{CommandFactory, Parser};
    let args = Args::parse();
    if args.resilient && args.channels == Channels::Separate {
        Args::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--resilient cannot be used with --channels separate",
            )
            .exit()
    }
    args
}

/// What is missing before anything connects: the input file (named), or the key (with both
/// ways to get one).
fn preflight(args: &Args) -> Result<(), Error> {
    // Kept an `io` error, as a missing file was before; the message now names it.
    std::fs::File::open(&args.file).map_err(|e| {
        Error::from(std::io::Error::new(
            e.kind(),
            format!("cannot read FILE.wav {}: {e}", args.file.display()),
        ))
    })?;
    if std::env::var(API_KEY_ENV).map_or(true, |k| k.is_empty()) {
        return Err(Error::config(format!(
            "no API key: set {API_KEY_ENV} to your AssemblyAI key, or start the local emulator \
             (`cargo run --example emulator`) and pass the URL it prints with --url, with \
             {API_KEY_ENV} set to the key it prints"
        )));
    }
    Ok(())
}

fn print_error(e: &Error, channel: Option<u16>) {
    let mut line = serde_json::json!({"error": {"kind": e.kind(), "code": e.code(), "message": e.to_string()}});
    if let (Some(channel), Some(obj)) = (channel, line.as_object_mut()) {
        obj.insert("channel".into(), channel.into());
    }
    eprintln!("{line}");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = parse_args();
    // RUST_LOG=debug shows the session lifecycle (tracing spans of the crate).
    tracing_subscriber::fmt()
        // Off unless RUST_LOG is set: stderr otherwise carries only the JSON error lines.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = preflight(&args) {
        print_error(&e, None);
        return ExitCode::FAILURE;
    }
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            print_error(&e, None);
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<bool, Error> {
    let mut params = ConnectionParams::new().format_turns(args.format_turns);
    for (k, v) in &args.params {
        params = params.extra(k, v);
    }
    let mut builder = StreamingClient::builder();
    if let Some(url) = &args.url {
        builder = builder.base_url(url);
    }
    // Events tagged with their channel (`None`: one session for the downmix of all channels).
    let separate_channels = args.channels == Channels::Separate;
    let (mut events, channels, sender) = if separate_channels {
        let merged =
            MergedChannels::from_wav(&builder.build()?, params, &args.file, !args.fast).await?;
        let channels = merged.channels();
        let events = merged
            .map(|e| Item::Event(Some(e.channel), e.event))
            .boxed();
        (events, channels, None)
    } else {
        let sample_rate = params.get_sample_rate();
        let encoding = params.get_encoding();
        // Any WAV: other rates, channel counts and sample formats are converted (resampled
        // with the same path as the microphone) to the session's 16-bit mono at its rate.
        let (chunks, _info) = read_wav(&args.file, sample_rate)?;
        let fast = args.fast;
        let (events, sender) = if args.resilient {
            let session = ResilientSession::builder(builder, params).connect().await?;
            let (sink, events) = session.split();
            let sender = tokio::spawn(send_audio(sink, chunks, fast, sample_rate, encoding));
            (events.filter_map(resilient_item).boxed(), sender)
        } else {
            let session = builder.build()?.connect(params).await?;
            let (sink, events) = session.split();
            let sender = tokio::spawn(send_audio(sink, chunks, fast, sample_rate, encoding));
            (events.map(|e| Item::Event(None, e)).boxed(), sender)
        };
        (events, 1, Some(sender))
    };

    let mut terminations = 0;
    let mut transcripts = vec![Transcript::new(); usize::from(channels)];
    let mut stdout = std::io::stdout().lock();
    while let Some(item) = events.next().await {
        let (channel, event) = match item {
            Item::Event(channel, event) => (channel, event),
            Item::Note(line) if args.format == Format::Json => {
                let _ = writeln!(stdout, "{line}");
                let _ = stdout.flush();
                continue;
            }
            Item::Note(line) => {
                eprintln!("{line}");
                continue;
            }
        };
        match event {
            Ok(event) => {
                let is_final = match &event {
                    TurnEvent::Partial(_) => Some(false),
                    TurnEvent::Final(_) => Some(true),
                    TurnEvent::Termination(_) => {
                        terminations += 1;
                        None
                    }
                    _ => None,
                };
                if args.format != Format::Json {
                    if let Some(t) = transcripts.get_mut(usize::from(channel.unwrap_or(0))) {
                        t.push_event(&event);
                    }
                    continue;
                }
                let mut value = serde_json::to_value(event.into_message()).unwrap_or_default();
                if let Some(obj) = value.as_object_mut() {
                    if let Some(f) = is_final {
                        obj.insert("final".into(), f.into());
                    }
                    if let Some(channel) = channel {
                        obj.insert("channel".into(), channel.into());
                    }
                }
                let _ = writeln!(stdout, "{value}");
                let _ = stdout.flush();
            }
            Err(e) => print_error(&e, channel),
        }
    }
    if args.format != Format::Json {
        // Cues of every channel on one timeline; with separate channels each cue names its
        // channel as its speaker (a WebVTT voice span).
        let mut cues = Vec::new();
        for (channel, transcript) in transcripts.iter().enumerate() {
            for mut cue in transcript.cues(None) {
                if separate_channels {
                    cue.speaker = Some(format!("channel {channel}"));
                }
                cues.push(cue);
            }
        }
        cues.sort_by_key(|c| c.start_ms);
        let text = match args.format {
            Format::Vtt => captions::webvtt(&cues),
            _ => captions::srt(&cues),
        };
        let _ = write!(stdout, "{text}");
    }
    let _ = stdout.flush();
    // A send error means the session ended; its cause was already printed from the stream.
    if let Some(sender) = sender {
        let _ = sender.await;
    }
    Ok(terminations == usize::from(channels))
}

/// Sends the file's audio (at real-time pace unless `fast`), then closes the sink (which sends
/// what is buffered, then `Terminate`).
async fn send_audio<S>(
    mut sink: S,
    chunks: Vec<AudioChunk>,
    fast: bool,
    sample_rate: u32,
    encoding: Encoding,
) -> Result<(), Error>
where
    S: futures::Sink<AudioChunk, Error = Error> + Unpin,
{
    if fast {
        for chunk in chunks {
            sink.send(chunk).await?;
        }
    } else {
        let mut audio = paced(chunks, sample_rate, encoding);
        while let Some(chunk) = audio.next().await {
            sink.send(chunk).await?;
        }
    }
    sink.close().await
}

/// A resilient session's event as a line to print.
async fn resilient_item(event: Result<ResilientEvent, Error>) -> Option<Item> {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let line = match event {
        Err(e) => return Some(Item::Event(None, Err(e))),
        Ok(ResilientEvent::Turn(event)) => return Some(Item::Event(None, Ok(event))),
        Ok(ResilientEvent::Reconnected {
            attempt,
            downtime,
            replayed,
            session_id,
            cause,
        }) => serde_json::json!({"type": "Reconnected", "attempt": attempt,
            "downtime_ms": ms(downtime), "replayed_ms": ms(replayed), "session_id": session_id,
            "cause": {"kind": cause.kind(), "code": cause.code(), "message": cause.to_string()}}),
        Ok(ResilientEvent::RolledOver {
            replayed,
            session_id,
        }) => serde_json::json!({"type": "RolledOver", "replayed_ms": ms(replayed),
            "session_id": session_id}),
        Ok(ResilientEvent::AudioGap { start, duration }) => serde_json::json!({"type": "AudioGap",
            "start_ms": ms(start), "duration_ms": ms(duration)}),
        Ok(_) => return None,
    };
    Some(Item::Note(line))
}
