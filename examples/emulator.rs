//! Runs the local AssemblyAI streaming emulator until Ctrl+C.
//!
//! ```text
//! cargo run --example emulator -- [--port 8080] [--host 127.0.0.1] [--api-key KEY]
//!     [--script FILE.json] [--legacy-formatting] [--stamp-send-time]
//!     [--max-sessions N] [--http-401] [--max-session-seconds N] [--realtime-tolerance-ms N]
//!     [--drop-after-ms N] [--no-termination] [--delay-begin-ms N] [--unknown-message]
//!     [--error-then-close CODE:REASON] [--malformed-frame] [--slow-ms N] [--untyped-error]
//!     [--tls | --tls-cert CHAIN.pem --tls-key KEY.pem [--tls-ca CA.pem]]
//! ```
//!
//! `--tls` also serves `wss://` and `https://` on the same port with a CA and certificate made at
//! start-up; the CA is written to a PEM file whose path is printed on a line
//! `tls: wss://HOST:PORT  ca certificate: PATH` after the existing lines (the first line stays
//! the plain `ws://` URL). `--tls-cert`/`--tls-key` use your own certificate instead.
//!
//! The fault flags (`--drop-after-ms` through `--slow-ms`, and `--untyped-error`) inject the faults
//! of `emulator::Faults` into every session.
//!
//! The first line of output is the base URL to give a client (`ws://127.0.0.1:8080`); `--port 0`
//! picks a free port. The accepted key is `--api-key`, else `ASSEMBLYAI_API_KEY`, else the fixed
//! development key, and is printed at start.
//!
//! `--help` describes every flag (exit 0). Usage errors (naming the flag), an unreadable
//! `--script`/`--tls-*` file (named) and a port that cannot be bound exit with status 2 before
//! anything listens. `RUST_LOG=debug` logs each session's lifecycle to stderr.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use assemblyai_streaming::emulator::{
    DEV_API_KEY, Emulator, Faults, Formatting, Script, TlsCertificate,
};

/// Runs the local AssemblyAI streaming emulator until Ctrl+C.
///
/// The first line printed is the base URL to give a client (ws://HOST:PORT), then the key
/// (printed only when it is the public development key), the websocket and token endpoints,
/// the faults (if any) and, with TLS, `tls: wss://HOST:PORT  ca certificate: PATH`. The
/// accepted key is --api-key, else ASSEMBLYAI_API_KEY, else the fixed development key. Usage
/// errors, unreadable files and a port in use exit with status 2.
#[derive(Debug, clap::Parser)]
#[command(name = "emulator")]
struct Args {
    /// Port to listen on; 0 picks a free one (printed on the first line).
    #[arg(long, value_name = "N", default_value_t = 8080)]
    port: u16,
    /// IP address to listen on.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    host: IpAddr,
    /// The key clients must present (default: ASSEMBLYAI_API_KEY, else the development key).
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// What the emulator "hears": a JSON script of turns (words, timings, translations).
    #[arg(long, value_name = "FILE.json")]
    script: Option<PathBuf>,
    /// The older service's format_turns: partials and the end-of-turn Turn unformatted, then a
    /// formatted copy of the end-of-turn Turn (default: every Turn formatted, as today).
    #[arg(long)]
    legacy_formatting: bool,
    /// Add the wall-clock send time to every message (the load tool's latency measure).
    #[arg(long)]
    stamp_send_time: bool,
    /// Sessions allowed at once; one more is closed with 3009 (default: no limit).
    #[arg(long, value_name = "N")]
    max_sessions: Option<usize>,
    /// Refuse a bad key with HTTP 401 at the upgrade instead of an Error frame and close 1008.
    #[arg(long = "http-401")]
    http_401: bool,
    /// Longest session in seconds (default 3 h, as the service); then closed with 3008.
    #[arg(long, value_name = "N")]
    max_session_seconds: Option<u64>,
    /// How far audio may run ahead of the wall clock, in ms, before the session is closed
    /// with 3007 (default 1000).
    #[arg(long, value_name = "N")]
    realtime_tolerance_ms: Option<u64>,
    /// Fault: drop the TCP connection (no close frame) N ms after the upgrade.
    #[arg(long, value_name = "N")]
    drop_after_ms: Option<u64>,
    /// Fault: never send Termination (nor close) after Terminate.
    #[arg(long)]
    no_termination: bool,
    /// Fault: wait N ms before sending Begin.
    #[arg(long, value_name = "N")]
    delay_begin_ms: Option<u64>,
    /// Fault: send a message of an unknown type right after Begin.
    #[arg(long)]
    unknown_message: bool,
    /// Fault: right after Begin, send an Error with CODE and REASON, then close with CODE.
    #[arg(long, value_name = "CODE:REASON", value_parser = code_reason)]
    error_then_close: Option<(u16, String)>,
    /// Fault: send one text frame that is not JSON right after Begin.
    #[arg(long)]
    malformed_frame: bool,
    /// Fault: delay every message by N ms.
    #[arg(long, value_name = "N")]
    slow_ms: Option<u64>,
    /// Fault: right after Begin, send the untyped error frame {"error": …} and close with
    /// 3005.
    #[arg(long)]
    untyped_error: bool,
    /// Also serve wss:// and https:// on the same port, with a CA and certificate made at
    /// start-up (the CA is written to a PEM file named on the `tls:` line).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls: bool,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "CHAIN.pem", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "KEY.pem", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The CA (PEM) that signed --tls-cert, for clients to trust.
    #[arg(long, value_name = "CA.pem", requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
}

/// `CODE:REASON` of `--error-then-close` (a bare `CODE` gives an empty reason).
fn code_reason(s: &str) -> Result<(u16, String), String> {
    let (code, reason) = s.split_once(':').unwrap_or((s, ""));
    let code = code
        .parse()
        .map_err(|_| format!("expected CODE:REASON with a numeric CODE, got `{s}`"))?;
    Ok((code, reason.to_string()))
}

fn fail(msg: &str) -> ! {
    eprintln!("emulator: {msg}\nFor more information, try '--help'.");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let args = <Args as clap::Parser>::parse();
    // RUST_LOG=debug shows each session's lifecycle on stderr (stdout keeps its lines).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let ms = |n: Option<u64>| n.map(Duration::from_millis);
    let faults = Faults {
        drop_after: ms(args.drop_after_ms),
        no_termination: args.no_termination,
        delay_begin: ms(args.delay_begin_ms),
        unknown_message: args.unknown_message,
        error_then_close: args.error_then_close.clone(),
        malformed_frame: args.malformed_frame,
        slow_messages: ms(args.slow_ms),
        untyped_error: args.untyped_error,
        ..Faults::default()
    };
    // Files are read before anything listens, and errors name them.
    let script = args.script.as_ref().map(|path| {
        Script::from_json_file(path)
            .unwrap_or_else(|e| fail(&format!("cannot use --script {}: {e}", path.display())))
    });
    let read = |flag: &str, path: &PathBuf| {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| fail(&format!("cannot read {flag} {}: {e}", path.display())))
    };
    let tls = match (args.tls, &args.tls_cert, &args.tls_key) {
        (true, _, _) => Some(TlsCertificate::SelfSigned),
        (false, Some(cert), Some(key)) => Some(TlsCertificate::Pem {
            cert_chain_pem: read("--tls-cert", cert),
            key_pem: read("--tls-key", key),
            ca_pem: args.tls_ca.as_ref().map(|ca| read("--tls-ca", ca)),
        }),
        // clap's `requires` rules out one of cert/key without the other.
        _ => None,
    };
    let (host, port) = (args.host, args.port);
    let api_key = args.api_key.clone();
    let formatting = if args.legacy_formatting {
        Formatting::Legacy
    } else {
        Formatting::InModel
    };
    let stamp = args.stamp_send_time;
    let http_401 = args.http_401;
    let max_session = args.max_session_seconds.map(Duration::from_secs);
    let tolerance = ms(args.realtime_tolerance_ms);
    let max_sessions = args.max_sessions;
    let (api_key, key_source) = match api_key {
        Some(k) => (k, "--api-key"),
        None => match std::env::var("ASSEMBLYAI_API_KEY") {
            Ok(k) if !k.is_empty() => (k, "ASSEMBLYAI_API_KEY"),
            _ => (DEV_API_KEY.to_string(), "development key"),
        },
    };

    let mut builder = Emulator::builder()
        .bind(SocketAddr::new(host, port))
        .api_key(api_key.clone())
        .formatting(formatting)
        .stamp_send_time(stamp)
        .reject_bad_auth_with_http_401(http_401)
        .faults(faults.clone());
    if let Some(d) = max_session {
        builder = builder.max_session_duration(d);
    }
    if let Some(d) = tolerance {
        builder = builder.realtime_tolerance(d);
    }
    if let Some(s) = script {
        builder = builder.script(s);
    }
    if let Some(n) = max_sessions {
        builder = builder.max_concurrent_sessions(n);
    }
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    let emulator = builder
        .start()
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on {host}:{port}: {e}")));

    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", emulator.ws_url());
    // The key is only printed when it is the public development key; a real key stays secret.
    if key_source == "development key" {
        let _ = writeln!(out, "api key: {api_key} ({key_source})");
    } else {
        let _ = writeln!(out, "api key: from {key_source}");
    }
    let _ = writeln!(
        out,
        "websocket: {}/v3/ws?speech_model=universal-streaming-english   token: GET {}/v3/token",
        emulator.ws_url(),
        emulator.http_url()
    );
    if faults.any() {
        let _ = writeln!(out, "faults: {faults:?}");
    }
    if let Some(wss) = emulator.wss_url() {
        let ca = match emulator.ca_certificate_pem() {
            Some(pem) => {
                let path = std::env::temp_dir().join(format!(
                    "assemblyai-emulator-ca-{}.pem",
                    emulator.local_addr().port()
                ));
                if let Err(e) = std::fs::write(&path, pem) {
                    fail(&format!("cannot write {}: {e}", path.display()));
                }
                path.display().to_string()
            }
            None => "(not given)".to_string(),
        };
        let _ = writeln!(out, "tls: {wss}  ca certificate: {ca}");
    }
    let _ = out.flush();
    drop(out);

    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
}
