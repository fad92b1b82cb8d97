//! The streaming client: credentials, endpoint and session options, shared by every session it
//! opens, plus temporary-token minting.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use tokio_tungstenite::tungstenite::{self, Message, http::HeaderValue, protocol::WebSocketConfig};
use tracing::Instrument;

use crate::error::{Cause, Error, Result, TimeoutKind};
use crate::handshake::Ws;
use crate::params::ConnectionParams;
use crate::protocol::Begin;
use crate::redact::Redactor;
use crate::retry::RetryPolicy;
use crate::session::{self, Core, End, Input, SessionOptions, StreamingSession};

/// Environment variable read for the API key when none is given.
pub const API_KEY_ENV: &str = "ASSEMBLYAI_API_KEY";

/// Read buffer of a session's websocket (see where it is used).
const READ_BUFFER_BYTES: usize = 4 * 1024;

const USER_AGENT: &str = concat!(
    "assemblyai-streaming/",
    env!("CARGO_PKG_VERSION"),
    " (rust)"
);

/// A string that never shows up in `Debug` or `Display` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Use only to put it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How a client proves who it is.
#[derive(Debug, Clone)]
enum Credentials {
    /// An API key, sent raw in the `Authorization` header.
    ApiKey(Secret),
    /// A temporary token, sent as the `token` query parameter.
    Token(Secret),
}

/// Where the service lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Region {
    /// Edge-routed default: `wss://streaming.assemblyai.com`.
    #[default]
    Default,
    /// US data residency: `wss://streaming.us.assemblyai.com`.
    Us,
    /// EU data residency: `wss://streaming.eu.assemblyai.com`.
    Eu,
}

impl Region {
    fn base_url(self) -> &'static str {
        match self {
            Region::Default => "wss://streaming.assemblyai.com",
            Region::Us => "wss://streaming.us.assemblyai.com",
            Region::Eu => "wss://streaming.eu.assemblyai.com",
        }
    }
}

/// A parsed endpoint: `ws(s)://authority` plus the socket path.
#[derive(Debug, Clone)]
struct Endpoint {
    secure: bool,
    authority: String,
    path: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Self> {
        crate::handshake::check_base_url(url)?;
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::config(format!("invalid base URL {url:?}: no scheme")))?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            other => {
                return Err(Error::config(format!(
                    "invalid base URL {url:?}: scheme {other:?} is not ws, wss, http or https"
                )));
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(Error::config(format!(
                "invalid base URL {url:?}: expected a host (credentials in the URL are not supported)"
            )));
        }
        let path = path.trim_end_matches('/');
        Ok(Self {
            secure,
            authority: authority.to_string(),
            path: if path.is_empty() {
                "/v3/ws".into()
            } else {
                path.into()
            },
        })
    }

    fn ws_url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.authority, self.path)
    }

    fn http_url(&self, path: &str) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.authority)
    }
}

/// Builder for [`StreamingClient`].
///
/// Defaults: credentials from `ASSEMBLYAI_API_KEY`; the edge-routed endpoint; connect timeout
/// 5 s (socket open plus `Begin`); 2 handshake retries 500 ms apart (transient failures only);
/// terminate timeout 5 s; write timeout 5 s; 100 ms audio frames; no automatic keep-alive;
/// 256 buffered events before partials are coalesced; 32 buffered audio chunks; 1 s wait for a
/// formatted turn under the older formatting behaviour.
#[derive(Debug, Clone, Default)]
pub struct StreamingClientBuilder {
    credentials: Option<Credentials>,
    base_url: Option<String>,
    region: Region,
    options: SessionOptions,
    http: Option<reqwest::Client>,
    proxy: crate::proxy::ProxySetting,
    root_certificates: Vec<Vec<u8>>,
}

impl StreamingClientBuilder {
    /// Authenticate with an API key (sent raw in the `Authorization` header).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::ApiKey(Secret::new(key)));
        self
    }

    /// Authenticate with a temporary token (sent as the `token` query parameter). Tokens are
    /// single use: one session each.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::Token(Secret::new(token)));
        self
    }

    /// Use a data-residency region (ignored when [`base_url`](Self::base_url) is set).
    pub fn region(mut self, region: Region) -> Self {
        self.region = region;
        self
    }

    /// Any `ws://`, `wss://`, `http://` or `https://` base URL: the local emulator, a proxy.
    /// `/v3/ws` is appended when the URL has no path.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Bound on opening the socket and receiving `Begin`, per attempt (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// Bound on waiting for `Termination` after `Terminate` (default 5 s).
    pub fn terminate_timeout(mut self, timeout: Duration) -> Self {
        self.options.terminate_timeout = timeout;
        self
    }

    /// Duration of the audio frames the sink sends, 50–1000 ms (default 100 ms).
    pub fn frame_duration(mut self, duration: Duration) -> Self {
        self.options.frame_duration = duration;
        self
    }

    /// Send `KeepAlive` after this long without any outbound message (default: never). Only
    /// useful with the `inactivity_timeout` parameter, which it defeats by design.
    pub fn keep_alive_interval(mut self, interval: Option<Duration>) -> Self {
        self.options.keep_alive_interval = interval;
        self
    }

    /// Bound on one socket write (default 5 s). A server that stops reading (its TCP window
    /// stays full) ends the session with [`Error::Timeout`] of kind
    /// [`Write`](TimeoutKind::Write) instead of hanging the sink and `terminate()`.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.options.write_timeout = timeout;
        self
    }

    /// Handshake retries on transient failures (timeouts, refused connections, 5xx, 429, the
    /// "try again" close codes: the table in [`crate::retry`]), never on authentication,
    /// validation or 3009 (default 2 retries, 500 ms apart). Same as
    /// [`max_retries`](Self::max_retries) plus [`retry_delay`](Self::retry_delay).
    pub fn retries(self, max_retries: u32, delay: Duration) -> Self {
        self.max_retries(max_retries).retry_delay(delay)
    }

    /// How many handshake retries after the first attempt (default 2).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.options.retry = self.options.retry.max_retries(n);
        self
    }

    /// Delay before each handshake retry (default 500 ms, constant).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.options.retry = self.options.retry.retry_delay(delay);
        self
    }

    /// Longest wait before a retry (default 30 s).
    pub fn max_retry_wait(mut self, wait: Duration) -> Self {
        self.options.retry = self.options.retry.max_retry_wait(wait);
        self
    }

    /// The whole retry policy at once.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.options.retry = policy;
        self
    }

    /// How many events may wait for a slow consumer before superseded partials are coalesced
    /// (default 256; see [`EventStream::coalesced_partials`](crate::EventStream::coalesced_partials)).
    /// The socket is read regardless. Past 16 times this many events (at least 4,096), or 32 MiB of server
    /// frames, the session ends with [`Error::EventOverflow`]: memory stays bounded.
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.options.event_buffer = events.max(1);
        self
    }

    /// How many audio chunks (and control messages) may wait for the socket before the sink's
    /// `poll_ready` waits (default 32). While the socket keeps up, nothing waits: each chunk is
    /// written when it is sent.
    pub fn audio_buffer(mut self, chunks: usize) -> Self {
        self.options.audio_buffer = chunks.max(1);
        self
    }

    /// Under the older formatting behaviour an unformatted end-of-turn is followed by a
    /// formatted one; wait this long for it before delivering the unformatted one as final
    /// (default 1 s).
    pub fn format_wait(mut self, wait: Duration) -> Self {
        self.options.format_wait = wait;
        self
    }

    /// Connects through this HTTP `CONNECT` proxy, `http://[user:password@]host[:port]`, for
    /// `ws://` and `wss://` alike (default: the `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY`
    /// environment variables, read by [`build`](Self::build); see the README's "Proxies, TLS
    /// and limits"). Credentials go in `Proxy-Authorization: Basic` and are never logged. An
    /// unsupported or malformed URL fails `build()` with [`Error::Config`]; a proxy refusing the
    /// tunnel fails `connect()` with [`Error::ProxyRejected`]. Token requests use the same
    /// proxy, unless an [`http_client`](Self::http_client) is given.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = crate::proxy::ProxySetting::Explicit(Secret::new(url));
        self
    }

    /// Never uses a proxy, whatever the environment says.
    pub fn no_proxy(mut self) -> Self {
        self.proxy = crate::proxy::ProxySetting::Disabled;
        self
    }

    /// Trusts this root certificate (PEM; every `CERTIFICATE` block in it) for `wss://`, in
    /// addition to the built-in roots, e.g. the emulator's CA. An unreadable PEM fails
    /// [`build`](Self::build) with [`Error::Config`]. Token requests use it too, unless an
    /// [`http_client`](Self::http_client) is given (then its own settings apply).
    pub fn add_root_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.root_certificates.push(pem.as_ref().to_vec());
        self
    }

    /// Use this HTTP client for token requests (shares connection pools and proxy settings).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Checks the settings and builds the client. Fails when no credentials are given and
    /// `ASSEMBLYAI_API_KEY` is unset, or a setting is out of range.
    pub fn build(self) -> Result<StreamingClient> {
        let credentials = match self.credentials {
            Some(c) => c,
            None => match std::env::var(API_KEY_ENV) {
                Ok(key) if !key.trim().is_empty() => Credentials::ApiKey(Secret::new(key.trim())),
                _ => {
                    return Err(Error::config(format!(
                        "no API key: pass one to api_key() or set {API_KEY_ENV}"
                    )));
                }
            },
        };
        let secret = match &credentials {
            Credentials::ApiKey(s) | Credentials::Token(s) => s,
        };
        if secret.expose().is_empty() || HeaderValue::from_str(secret.expose()).is_err() {
            return Err(Error::config(
                "the API key or token is empty or contains characters not allowed in a header",
            ));
        }
        let frame = self.options.frame_duration;
        if frame < Duration::from_millis(50) || frame > Duration::from_millis(1000) {
            return Err(Error::config(format!(
                "frame_duration must be 50–1000 ms, got {frame:?}"
            )));
        }
        let endpoint = Endpoint::parse(self.base_url.as_deref().unwrap_or(self.region.base_url()))?;
        let transport = crate::handshake::Transport::new(
            &self.proxy,
            &self.root_certificates,
            endpoint.secure,
            &endpoint.authority,
        )?;
        // Removes the key or token, and the proxy's password, from server text we keep.
        let redactor = Redactor::new(std::iter::once(secret.expose()).chain(transport.secrets()));
        // Token requests follow the same proxy and root settings as the websocket.
        let custom = !matches!(self.proxy, crate::proxy::ProxySetting::FromEnv)
            || !self.root_certificates.is_empty();
        let http = match self.http {
            Some(client) => OnceLock::from(client),
            None if custom => OnceLock::from(crate::lemur::http_client(
                &self.proxy,
                &self.root_certificates,
                &mut Vec::new(),
            )?),
            None => OnceLock::new(),
        };
        Ok(StreamingClient {
            inner: Arc::new(Inner {
                transport,
                credentials,
                redactor,
                endpoint,
                options: self.options,
                http,
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    transport: crate::handshake::Transport,
    credentials: Credentials,
    /// Removes the key or token (and a proxy password) from server text the sessions keep.
    redactor: Redactor,
    endpoint: Endpoint,
    options: SessionOptions,
    http: OnceLock<reqwest::Client>,
}

/// Opens streaming sessions. Cheap to clone; share one per application.
///
/// ```
/// use assemblyai_streaming::{ConnectionParams, StreamingClient};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let emulator = assemblyai_streaming::emulator::Emulator::builder().start().await?;
/// let client = StreamingClient::builder() // key from ASSEMBLYAI_API_KEY
/// #   .api_key(emulator.api_key())
/// #   .base_url(emulator.ws_url())
///     .build()?;
/// let mut session = client.connect(ConnectionParams::new().format_turns(true)).await?;
/// println!("session {}", session.id());
/// # assert!(!session.id().is_empty()); // from the service's Begin
/// let termination = session.terminate().await?; // no audio sent: 0 s processed
/// # assert_eq!(termination.audio_duration_seconds, Some(0.0));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StreamingClient {
    inner: Arc<Inner>,
}

impl StreamingClient {
    /// A builder with the defaults listed on [`StreamingClientBuilder`].
    pub fn builder() -> StreamingClientBuilder {
        StreamingClientBuilder::default()
    }

    /// A client for the real service with this API key and default options.
    pub fn new(api_key: impl Into<String>) -> Result<Self> {
        Self::builder().api_key(api_key).build()
    }

    /// A client for the real service with the key from `ASSEMBLYAI_API_KEY`.
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }

    /// The websocket URL sessions connect to (without the query string).
    pub fn url(&self) -> String {
        self.inner.endpoint.ws_url()
    }

    /// Opens a session: handshake, then waits for `Begin` (bounded by the connect timeout).
    /// Transient failures are retried as configured; authentication failures are not.
    pub async fn connect(&self, params: ConnectionParams) -> Result<StreamingSession> {
        let opts = &self.inner.options;
        let span = tracing::info_span!("assemblyai.connect", url = %self.url());
        async {
            let mut retry = 0;
            loop {
                // Boxed: the handshake's buffers (a few KiB) would otherwise stay part of the
                // caller's future, and of its task, for the whole session.
                let e = match Box::pin(self.connect_once(&params)).await {
                    Ok((ws, core, begin)) => {
                        return Ok(session::start(ws, core, begin, &params, opts));
                    }
                    Err(e) => e,
                };
                match opts.retry.next_wait(retry, &e) {
                    Some(wait) => {
                        retry += 1;
                        tracing::warn!(error = %e, attempt = retry, "handshake failed; retrying");
                        tokio::time::sleep(wait).await;
                    }
                    None => {
                        tracing::warn!(error = %e, "connect failed");
                        return Err(e);
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn connect_once(&self, params: &ConnectionParams) -> Result<(Ws, Core, Begin)> {
        let endpoint = &self.inner.endpoint;
        let mut path_and_query = format!("{}?{}", endpoint.path, params.to_query());
        let mut headers = vec![("User-Agent", USER_AGENT)];
        match &self.inner.credentials {
            Credentials::ApiKey(key) => headers.push(("Authorization", key.expose())),
            Credentials::Token(token) => {
                path_and_query.push_str("&token=");
                crate::params::encode_component(&mut path_and_query, token.expose());
            }
        }
        // Secrets given as connection parameters (a token, a webhook header) are redacted too.
        let mut redactor = self.inner.redactor.clone();
        for (name, value) in &params.fields {
            if name == "token" || name == "webhook_auth_header_value" {
                redactor = redactor
                    .with(value)
                    .with(&crate::proxy::percent_decode(value));
            }
        }
        let target = crate::handshake::Target {
            secure: endpoint.secure,
            authority: endpoint.authority.clone(),
            path_and_query,
        };
        // tungstenite zero-fills the free part of its read buffer before every read, and
        // touches all of it: its 128 KiB default cost a 128 KiB memset per server message and
        // 128 KiB of RSS per session. Server messages are a few KiB at most; bigger frames grow
        // the buffer as needed.
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .max_message_size(Some(crate::protocol::MAX_SERVER_FRAME_BYTES))
            .max_frame_size(Some(crate::protocol::MAX_SERVER_FRAME_BYTES));
        let timeout = self.inner.options.connect_timeout;
        let attempt = async {
            let mut ws = crate::handshake::connect(
                &target,
                &headers,
                config,
                &self.inner.transport,
                &redactor,
            )
            .await?;
            tracing::debug!("websocket open; waiting for Begin");
            let mut core = Core::new(
                params,
                &self.inner.options,
                redactor.clone(),
                tokio::time::Instant::now().into_std(),
            );
            wait_for_begin(&mut ws, &mut core)
                .await
                .map(|begin| (ws, core, begin))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                kind: TimeoutKind::Connect,
                after: timeout,
            }),
        }
    }

    /// Mints a single-use temporary token (`GET /v3/token`) for a browser or another process.
    ///
    /// `expires_in_seconds` (1–600) is how long the token may be used to start a session;
    /// `max_session_duration_seconds` (60–10800, default 10800) caps the session it starts.
    /// Needs an API key (a token cannot mint tokens).
    pub async fn create_temporary_token(
        &self,
        expires_in_seconds: u32,
        max_session_duration_seconds: Option<u32>,
    ) -> Result<String> {
        if !(1..=600).contains(&expires_in_seconds) {
            return Err(Error::config(format!(
                "expires_in_seconds must be 1–600, got {expires_in_seconds}"
            )));
        }
        if let Some(max) = max_session_duration_seconds {
            if !(60..=10800).contains(&max) {
                return Err(Error::config(format!(
                    "max_session_duration_seconds must be 60–10800, got {max}"
                )));
            }
        }
        let Credentials::ApiKey(key) = &self.inner.credentials else {
            return Err(Error::config(
                "minting a temporary token needs an API key, not a token",
            ));
        };
        let mut url = self.inner.endpoint.http_url("/v3/token");
        url.push_str(&format!("?expires_in_seconds={expires_in_seconds}"));
        if let Some(max) = max_session_duration_seconds {
            url.push_str(&format!("&max_session_duration_seconds={max}"));
        }
        let http = self.inner.http.get_or_init(reqwest::Client::new);
        let response = http
            .get(&url)
            .header("authorization", key.expose())
            .header("user-agent", USER_AGENT)
            .timeout(
                self.inner
                    .options
                    .connect_timeout
                    .max(Duration::from_secs(10)),
            )
            .send()
            .await?;
        let status = response.status().as_u16();
        // Bounded (a token answer is ~200 bytes; an error envelope fits in 1 KiB) and redacted
        // before it is kept anywhere: a server may echo the key.
        let limit = if status == 200 { 64 * 1024 } else { 1024 };
        let body = crate::lemur::read_capped(response, limit, status == 200).await?;
        let body = String::from_utf8_lossy(&body);
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            error: Option<String>,
        }
        let parsed: Option<TokenResponse> = serde_json::from_str(&body).ok();
        let redactor = &self.inner.redactor;
        if status != 200 {
            let message = parsed.and_then(|p| p.error);
            return Err(Error::Api {
                status,
                message: redactor
                    .redact(message.as_deref().unwrap_or(&body))
                    .into_owned(),
                request_id: None,
                retry_after: None,
            });
        }
        match parsed.and_then(|p| p.token) {
            Some(token) if !token.is_empty() => Ok(token),
            _ => Err(Error::decode(
                "token response has no \"token\"",
                &redactor.redact(&body),
            )),
        }
    }
}

/// Reads frames into the session core until `Begin`. Anything else that arrives first stays
/// in the core for the session; an `Error` frame or a close fails the attempt, classified by
/// the same rules as during the session.
async fn wait_for_begin(ws: &mut Ws, core: &mut Core) -> Result<Begin> {
    loop {
        let now = || tokio::time::Instant::now().into_std();
        let frame = match core.next_deadline() {
            Some(at) => tokio::time::timeout_at(tokio::time::Instant::from_std(at), ws.next())
                .await
                .ok(),
            None => Some(ws.next().await),
        };
        let input = match frame {
            None => Input::Tick,
            Some(None)
            | Some(Some(Err(
                tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
            ))) => Input::Eof,
            Some(Some(Err(e))) => Input::ReadFailed(e.to_string(), Some(Cause::new(e))),
            Some(Some(Ok(Message::Text(text)))) => Input::Text(text),
            Some(Some(Ok(Message::Binary(data)))) => Input::Binary(data.len()),
            Some(Some(Ok(Message::Close(frame)))) => {
                let parsed = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                Input::Close(session::wire::as_received(
                    parsed,
                    ws.get_ref().last_close(),
                ))
            }
            Some(Some(Ok(_))) => continue,
        };
        core.handle(now(), input);
        if let Some(End::Error(e)) = core.decided() {
            let e = e.clone();
            // Complete the closing handshake (bounded) before giving up on this attempt.
            let _ = tokio::time::timeout(session::CLOSE_TIMEOUT, ws.close(None)).await;
            return Err(e);
        }
        if core.began() {
            return core
                .begin()
                .ok_or_else(|| Error::connection_lost("Begin vanished"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_the_v3_path_unless_they_have_one() {
        let e = Endpoint::parse("ws://127.0.0.1:8080").unwrap();
        assert_eq!(e.ws_url(), "ws://127.0.0.1:8080/v3/ws");
        assert_eq!(e.http_url("/v3/token"), "http://127.0.0.1:8080/v3/token");
        let e = Endpoint::parse("wss://streaming.eu.assemblyai.com/").unwrap();
        assert_eq!(e.ws_url(), "wss://streaming.eu.assemblyai.com/v3/ws");
        let e = Endpoint::parse("https://proxy.local/custom/ws").unwrap();
        assert_eq!(e.ws_url(), "wss://proxy.local/custom/ws");
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("127.0.0.1:8080").is_err());
        assert!(Endpoint::parse("ws://user:pw@host").is_err());
    }

    #[test]
    fn regions_pick_their_hosts() {
        let url = |r| {
            StreamingClient::builder()
                .api_key("k")
                .region(r)
                .build()
                .unwrap()
                .url()
        };
        assert_eq!(url(Region::Default), "wss://streaming.assemblyai.com/v3/ws");
        assert_eq!(url(Region::Us), "wss://streaming.us.assemblyai.com/v3/ws");
        assert_eq!(url(Region::Eu), "wss://streaming.eu.assemblyai.com/v3/ws");
    }

    #[test]
    fn keys_never_show_in_debug() {
        let client = StreamingClient::builder()
            .api_key("super-secret-key-42")
            .build()
            .unwrap();
        assert!(!format!("{client:?}").contains("super-secret-key-42"));
        let builder = StreamingClient::builder().token("tok-secret-99");
        assert!(!format!("{builder:?}").contains("tok-secret-99"));
    }

    #[test]
    fn bad_settings_are_config_errors() {
        let err = StreamingClient::builder()
            .api_key("k")
            .frame_duration(Duration::from_millis(20))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), "config");
        let err = StreamingClient::builder()
            .api_key("bad\nkey")
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), "config");
    }
}
