//! A scripted websocket server on loopback, for tests of client behaviour the real service
//! (and the emulator) would only show by accident: every close code, a dropped TCP connection,
//! a server that never terminates.
#![allow(dead_code, clippy::result_large_err)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, http};

pub const KEY: &str = "test-key";

pub type ServerWs = WebSocketStream<TcpStream>;

/// What the scripted server saw of the handshake.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Which connection this is, from 0 (a script may play a different part on a reconnect).
    pub connection: usize,
    pub path_and_query: String,
    pub authorization: Option<String>,
}

pub struct MockServer {
    pub url: String,
    pub connections: Arc<AtomicUsize>,
}

/// Starts a server whose every connection runs `script`. `reject` may refuse the upgrade with
/// an HTTP status (given the 0-based connection number).
pub async fn serve<F, Fut>(
    reject: impl Fn(usize) -> Option<u16> + Send + Sync + 'static,
    script: F,
) -> MockServer
where
    F: Fn(ServerWs, Seen) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let script = Arc::new(script);
    let reject = Arc::new(reject);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let script = script.clone();
            let reject = reject.clone();
            tokio::spawn(async move {
                let mut seen = Seen {
                    connection: n,
                    ..Seen::default()
                };
                let callback = |req: &Request, resp: Response| {
                    seen.path_and_query = req.uri().to_string();
                    seen.authorization = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                    if let Some(status) = reject(n) {
                        let mut err = ErrorResponse::new(Some(format!("rejected with {status}")));
                        *err.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        return Err(err);
                    }
                    Ok(resp)
                };
                if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await {
                    script(ws, seen).await;
                }
            });
        }
    });
    MockServer {
        url: format!("ws://{addr}"),
        connections,
    }
}

pub fn begin() -> Message {
    Message::text(r#"{"type":"Begin","id":"mock-session","expires_at":1900000000}"#)
}

pub fn turn(order: u64, eot: bool, formatted: bool, text: &str) -> Message {
    let words: Vec<serde_json::Value> = text
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            serde_json::json!({"start": i * 300, "end": i * 300 + 250, "text": w,
                               "confidence": 0.9, "word_is_final": true})
        })
        .collect();
    Message::text(
        serde_json::json!({
            "type": "Turn", "turn_order": order, "turn_is_formatted": formatted,
            "end_of_turn": eot, "transcript": text, "end_of_turn_confidence": 0.5,
            "words": words, "utterance": ""
        })
        .to_string(),
    )
}

/// The service's `Error` frame (sent before a close with the same code).
pub fn error_frame(code: u16, error: &str) -> Message {
    Message::text(
        serde_json::json!({"type": "Error", "error_code": code, "error": error}).to_string(),
    )
}

pub fn termination() -> Message {
    Message::text(
        r#"{"type":"Termination","audio_duration_seconds":1,"session_duration_seconds":2}"#,
    )
}

pub async fn close(ws: &mut ServerWs, code: u16, reason: &str) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        })))
        .await;
    // Let the client's close reply arrive before the socket drops.
    while let Some(Ok(_)) = ws.next().await {}
}

/// Reads client frames until `Terminate`; returns the binary frame sizes and the JSON messages.
pub async fn read_until_terminate(ws: &mut ServerWs) -> (Vec<usize>, Vec<String>) {
    let mut frames = Vec::new();
    let mut texts = Vec::new();
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Binary(b) => frames.push(b.len()),
            Message::Text(t) => {
                let done = t.as_str().contains("\"Terminate\"");
                texts.push(t.to_string());
                if done {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    (frames, texts)
}

/// Reads the client's frames until `Terminate` as one log in arrival order: `audio <bytes>` for
/// each binary frame, the text of each text frame.
pub async fn read_log_until_terminate(ws: &mut ServerWs) -> Vec<String> {
    let mut log = Vec::new();
    while let Some(Ok(msg)) = ws.next().await {
        let entry = match msg {
            Message::Binary(b) => format!("audio {}", b.len()),
            Message::Text(t) => t.to_string(),
            Message::Close(_) => break,
            _ => continue,
        };
        let done = entry.contains("\"Terminate\"");
        log.push(entry);
        if done {
            break;
        }
    }
    log
}

/// The binary of example `name`, built (or found up to date) once per test process: `cargo
/// test --test X` alone does not build examples, and a stale binary would test old code.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    use std::process::Command;
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args(["build", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // Variables cargo sets for the test process would change build scripts' inputs and make
    // this build and the outer one rebuild dependencies in turn.
    for (key, _) in std::env::vars_os() {
        let var = key.to_string_lossy();
        let user_setting = [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_",
            "CARGO_REGISTR",
            "CARGO_NET_",
            "CARGO_PROFILE_",
        ]
        .iter()
        .any(|keep| var.starts_with(keep));
        if (var.starts_with("CARGO_") && !user_setting) || var == "OUT_DIR" {
            cargo.env_remove(&key);
        }
    }
    let status = cargo.status().expect("run cargo");
    assert!(status.success(), "building example {name} failed");
    // Examples live next to the test binaries' directory: target/<profile>/examples.
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let bin = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "example not built at {}", bin.display());
    bin
}

/// A loopback port that is listened on but never served: give its URL to a command that must
/// fail before connecting, then ask whether anything connected (the kernel completes a TCP
/// connection into the backlog even when nobody accepts it).
pub struct UntouchedPort(std::net::TcpListener);

impl UntouchedPort {
    pub fn new() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("non-blocking");
        Self(listener)
    }

    /// `scheme://127.0.0.1:PORT`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.0.local_addr().expect("local address"))
    }

    pub fn was_contacted(&self) -> bool {
        self.0.accept().is_ok()
    }
}

/// A server that accepts every connection and runs `script` on it ([`serve`] without
/// rejections, the common case).
pub async fn serve_script<F, Fut>(script: F) -> MockServer
where
    F: Fn(ServerWs, Seen) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    serve(|_| None, script).await
}

/// A server that sends `Begin` and `turn`, then closes with `code` and `reason` without
/// `Termination`: a session that fails after a turn.
pub async fn serve_turn_then_close(turn: Message, code: u16, reason: &'static str) -> MockServer {
    serve_script(move |mut ws, _| {
        let turn = turn.clone();
        async move {
            ws.send(begin()).await.unwrap();
            ws.send(turn).await.unwrap();
            close(&mut ws, code, reason).await;
        }
    })
    .await
}

/// The service's graceful end of a session, for scripts: reads the client's frames until
/// `Terminate`, answers `Termination` and closes 1000. Returns what it read (as
/// [`read_until_terminate`]).
pub async fn end_on_terminate(ws: &mut ServerWs) -> (Vec<usize>, Vec<String>) {
    let read = read_until_terminate(ws).await;
    ws.send(termination()).await.unwrap();
    close(ws, 1000, "").await;
    read
}

/// A server playing the service's graceful session on every connection: `Begin`, then
/// `messages`, then (once the client sends `Terminate`) `Termination` and close 1000.
pub async fn serve_session(messages: Vec<Message>) -> MockServer {
    let messages = Arc::new(messages);
    serve_script(move |mut ws, _| {
        let messages = messages.clone();
        async move {
            ws.send(begin()).await.unwrap();
            for m in messages.iter() {
                ws.send(m.clone()).await.unwrap();
            }
            end_on_terminate(&mut ws).await;
        }
    })
    .await
}

/// What the scripts of a [`serve_reporting`] server returned, one report per connection.
pub struct Reports<T>(tokio::sync::mpsc::UnboundedReceiver<T>);

impl<T> Reports<T> {
    /// The next connection's report, waiting up to 3 s for its script to finish.
    pub async fn next(&mut self) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(3), self.0.recv())
            .await
            .expect("the server script finished within 3 s")
            .expect("the server script reported")
    }
}

/// A server like [`serve_script`] whose script returns what it saw of the client; the test
/// reads that from [`Reports`] once the client is done, instead of sharing a lock with the
/// script.
pub async fn serve_reporting<T, F, Fut>(script: F) -> (MockServer, Reports<T>)
where
    T: Send + 'static,
    F: Fn(ServerWs, Seen) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let server = serve_script(move |ws, seen| {
        let (tx, report) = (tx.clone(), script(ws, seen));
        async move {
            let _ = tx.send(report.await);
        }
    })
    .await;
    (server, Reports(rx))
}

/// A server that sends `Begin`, then neither reads nor sends for `hold`: once the TCP window
/// fills (after a few MB of audio) every write to it blocks.
pub async fn serve_begin_then_stall(hold: std::time::Duration) -> MockServer {
    serve_script(move |mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        tokio::time::sleep(hold).await;
        drop(ws);
    })
    .await
}

/// The service's graceful session that reports the client's frames: `Begin`, then the log of
/// frames up to `Terminate` (see [`read_log_until_terminate`]), `Termination` and a 1000 close.
pub async fn serve_logging_session() -> (MockServer, Reports<Vec<String>>) {
    serve_reporting(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        let log = read_log_until_terminate(&mut ws).await;
        ws.send(termination()).await.unwrap();
        close(&mut ws, 1000, "").await;
        log
    })
    .await
}

/// A client builder for a scripted server at `url`: `key`, a 2 s connect timeout and no
/// connect retries (a test that wants retries or other timeouts sets them after).
pub fn client_builder(key: &str, url: &str) -> assemblyai_streaming::StreamingClientBuilder {
    assemblyai_streaming::StreamingClient::builder()
        .api_key(key)
        .base_url(url)
        .connect_timeout(std::time::Duration::from_secs(2))
        .retries(0, std::time::Duration::ZERO)
}

/// A client builder for a scripted server at `url` with the library's defaults: only the key
/// is set.
pub fn default_client(url: &str) -> assemblyai_streaming::StreamingClientBuilder {
    assemblyai_streaming::StreamingClient::builder()
        .api_key(KEY)
        .base_url(url)
}

/// Builds `client` and opens a session with default parameters, for tests of what happens
/// once a session is open (a failed build or connect fails the test).
pub async fn open_session(
    client: assemblyai_streaming::StreamingClientBuilder,
) -> assemblyai_streaming::StreamingSession {
    open_session_with(client, assemblyai_streaming::ConnectionParams::new()).await
}

/// [`open_session`] with these connection parameters.
pub async fn open_session_with(
    client: assemblyai_streaming::StreamingClientBuilder,
    params: assemblyai_streaming::ConnectionParams,
) -> assemblyai_streaming::StreamingSession {
    client
        .build()
        .expect("the client builds")
        .connect(params)
        .await
        .expect("the session opens")
}

/// Builds `client` and returns the error connecting with default parameters ends in, for
/// tests of refused and failed connects.
pub async fn connect_error(
    client: assemblyai_streaming::StreamingClientBuilder,
) -> assemblyai_streaming::Error {
    client
        .build()
        .expect("the client builds")
        .connect(assemblyai_streaming::ConnectionParams::new())
        .await
        .expect_err("the connect fails")
}

/// Every log line of this test binary, at trace level, from the one subscriber a test binary
/// may install (the first call installs it; later calls share it).
#[derive(Clone, Default)]
pub struct LogCapture(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// The captured text so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

pub fn capture_logs() -> LogCapture {
    static CAPTURE: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let capture = LogCapture::default();
            let writer = capture.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .try_init()
                .expect("first subscriber in this test binary");
            capture
        })
        .clone()
}
