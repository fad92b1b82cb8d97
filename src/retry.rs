//! When to try again: one classification of errors and one [`RetryPolicy`], used by
//! [`StreamingClient::connect`](crate::StreamingClient::connect), by
//! [`Lemur`](crate::lemur::Lemur) and (for its backoff; its own table of what a new connection
//! can fix is [`is_transient`](crate::resilient::is_transient)) by
//! [`ResilientSession`](crate::resilient::ResilientSession).
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

/// How often and how long to wait before trying again: the crate's one retry policy, used by
/// the streaming client (handshake retries), [`Lemur`](crate::lemur::Lemur) (HTTP retries)
/// and [`ResilientSession`](crate::resilient::ResilientSession) (reconnects). Their builders
/// expose it through the same setters: `max_retries`, `retry_delay`, `max_retry_wait`
/// (`ResilientSessionBuilder` keeps its `max_reconnects` and `backoff` names).
///
/// The `n`-th retry (from 0) waits `retry_delay × backoff^n`, capped at `max_retry_wait`. A
/// server's `Retry-After` (seconds or an HTTP date, RFC 9110 §10.2.3) replaces that wait; when
/// it asks for more than `max_retry_wait`, the error is returned at once instead (its
/// `retry_after` says how long the server asked for).
///
/// # Jitter
///
/// With [`jitter(true)`](Self::jitter) each computed wait `d` becomes a uniform draw from
/// `[d/2, d]` ("equal jitter"). Equal rather than full jitter (`[0, d]`): clients that failed
/// together (a server restart drops every session at once) are still spread over half of each
/// interval, yet no retry fires immediately after a failure, and the wait still grows with
/// every try, so a server that is down is never hammered and a test can rely on the floor. A
/// `Retry-After` is never jittered: the server chose that time. The draws come from a
/// [`JitterSource`]; [`next_wait_with`](Self::next_wait_with) and [`wait`](Self::wait) take one
/// (seed it for reproducible delays), [`next_wait`](Self::next_wait) makes a fresh one.
///
/// Defaults: jitter is **off** in [`RetryPolicy::new`], so the streaming client's handshake
/// retries (2, 500 ms apart) and `Lemur`'s (2, from 250 ms doubling) keep exactly their
/// documented delays — they are few, per request, and a `429`'s `Retry-After` already spaces
/// them. Turn it on for the client with
/// `StreamingClientBuilder::retry_policy(RetryPolicy::new(..).jitter(true))`. A
/// `ResilientSession` has it **on** by default: its reconnects are what every client does at
/// once after an outage.
///
/// ```
/// use std::time::Duration;
/// use assemblyai_streaming::retry::{JitterSource, RetryPolicy};
///
/// let policy = RetryPolicy::new(5, Duration::from_millis(100), 2).max_retry_wait(Duration::from_secs(1));
/// assert_eq!(policy.delay(0), Duration::from_millis(100));
/// assert_eq!(policy.delay(3), Duration::from_millis(800));
/// assert_eq!(policy.delay(9), Duration::from_secs(1)); // the cap
///
/// let mut rng = JitterSource::seeded(7);
/// let jittered = policy.jitter(true).wait(3, &mut rng);
/// assert!(jittered >= Duration::from_millis(400) && jittered <= Duration::from_millis(800));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    retry_delay: Duration,
    backoff: u32,
    max_retry_wait: Duration,
    jitter: bool,
}

impl RetryPolicy {
    /// `max_retries` retries, the first after `retry_delay`, each next one `backoff` times
    /// longer (1: a constant delay), never longer than `max_retry_wait` (default 30 s); no
    /// jitter.
    pub fn new(max_retries: u32, retry_delay: Duration, backoff: u32) -> Self {
        Self {
            max_retries,
            retry_delay,
            backoff: backoff.max(1),
            max_retry_wait: Duration::from_secs(30),
            jitter: false,
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

    /// Equal jitter on every computed wait: a uniform draw from `[d/2, d]` (see the
    /// [type docs](Self#jitter); default off).
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// The configured number of retries.
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// The configured first delay (`retry_delay`).
    pub fn first_delay(&self) -> Duration {
        self.retry_delay
    }

    /// Whether waits are jittered.
    pub fn is_jittered(&self) -> bool {
        self.jitter
    }

    /// The wait before retry number `retry` (from 0) without jitter: `retry_delay ×
    /// backoff^retry`, at most `max_retry_wait`.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = self.backoff.saturating_pow(retry.min(16));
        self.retry_delay
            .saturating_mul(factor)
            .min(self.max_retry_wait)
    }

    /// The wait before retry number `retry` (from 0): [`delay`](Self::delay), jittered when
    /// jitter is on (drawing from `rng`).
    pub fn wait(&self, retry: u32, rng: &mut JitterSource) -> Duration {
        let d = self.delay(retry);
        if self.jitter {
            d / 2 + d.mul_f64(rng.unit() / 2.0)
        } else {
            d
        }
    }

    /// What to do after `error` on retry number `retry` (0 for the first failure): `Some(wait)`
    /// to try again after `wait`, `None` to give up with `error`. Jittered waits draw from a
    /// fresh [`JitterSource`].
    pub fn next_wait(&self, retry: u32, error: &Error) -> Option<Duration> {
        self.next_wait_with(retry, error, &mut JitterSource::new())
    }

    /// [`next_wait`](Self::next_wait) drawing jitter from `rng`.
    pub fn next_wait_with(
        &self,
        retry: u32,
        error: &Error,
        rng: &mut JitterSource,
    ) -> Option<Duration> {
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
        Some(self.wait(retry, rng))
    }
}

/// Random numbers for retry jitter: xorshift64* (not for anything secret). Seed it for
/// reproducible delays ([`seeded`](Self::seeded)); [`new`](Self::new) seeds from the clock and
/// a process-wide counter, so sources made at the same instant still differ.
#[derive(Debug, Clone)]
pub struct JitterSource(u64);

impl JitterSource {
    /// A source seeded from the clock and a process-wide counter.
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self::seeded(nanos ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A source that always yields the same sequence for the same `seed`.
    pub fn seeded(seed: u64) -> Self {
        // splitmix64 of the seed: close seeds give unrelated sequences, and the state is never 0
        // (xorshift's one fixed point).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        JitterSource(z | 1)
    }

    /// The next number, uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Default for JitterSource {
    fn default() -> Self {
        Self::new()
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
            (Error::config("x"), false),
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
    fn without_jitter_the_delays_double_to_the_cap_exactly() {
        let p = RetryPolicy::new(9, Duration::from_millis(100), 2)
            .max_retry_wait(Duration::from_secs(1));
        assert!(
            !p.is_jittered(),
            "off by default: client and Lemur delays are unchanged"
        );
        let mut rng = JitterSource::seeded(1);
        let waits: Vec<u128> = (0..7).map(|n| p.wait(n, &mut rng).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(
            p.delay(u32::MAX),
            Duration::from_secs(1),
            "no overflow far out"
        );
        // The streaming client's default: constant 500 ms.
        let client = RetryPolicy::new(2, Duration::from_millis(500), 1);
        let e = Error::connection_lost("x");
        assert_eq!(client.next_wait(0, &e), Some(Duration::from_millis(500)));
        assert_eq!(client.next_wait(1, &e), Some(Duration::from_millis(500)));
        assert_eq!(client.next_wait(2, &e), None);
    }

    #[test]
    fn equal_jitter_stays_within_half_and_whole_of_each_delay_and_under_the_cap() {
        let p = RetryPolicy::new(30, Duration::from_millis(100), 2)
            .max_retry_wait(Duration::from_secs(1))
            .jitter(true);
        let mut rng = JitterSource::seeded(42);
        for (retry, full) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (29, 1000),
        ] {
            let full = Duration::from_millis(full);
            let waits: Vec<Duration> = (0..200).map(|_| p.wait(retry, &mut rng)).collect();
            assert!(
                waits.iter().all(|d| *d >= full / 2 && *d <= full),
                "retry {retry}: {waits:?}"
            );
            // Really spread: the draws cover most of [d/2, d].
            let (lo, hi) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
            assert!(*hi - *lo > full * 4 / 10, "retry {retry}: {lo:?}..{hi:?}");
        }
    }

    #[test]
    fn jitter_is_reproducible_from_a_seed_and_never_touches_retry_after() {
        let p = RetryPolicy::new(5, Duration::from_millis(100), 2).jitter(true);
        let e = Error::connection_lost("x");
        let run = |seed| {
            let mut rng = JitterSource::seeded(seed);
            (0..5)
                .map(|n| p.next_wait_with(n, &e, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let limited = Error::Api {
            status: 429,
            message: String::new(),
            request_id: None,
            retry_after: Some(Duration::from_millis(300)),
        };
        let mut rng = JitterSource::seeded(3);
        for _ in 0..20 {
            assert_eq!(
                p.next_wait_with(0, &limited, &mut rng),
                Some(Duration::from_millis(300))
            );
        }
        // Units are in [0, 1), and sources made at the same instant differ.
        let mut rng = JitterSource::seeded(0);
        assert!(
            (0..1000)
                .map(|_| rng.unit())
                .all(|u| (0.0..1.0).contains(&u))
        );
        assert_ne!(JitterSource::new().unit(), JitterSource::new().unit());
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
