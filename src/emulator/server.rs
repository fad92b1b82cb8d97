//! The HTTP side: one hyper 1 server (HTTP/1.1 with upgrades) on one port serving `/v3/ws`,
//! `/v3/token` and the LLM routes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::llm::{self, LlmState};
use super::query::form_pairs;
use super::script::PreparedTurn;
use super::session::{self, SessionSetup};
use super::{Faults, Formatting, ids};

/// Settings fixed when the emulator starts.
pub(crate) struct Config {
    pub api_key: String,
    pub formatting: Formatting,
    pub faults: Faults,
    pub max_sessions: Option<usize>,
    pub reject_with_401: bool,
    pub stamp_send_time: bool,
    pub max_session_duration: Duration,
    /// The script is one conversation across sessions (`EmulatorBuilder::script_across_sessions`).
    pub script_across_sessions: bool,
    pub realtime_tolerance: Duration,
}

#[derive(Debug)]
struct TokenEntry {
    expires: Instant,
    session_cap: Duration,
    used: bool,
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub config: Config,
    pub script: Arc<[Arc<PreparedTurn>]>,
    pub active: AtomicUsize,
    /// Websocket sessions started so far (for `Faults::faulty_sessions`).
    pub started: AtomicUsize,
    /// Script turns finalised by any session (with `script_across_sessions`).
    pub script_done: AtomicUsize,
    pub llm: Arc<LlmState>,
    pub shutdown: watch::Receiver<bool>,
    tokens: Mutex<HashMap<String, TokenEntry>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key and the tokens are secrets; the LLM state is not required to be `Debug`.
        f.debug_struct("Shared")
            .field("script_turns", &self.script.len())
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        script: Arc<[Arc<PreparedTurn>]>,
        llm: LlmState,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Shared {
            config,
            script,
            active: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            script_done: AtomicUsize::new(0),
            llm: Arc::new(llm),
            shutdown,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn mint_token(&self, expires_in: Duration, session_cap: Duration) -> String {
        let token = format!("emu_{:016x}{:016x}", ids::random_u64(), ids::random_u64());
        let now = Instant::now();
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        // Forget tokens that can no longer be used (expired long ago), so the map stays small.
        tokens.retain(|_, t| t.expires + Duration::from_secs(600) > now);
        tokens.insert(
            token.clone(),
            TokenEntry {
                expires: now + expires_in,
                session_cap,
                used: false,
            },
        );
        token
    }

    /// Consumes a token: `Ok(session cap)` or the reason it is refused.
    fn use_token(&self, token: &str) -> Result<Duration, String> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        match tokens.get_mut(token) {
            None => Err("Unauthorized Connection: Invalid token".into()),
            Some(t) if t.used => Err("Unauthorized Connection: Token already used".into()),
            Some(t) if t.expires <= Instant::now() => {
                Err("Unauthorized Connection: Token expired".into())
            }
            Some(t) => {
                t.used = true;
                Ok(t.session_cap)
            }
        }
    }

    /// Decides a websocket request's credentials. `Ok(Some(cap))` for a token.
    fn authorize(
        &self,
        header: Option<&str>,
        query_token: Option<&str>,
    ) -> Result<Option<Duration>, String> {
        if header == Some(self.config.api_key.as_str()) {
            return Ok(None);
        }
        if let Some(token) = query_token {
            return self.use_token(token).map(Some);
        }
        match header {
            None | Some("") => Err("Unauthorized Connection: Missing Authorization header".into()),
            // Like the service (and the Python SDK, which sends a temporary token there), a
            // token in the header is accepted.
            Some(h) => match self.use_token(h) {
                Ok(cap) => Ok(Some(cap)),
                Err(reason) if reason.ends_with("Invalid token") => {
                    Err("Unauthorized Connection: Invalid API key".into())
                }
                Err(reason) => Err(reason),
            },
        }
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json_response(status, serde_json::json!({ "error": message }).to_string())
}

async fn route(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    Ok(match (req.method(), path.as_str()) {
        (&Method::GET, "/v3/ws") => websocket(shared, req),
        (&Method::GET, "/v3/token") => token(&shared, &req),
        (_, "/v3/ws" | "/v3/token") => {
            error_response(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        }
        (_, p) if p.starts_with("/v1/") || p.starts_with("/lemur/") => {
            llm::handle(shared.llm.clone(), req).await
        }
        _ => error_response(StatusCode::NOT_FOUND, "Not found"),
    })
}

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `GET /v3/token?expires_in_seconds=N[&max_session_duration_seconds=M]`.
fn token(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if header_str(req, header::AUTHORIZATION) != Some(shared.config.api_key.as_str()) {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "Authentication error, API token missing/invalid",
        );
    }
    let pairs = form_pairs(req.uri().query().unwrap_or(""));
    let get = |k: &str| {
        pairs
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let expires_in = match get("expires_in_seconds").map(|v| v.trim().parse::<u64>()) {
        Some(Ok(n)) if (1..=600).contains(&n) => n,
        Some(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "expires_in_seconds must be an integer between 1 and 600",
            );
        }
        None => {
            return error_response(StatusCode::BAD_REQUEST, "expires_in_seconds is required");
        }
    };
    let cap = match get("max_session_duration_seconds").map(|v| v.trim().parse::<u64>()) {
        None => 10_800,
        Some(Ok(n)) if (60..=10_800).contains(&n) => n,
        Some(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "max_session_duration_seconds must be an integer between 60 and 10800",
            );
        }
    };
    // A token never outlives what the emulator allows any session.
    let cap = Duration::from_secs(cap).min(shared.config.max_session_duration);
    let token = shared.mint_token(Duration::from_secs(expires_in), cap);
    json_response(
        StatusCode::OK,
        serde_json::json!({ "token": token, "expires_in_seconds": expires_in }).to_string(),
    )
}

fn websocket(shared: Arc<Shared>, mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let is_upgrade = header_str(&req, header::UPGRADE)
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        && header_str(&req, header::CONNECTION).is_some_and(|c| {
            c.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("upgrade"))
        });
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let version_ok = header_str(&req, header::SEC_WEBSOCKET_VERSION) == Some("13");
    let (true, Some(key), true) = (is_upgrade, key, version_ok) else {
        return error_response(
            StatusCode::UPGRADE_REQUIRED,
            "Expected a websocket upgrade (version 13)",
        );
    };
    let query = req.uri().query().unwrap_or("").to_string();
    let query_token = form_pairs(&query)
        .into_iter()
        .rev()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v);
    let auth = shared.authorize(
        header_str(&req, header::AUTHORIZATION),
        query_token.as_deref(),
    );
    if let (Err(reason), true) = (&auth, shared.config.reject_with_401) {
        return error_response(StatusCode::UNAUTHORIZED, reason);
    }
    let api_version = req
        .headers()
        .get("AssemblyAI-Version")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(32).collect());
    let setup = SessionSetup {
        shared,
        query,
        auth,
        api_version,
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        // Small buffers: a 50 ms frame is 1.6 KB, a thousand sessions must fit, and tungstenite
        // zeroes its read buffer on every read.
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(16 * 1024)
            .max_message_size(Some(4 * 1024 * 1024))
            .max_frame_size(Some(4 * 1024 * 1024));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        session::run(ws, setup).await;
    });
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    resp
}

/// Accepts connections until shutdown.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("emulator accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut shutdown = shared.shutdown.clone();
            let service = service_fn(move |req| route(shared.clone(), req));
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::select! {
                _ = conn => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        });
    }
}
