//! LLM Gateway and legacy LeMUR routes of the emulator.
//!
//! Placeholder: the routes answer `501 Not Implemented` until the real implementation lands.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use super::Script;

/// What the legacy LeMUR routes (`/lemur/v3/*`) do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegacyLemur {
    /// Answer `404 Not found`, as the real service does since LeMUR was shut down (default).
    #[default]
    ShutDown,
    /// Answer as LeMUR did before it was shut down.
    Working,
}

/// Behaviour of the LLM Gateway (`/v1/chat/completions`) and LeMUR routes.
#[derive(Debug, Clone, Default)]
pub struct LlmOptions {
    /// Delay before each answer.
    pub latency: Duration,
    /// Answer this many requests with 429 before succeeding.
    pub fail_429_times: u32,
    /// `Retry-After` seconds sent with each 429.
    pub retry_after_secs: u64,
    /// Answer this many requests with 500 before succeeding.
    pub fail_500_times: u32,
    /// Behaviour of the legacy LeMUR routes.
    pub legacy_lemur: LegacyLemur,
    /// Answer with an empty completion.
    pub empty_completion: bool,
}

/// Shared state of the LLM routes.
#[derive(Debug)]
pub(crate) struct LlmState {
    _options: LlmOptions,
}

impl LlmState {
    pub(crate) fn new(options: LlmOptions, _api_key: String, _script: &Script) -> Self {
        Self { _options: options }
    }
}

/// Answers one LLM route request.
pub(crate) async fn handle(
    _state: Arc<LlmState>,
    _req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from_static(
        br#"{"error":"LLM routes are not implemented in this build of the emulator"}"#,
    )));
    *resp.status_mut() = hyper::StatusCode::NOT_IMPLEMENTED;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}
