//! The crate's one error type.
//!
//! Every failure, from a rejected handshake to a close code, a translation that timed out or a
//! microphone that vanished, is an [`Error`]. [`Error::kind`] gives a stable short name for
//! logs and scripts, and [`Error::is_retryable`] says whether trying again can help.

use std::time::Duration;

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
            1013 => CloseKind::TryAgainLater,
            1006 => CloseKind::Abnormal,
            _ => CloseKind::Other,
        }
    }

    /// The meaning of `code` as the service documents it (used when the server sent no reason).
    pub fn meaning(code: u16) -> &'static str {
        match code {
            1000 => "Normal closure",
            1006 => "Connection closed abnormally (no close frame)",
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
}

impl std::fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connection and Begin",
            TimeoutKind::Termination => "Termination",
            TimeoutKind::Request => "HTTP response",
        })
    }
}

/// Every error of this crate.
#[doc = include_str!("faults_doc.md")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting or argument is invalid (caught before anything is sent).
    #[error("invalid configuration: {0}")]
    Config(String),

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
    #[error("connection lost: {0}")]
    ConnectionLost(String),

    /// A server frame could not be decoded. The session goes on; the payload is kept.
    #[error("could not decode server message: {message}")]
    Decode {
        /// The decoder's complaint.
        message: String,
        /// The frame as received (truncated to 4 KiB).
        payload: String,
    },

    /// Websocket protocol error not covered above.
    #[error("websocket error: {0}")]
    WebSocket(String),

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
    #[error("HTTP request failed: {0}")]
    Http(String),

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
    #[error("audio: {0}")]
    Audio(String),

    /// I/O error (files, WAV).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
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
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::InvalidAudio(_) => "invalid_audio",
            Error::HandshakeRejected {
                status: 401 | 403, ..
            } => "unauthorized",
            Error::HandshakeRejected { status: 429, .. } => "rate_limited",
            Error::HandshakeRejected { .. } => "handshake_rejected",
            Error::Connect { .. } => "connect",
            Error::InvalidUpgrade { .. } => "invalid_upgrade",
            Error::ProxyRejected {
                status: 407 | 403, ..
            } => "proxy_unauthorized",
            Error::ProxyRejected { .. } => "proxy_rejected",
            Error::ResponseTooLarge { .. } => "response_too_large",
            Error::Timeout { .. } => "timeout",
            Error::Closed { kind, .. } => match kind {
                CloseKind::Unauthorized => "unauthorized",
                CloseKind::ServerError => "server_error",
                CloseKind::InvalidMessage => "invalid_message",
                CloseKind::AudioViolation => "audio_violation",
                CloseKind::SessionExpired => "session_expired",
                CloseKind::TooManySessions => "too_many_sessions",
                CloseKind::TryAgainLater => "try_again_later",
                CloseKind::Abnormal => "connection_lost",
                CloseKind::Other => "closed",
            },
            Error::Server { .. } => "server_error",
            Error::ConnectionLost(_) => "connection_lost",
            Error::Decode { .. } => "decode",
            Error::WebSocket(_) => "websocket",
            Error::SessionClosed => "session_closed",
            Error::Api {
                status: 401 | 403, ..
            } => "unauthorized",
            Error::Api { status: 429, .. } => "rate_limited",
            Error::Api { .. } => "api",
            Error::LemurShutDown => "lemur_shut_down",
            Error::Http(_) => "http",
            Error::EmptyCompletion => "empty_completion",
            Error::Translation { .. } => "translation",
            Error::Audio(_) => "audio",
            Error::Io(_) => "io",
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

    /// Whether trying again (a new connection, the same request later) can help.
    ///
    /// Transient network failures, timeouts, 5xx, 429 and the service's "try later" codes are
    /// retryable; authentication, validation and configuration errors are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::HandshakeRejected { status, .. } | Error::Api { status, .. } => {
                *status == 429 || *status == 408 || *status >= 500
            }
            Error::ProxyRejected { status, .. } => *status >= 500,
            Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::ConnectionLost(_)
            | Error::Http(_)
            | Error::EmptyCompletion => true,
            Error::Closed { kind, .. } => matches!(
                kind,
                CloseKind::ServerError
                    | CloseKind::TooManySessions
                    | CloseKind::TryAgainLater
                    | CloseKind::Abnormal
                    | CloseKind::SessionExpired
            ),
            Error::Translation { source, .. } => source.is_retryable(),
            _ => false,
        }
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

    /// A copy for a second receiver (e.g. `terminate()` and the event stream both report how a
    /// session ended). Variants holding non-cloneable sources keep only their message.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Config(m) => Error::Config(m.clone()),
            Error::InvalidAudio(m) => Error::InvalidAudio(m.clone()),
            Error::HandshakeRejected { status, body } => Error::HandshakeRejected {
                status: *status,
                body: body.clone(),
            },
            Error::Connect { url, message } => Error::Connect {
                url: url.clone(),
                message: message.clone(),
            },
            Error::InvalidUpgrade { reason } => Error::InvalidUpgrade {
                reason: reason.clone(),
            },
            Error::ProxyRejected { status, message } => Error::ProxyRejected {
                status: *status,
                message: message.clone(),
            },
            Error::ResponseTooLarge { limit } => Error::ResponseTooLarge { limit: *limit },
            Error::Timeout { kind, after } => Error::Timeout {
                kind: *kind,
                after: *after,
            },
            Error::Closed { code, kind, reason } => Error::Closed {
                code: *code,
                kind: *kind,
                reason: reason.clone(),
            },
            Error::Server { message } => Error::Server {
                message: message.clone(),
            },
            Error::ConnectionLost(m) => Error::ConnectionLost(m.clone()),
            Error::Decode { message, payload } => Error::Decode {
                message: message.clone(),
                payload: payload.clone(),
            },
            Error::WebSocket(m) => Error::WebSocket(m.clone()),
            Error::SessionClosed => Error::SessionClosed,
            Error::Api {
                status,
                message,
                request_id,
                retry_after,
            } => Error::Api {
                status: *status,
                message: message.clone(),
                request_id: request_id.clone(),
                retry_after: *retry_after,
            },
            Error::LemurShutDown => Error::LemurShutDown,
            Error::Http(m) => Error::Http(m.clone()),
            Error::EmptyCompletion => Error::EmptyCompletion,
            Error::Translation { turn_order, source } => Error::Translation {
                turn_order: *turn_order,
                source: Box::new(source.duplicate()),
            },
            Error::Audio(m) => Error::Audio(m.clone()),
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
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
            Error::Http(e.to_string())
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
