//! When to try again: one classification of errors and one [`RetryPolicy`], used by
//! [`StreamingClient::connect`](crate::StreamingClient::connect) and by
//! [`Lemur`](crate::lemur::Lemur).
//!
//! | error | retried |
//! |---|---|
//! | refused / reset connection, DNS, a dropped upgrade ([`Error::Connect`], [`Error::ConnectionLost`], [`Error::Http`]) | yes |
//! | connect timeout (socket + `Begin`), write timeout, terminate timeout | yes |
//! | an HTTP request's own timeout ([`TimeoutKind::Request`]) | no: the whole wait was spent once already |
//! | HTTP 408, 429, 5xx (upgrade or API) | yes (429 after its `Retry-After`) |
//! | other HTTP 4xx, 401/403 above all | no |
//! | close 3005 (server error), 1012 (service restart), 1013 (try again later), 1014, 3008 (session cap: a new session) and a close without a code (1006) | yes |
//! | close 1008 / 4001–4003 (credentials), 3006 (validation), 3007 (audio), 3009 (too many sessions: an immediate retry only adds load, as the README promises) and other codes | no |
//! | a TLS certificate that fails verification ([`Error::Certificate`]) | never |
//! | configuration, audio, decode and every other error | no |

use std::time::{Duration, SystemTime};

use crate::error::{CloseKind, Error, TimeoutKind};

/// Whether trying again can help (the table above).
pub(crate) fn is_retryable(error: &Error) -> bool {
    match error {
        Error::HandshakeRejected { status, .. } | Error::Api { status, .. } => {
            *status == 429 || *status == 408 || *status >= 500
        }
        // A proxy's own failure may pass; its refusal of our credentials or target will not.
        Error::ProxyRejected { status, .. } => *status >= 500,
        Error::Connect { .. } | Error::ConnectionLost { .. } | Error::Http { .. } => true,
        Error::Timeout { kind, .. } => *kind != TimeoutKind::Request,
        Error::EmptyCompletion => true,
        Error::Closed { kind, .. } => matches!(
            kind,
            CloseKind::ServerError
                | CloseKind::TryAgainLater
                | CloseKind::Abnormal
                | CloseKind::SessionExpired
        ),
        Error::Translation { source, .. } => is_retryable(source),
        _ => false,
    }
}

/// How often and how long to wait before trying again. Shared by the streaming client (connect)
/// and [`Lemur`](crate::lemur::Lemur), whose builders expose the same setters: `max_retries`,
/// `retry_delay`, `max_retry_wait`.
///
/// The `n`-th retry (from 0) waits `retry_delay × backoff^n`, capped at `max_retry_wait`. A
/// server's `Retry-After` (seconds or an HTTP date, RFC 9110 §10.2.3) replaces that wait; when
/// it asks for more than `max_retry_wait`, the error is returned at once instead (its
/// `retry_after` says how long the server asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    retry_delay: Duration,
    backoff: u32,
    max_retry_wait: Duration,
}

impl RetryPolicy {
    /// `max_retries` retries, the first after `retry_delay`, each next one `backoff` times
    /// longer (1: a constant delay), never longer than `max_retry_wait`.
    pub fn new(max_retries: u32, retry_delay: Duration, backoff: u32) -> Self {
        Self {
            max_retries,
            retry_delay,
            backoff: backoff.max(1),
            max_retry_wait: Duration::from_secs(30),
        }
    }

    /// No retries at all.
    pub fn none() -> Self {
        Self::new(0, Duration::ZERO, 1)
    }

    /// How many retries after the first attempt.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The first retry's delay.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// The longest wait before a retry (default 30 s).
    pub fn max_retry_wait(mut self, wait: Duration) -> Self {
        self.max_retry_wait = wait;
        self
    }

    /// The configured number of retries.
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// What to do after `error` on retry number `retry` (0 for the first failure): `Some(wait)`
    /// to try again after `wait`, `None` to give up with `error`.
    pub fn next_wait(&self, retry: u32, error: &Error) -> Option<Duration> {
        if retry >= self.max_retries || !is_retryable(error) {
            return None;
        }
        if let Error::Api {
            retry_after: Some(after),
            ..
        } = error
        {
            return (*after <= self.max_retry_wait).then_some(*after);
        }
        let factor = self.backoff.saturating_pow(retry.min(16));
        Some(
            self.retry_delay
                .saturating_mul(factor)
                .min(self.max_retry_wait),
        )
    }
}

/// The verifier's complaint when `error` (or anything in its cause chain, including the error
/// inside an `io::Error`) is a TLS certificate that failed verification, so the classifier
/// can refuse to retry it. Recognised by type for the `rustls` backend, and for `native-tls`
/// on OpenSSL by its "certificate verify failed" reason (other native backends: not
/// recognised, the failure stays an [`Error::Connect`] / [`Error::Http`]).
pub(crate) fn certificate_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(message) = as_certificate(e) {
            return Some(message);
        }

        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(message) = as_certificate(inner) {
                return Some(message);
            }
        }
        current = e.source();
    }
    None
}

fn as_certificate(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    #[cfg(feature = "rustls")]
    {
        if let Some(rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>() {
            return Some(e.to_string());
        }
        // reqwest's connector stack hides the rustls error behind private wrappers whose
        // `source()` skips it; rustls' own text for `InvalidCertificate` is the fallback.
        let text = e.to_string();
        if text.starts_with("invalid peer certificate: ") {
            return Some(text);
        }
    }
    // native-tls keeps the verify result private; OpenSSL's reason text is the stable part.
    #[cfg(feature = "native-tls")]
    if let Some(n) = e.downcast_ref::<native_tls_crate::Error>() {
        let text = n.to_string();
        if text.contains("certificate verify failed") {
            return Some(text);
        }
    }
    let _ = e;
    None
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3), relative to
/// `now`. A date in the past means "now" (zero). Anything else is ignored.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(code: u16) -> Error {
        Error::closed(code, "")
    }

    #[test]
    fn the_table() {
        let api = |status| Error::Api {
            status,
            message: String::new(),
            request_id: None,
            retry_after: None,
        };
        let cases: Vec<(Error, bool)> = vec![
            (closed(1012), true),
            (closed(1013), true),
            (closed(3005), true),
            (closed(3008), true),
            (closed(1006), true),
            (closed(1008), false),
            (closed(4001), false),
            (closed(3006), false),
            (closed(3007), false),
            (closed(3009), false),
            (closed(1000), false),
            (api(429), true),
            (api(503), true),
            (api(401), false),
            (api(400), false),
            (
                Error::HandshakeRejected {
                    status: 403,
                    body: String::new(),
                },
                false,
            ),
            (
                Error::Timeout {
                    kind: TimeoutKind::Connect,
                    after: Duration::ZERO,
                },
                true,
            ),
            (
                Error::Timeout {
                    kind: TimeoutKind::Request,
                    after: Duration::ZERO,
                },
                false,
            ),
            (
                Error::Certificate {
                    url: "wss://x".into(),
                    message: "unknown issuer".into(),
                    source: None,
                },
                false,
            ),
            (Error::connection_lost("reset"), true),
            (Error::Config("x".into()), false),
        ];
        for (error, retry) in cases {
            assert_eq!(is_retryable(&error), retry, "{error:?}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_retry_after_wins_or_gives_up() {
        let p = RetryPolicy::new(5, Duration::from_millis(100), 2)
            .max_retry_wait(Duration::from_millis(350));
        let e = Error::connection_lost("x");
        let waits: Vec<_> = (0..6).map(|n| p.next_wait(n, &e)).collect();
        let ms = |m| Some(Duration::from_millis(m));
        assert_eq!(waits, [ms(100), ms(200), ms(350), ms(350), ms(350), None]);
        let limited = |s| Error::Api {
            status: 429,
            message: String::new(),
            request_id: None,
            retry_after: Some(Duration::from_millis(s)),
        };
        assert_eq!(p.next_wait(0, &limited(300)), ms(300));
        assert_eq!(p.next_wait(0, &limited(400)), None, "over the cap: give up");
        assert_eq!(p.next_wait(0, &closed(1008)), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past: now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
