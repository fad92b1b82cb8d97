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

use std::io::Write;
use std::process::ExitCode;

use assemblyai_streaming::audio::{paced, read_wav};
use assemblyai_streaming::captions::{self, Transcript};
use assemblyai_streaming::channels::MergedChannels;
use assemblyai_streaming::resilient::{ResilientEvent, ResilientSession};
use assemblyai_streaming::{
    AudioChunk, ConnectionParams, Encoding, Error, StreamingClient, TurnEvent,
};
use futures::{SinkExt, StreamExt};

struct Args {
    url: Option<String>,
    params: Vec<(String, String)>,
    format_turns: bool,
    fast: bool,
    format: Format,
    separate_channels: bool,
    resilient: bool,
    file: String,
}

/// One thing to print: a server event (tagged with its channel), or a line of the resilient
/// session's own.
enum Item {
    Event(Option<u16>, Result<TurnEvent, Error>),
    Note(serde_json::Value),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Vtt,
    Srt,
}

fn usage() -> ! {
    eprintln!(
        "usage: transcribe [--url URL] [--param KEY=VALUE]... [--no-format-turns] [--fast] [--format json|vtt|srt] [--channels mix|separate] [--resilient] FILE.wav"
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
        separate_channels: false,
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
            "--channels" => match args.next().as_deref() {
                Some("separate") => parsed.separate_channels = true,
                Some("mix") => parsed.separate_channels = false,
                _ => usage(),
            },
            "--format" => {
                parsed.format = match args.next().as_deref() {
                    Some("json") => Format::Json,
                    Some("vtt") => Format::Vtt,
                    Some("srt") => Format::Srt,
                    _ => usage(),
                }
            }
            "--resilient" => parsed.resilient = true,
            "-h" | "--help" => usage(),
            _ if parsed.file.is_empty() && !arg.starts_with("--") => parsed.file = arg,
            _ => usage(),
        }
    }
    if parsed.file.is_empty() || (parsed.resilient && parsed.separate_channels) {
        usage()
    }
    parsed
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
    let (mut events, channels, sender) = if args.separate_channels {
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
                if args.separate_channels {
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
