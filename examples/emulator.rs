//! Runs the local AssemblyAI streaming emulator until Ctrl+C.
//!
//! ```text
//! cargo run --example emulator -- [--port 8080] [--host 127.0.0.1] [--api-key KEY]
//!     [--script FILE.json] [--legacy-formatting] [--stamp-send-time]
//!     [--max-sessions N] [--http-401]
//! ```
//!
//! The first line of output is the base URL to give a client (`ws://127.0.0.1:8080`); `--port 0`
//! picks a free port. The accepted key is `--api-key`, else `ASSEMBLYAI_API_KEY`, else the fixed
//! development key, and is printed at start.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use assemblyai_streaming::emulator::{DEV_API_KEY, Emulator, Formatting, Script};

const USAGE: &str = "usage: emulator [--port N] [--host IP] [--api-key KEY] [--script FILE.json] \
[--legacy-formatting] [--stamp-send-time] [--max-sessions N] [--http-401]";

fn fail(msg: &str) -> ! {
    eprintln!("emulator: {msg}\n{USAGE}");
    std::process::exit(2);
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
        .reject_bad_auth_with_http_401(http_401);
    if let Some(s) = script {
        builder = builder.script(s);
    }
    if let Some(n) = max_sessions {
        builder = builder.max_concurrent_sessions(n);
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
    let _ = out.flush();
    drop(out);

    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
}
