//! Speak, and watch live partials, each final transcript and its translation.
//!
//! ```text
//! cargo run --example mic_translate [-- --lang fr] [--wav out.wav] [--device NAME] [--input FILE.wav]
//! ```
//!
//! - Audio: the microphone (built with `--features mic` and a working input device), else
//!   `--input FILE.wav`, else the bundled spoken sample, streamed at real-time pace.
//! - Service: the real one when `ASSEMBLYAI_API_KEY` is set; otherwise the built-in emulator,
//!   started in this process. Its transcripts and translations are emulated (scripted for the
//!   bundled sample, placeholders otherwise), and the program says so.
//! - Ctrl+C sends `Terminate`, waits for `Termination`, prints a summary and saves the WAV.
//!   With a file or the sample, that happens by itself when the audio ends.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use assemblyai_streaming::audio::{WavRecorder, paced, read_wav};
use assemblyai_streaming::emulator::{Emulator, EmulatorHandle, Script};
use assemblyai_streaming::lemur::Lemur;
use assemblyai_streaming::translate::{TranslateExt, TranslatedEvent, language_name};
use assemblyai_streaming::{
    API_KEY_ENV, AudioChunk, ConnectionParams, Encoding, Error, StreamingClient, TurnEvent,
};
use futures::{SinkExt, Stream, StreamExt};

const SAMPLE_RATE: u32 = 16_000;

/// Speak, and watch live partials, each final transcript and its translation.
///
/// Audio: the microphone (built with `--features mic` and a working input device), else
/// `--input FILE.wav`, else the bundled spoken sample, streamed at real-time pace. Service: the
/// real one when ASSEMBLYAI_API_KEY is set, else the built-in emulator (and it says so).
#[derive(Debug, clap::Parser)]
#[command(name = "mic_translate")]
struct Args {
    /// Language to translate finals into: an ISO 639-1 code or a name.
    #[arg(long, value_name = "CODE|NAME", default_value = "es")]
    lang: String,
    /// Save the audio sent as a 16 kHz mono WAV file.
    #[arg(long, value_name = "OUT.wav")]
    wav: Option<PathBuf>,
    /// Input device name (needs the `mic` feature).
    #[arg(long, value_name = "NAME")]
    device: Option<String>,
    /// Stream this WAV file (any format; resampled to 16 kHz mono) instead of the microphone.
    #[arg(long, value_name = "FILE.wav")]
    input: Option<PathBuf>,
}

/// Checks the files named on the command line before anything connects, so a typo fails at
/// once and names the file.
fn check_paths(args: &Args) -> Result<(), String> {
    if let Some(input) = &args.input {
        std::fs::File::open(input)
            .map_err(|e| format!("cannot read --input {}: {e}", input.display()))?;
    }
    if let Some(wav) = &args.wav {
        let dir = wav
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            return Err(format!(
                "cannot write --wav {}: directory {} does not exist",
                wav.display(),
                dir.display()
            ));
        }
    }
    Ok(())
}

fn assets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/assets")
}

type AudioStream = Pin<Box<dyn Stream<Item = Result<AudioChunk, Error>> + Send>>;

/// Where the audio comes from, and what the emulator should "hear" in it.
struct Source {
    audio: AudioStream,
    script: Option<Script>,
    live: bool,
    #[cfg(feature = "mic")]
    mic: Option<assemblyai_streaming::mic::MicControl>,
}

fn file_source(path: &std::path::Path, script: Option<Script>) -> Result<Source, Error> {
    let (chunks, _info) = read_wav(path, SAMPLE_RATE)?;
    Ok(Source {
        audio: Box::pin(paced(chunks, SAMPLE_RATE, Encoding::PcmS16le).map(Ok)),
        script,
        live: false,
        #[cfg(feature = "mic")]
        mic: None,
    })
}

fn bundled_sample() -> Result<Source, Error> {
    let script = Script::from_json_file(assets().join("sample.script.json"))?;
    file_source(&assets().join("sample.wav"), Some(script))
}

#[cfg(feature = "mic")]
async fn microphone(device: Option<String>) -> Result<Source, Error> {
    use assemblyai_streaming::mic::{MicConfig, Microphone};
    let config = MicConfig {
        device,
        ..MicConfig::default()
    };
    let mic = Microphone::open_async(config).await?;
    eprintln!(
        "Listening on \"{}\". Speak; Ctrl+C to stop.",
        mic.device_name()
    );
    let control = mic.control();
    Ok(Source {
        audio: Box::pin(mic),
        script: None,
        live: true,
        mic: Some(control),
    })
}

async fn choose_source(args: &Args) -> Result<Source, Error> {
    if let Some(path) = &args.input {
        eprintln!("Streaming {} at real-time pace.", path.display());
        return file_source(path, None);
    }
    #[cfg(feature = "mic")]
    {
        match microphone(args.device.clone()).await {
            Ok(source) => return Ok(source),
            Err(e) if args.device.is_some() => return Err(e),
            Err(e) => eprintln!("No microphone ({e})."),
        }
    }
    #[cfg(not(feature = "mic"))]
    {
        if args.device.is_some() {
            return Err(Error::config(
                "--device needs the `mic` feature: cargo run --features mic --example mic_translate",
            ));
        }
        eprintln!("Built without the `mic` feature (add `--features mic` to use a microphone).");
    }
    eprintln!(
        "Streaming the bundled spoken sample (examples/assets/sample.wav) at real-time pace."
    );
    bundled_sample()
}

/// The live terminal view: the current partial rewritten in place, finals and translations on
/// their own lines. Without a terminal, only finals and translations are printed.
struct View {
    tty: bool,
    lang: String,
    partial_shown: bool,
}

impl View {
    fn clear_partial(&mut self, out: &mut impl Write) {
        if self.partial_shown {
            let _ = write!(out, "\r\x1b[2K");
            self.partial_shown = false;
        }
    }

    fn partial(&mut self, text: &str, level: Option<f32>) {
        if !self.tty {
            return;
        }
        let mut out = std::io::stdout().lock();
        let meter = level
            .map(|l| {
                // RMS of speech sits around 0.01–0.3; a log scale makes quiet input visible.
                let bars = ((l.max(1e-4).log10() + 4.0) / 4.0 * 10.0).clamp(0.0, 10.0) as usize;
                format!("[{:<10}] ", "#".repeat(bars))
            })
            .unwrap_or_default();
        let width = 100usize;
        let tail: String = {
            let chars: Vec<char> = text.chars().collect();
            chars[chars.len().saturating_sub(width)..].iter().collect()
        };
        let _ = write!(out, "\r\x1b[2K{meter}\x1b[2m{tail}\x1b[0m");
        let _ = out.flush();
        self.partial_shown = true;
    }

    fn line(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        self.clear_partial(&mut out);
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn final_turn(&mut self, text: &str) {
        self.line(&format!("» {text}"));
    }

    fn translation(&mut self, text: &str) {
        let lang = language_name(&self.lang).into_owned();
        self.line(&format!("  {lang}: {text}"));
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    // RUST_LOG=debug shows the session lifecycle (tracing spans of the crate).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    if let Err(message) = check_paths(&args) {
        eprintln!("error: {message}");
        return ExitCode::FAILURE;
    }
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<bool, Error> {
    let source = choose_source(&args).await?;
    let has_key = std::env::var(API_KEY_ENV).is_ok_and(|k| !k.trim().is_empty());

    // Keep the emulator alive for the whole session.
    let mut _emulator: Option<EmulatorHandle> = None;
    let (client, lemur) = if has_key {
        eprintln!("Using AssemblyAI (key from {API_KEY_ENV}) and its LLM Gateway.");
        (StreamingClient::from_env()?, Lemur::builder().build()?)
    } else {
        let mut builder = Emulator::builder();
        if let Some(script) = source.script.clone() {
            builder = builder.script(script);
        }
        let emulator = builder.start().await?;
        eprintln!(
            "No {API_KEY_ENV} set: using the built-in emulator at {}. Transcripts and \
             translations are emulated{}, not real speech recognition or translation.",
            emulator.ws_url(),
            if source.script.is_some() {
                " (scripted for the bundled sample)"
            } else {
                " (placeholder words)"
            }
        );
        let client = StreamingClient::builder()
            .api_key(emulator.api_key())
            .base_url(emulator.ws_url())
            .build()?;
        let lemur = Lemur::builder()
            .api_key(emulator.api_key())
            .base_url(emulator.http_url())
            .build()?;
        _emulator = Some(emulator);
        (client, lemur)
    };

    let session = client
        .connect(ConnectionParams::new().format_turns(true))
        .await?;
    eprintln!(
        "Session {} started; translating finals into {}.",
        session.id(),
        language_name(&args.lang)
    );
    let (mut sink, events) = session.split();

    let recorder = match &args.wav {
        Some(path) => Some(WavRecorder::create(path, SAMPLE_RATE)?),
        None => None,
    };
    let stop = Arc::new(tokio::sync::Notify::new());
    #[cfg(feature = "mic")]
    let mic = source.mic.clone();
    let live = source.live;

    // Audio → session (and the WAV recorder: exactly what is sent).
    let sender = {
        let stop = stop.clone();
        let mut audio = source.audio;
        tokio::spawn(async move {
            let mut error = None;
            loop {
                let chunk = tokio::select! {
                    _ = stop.notified() => break,
                    chunk = audio.next() => chunk,
                };
                match chunk {
                    Some(Ok(chunk)) => {
                        if let Some(rec) = &recorder {
                            if let Err(e) = rec.write(&chunk) {
                                error = Some(e);
                                break;
                            }
                        }
                        if sink.send(chunk).await.is_err() {
                            break; // the session ended; the event stream says why
                        }
                    }
                    Some(Err(e)) => {
                        error = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            // Sends what is buffered, then Terminate.
            let _ = sink.close().await;
            let saved = match recorder {
                Some(rec) => Some(rec.finish().await),
                None => None,
            };
            (error, saved)
        })
    };

    // Ctrl+C: stop the audio; the session then terminates gracefully.
    {
        let stop = stop.clone();
        #[cfg(feature = "mic")]
        let mic = mic.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nStopping: sending Terminate and waiting for the last turns…");
                #[cfg(feature = "mic")]
                if let Some(mic) = &mic {
                    mic.stop();
                }
                stop.notify_one();
            }
        });
    }

    let mut view = View {
        tty: std::io::stdout().is_terminal(),
        lang: args.lang.clone(),
        partial_shown: false,
    };
    let mut events = events.translated(lemur, args.lang.clone());
    let (mut finals, mut translations, mut failed) = (0, 0, 0);
    let mut termination = None;
    let mut session_error = None;
    while let Some(item) = events.next().await {
        match item {
            Ok(TranslatedEvent::Event(event)) => match event {
                TurnEvent::Partial(turn) => {
                    // Universal-Streaming partials hold finalized words in `transcript`; show
                    // every word so far, the way a live caption would.
                    let text: Vec<&str> = turn.words.iter().map(|w| w.text.as_str()).collect();
                    #[cfg(feature = "mic")]
                    let level = mic.as_ref().filter(|_| live).map(|m| m.input_level());
                    #[cfg(not(feature = "mic"))]
                    let level: Option<f32> = None;
                    view.partial(&text.join(" "), level);
                }
                TurnEvent::Final(turn) => {
                    finals += 1;
                    view.final_turn(&turn.transcript);
                }
                TurnEvent::Termination(t) => termination = Some(t),
                _ => {}
            },
            Ok(TranslatedEvent::Translation(t)) => {
                translations += 1;
                view.translation(&t.text);
            }
            Ok(_) => {}
            Err(e @ Error::Translation { .. }) => {
                failed += 1;
                view.line(&format!("  (translation failed: {e})"));
            }
            Err(e) => {
                view.line(&format!("session error: {e}"));
                session_error = Some(e);
            }
        }
    }
    let _ = live;

    let (audio_error, saved) = sender.await.unwrap_or((None, None));
    eprintln!();
    eprintln!("── summary ──────────────────────────────");
    if let Some(t) = &termination {
        eprintln!(
            "audio {:.1} s, session {:.1} s, {finals} final turns, {translations} translations{}",
            t.audio_duration_seconds.unwrap_or(0.0),
            t.session_duration_seconds.unwrap_or(0.0),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
    }
    if let Some(e) = &audio_error {
        eprintln!("audio error: {e}");
    }
    if let Some(e) = &session_error {
        eprintln!("session ended with: {e}");
    }
    match (saved, &args.wav) {
        (Some(Ok(samples)), Some(path)) => eprintln!(
            "saved {} ({:.1} s)",
            path.display(),
            samples as f64 / SAMPLE_RATE as f64
        ),
        (Some(Err(e)), Some(path)) => eprintln!("could not save {}: {e}", path.display()),
        _ => {}
    }
    Ok(termination.is_some() && audio_error.is_none())
}
