//! The crate's one error type.
//!
//! Every failure, from a rejected handshake to a close code, a translation that timed out or a
//! microphone that vanished, is an [`Error`]. [`Error::kind`] gives a stable short name for
//! logs and scripts, and [`Error::is_retryable`] says whether trying again can help.

use std::sync::Arc;
use std::time::Duration;

use crate::redact::Redactor;

/// Result alias with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the service meant by a close code or `Error` frame (spec: v3 close codes, plus the legacy
/// v2 codes that the official SDKs still map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseKind {
    /// 1008 (or legacy 4001–4003): missing or invalid key or token, or an account problem.
    Unauthorized,
    /// 3005: catch-all server error.
    ServerError,
    /// 3006 (legacy 4100/4101): the client sent an invalid message.
    InvalidMessage,
    /// 3007 (legacy 4029/4032/4033): chunk duration outside 50–1000 ms, or audio faster than
    /// real time.
    AudioViolation,
    /// 3008 (legacy 4008): maximum session duration or the token's cap reached.
    SessionExpired,
    /// 3009 (legacy 4102): too many concurrent sessions / new sessions per minute.
    TooManySessions,
    /// 1013: temporary server condition.
    TryAgainLater,
    /// 1006 or a TCP drop: the connection ended without a close frame.
    Abnormal,
    /// Any other code (other legacy v2 codes and unknown ones).
    Other,
}

impl CloseKind {
    /// Classifies a close or `Error`-frame code.
    pub fn from_code(code: u16) -> Self {
        match code {
            1008 | 4001..=4003 => CloseKind::Unauthorized,
            3005 => CloseKind::ServerError,
            3006 | 4100 | 4101 | 4104 => CloseKind::InvalidMessage,
            3007 | 4029 | 4032..=4034 => CloseKind::AudioViolation,
            3008 | 4008 => CloseKind::SessionExpired,
            3009 | 4102 => CloseKind::TooManySessions,
            // 1012 service restart, 1013 try again later, 1014 bad gateway (RFC 6455 §7.4.1 and
            // the IANA registry): the same request may succeed on a new connection.
            1012..=1014 => CloseKind::TryAgainLater,
            1006 => CloseKind::Abnormal,
            _ => CloseKind::Other,
        }
    }

    /// The meaning of `code` as the service documents it (used when the server sent no reason).
    pub fn meaning(code: u16) -> &'static str {
        match code {
            1000 => "Normal closure",
            1002 => "Protocol error",
            1005 => "Close frame without a status code",
            1006 => "Connection closed abnormally (no close frame)",
            1012 => "Service restart",
            1014 => "Bad gateway",
            1015 => "TLS handshake failure",
            1008 => {
                "Unauthorized connection: missing or invalid API key or token, or account issue"
            }
            1011 => "Internal server error",
            1013 => "Temporary server condition forced blocking client's request",
            3005 => "Server error",
            3006 => "Input validation error",
            3007 => "Audio chunk duration violation or audio sent faster than real time",
            3008 => "Session expired: maximum session duration exceeded",
            3009 => "Too many concurrent sessions",
            4000 => "Sample rate must be a positive integer",
            4001 => "Not Authorized",
            4002 => "Insufficient Funds",
            4003 => "Free-tier user; a credit card is needed",
            4004 => "Session not found",
            4008 => "Session Expired",
            4010 => "Session previously closed",
            4029 => "Client sent audio too fast",
            4030 => "Session is handled by another WebSocket",
            4031 => "Session idle for too long",
            4032 => "Audio duration is too short",
            4033 => "Audio duration is too long",
            4034 => "Audio too small to transcode",
            4100 => "Bad JSON",
            4101 => "Endpoint received a message with an invalid schema",
            4102 => "This account has exceeded the number of allowed streams",
            4103 => "This session has been reconnected. This WebSocket is no longer valid",
            4104 => "Could not parse word boost parameter",
            _ => "Unknown close code",
        }
    }
}

/// Which bounded wait expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Opening the socket and receiving `Begin` (the connect timeout).
    Connect,
    /// Waiting for `Termination` after `Terminate` (the terminate timeout).
    Termination,
    /// An HTTP request (token, LLM Gateway).
    Request,
    /// One socket write (the server stopped reading: its TCP window stayed full).
    Write,
}

impl std::fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connection and Begin",
            TimeoutKind::Termination => "Termination",
            TimeoutKind::Request => "HTTP response",
            TimeoutKind::Write => "a socket write to complete",
        })
    }
}

/// Every error of this crate.
#[doc = include_str!("faults_doc.md")]
///
/// `Error` is `Clone`: causes that are not themselves `Clone` are kept behind an `Arc`, so
/// [`source()`](std::error::Error::source) still reaches them.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting or argument is invalid (caught before anything is sent).
    #[error("invalid configuration: {message}")]
    Config {
        /// What is wrong, naming the setting.
        message: String,
        /// The parser's error when one caused it (an unreadable PEM, an invalid TLS server
        /// name, a resampler or HTTP client that cannot be built).
        #[source]
        source: Option<Cause>,
    },

    /// Audio handed to the sink is unusable (e.g. odd byte count for 16-bit PCM).
    #[error("invalid audio: {0}")]
    InvalidAudio(String),

    /// The server refused the websocket upgrade with an HTTP status.
    #[error("handshake rejected (HTTP {status}){}", fmt_body(body))]
    HandshakeRejected {
        /// HTTP status.
        status: u16,
        /// Response body, as text (possibly empty).
        body: String,
    },

    /// The server answered the upgrade with `101` but broke RFC 6455 §4.1: no
    /// `Upgrade: websocket`, no `Connection: upgrade`, or an extension or subprotocol the client
    /// did not offer. Not retryable: the same server answers the same way.
    #[error("invalid websocket upgrade response: {reason}")]
    InvalidUpgrade {
        /// Which rule the response broke.
        reason: String,
    },

    /// The HTTP proxy refused the `CONNECT` tunnel (e.g. 407 Proxy Authentication Required,
    /// 403 Forbidden). Retryable only for a 5xx status (the proxy could not reach the host).
    /// `status` is 0 when the HTTP stack did not say (reqwest reports only 407 by number).
    #[error("proxy refused the tunnel (HTTP {status}): {message}")]
    ProxyRejected {
        /// The proxy's HTTP status.
        status: u16,
        /// The proxy's reason phrase and body, redacted and truncated.
        message: String,
    },

    /// An HTTP response body was larger than the configured limit (bytes); reading stopped
    /// there. Not retryable.
    #[error("response body exceeds the limit of {limit} bytes")]
    ResponseTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },

    /// The host could not be reached (DNS, refused, TLS, reset during the handshake).
    #[error("could not connect to {url}: {message}")]
    Connect {
        /// The URL tried, without credentials.
        url: String,
        /// What went wrong.
        message: String,
        /// The socket's error, when one caused it (`downcast_ref::<std::io::Error>()` on
        /// [`Cause::get`] gives its `kind()`: refused, reset, …).
        #[source]
        source: Option<Cause>,
    },

    /// A bounded wait expired.
    #[error("timed out after {after:?} waiting for {kind}")]
    Timeout {
        /// Which wait.
        kind: TimeoutKind,
        /// How long it waited.
        after: Duration,
    },

    /// The server ended the session with a close code and/or an `Error` frame (reported once
    /// even when both arrive).
    #[error("session closed by server: {code} {kind:?}: {reason}")]
    Closed {
        /// Close code (or the `Error` frame's `error_code`).
        code: u16,
        /// What the code means.
        kind: CloseKind,
        /// The server's reason text, or the documented meaning when it sent none.
        reason: String,
    },

    /// The server sent an `Error` frame without a code and then closed without one.
    #[error("server error: {message}")]
    Server {
        /// The server's text.
        message: String,
    },

    /// The connection dropped without a close frame (TCP reset, EOF).
    #[error("connection lost: {message}")]
    ConnectionLost {
        /// What happened.
        message: String,
        /// The transport's error, when there was one (e.g. the `io::Error` of a reset).
        #[source]
        source: Option<Cause>,
    },

    /// A server frame could not be decoded. The session goes on; the payload is kept.
    #[error("could not decode server message: {message}")]
    Decode {
        /// The decoder's complaint, redacted. The decoder's own error is not kept as a
        /// [`source`](std::error::Error::source): it quotes server text (see [`Cause`]).
        message: String,
        /// The frame as received (truncated to 4 KiB).
        payload: String,
    },

    /// Websocket or TLS protocol error not covered above.
    #[error("websocket error: {message}")]
    WebSocket {
        /// What went wrong.
        message: String,
        /// The websocket or TLS library's error (a `tungstenite::Error`, an `io::Error` from
        /// the TLS handshake, …), when one caused it.
        #[source]
        source: Option<Cause>,
    },

    /// The session is over; nothing more can be sent.
    #[error("session is closed")]
    SessionClosed,

    /// An HTTP API (token, LLM Gateway, LeMUR) answered with an error status.
    #[error("API error (HTTP {status}){}: {message}", request_id.as_deref().map(|r| format!(" request {r}")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// The service's message.
        message: String,
        /// The request id, when the service gave one.
        request_id: Option<String>,
        /// `Retry-After`, when the service sent one (429).
        retry_after: Option<Duration>,
    },

    /// LeMUR routes answer 404 since AssemblyAI shut LeMUR down on 2026-03-31.
    #[error(
        "LeMUR was shut down by AssemblyAI on 2026-03-31 (its routes answer 404); \
         use the LLM Gateway backend instead (the default of `Lemur::builder()`)"
    )]
    LemurShutDown,

    /// HTTP transport failure (connect, TLS, body).
    #[error("HTTP request failed: {message}")]
    Http {
        /// What happened, with the cause chain's messages.
        message: String,
        /// The HTTP client's error (a `reqwest::Error`).
        #[source]
        source: Option<Cause>,
    },

    /// The LLM answered without usable text.
    #[error("empty completion from the model")]
    EmptyCompletion,

    /// Translating one final turn failed; the transcript stream goes on.
    #[error("translation of turn {turn_order} failed: {source}")]
    Translation {
        /// The turn whose translation failed.
        turn_order: u64,
        /// Why.
        #[source]
        source: Box<Error>,
    },

    /// An audio device or audio file problem.
    #[error("audio: {message}")]
    Audio {
        /// What went wrong (naming the file or device).
        message: String,
        /// The audio library's error (cpal, hound, rubato, an `io::Error`), when one caused it.
        #[source]
        source: Option<Cause>,
    },

    /// I/O error (files, WAV). The `io::Error` is the [`source`](std::error::Error::source).
    #[error("I/O error: {0}")]
    Io(#[source] Arc<std::io::Error>),

    /// The consumer of the event stream fell so far behind that the session's bounded event
    /// queue filled up even after coalescing partials; the session ends (see
    /// `StreamingClientBuilder::event_buffer`).
    #[error(
        "the event consumer fell too far behind: {events} events ({bytes} bytes) waiting; \
         the session was ended to bound memory"
    )]
    EventOverflow {
        /// Events waiting when the bound was hit.
        events: usize,
        /// Bytes of server frames behind them.
        bytes: usize,
    },

    /// The server's TLS certificate failed verification. Never retried: trying again cannot
    /// change the certificate, and retrying hides a possible interception.
    #[error("TLS certificate rejected{}: {message}", if url.is_empty() { String::new() } else { format!(" ({url})") })]
    Certificate {
        /// The URL tried, without credentials (empty when not known).
        url: String,
        /// The verifier's complaint.
        message: String,
        /// The TLS library's error (a `rustls::Error`, or the `native_tls::Error`), when it
        /// is at hand (reqwest hides it behind private wrappers: then `None`).
        #[source]
        source: Option<Cause>,
    },
}

/// The underlying error of an [`Error`] (an `io::Error`, a websocket, TLS, HTTP client or
/// audio library error), shared so that `Error` stays `Clone`. Its
/// [`source`](std::error::Error::source) is that error itself, so `downcast_ref` works on it.
///
/// Secrets never travel in a cause. The crate keeps a library error as a cause only when its
/// text cannot hold a key or unredacted server text: socket and TLS errors, tungstenite's
/// protocol errors, reqwest's errors with the URL stripped (`without_url`), audio library
/// errors. A session's read and write failures (whose transport error has seen the server's
/// bytes) are also checked against the connection's secrets: the cause is dropped, keeping
/// only the redacted message, when any of its text (`Display` or `Debug`, its own or its
/// sources') holds one. Decoder errors are never kept: serde_json quotes the values it could not read,
/// which can be server text ([`Error::Decode`] keeps the redacted message instead).
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    /// Wraps an error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// Whether no text of this error (its `Display` and `Debug`, and every source's `Display`)
    /// holds one of `redactor`'s secrets.
    pub(crate) fn shows_no_secret(&self, redactor: &Redactor) -> bool {
        let clean = |text: &str| matches!(redactor.redact(text), std::borrow::Cow::Borrowed(_));
        if !clean(&format!("{:?}", self.0)) {
            return false;
        }
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&*self.0);
        while let Some(e) = current {
            if !clean(&e.to_string()) {
                return false;
            }
            current = e.source();
        }
        true
    }

    /// `self` when it [shows no secret](Self::shows_no_secret), `None` otherwise.
    pub(crate) fn checked(self, redactor: &Redactor) -> Option<Self> {
        self.shows_no_secret(redactor).then_some(self)
    }

    /// The error itself.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}

/// The stable short name of an [`Error`], as printed in the command-line examples' JSON output
/// (`{"error": {"kind": ...}}`). [`as_str`](Self::as_str) gives the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `config`
    Config,
    /// `invalid_audio`
    InvalidAudio,
    /// `unauthorized`: HTTP 401/403, close 1008 and the legacy 4001–4003.
    Unauthorized,
    /// `rate_limited`: HTTP 429.
    RateLimited,
    /// `handshake_rejected`: another non-101 status at the upgrade.
    HandshakeRejected,
    /// `connect`
    Connect,
    /// `certificate`: the server's certificate failed verification.
    Certificate,
    /// `invalid_upgrade`: a `101` that breaks RFC 6455 §4.1.
    InvalidUpgrade,
    /// `proxy_unauthorized`: the proxy refused the tunnel with 407 or 403.
    ProxyUnauthorized,
    /// `proxy_rejected`: the proxy refused the tunnel with another status.
    ProxyRejected,
    /// `response_too_large`: an HTTP response over its size limit.
    ResponseTooLarge,
    /// `timeout`
    Timeout,
    /// `server_error`
    ServerError,
    /// `invalid_message`
    InvalidMessage,
    /// `audio_violation`
    AudioViolation,
    /// `session_expired`
    SessionExpired,
    /// `too_many_sessions`
    TooManySessions,
    /// `try_again_later`
    TryAgainLater,
    /// `connection_lost`
    ConnectionLost,
    /// `closed`: any other close code.
    Closed,
    /// `decode`
    Decode,
    /// `websocket`
    WebSocket,
    /// `session_closed`
    SessionClosed,
    /// `event_overflow`
    EventOverflow,
    /// `api`
    Api,
    /// `lemur_shut_down`
    LemurShutDown,
    /// `http`
    Http,
    /// `empty_completion`
    EmptyCompletion,
    /// `translation`
    Translation,
    /// `audio`
    Audio,
    /// `io`
    Io,
}

impl ErrorKind {
    /// The short name (stable: scripts match on it).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::InvalidAudio => "invalid_audio",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::HandshakeRejected => "handshake_rejected",
            ErrorKind::Connect => "connect",
            ErrorKind::Certificate => "certificate",
            ErrorKind::InvalidUpgrade => "invalid_upgrade",
            ErrorKind::ProxyUnauthorized => "proxy_unauthorized",
            ErrorKind::ProxyRejected => "proxy_rejected",
            ErrorKind::ResponseTooLarge => "response_too_large",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ServerError => "server_error",
            ErrorKind::InvalidMessage => "invalid_message",
            ErrorKind::AudioViolation => "audio_violation",
            ErrorKind::SessionExpired => "session_expired",
            ErrorKind::TooManySessions => "too_many_sessions",
            ErrorKind::TryAgainLater => "try_again_later",
            ErrorKind::ConnectionLost => "connection_lost",
            ErrorKind::Closed => "closed",
            ErrorKind::Decode => "decode",
            ErrorKind::WebSocket => "websocket",
            ErrorKind::SessionClosed => "session_closed",
            ErrorKind::EventOverflow => "event_overflow",
            ErrorKind::Api => "api",
            ErrorKind::LemurShutDown => "lemur_shut_down",
            ErrorKind::Http => "http",
            ErrorKind::EmptyCompletion => "empty_completion",
            ErrorKind::Translation => "translation",
            ErrorKind::Audio => "audio",
            ErrorKind::Io => "io",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for ErrorKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn fmt_body(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl Error {
    /// A stable short name for the error, used by the command-line examples' JSON output.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config { .. } => ErrorKind::Config,
            Error::InvalidAudio(_) => ErrorKind::InvalidAudio,
            Error::HandshakeRejected {
                status: 401 | 403, ..
            } => ErrorKind::Unauthorized,
            Error::HandshakeRejected { status: 429, .. } => ErrorKind::RateLimited,
            Error::HandshakeRejected { .. } => ErrorKind::HandshakeRejected,
            Error::Connect { .. } => ErrorKind::Connect,
            Error::Certificate { .. } => ErrorKind::Certificate,
            Error::InvalidUpgrade { .. } => ErrorKind::InvalidUpgrade,
            Error::ProxyRejected {
                status: 407 | 403, ..
            } => ErrorKind::ProxyUnauthorized,
            Error::ProxyRejected { .. } => ErrorKind::ProxyRejected,
            Error::ResponseTooLarge { .. } => ErrorKind::ResponseTooLarge,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Closed { kind, .. } => match kind {
                CloseKind::Unauthorized => ErrorKind::Unauthorized,
                CloseKind::ServerError => ErrorKind::ServerError,
                CloseKind::InvalidMessage => ErrorKind::InvalidMessage,
                CloseKind::AudioViolation => ErrorKind::AudioViolation,
                CloseKind::SessionExpired => ErrorKind::SessionExpired,
                CloseKind::TooManySessions => ErrorKind::TooManySessions,
                CloseKind::TryAgainLater => ErrorKind::TryAgainLater,
                CloseKind::Abnormal => ErrorKind::ConnectionLost,
                CloseKind::Other => ErrorKind::Closed,
            },
            Error::Server { .. } => ErrorKind::ServerError,
            Error::ConnectionLost { .. } => ErrorKind::ConnectionLost,
            Error::Decode { .. } => ErrorKind::Decode,
            Error::WebSocket { .. } => ErrorKind::WebSocket,
            Error::SessionClosed => ErrorKind::SessionClosed,
            Error::EventOverflow { .. } => ErrorKind::EventOverflow,
            Error::Api {
                status: 401 | 403, ..
            } => ErrorKind::Unauthorized,
            Error::Api { status: 429, .. } => ErrorKind::RateLimited,
            Error::Api { .. } => ErrorKind::Api,
            Error::LemurShutDown => ErrorKind::LemurShutDown,
            Error::Http { .. } => ErrorKind::Http,
            Error::EmptyCompletion => ErrorKind::EmptyCompletion,
            Error::Translation { .. } => ErrorKind::Translation,
            Error::Audio { .. } => ErrorKind::Audio,
            Error::Io(_) => ErrorKind::Io,
        }
    }

    /// The close code, `Error`-frame code or HTTP status behind this error, if any.
    pub fn code(&self) -> Option<u16> {
        match self {
            Error::HandshakeRejected { status, .. }
            | Error::Api { status, .. }
            | Error::ProxyRejected { status, .. } => Some(*status),
            Error::Closed { code, .. } => Some(*code),
            Error::LemurShutDown => Some(404),
            Error::Translation { source, .. } => source.code(),
            _ => None,
        }
    }

    /// Whether trying again (a new connection, the same request later) can help, by the one
    /// table in [`crate::retry`]: transient network failures, timeouts, 5xx, 429 and the
    /// service's "try again" close codes are retryable; authentication, validation,
    /// certificate, configuration errors and 3009 (too many sessions: retrying at once only
    /// adds load) are not.
    pub fn is_retryable(&self) -> bool {
        crate::retry::is_retryable(self)
    }

    /// A close-code error, with the documented meaning when the server gave no reason.
    pub fn closed(code: u16, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Error::Closed {
            code,
            kind: CloseKind::from_code(code),
            reason: if reason.is_empty() {
                CloseKind::meaning(code).to_string()
            } else {
                reason
            },
        }
    }

    /// A [`Error::ConnectionLost`] without an underlying error.
    pub(crate) fn connection_lost(message: impl Into<String>) -> Self {
        Error::ConnectionLost {
            message: message.into(),
            source: None,
        }
    }

    /// A decode error keeping (the first 4 KiB of) the payload, with secrets removed before
    /// the cut. The message is redacted too: a decoder quotes the values it could not read
    /// (serde_json's `invalid type: string "…"`), which are server text.
    pub(crate) fn decode_redacted(
        message: impl std::fmt::Display,
        payload: &str,
        redactor: &Redactor,
    ) -> Self {
        Self::decode(
            server_text(&message.to_string(), redactor),
            &redactor.redact(payload),
        )
    }

    /// An [`Error::Config`] without an underlying error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Config`] caused by a library's error (a parser, a builder).
    pub(crate) fn config_caused(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Config {
            message: message.into(),
            source: Some(Cause::new(source)),
        }
    }

    /// An [`Error::Audio`] without an underlying error, e.g. for an audio source of your own
    /// that feeds [`stream_audio`](crate::StreamingSession::stream_audio).
    pub fn audio(message: impl Into<String>) -> Self {
        Error::Audio {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Audio`] caused by an audio library's (or the file system's) error.
    pub(crate) fn audio_caused(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Audio {
            message: message.into(),
            source: Some(Cause::new(source)),
        }
    }

    pub(crate) fn decode(message: impl std::fmt::Display, payload: &str) -> Self {
        const MAX: usize = 4096;
        let mut end = payload.len().min(MAX);
        while !payload.is_char_boundary(end) {
            end -= 1;
        }
        Error::Decode {
            message: message.to_string(),
            payload: payload[..end].to_string(),
        }
    }
}

/// Longest server text (an `Error` frame's message) an error keeps, after redaction.
const MAX_SERVER_TEXT: usize = 4096;

/// `text` with secrets removed, then cut to [`MAX_SERVER_TEXT`] bytes on a char boundary: the
/// order matters, a cut through a key must not leave a long prefix of it behind.
pub(crate) fn server_text(text: &str, redactor: &Redactor) -> String {
    let clean = redactor.redact(text);
    let mut end = clean.len().min(MAX_SERVER_TEXT);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    clean[..end].to_string()
}

/// How the server side of a session (or of a connection attempt) ended before `Termination`.
#[derive(Debug, Clone)]
pub(crate) enum PeerEnd {
    /// A close frame: its code and reason, or `None` when the frame carried no code (1005 on
    /// the wire, RFC 6455 §7.1.5).
    Close(Option<(u16, String)>),
    /// The connection dropped (read error or EOF) without a close frame: why, and the
    /// transport's error if there was one.
    Dropped(String, Option<Cause>),
    /// An `Error` frame came and nothing followed within the grace period.
    Silent,
}

/// The one classification of a server-side end, used before `Begin` (connect) and after it
/// (the session). The service always sends `Termination` on a graceful end, so every end that
/// reaches this is an error — a close 1000 included.
///
/// - An `Error` frame gives the text (redacted, at most 4 KiB); its code is used when the
///   close has none better (no close, 1000 or no code).
/// - Otherwise the close gives code and reason ([`Error::closed`]), the code as received.
/// - A drop without any of these is [`Error::ConnectionLost`].
pub(crate) fn server_end(
    end: PeerEnd,
    error_frame: Option<(Option<i64>, String)>,
    redactor: &Redactor,
) -> Error {
    let frame_code = error_frame
        .as_ref()
        .and_then(|(c, _)| *c)
        .and_then(|c| u16::try_from(c).ok());
    let frame_text = error_frame
        .map(|(_, text)| server_text(&text, redactor))
        .filter(|t| !t.is_empty());
    let has_frame = frame_code.is_some() || frame_text.is_some();
    let (close_code, close_reason, dropped) = match end {
        PeerEnd::Close(Some((code, reason))) => {
            (Some(code), Some(server_text(&reason, redactor)), None)
        }
        PeerEnd::Close(None) => (Some(1005), None, None),
        PeerEnd::Dropped(why, cause) => (None, None, Some((why, cause))),
        PeerEnd::Silent => (None, None, None),
    };
    // A normal or code-less close after an Error frame says nothing the frame did not.
    let close_code = close_code.filter(|c| !(has_frame && matches!(c, 1000 | 1005)));
    let reason = frame_text
        .or(close_reason.filter(|r| !r.is_empty()))
        .unwrap_or_default();
    match close_code.or(frame_code) {
        Some(code) => Error::closed(code, reason),
        None if has_frame || !reason.is_empty() => Error::Server {
            message: if reason.is_empty() {
                "the server reported an error without a reason".into()
            } else {
                reason
            },
        },
        None => {
            let (why, source) = dropped.unwrap_or_else(|| ("the server went silent".into(), None));
            Error::ConnectionLost {
                message: server_text(&why, redactor),
                source: source.and_then(|c| c.checked(redactor)),
            }
        }
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        // reqwest errors carry the URL, which never holds a secret here (keys travel in headers),
        // but strip it anyway so a user-supplied URL with credentials cannot leak.
        let e = e.without_url();
        if e.is_timeout() {
            Error::Timeout {
                kind: TimeoutKind::Request,
                after: Duration::ZERO,
            }
        } else {
            Error::Http {
                message: e.to_string(),
                source: Some(Cause::new(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_are_classified_with_meaning() {
        let e = Error::closed(3007, "");
        assert_eq!(e.kind(), "audio_violation");
        assert_eq!(e.code(), Some(3007));
        assert!(e.to_string().contains("Audio chunk duration violation"));
        assert!(!e.is_retryable());
        assert_eq!(Error::closed(1008, "Unauthorized").kind(), "unauthorized");
        assert!(!Error::closed(1008, "").is_retryable());
        assert!(Error::closed(3005, "").is_retryable());
        assert!(Error::closed(1013, "").is_retryable());
        assert_eq!(CloseKind::from_code(4001), CloseKind::Unauthorized);
        assert_eq!(CloseKind::from_code(4102), CloseKind::TooManySessions);
    }

    #[test]
    fn server_ends_are_classified_once_with_the_code_received() {
        let r = Redactor::default();
        let frame = Some((
            Some(3007),
            "Input duration violation: 20 ms. Expected between 50 and 1000 ms".to_string(),
        ));
        let e = server_end(
            PeerEnd::Close(Some((3007, "Input duration violation".into()))),
            frame,
            &r,
        );
        assert_eq!(e.code(), Some(3007));
        assert!(e.to_string().contains("20 ms"));
        // Before Termination even a 1000 is an error, with the code received.
        let e = server_end(PeerEnd::Close(Some((1000, String::new()))), None, &r);
        assert_eq!((e.code(), e.kind()), (Some(1000), ErrorKind::Closed));
        let e = server_end(PeerEnd::Close(None), None, &r);
        assert_eq!(e.code(), Some(1005));
        let e = server_end(PeerEnd::Close(Some((1008, String::new()))), None, &r);
        assert_eq!(e.kind(), "unauthorized");
        let e = server_end(PeerEnd::Silent, Some((None, "boom".into())), &r);
        assert_eq!(e.kind(), "server_error");
        // An Error frame's code wins over a normal close that follows it.
        let e = server_end(
            PeerEnd::Close(Some((1000, String::new()))),
            Some((Some(3005), "oops".into())),
            &r,
        );
        assert_eq!(e.code(), Some(3005));
        let e = server_end(PeerEnd::Dropped("reset".into(), None), None, &r);
        assert_eq!(e.kind(), "connection_lost");
    }

    #[test]
    fn errors_are_clone_and_keep_their_source() {
        use std::error::Error as _;
        let e = Error::from(std::io::Error::other("disk on fire"));
        let copy = e.clone();
        assert!(copy.source().unwrap().to_string().contains("disk on fire"));
        let t = Error::Translation {
            turn_order: 3,
            source: Box::new(copy),
        };
        assert!(t.source().unwrap().to_string().contains("disk on fire"));
        assert_eq!(t.kind().as_str(), "translation");
        assert_eq!(
            serde_json::to_string(&Error::SessionClosed.kind()).unwrap(),
            "\"session_closed\""
        );
    }

    /// The first error of `T` in `e`'s source chain.
    fn find<T: std::error::Error + 'static>(e: &Error) -> Option<&T> {
        std::iter::successors(std::error::Error::source(e), |&s| s.source())
            .find_map(|s| s.downcast_ref::<T>())
    }

    #[test]
    fn struct_variants_keep_their_display_and_kind_and_reach_their_cause() {
        let io = || std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let cases = [
            (
                Error::WebSocket {
                    message: "TLS: reset by peer".into(),
                    source: Some(Cause::new(io())),
                },
                "websocket error: TLS: reset by peer",
                "websocket",
            ),
            (
                Error::audio_caused("WAV recorder: reset by peer", io()),
                "audio: WAV recorder: reset by peer",
                "audio",
            ),
            (
                Error::Certificate {
                    url: "wss://h/v3/ws".into(),
                    message: "invalid peer certificate: UnknownIssuer".into(),
                    source: Some(Cause::new(io())),
                },
                "TLS certificate rejected (wss://h/v3/ws): invalid peer certificate: UnknownIssuer",
                "certificate",
            ),
        ];
        for (e, display, kind) in cases {
            assert_eq!((e.to_string().as_str(), e.kind().as_str()), (display, kind));
            let copy = e.clone();
            assert_eq!(
                find::<std::io::Error>(&copy).map(|e| e.kind()),
                Some(std::io::ErrorKind::ConnectionReset),
                "{copy:?}"
            );
        }
        let plain = Error::audio("microphone unplugged");
        assert_eq!(plain.to_string(), "audio: microphone unplugged");
        assert!(std::error::Error::source(&plain).is_none());
    }

    #[test]
    fn a_cause_whose_text_holds_a_secret_is_not_exposed() {
        const KEY: &str = "sk-canary-0123456789";
        let r = Redactor::new([KEY]);
        assert!(Cause::new(std::io::Error::other("reset")).shows_no_secret(&r));
        assert!(!Cause::new(std::io::Error::other(format!("echo {KEY}"))).shows_no_secret(&r));
        // Deep in the chain counts too.
        let inner = Error::ConnectionLost {
            message: "lost".into(),
            source: Some(Cause::new(std::io::Error::other(format!("echo {KEY}")))),
        };
        assert!(!Cause::new(inner).shows_no_secret(&r));
        let e = server_end(
            PeerEnd::Dropped(
                format!("reset: {KEY}"),
                Some(Cause::new(std::io::Error::other(format!("reset: {KEY}")))),
            ),
            None,
            &r,
        );
        assert!(std::error::Error::source(&e).is_none(), "{e:?}");
        assert!(!format!("{e} {e:?}").contains(KEY), "{e:?}");
        let e = server_end(
            PeerEnd::Dropped(
                "reset".into(),
                Some(Cause::new(std::io::Error::other("reset"))),
            ),
            None,
            &r,
        );
        assert!(find::<std::io::Error>(&e).is_some(), "{e:?}");
    }

    #[test]
    fn decode_messages_are_redacted_like_their_payload() {
        const KEY: &str = "sk-canary-0123456789";
        let r = Redactor::new([KEY]);
        let e = Error::decode_redacted(
            format_args!("invalid type: string \"{KEY}\", expected u64"),
            &format!("{{\"turn_order\":\"{KEY}\"}}"),
            &r,
        );
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(!format!("{e} {e:?}").contains(KEY), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("could not decode server message: invalid type")
        );
    }

    #[test]
    fn http_statuses_decide_retries() {
        let api = |status| Error::Api {
            status,
            message: String::new(),
            request_id: None,
            retry_after: None,
        };
        assert!(api(429).is_retryable());
        assert!(api(503).is_retryable());
        assert!(!api(400).is_retryable());
        assert!(!api(401).is_retryable());
        assert!(
            !Error::HandshakeRejected {
                status: 401,
                body: String::new()
            }
            .is_retryable()
        );
    }
}
