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

use std::io::{BufRead, Write};
use std::process::ExitCode;

use assemblyai_streaming::Error;
use assemblyai_streaming::lemur::{Backend, Lemur};

const USAGE: &str =
    "usage: translate --lang LANG [--base-url URL] [--model NAME] [--legacy-lemur] [TEXT]";

struct Args {
    lang: String,
    base_url: Option<String>,
    model: Option<String>,
    legacy: bool,
    text: Option<String>,
}

fn parse_args() -> Result<Args, Error> {
    let mut lang = None;
    let mut base_url = None;
    let mut model = None;
    let mut legacy = false;
    let mut words: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    let value = |args: &mut dyn Iterator<Item = String>, flag: &str| {
        args.next()
            .ok_or_else(|| Error::Config(format!("{flag} needs a value; {USAGE}")))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--lang" => lang = Some(value(&mut args, "--lang")?),
            "--base-url" => base_url = Some(value(&mut args, "--base-url")?),
            "--model" => model = Some(value(&mut args, "--model")?),
            "--legacy-lemur" => legacy = true,
            "-h" | "--help" => return Err(Error::Config(USAGE.into())),
            "--" => words.extend(args.by_ref()),
            flag if flag.starts_with("--") => {
                return Err(Error::Config(format!("unknown option {flag}; {USAGE}")));
            }
            _ => words.push(arg),
        }
    }
    let lang = lang.ok_or_else(|| Error::Config(format!("--lang is required; {USAGE}")))?;
    Ok(Args {
        lang,
        base_url,
        model,
        legacy,
        text: (!words.is_empty()).then(|| words.join(" ")),
    })
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
    if let Some(text) = args.text {
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
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}
