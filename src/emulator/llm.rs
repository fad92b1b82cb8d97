//! The emulator's LLM routes: the LLM Gateway's `POST /v1/chat/completions` and the legacy
//! LeMUR `POST /lemur/v3/*`.
//!
//! Requests are validated as the real services do (required fields, types and ranges, known
//! models, the raw key in `Authorization`) and answered with their real response and error
//! shapes (spec section 5):
//! - Gateway auth failures use the auth middleware's `{"error","status","request_id"}`;
//! - Gateway business errors use `{"message","code","request_id","metadata":{"errors":[…]}}`;
//! - LeMUR errors use `{"error":"…"}`, and by default every LeMUR route answers
//!   `404 {"error":"Not found"}`, as it has since LeMUR was shut down ([`LegacyLemur`]).
//!
//! **The emulator cannot translate.** When the input contains a script turn's text and that
//! turn has a translation for the language named in the prompt, the completion is that
//! translation. Otherwise the completion is the input, visibly marked: `[es] original text`
//! for a translation into Spanish, `[emulated completion] …` when no language is named. It never
//! makes up text that could pass for a real model's answer.
//!
//! Faults, from [`LlmOptions`]: latency before each completion, the first `fail_429_times`
//! requests answered `429` with `Retry-After`, the next `fail_500_times` answered `500`, and
//! empty completions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::Script;
use crate::translate::{LANGUAGES, language_code};

/// Largest request body accepted, in bytes.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Models the Gateway lists (spec 5.2, as of 2026-03).
const GATEWAY_MODELS: &[&str] = &[
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-5-20251101",
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5-20251001",
    "claude-opus-4-20250514",
    "claude-sonnet-4-20250514",
    "claude-3-haiku-20240307",
    "gpt-5.2",
    "gpt-5.1",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-4.1",
    "gpt-oss-120b",
    "gpt-oss-20b",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
];

/// LeMUR's `final_model` values (spec 5.1), including the ones sunset later.
const LEMUR_MODELS: &[&str] = &[
    "anthropic/claude-sonnet-4-20250514",
    "anthropic/claude-opus-4-20250514",
    "anthropic/claude-3-7-sonnet-20250219",
    "anthropic/claude-3-5-sonnet",
    "anthropic/claude-3-5-haiku-20241022",
    "anthropic/claude-3-opus",
    "anthropic/claude-3-haiku",
];

/// LeMUR task request fields (`additionalProperties: false`).
const LEMUR_FIELDS: &[&str] = &[
    "prompt",
    "final_model",
    "transcript_ids",
    "input_text",
    "context",
    "max_output_size",
    "temperature",
];

/// How the legacy LeMUR routes behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegacyLemur {
    /// Every `/lemur/v3/*` route answers `404 {"error":"Not found"}`, as AssemblyAI's have since
    /// LeMUR was shut down on 2026-03-31 (default).
    #[default]
    ShutDown,
    /// `POST /lemur/v3/generate/task` works with the historical request and response shapes.
    Working,
}

/// Behaviour of the LLM routes.
///
/// ```
/// use assemblyai_streaming::emulator::{LegacyLemur, LlmOptions};
/// use std::time::Duration;
///
/// let options = LlmOptions {
///     latency: Duration::from_millis(500),
///     fail_429_times: 1,
///     retry_after_secs: 1,
///     legacy_lemur: LegacyLemur::Working,
///     ..Default::default()
/// };
/// ```
#[derive(Debug, Clone, Default)]
pub struct LlmOptions {
    /// Time taken by each completion (errors are answered at once).
    pub latency: Duration,
    /// The first N authorized requests are answered `429` with `Retry-After`.
    pub fail_429_times: u32,
    /// The `Retry-After` value of those `429`s, in seconds.
    pub retry_after_secs: u64,
    /// The N authorized requests after the `429`s are answered `500`.
    pub fail_500_times: u32,
    /// Behaviour of the legacy LeMUR routes.
    pub legacy_lemur: LegacyLemur,
    /// Answer every completion with empty text.
    pub empty_completion: bool,
}

/// Shared state of the LLM routes.
pub(crate) struct LlmState {
    options: LlmOptions,
    api_key: String,
    /// Script turns with their normalized text, longest first (the best match wins).
    turns: Vec<KnownTurn>,
    remaining_429: AtomicU32,
    remaining_500: AtomicU32,
    requests: AtomicU64,
}

struct KnownTurn {
    normalized: String,
    translations: BTreeMap<String, String>,
}

impl std::fmt::Debug for LlmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The accepted key stays out of `Debug` like every other key.
        f.debug_struct("LlmState")
            .field("options", &self.options)
            .field("scripted_turns", &self.turns.len())
            .field("remaining_429", &self.remaining_429)
            .field("remaining_500", &self.remaining_500)
            .finish_non_exhaustive()
    }
}

impl LlmState {
    /// State for one emulator: its options, its accepted key, and the script whose translations
    /// it may return.
    pub(crate) fn new(options: LlmOptions, api_key: String, script: &Script) -> Self {
        let mut turns: Vec<KnownTurn> = script
            .turns
            .iter()
            .map(|t| KnownTurn {
                normalized: normalize(&t.text),
                translations: t
                    .translations
                    .iter()
                    .map(|(code, text)| (code.to_ascii_lowercase(), text.clone()))
                    .collect(),
            })
            .filter(|t| !t.normalized.is_empty())
            .collect();
        turns.sort_by_key(|t| std::cmp::Reverse(t.normalized.len()));
        LlmState {
            remaining_429: AtomicU32::new(options.fail_429_times),
            remaining_500: AtomicU32::new(options.fail_500_times),
            options,
            api_key,
            turns,
            requests: AtomicU64::new(0),
        }
    }

    /// The completion the emulator gives for `instructions` (system text or the whole prompt)
    /// applied to `input`. Also usable for the streaming `llm_gateway` parameter.
    pub(crate) fn completion(&self, instructions: &str, input: &str) -> String {
        if self.options.empty_completion {
            return String::new();
        }
        let input = input.trim();
        let lang = detect_language(instructions).or_else(|| detect_language(input));
        let Some(code) = lang else {
            return format!("[emulated completion] {input}");
        };
        let haystack = format!(" {} ", normalize(input));
        let translated = self
            .turns
            .iter()
            .find(|t| haystack.contains(&format!(" {} ", t.normalized)))
            .and_then(|t| t.translations.get(code));
        match translated {
            Some(text) => text.clone(),
            None => format!("[{code}] {input}"),
        }
    }

    fn request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let a = splitmix(n ^ nanos);
        let b = splitmix(a);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    fn authorized(&self, req: &Request<hyper::body::Incoming>) -> bool {
        // The raw key, as AssemblyAI expects it (no `Bearer`).
        req.headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !self.api_key.is_empty() && v == self.api_key)
    }

    /// Consumes one of the configured `429`/`500` failures, if any are left.
    fn injected_failure(&self) -> Option<StatusCode> {
        let take = |counter: &AtomicU32| {
            counter
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        };
        if take(&self.remaining_429) {
            Some(StatusCode::TOO_MANY_REQUESTS)
        } else if take(&self.remaining_500) {
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        } else {
            None
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Lowercase words separated by single spaces, punctuation dropped: the same text formatted or
/// not ("Hello, world." / "hello world") compares equal.
fn normalize(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The ISO 639-1 code of the target language named in `text`: the word after "into"/"to" (a
/// name or a code), else the first language name anywhere. Bare codes elsewhere are ignored:
/// "it", "no" and "to" are also English words.
fn detect_language(text: &str) -> Option<&'static str> {
    let words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let after_into = words.windows(2).find_map(|pair| {
        let lead = pair[0].to_ascii_lowercase();
        if lead == "into" || lead == "to" {
            language_code(pair[1])
        } else {
            None
        }
    });
    after_into.or_else(|| {
        words.iter().find_map(|w| {
            LANGUAGES
                .iter()
                .find(|(_, name)| name.eq_ignore_ascii_case(w))
                .map(|(code, _)| *code)
        })
    })
}

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn with_retry_after(mut response: Response<Full<Bytes>>, secs: u64) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// Routes one request of the LLM routes (`POST /v1/chat/completions`, `POST /lemur/v3/*`).
pub(crate) async fn handle(
    state: Arc<LlmState>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if path.starts_with("/lemur/v3/") {
        return lemur(state, req, &path).await;
    }
    match (req.method(), path.as_str()) {
        (&Method::GET, "/v1/models") => models(),
        (_, "/v1/understanding" | "/v1/understanding/validate") => understanding(state, req).await,
        (_, "/v1/chat/completions") => gateway(state, req).await,
        _ => json_response(StatusCode::NOT_FOUND, json!({"error": "Not found"})),
    }
}

/// Reads the body as JSON; `Err` carries the reason for a 400/413.
async fn read_json(req: Request<hyper::body::Incoming>) -> Result<Value, (StatusCode, String)> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {MAX_BODY} bytes"),
            )
        })?
        .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

// ---------------------------------------------------------------------------------------------
// LLM Gateway
// ---------------------------------------------------------------------------------------------

/// The Gateway's business-error envelope (spec §5): message, code, request id, and the
/// validation errors under `metadata`.
fn business_error(
    status: StatusCode,
    message: &str,
    errors: Vec<String>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    json_response(
        status,
        json!({
            "message": message,
            "code": status.as_u16(),
            "request_id": request_id,
            "metadata": {"errors": errors},
        }),
    )
}

/// The checks every Gateway POST route makes first: the method (405 in the business envelope),
/// then the key (401 in the service's auth envelope). `Some` is the refusal to answer with.
fn refuse_unless_post_with_key(
    state: &LlmState,
    req: &Request<hyper::body::Incoming>,
    request_id: &str,
) -> Option<Response<Full<Bytes>>> {
    if req.method() != Method::POST {
        return Some(business_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            vec![],
            request_id,
        ));
    }
    if !state.authorized(req) {
        return Some(json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "Invalid API key", "status": 401, "request_id": request_id}),
        ));
    }
    None
}

async fn gateway(
    state: Arc<LlmState>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let request_id = state.request_id();
    let business =
        |status, message: &str, errors| business_error(status, message, errors, &request_id);
    if let Some(refused) = refuse_unless_post_with_key(&state, &req, &request_id) {
        return refused;
    }
    match state.injected_failure() {
        Some(StatusCode::TOO_MANY_REQUESTS) => {
            return with_retry_after(
                business(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", vec![]),
                state.options.retry_after_secs,
            );
        }
        Some(status) => return business(status, "Internal server error", vec![]),
        None => {}
    }
    let body = match read_json(req).await {
        Ok(v) => v,
        Err((status, reason)) => return business(status, "Invalid request", vec![reason]),
    };
    let checked = match validate_chat(&body) {
        Ok(c) => c,
        Err(errors) => return business(StatusCode::BAD_REQUEST, "Validation error", errors),
    };

    tokio::time::sleep(state.options.latency).await;
    let completion = state.completion(&checked.instructions, &checked.input);
    let input_tokens = tokens(&checked.instructions) + tokens(&checked.input);
    let output_tokens = tokens(&completion);
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return sse_response(&request_id, model, &completion, input_tokens, output_tokens);
    }
    let mut echo = body.as_object().cloned().unwrap_or_default();
    echo.remove("messages");
    echo.remove("prompt");
    json_response(
        StatusCode::OK,
        json!({
            "request_id": request_id,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": completion},
                "finish_reason": "stop",
            }],
            "request": echo,
            "usage": usage(input_tokens, output_tokens),
            "http_status_code": 200,
            "response_time": state.options.latency.as_nanos() as u64,
            "llm_status_code": 200,
        }),
    )
}

/// `usage` as the Gateway sends it: the OpenAI names the Python SDK requires
/// (`prompt_tokens`, `completion_tokens`, `total_tokens`), the Gateway's own `input_tokens` /
/// `output_tokens`, and the `*_tokens_details` objects (spec §5.2; PY `LLMGatewayUsage`).
fn usage(input_tokens: u64, output_tokens: u64) -> Value {
    json!({
        "input_tokens": input_tokens,
        "prompt_tokens": input_tokens,
        "output_tokens": output_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    })
}

/// The pieces a streamed completion is cut into: one word (with the space before it) each.
fn deltas(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == ' ' && i > start {
            out.push(&text[start..i]);
            start = i;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// `stream: true`: Server-Sent Events of OpenAI chunk objects (`chat.completion.chunk`, a
/// `delta` per piece of text, a last chunk with `finish_reason`, a usage chunk with no
/// choices), ending with `data: [DONE]` (spec §5.2; PY `stream_completion`).
fn sse_response(
    request_id: &str,
    model: &str,
    completion: &str,
    input_tokens: u64,
    output_tokens: u64,
) -> Response<Full<Bytes>> {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let id = format!("chatcmpl-{request_id}");
    let chunk = |choices: Value, usage: Value| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": usage,
        })
    };
    let mut events = vec![chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        Value::Null,
    )];
    for piece in deltas(completion) {
        events.push(chunk(
            json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]),
            Value::Null,
        ));
    }
    events.push(chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        Value::Null,
    ));
    events.push(chunk(json!([]), usage(input_tokens, output_tokens)));
    let mut body = String::new();
    for e in events {
        body.push_str("data: ");
        body.push_str(&e.to_string());
        body.push_str("\n\n");
    }
    body.push_str("data: [DONE]\n\n");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

/// `GET /v1/models` (no key needed, as the Python SDK notes): every model the emulator accepts,
/// with the fields of spec §5.2 in the shape the Python SDK parses (`{"data": [...]}`). Prices
/// and limits are placeholders, not the service's figures.
fn models() -> Response<Full<Bytes>> {
    let data: Vec<Value> = GATEWAY_MODELS
        .iter()
        .map(|id| {
            let (creator, provider) = match *id {
                m if m.starts_with("claude") => ("anthropic", "Anthropic"),
                m if m.starts_with("gemini") => ("google", "Google"),
                _ => ("openai", "OpenAI"),
            };
            let regions: &[&str] = if creator == "openai" {
                &["us"]
            } else {
                &["us", "eu"]
            };
            let price = json!({"completions": 0.0, "prompt": 0.0});
            json!({
                "id": id,
                "name": id,
                "description": format!("{id} (emulated: no model runs here)"),
                "default_parameters": {"temperature": null, "top_p": null, "frequency_penalty": null},
                "supported_parameters": ["max_tokens", "temperature", "stream", "tools", "tool_choice", "response_format"],
                "top_provider": {"is_moderated": false, "context_length": 200_000, "max_completion_tokens": 32_000},
                "context_length": 200_000,
                "pricing": {"us": price, "eu": price, "global": price},
                "creator": creator,
                "retirement_date": if *id == "claude-3-haiku-20240307" { 1_776_643_200 } else { 0 },
                "available_regions": regions,
                "providers": [{"id": creator, "name": provider}],
                "default_provider": {"id": creator, "name": provider},
            })
        })
        .collect();
    json_response(StatusCode::OK, json!({ "data": data }))
}

/// `POST /v1/understanding[/validate]`: the emulator keeps no transcripts, so a request naming a
/// `transcript_id` gets the service's business-error envelope with 404 (the exact message text
/// of the service is not documented); one without gets a 400 validation error.
async fn understanding(
    state: Arc<LlmState>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let request_id = state.request_id();
    let business =
        |status, message: &str, errors| business_error(status, message, errors, &request_id);
    if let Some(refused) = refuse_unless_post_with_key(&state, &req, &request_id) {
        return refused;
    }
    let body = match read_json(req).await {
        Ok(v) => v,
        Err((status, reason)) => return business(status, "Invalid request", vec![reason]),
    };
    match body.get("transcript_id") {
        Some(Value::String(id)) if !id.is_empty() => {
            let shown: String = id.chars().take(64).collect();
            business(
                StatusCode::NOT_FOUND,
                "Transcript not found",
                vec![format!("transcript_id: no transcript with id '{shown}'")],
            )
        }
        _ => business(
            StatusCode::BAD_REQUEST,
            "Validation error",
            vec!["transcript_id: Field required".into()],
        ),
    }
}

struct CheckedChat {
    /// System messages, or the whole `prompt` when `messages` is absent.
    instructions: String,
    /// User messages, or the whole `prompt`.
    input: String,
}

/// Validates a chat-completion request as the Gateway's schema does; returns every problem.
fn validate_chat(body: &Value) -> Result<CheckedChat, Vec<String>> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(vec!["body: must be a JSON object".into()]);
    };
    match obj.get("model") {
        None | Some(Value::Null) => errors.push("model: Field required".into()),
        Some(Value::String(m)) if GATEWAY_MODELS.contains(&m.as_str()) => {}
        Some(Value::String(m)) => errors.push(format!("model: unsupported model '{m}'")),
        Some(_) => errors.push("model: must be a string".into()),
    }
    let mut instructions = Vec::new();
    let mut input = Vec::new();
    let present = |field| obj.get(field).filter(|v| !v.is_null());
    match (present("messages"), present("prompt")) {
        (None, None) => errors.push("messages: either messages or prompt is required".into()),
        (Some(Value::Array(messages)), _) if !messages.is_empty() => {
            for (i, m) in messages.iter().enumerate() {
                let role = m.get("role").and_then(Value::as_str);
                let text = match m.get("content") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Option<Vec<_>>>()
                        .map(|p| p.concat()),
                    _ => None,
                };
                match (role, text) {
                    (Some("system"), Some(t)) => instructions.push(t),
                    (Some("user"), Some(t)) => input.push(t),
                    (Some("assistant" | "tool"), Some(_)) => {}
                    (Some("system" | "user" | "assistant" | "tool"), None) => errors.push(format!(
                        "messages[{i}].content: must be a string or a list of text parts"
                    )),
                    _ => errors.push(format!(
                        "messages[{i}].role: must be one of system, user, assistant, tool"
                    )),
                }
            }
        }
        (Some(Value::Array(_)), _) => errors.push("messages: must not be empty".into()),
        (Some(_), _) => errors.push("messages: must be a list".into()),
        (None, Some(Value::String(p))) => {
            instructions.push(p.clone());
            input.push(p.clone());
        }
        (None, Some(_)) => errors.push("prompt: must be a string".into()),
    }
    if let Some(v) = obj.get("max_tokens").filter(|v| !v.is_null()) {
        if v.as_u64().is_none_or(|n| n < 1) {
            errors.push("max_tokens: must be an integer >= 1".into());
        }
    }
    if let Some(v) = obj.get("temperature").filter(|v| !v.is_null()) {
        if v.as_f64().is_none_or(|t| !(0.0..=2.0).contains(&t)) {
            errors.push("temperature: must be a number between 0 and 2".into());
        }
    }
    if errors.is_empty() {
        Ok(CheckedChat {
            instructions: instructions.join("\n"),
            input: input.join("\n"),
        })
    } else {
        Err(errors)
    }
}

/// A rough token count (about four characters per token), for `usage`.
fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

// ---------------------------------------------------------------------------------------------
// Legacy LeMUR
// ---------------------------------------------------------------------------------------------

async fn lemur(
    state: Arc<LlmState>,
    req: Request<hyper::body::Incoming>,
    path: &str,
) -> Response<Full<Bytes>> {
    let not_found = || json_response(StatusCode::NOT_FOUND, json!({"error": "Not found"}));
    if state.options.legacy_lemur == LegacyLemur::ShutDown
        || path != "/lemur/v3/generate/task"
        || req.method() != Method::POST
    {
        return not_found();
    }
    let error =
        |status: StatusCode, message: &str| json_response(status, json!({"error": message}));
    if !state.authorized(&req) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Authentication error, API token missing/invalid",
        );
    }
    match state.injected_failure() {
        Some(StatusCode::TOO_MANY_REQUESTS) => {
            return with_retry_after(
                error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
                state.options.retry_after_secs,
            );
        }
        Some(status) => return error(status, "Internal server error"),
        None => {}
    }
    let body = match read_json(req).await {
        Ok(v) => v,
        Err((status, reason)) => return error(status, &reason),
    };
    let (prompt, input_text) = match validate_task(&body) {
        Ok(v) => v,
        Err(reason) => return error(StatusCode::BAD_REQUEST, &reason),
    };

    tokio::time::sleep(state.options.latency).await;
    let completion = state.completion(&prompt, &input_text);
    json_response(
        StatusCode::OK,
        json!({
            "request_id": state.request_id(),
            "response": completion,
            "usage": {
                "input_tokens": tokens(&prompt) + tokens(&input_text),
                "output_tokens": tokens(&completion),
            },
        }),
    )
}

/// Validates a LeMUR task request (spec 5.1); returns `(prompt, input_text)`.
fn validate_task(body: &Value) -> Result<(String, String), String> {
    let obj = body
        .as_object()
        .ok_or_else(|| "request body must be a JSON object".to_owned())?;
    if let Some(extra) = obj.keys().find(|k| !LEMUR_FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "Additional properties are not allowed ('{extra}' was unexpected)"
        ));
    }
    let prompt = match obj.get("prompt") {
        Some(Value::String(p)) if !p.trim().is_empty() => p.clone(),
        Some(Value::String(_)) => return Err("prompt must not be empty".into()),
        Some(_) => return Err("prompt must be a string".into()),
        None => return Err("prompt is required".into()),
    };
    match obj.get("final_model") {
        Some(Value::String(m)) if LEMUR_MODELS.contains(&m.as_str()) => {}
        Some(Value::String(m)) => return Err(format!("final_model '{m}' is not supported")),
        Some(_) => return Err("final_model must be a string".into()),
        None => return Err("final_model is required".into()),
    }
    if let Some(v) = obj.get("max_output_size") {
        if v.as_u64().is_none_or(|n| n < 1) {
            return Err("max_output_size must be a positive integer".into());
        }
    }
    if let Some(v) = obj.get("temperature") {
        if v.as_f64().is_none_or(|t| !(0.0..=1.0).contains(&t)) {
            return Err("temperature must be between 0 and 1".into());
        }
    }
    match (obj.get("input_text"), obj.get("transcript_ids")) {
        (Some(Value::String(text)), None) => Ok((prompt, text.clone())),
        (Some(_), Some(_)) => Err("Provide either transcript_ids or input_text, not both".into()),
        // The emulator holds no transcripts, so any id is unknown.
        (None, Some(_)) => Err("Transcript not found".into()),
        (Some(_), None) => Err("input_text must be a string".into()),
        (None, None) => Err("Either transcript_ids or input_text is required".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::{Script, ScriptTurn};

    fn state(options: LlmOptions) -> LlmState {
        let script = Script {
            turns: vec![ScriptTurn {
                text: "Hello, world.".into(),
                translations: [("es".to_owned(), "Hola, mundo.".to_owned())].into(),
                ..Default::default()
            }],
        };
        LlmState::new(options, "k".into(), &script)
    }

    #[test]
    fn a_scripted_translation_is_returned_for_the_named_language() {
        let s = state(LlmOptions::default());
        let prompt = "Translate the following text into Spanish. Do not write a preamble.";
        assert_eq!(s.completion(prompt, "Hello, world."), "Hola, mundo.");
        // Unformatted transcripts match too, and the language may be given as a code.
        assert_eq!(
            s.completion("Translate into es", "hello world"),
            "Hola, mundo."
        );
        // The streaming `{{turn}}` form: instruction and text in one prompt.
        let whole = format!("{prompt}\n\nHello, world.");
        assert_eq!(s.completion(&whole, &whole), "Hola, mundo.");
    }

    #[test]
    fn anything_else_is_visibly_marked_as_untranslated() {
        let s = state(LlmOptions::default());
        assert_eq!(
            s.completion("Translate into French.", "Hello, world."),
            "[fr] Hello, world."
        );
        assert_eq!(
            s.completion("Translate into Spanish.", "Something unscripted."),
            "[es] Something unscripted."
        );
        assert_eq!(
            s.completion("Summarize.", "Hello there"),
            "[emulated completion] Hello there"
        );
        // "hello" inside "othello" is not the scripted turn.
        assert_eq!(
            s.completion("Translate into Spanish.", "Othello, worlds"),
            "[es] Othello, worlds"
        );
    }

    #[test]
    fn empty_completion_option_empties_every_answer() {
        let s = state(LlmOptions {
            empty_completion: true,
            ..Default::default()
        });
        assert_eq!(s.completion("Translate into Spanish.", "Hello, world."), "");
    }

    #[test]
    fn language_detection_prefers_the_word_after_into() {
        assert_eq!(
            detect_language("Translate from English into German."),
            Some("de")
        );
        assert_eq!(detect_language("Translate it to pt please"), Some("pt"));
        assert_eq!(detect_language("Write it in Japanese"), Some("ja"));
        assert_eq!(detect_language("Do it now, no more"), None);
    }

    #[test]
    fn chat_validation_lists_every_problem() {
        let errors = validate_chat(&json!({"temperature": 3, "max_tokens": 0}))
            .err()
            .unwrap();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(validate_chat(&json!({"model": "gpt-5", "prompt": "hi"})).is_ok());
        assert!(validate_chat(&json!({"model": "gpt-9", "prompt": "hi"})).is_err());
        assert!(validate_chat(&json!({"model": "gpt-5", "messages": []})).is_err());
        assert!(
            validate_chat(
                &json!({"model": "gpt-5", "messages": [{"role": "bot", "content": "x"}]})
            )
            .is_err()
        );
    }

    #[test]
    fn task_validation_follows_the_lemur_schema() {
        let ok =
            json!({"prompt": "p", "input_text": "t", "final_model": "anthropic/claude-3-haiku"});
        assert_eq!(validate_task(&ok).unwrap(), ("p".into(), "t".into()));
        let mut extra = ok.clone();
        extra["stream"] = json!(true);
        assert!(validate_task(&extra).unwrap_err().contains("'stream'"));
        assert!(
            validate_task(&json!({"prompt": "p", "final_model": "anthropic/claude-3-haiku"}))
                .is_err()
        );
        assert!(
            validate_task(&json!({"prompt": "p", "input_text": "t", "final_model": "default"}))
                .is_err()
        );
    }

    #[test]
    fn debug_does_not_show_the_accepted_key() {
        let s = LlmState::new(
            LlmOptions::default(),
            "accepted-key-77".into(),
            &Script::default(),
        );
        assert!(!format!("{s:?}").contains("accepted-key-77"));
    }

    #[test]
    fn request_ids_look_like_uuids_and_differ() {
        let s = state(LlmOptions::default());
        let (a, b) = (s.request_id(), s.request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
