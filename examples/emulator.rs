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

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use std::time::Duration;

use assemblyai_streaming::emulator::{
    DEV_API_KEY, Emulator, Faults, Formatting, Script, TlsCertificate,
};

const USAGE: &str = "usage: emulator [--port N] [--host IP] [--api-key KEY] [--script FILE.json] \
[--legacy-formatting] [--stamp-send-time] [--max-sessions N] [--http-401] [--max-session-seconds N] \
[--realtime-tolerance-ms N] [--drop-after-ms N] [--no-termination] [--delay-begin-ms N] \
[--unknown-message] [--error-then-close CODE:REASON] [--malformed-frame] [--slow-ms N] \
[--untyped-error] [--tls | --tls-cert CHAIN.pem --tls-key KEY.pem [--tls-ca CA.pem]]";

fn fail(msg: &str) -> ! {
    eprintln!("emulator: {msg}\n{USAGE}");
    std::process::exit(2);
}

fn number(value: &mut impl FnMut(&str) -> String, name: &str) -> u64 {
    value(name)
        .parse()
        .unwrap_or_else(|_| fail(&format!("{name} must be a number")))
}

#[tokio::main]
async fn main() {
    let mut port: u16 = 8080;
    let mut host: IpAddr = [127, 0, 0, 1].into();
    let mut api_key: Option<String> = None;
    let mut script: Option<Script> = None;
    let mut formatting = Formatting::InModel;
    let mut stamp = false;
    let mut max_sessions: Option<usize> = None;
    let mut http_401 = false;
    let mut max_session: Option<Duration> = None;
    let mut tolerance: Option<Duration> = None;
    let mut faults = Faults::default();
    let mut tls_self_signed = false;
    let (mut tls_cert, mut tls_key, mut tls_ca): (Option<String>, Option<String>, Option<String>) =
        (None, None, None);

    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| fail(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--port" => {
                port = value("--port")
                    .parse()
                    .unwrap_or_else(|_| fail("--port must be a number"))
            }
            "--host" => {
                host = value("--host")
                    .parse()
                    .unwrap_or_else(|_| fail("--host must be an IP address"))
            }
            "--api-key" => api_key = Some(value("--api-key")),
            "--script" => {
                let path = value("--script");
                script =
                    Some(Script::from_json_file(&path).unwrap_or_else(|e| fail(&e.to_string())));
            }
            "--legacy-formatting" => formatting = Formatting::Legacy,
            "--stamp-send-time" => stamp = true,
            "--max-sessions" => {
                max_sessions = Some(
                    value("--max-sessions")
                        .parse()
                        .unwrap_or_else(|_| fail("--max-sessions must be a number")),
                )
            }
            "--http-401" => http_401 = true,
            "--max-session-seconds" => {
                max_session = Some(Duration::from_secs(number(
                    &mut value,
                    "--max-session-seconds",
                )))
            }
            "--realtime-tolerance-ms" => {
                tolerance = Some(Duration::from_millis(number(
                    &mut value,
                    "--realtime-tolerance-ms",
                )))
            }
            "--drop-after-ms" => {
                faults.drop_after =
                    Some(Duration::from_millis(number(&mut value, "--drop-after-ms")))
            }
            "--no-termination" => faults.no_termination = true,
            "--delay-begin-ms" => {
                faults.delay_begin = Some(Duration::from_millis(number(
                    &mut value,
                    "--delay-begin-ms",
                )))
            }
            "--unknown-message" => faults.unknown_message = true,
            "--error-then-close" => {
                let v = value("--error-then-close");
                let (code, reason) = v.split_once(':').unwrap_or((v.as_str(), ""));
                let code = code
                    .parse()
                    .unwrap_or_else(|_| fail("--error-then-close needs CODE:REASON"));
                faults.error_then_close = Some((code, reason.to_string()));
            }
            "--malformed-frame" => faults.malformed_frame = true,
            "--untyped-error" => faults.untyped_error = true,
            "--tls" => tls_self_signed = true,
            "--tls-cert" => tls_cert = Some(value("--tls-cert")),
            "--tls-key" => tls_key = Some(value("--tls-key")),
            "--tls-ca" => tls_ca = Some(value("--tls-ca")),
            "--slow-ms" => {
                faults.slow_messages = Some(Duration::from_millis(number(&mut value, "--slow-ms")))
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => fail(&format!("unknown argument {other}")),
        }
    }
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
    let read = |path: &str| {
        std::fs::read_to_string(path).unwrap_or_else(|e| fail(&format!("cannot read {path}: {e}")))
    };
    match (tls_self_signed, &tls_cert, &tls_key) {
        (true, None, None) => builder = builder.tls(TlsCertificate::SelfSigned),
        (false, Some(cert), Some(key)) => {
            builder = builder.tls(TlsCertificate::Pem {
                cert_chain_pem: read(cert),
                key_pem: read(key),
                ca_pem: tls_ca.as_deref().map(read),
            })
        }
        (false, None, None) => {}
        _ => fail("use either --tls, or --tls-cert with --tls-key"),
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
