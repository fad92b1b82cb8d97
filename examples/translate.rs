//! Translate text through the LLM Gateway (or legacy LeMUR, or any OpenAI-compatible server).
//!
//! ```text
//! cargo run --example translate -- --lang es [--base-url URL] [--model NAME] [--legacy-lemur] [TEXT]
//! ```
//!
//! Translates TEXT, or else each line of stdin, and prints one translation per line (an empty
//! input line gives an empty output line). The key comes from `ASSEMBLYAI_API_KEY`.
//!
//! On failure it prints `{"error": {"kind": "...", "code": <HTTP status or null>, "message":
//! "..."}}` to stderr and exits with status 1 (2 for a usage error); with stdin input it stops
//! at the first failing line, so every printed line still matches its input line.
//!
//! Against the emulator: `--base-url http://127.0.0.1:PORT` with the emulator's key.
//!
//! `--help` describes every flag on stdout and exits 0. A usage error (an unknown flag, a
//! missing `--lang` or value) is the JSON error line above with kind `config`, a null code, a
//! message naming the flag, and exit status 2. Without `ASSEMBLYAI_API_KEY` it fails before
//! connecting (kind `config`, exit 1) and says to set it, or to start the emulator (`cargo run
//! --example emulator`) and pass its URL with `--base-url`. `RUST_LOG=debug` logs to stderr.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use assemblyai_streaming::lemur::{Backend, Lemur};
use assemblyai_streaming::{API_KEY_ENV, Error};

/// Translate TEXT, or else each line of stdin, one translation per output line.
///
/// The key comes from ASSEMBLYAI_API_KEY. Without one, either set it to your AssemblyAI key, or
/// start the local emulator (`cargo run --example emulator`) and pass its URL with --base-url
/// (http://127.0.0.1:PORT), with ASSEMBLYAI_API_KEY set to the key it prints.
///
/// On failure: {"error": {"kind": "...", "code": <HTTP status or null>, "message": "..."}} on
/// stderr, exit status 1 (2 for a usage error); with stdin input it stops at the first failing
/// line.
#[derive(Debug, clap::Parser)]
#[command(name = "translate", allow_negative_numbers = true)]
struct Args {
    /// Target language: an ISO 639-1 code or a name.
    #[arg(long, value_name = "LANG")]
    lang: String,
    /// Base URL of the LLM Gateway (or LeMUR, or any OpenAI-compatible server), such as the
    /// emulator's http://127.0.0.1:PORT.
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Model name to ask for (default: the crate's default model).
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// Use the legacy LeMUR endpoint (shut down on 2026-03-31: the service answers 404).
    #[arg(long = "legacy-lemur")]
    legacy: bool,
    /// The text to translate (words are joined with spaces); without it, each line of stdin.
    #[arg(value_name = "TEXT")]
    words: Vec<String>,
}

/// Parses the command line. `--help` prints to stdout and exits 0; a usage error becomes the
/// JSON error line (kind `config`, null code) with exit status 2, as it always was.
fn parse_args() -> Result<Args, Error> {
    use clap::Parser;
    Args::try_parse().map_err(|e| {
        use clap::error::ErrorKind;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            e.exit()
        }
        // clap's rendering, on one line: what is wrong (naming the flag), then the usage.
        let text = e.render().to_string();
        let message: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        Error::config(message.join(" ").trim_start_matches("error: ").to_string())
    })
}

/// The key must be set before anything connects; say how to get one.
fn check_key() -> Result<(), Error> {
    if std::env::var(API_KEY_ENV).map_or(true, |k| k.is_empty()) {
        return Err(Error::config(format!(
            "no API key: set {API_KEY_ENV} to your AssemblyAI key, or start the local emulator \
             (`cargo run --example emulator`) and pass its URL with --base-url \
             http://127.0.0.1:PORT, with {API_KEY_ENV} set to the key it prints"
        )));
    }
    Ok(())
}

/// The machine-readable error line other tools parse.
fn report(e: &Error) {
    let line = serde_json::json!({
        "error": { "kind": e.kind(), "code": e.code(), "message": e.to_string() }
    });
    eprintln!("{line}");
}

/// One translation per output line, whatever the model returned.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

async fn run(args: Args) -> Result<(), Error> {
    let mut builder = Lemur::builder();
    if args.legacy {
        builder = builder.backend(Backend::LegacyLemur);
    }
    if let Some(url) = args.base_url {
        builder = builder.base_url(url);
    }
    if let Some(model) = args.model {
        builder = builder.model(model);
    }
    let lemur = builder.build()?;

    let mut out = std::io::stdout().lock();
    let text = (!args.words.is_empty()).then(|| args.words.join(" "));
    if let Some(text) = text {
        let translated = lemur.translate(&text, &args.lang).await?;
        writeln!(out, "{}", one_line(&translated))?;
        return Ok(());
    }
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            writeln!(out)?;
        } else {
            let translated = lemur.translate(&line, &args.lang).await?;
            writeln!(out, "{}", one_line(&translated))?;
        }
        out.flush()?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            report(&e);
            return ExitCode::from(2);
        }
    };
    // RUST_LOG=debug shows what the client does (tracing spans of the crate).
    tracing_subscriber::fmt()
        // Off unless RUST_LOG is set: stderr otherwise carries only the JSON error lines.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let checked = check_key();
    match async {
        checked?;
        run(args).await
    }
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}
