//! `Lemur`: text tasks and translation through AssemblyAI's LLM Gateway (or LeMUR, historically).
//!
//! AssemblyAI shut LeMUR down on 2026-03-31: its routes answer `404 Not found`. The client keeps
//! the familiar name and API but talks to its successor, the **LLM Gateway** (an
//! OpenAI-like `POST /v1/chat/completions`), by default. The legacy LeMUR task endpoint is still
//! available as [`Backend::LegacyLemur`] for servers that keep it alive (or the emulator); a
//! `404` from it becomes [`Error::LemurShutDown`], which says how to switch.
//!
//! ```
//! use assemblyai_streaming::lemur::Lemur;
//! # use assemblyai_streaming::emulator::{Emulator, Script};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let script: Script = serde_json::from_str(
//! #     r#"{"turns":[{"text":"Hello, world.","translations":{"es":"Hola, mundo."}}]}"#,
//! # )?;
//! # let emulator = Emulator::builder().script(script).start().await?;
//! let lemur = Lemur::builder() // key from ASSEMBLYAI_API_KEY
//! #   .api_key(emulator.api_key())
//! #   .base_url(emulator.http_url())
//!     .build()?;
//! let spanish = lemur.translate("Hello, world.", "es").await?;
//! let summary = lemur.task("Summarize in one sentence.", "…a long transcript…").await?;
//! # assert_eq!(spanish, "Hola, mundo.");
//! # assert!(!summary.is_empty());
//! # Ok(()) }
//! ```
//!
//! Any OpenAI-compatible server works through the Gateway backend: point
//! [`LemurBuilder::base_url`] at it (a trailing `/v1` is accepted), and set
//! [`LemurBuilder::bearer_auth`] if it expects `Authorization: Bearer <key>`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use serde::{Deserialize, Deserializer, Serialize};

use crate::client::{API_KEY_ENV, Region, Secret};
use crate::error::{Error, Result, TimeoutKind};
use crate::translate::{Translator, translation_prompt};

/// Base URL of the LLM Gateway (US).
pub const LLM_GATEWAY_URL: &str = "https://llm-gateway.assemblyai.com";
/// Base URL of the LLM Gateway (EU; serves the Claude and Gemini models only).
pub const LLM_GATEWAY_EU_URL: &str = "https://llm-gateway.eu.assemblyai.com";
/// Base URL of the (shut down) LeMUR API (US).
pub const LEMUR_URL: &str = "https://api.assemblyai.com";
/// Base URL of the (shut down) LeMUR API (EU).
pub const LEMUR_EU_URL: &str = "https://api.eu.assemblyai.com";

/// Default Gateway model: `claude-haiku-4-5-20251001`, the fastest Claude on the Gateway. It is
/// served in both the US and the EU (OpenAI models are US-only), and translation of a spoken
/// turn needs speed far more than deep reasoning.
pub const DEFAULT_MODEL: &str = "claude-haiku-4-5-20251001";
/// Default legacy LeMUR `final_model`: `anthropic/claude-sonnet-4-20250514`, the last model
/// LeMUR listed as available in every region and not sunset (the quickstart's
/// `claude-3-7-sonnet` was sunset on 2025-10-03).
pub const DEFAULT_LEGACY_MODEL: &str = "anthropic/claude-sonnet-4-20250514";
/// Default `max_tokens` / `max_output_size` (the Gateway's own default).
pub const DEFAULT_MAX_TOKENS: u32 = 1000;

/// Longest error body kept in [`Error::Api`] messages when it is not a known JSON envelope.
const MAX_ERROR_TEXT: usize = 512;

/// How much of an error response body is read (bytes): enough for every envelope the services
/// send; the rest is never read, so a hostile error body cannot grow memory.
const MAX_ERROR_BODY: usize = 1024;

/// Default limit of a success body (bytes), see [`LemurBuilder::max_response_bytes`].
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Which API a [`Lemur`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// The LLM Gateway, `POST {base}/v1/chat/completions` (default), or any OpenAI-compatible
    /// server.
    #[default]
    LlmGateway,
    /// LeMUR's task endpoint, `POST {base}/lemur/v3/generate/task`, shut down by AssemblyAI on
    /// 2026-03-31.
    LegacyLemur,
}

/// The API key: never shown by `Debug`, and never put into errors.
type ApiKey = Secret;

/// Builder of [`Lemur`]; see each setter for its default.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LemurBuilder {
    api_key: Option<ApiKey>,
    backend: Backend,
    region: Region,
    base_url: Option<String>,
    model: Option<String>,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    timeout: Option<Duration>,
    max_retries: Option<u32>,
    retry_delay: Option<Duration>,
    max_retry_wait: Option<Duration>,
    bearer_auth: bool,
    http_client: Option<reqwest::Client>,
    proxy: crate::proxy::ProxySetting,
    root_certificates: Vec<Vec<u8>>,
    max_response_bytes: Option<usize>,
}

impl LemurBuilder {
    /// The API key. Default: the `ASSEMBLYAI_API_KEY` environment variable, read by
    /// [`build`](Self::build).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key));
        self
    }

    /// The backend. Default [`Backend::LlmGateway`].
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The region whose AssemblyAI host is used when no [`base_url`](Self::base_url) is set.
    /// Default [`Region::Default`], served by the US Gateway (the LLM Gateway has no
    /// edge-routed host; [`Region::Eu`] selects the EU one).
    pub fn region(mut self, region: Region) -> Self {
        self.region = region;
        self
    }

    /// Base URL of the server, e.g. the emulator's `http_url()` or a local OpenAI-compatible
    /// server. Default: the backend's AssemblyAI host for the region ([`LLM_GATEWAY_URL`],
    /// [`LLM_GATEWAY_EU_URL`], [`LEMUR_URL`], [`LEMUR_EU_URL`]). For the Gateway backend a
    /// trailing `/v1` is accepted (OpenAI convention).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The model. Default [`DEFAULT_MODEL`] for the Gateway, [`DEFAULT_LEGACY_MODEL`] for
    /// LeMUR (whose names carry an `anthropic/` prefix).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Maximum output tokens (`max_tokens`, or LeMUR's `max_output_size`). Default
    /// [`DEFAULT_MAX_TOKENS`].
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// Sampling temperature (Gateway 0–2, LeMUR 0–1). Default: not sent, so the service's
    /// default applies (0 for LeMUR).
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Time limit of one HTTP attempt, from sending the request to the end of the response
    /// body. Default 30 s. A timed-out attempt is not retried: in real-time use a second full
    /// wait is rarely worth it; the caller gets [`Error::Timeout`] and decides.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How many times a request is retried after a `429`, a `5xx` or a transport failure.
    /// Default 2 (three attempts in all). `4xx` other than `429` are never retried.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// First backoff delay; it doubles on every retry. Default 250 ms. A `Retry-After` header
    /// replaces it for that retry.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = Some(delay);
        self
    }

    /// Longest wait before a retry: the doubling backoff stops growing there, and a
    /// `Retry-After` asking for more gives up at once with the `429` error (its `retry_after`
    /// field says how long the service asked for). Default 30 s.
    pub fn max_retry_wait(mut self, wait: Duration) -> Self {
        self.max_retry_wait = Some(wait);
        self
    }

    /// Sends `Authorization: Bearer <key>` instead of the raw key AssemblyAI expects, for
    /// OpenAI-compatible servers. Default `false`.
    pub fn bearer_auth(mut self, yes: bool) -> Self {
        self.bearer_auth = yes;
        self
    }

    /// Uses this HTTP client (shared connection pool, proxies, TLS settings). Default: a new
    /// client. Its own timeouts still apply, in addition to [`timeout`](Self::timeout).
    /// Combined with [`proxy`](Self::proxy), [`no_proxy`](Self::no_proxy) or
    /// [`add_root_certificate`](Self::add_root_certificate), `build()` fails with
    /// [`Error::Config`]: set those on the client you pass.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Sends every request through this HTTP proxy, `http://[user:password@]host[:port]`.
    /// Default: the `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`/`NO_PROXY` environment variables
    /// (reqwest's rules, the same as the streaming client's). A malformed or non-`http://`
    /// URL fails `build()` with [`Error::Config`]; credentials are never logged.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxy = crate::proxy::ProxySetting::Explicit(Secret::new(url));
        self
    }

    /// Never uses a proxy, whatever the environment says.
    pub fn no_proxy(mut self) -> Self {
        self.proxy = crate::proxy::ProxySetting::Disabled;
        self
    }

    /// Trusts this root certificate (PEM; every `CERTIFICATE` block in it) in addition to the
    /// built-in roots, e.g. the emulator's CA. An unreadable PEM fails `build()` with
    /// [`Error::Config`].
    pub fn add_root_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.root_certificates.push(pem.as_ref().to_vec());
        self
    }

    /// Largest success body read, in bytes, streamed or not. Default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`] (4 MiB: a `max_tokens` of 1000 is a few KiB). A larger
    /// body stops reading at the limit with [`Error::ResponseTooLarge`] (not retried). Error
    /// bodies are read to their first KiB only, whatever this says.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = Some(bytes);
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// Fails with [`Error::Config`] when no key is set (and `ASSEMBLYAI_API_KEY` is empty),
    /// the key cannot travel in a header, the base URL is not `http(s)://…`, or a number is
    /// out of range.
    pub fn build(self) -> Result<Lemur> {
        let key = match self.api_key {
            Some(k) => k,
            None => Secret::new(std::env::var(API_KEY_ENV).unwrap_or_default()),
        };
        let key = Secret::new(key.expose().trim());
        if key.expose().is_empty() {
            return Err(Error::config(format!(
                "no API key: call LemurBuilder::api_key or set {API_KEY_ENV}"
            )));
        }
        let header = if self.bearer_auth {
            format!("Bearer {}", key.expose())
        } else {
            key.expose().to_owned()
        };
        // The message must not echo the key.
        let mut auth = HeaderValue::from_str(&header).map_err(|_| {
            Error::config("the API key contains characters not allowed in an HTTP header")
        })?;
        auth.set_sensitive(true);

        let base = match (&self.base_url, self.backend, self.region) {
            (Some(url), _, _) => {
                crate::handshake::check_base_url(url)?;
                url.trim_end_matches('/').to_owned()
            }
            (None, Backend::LlmGateway, Region::Eu) => LLM_GATEWAY_EU_URL.to_owned(),
            (None, Backend::LegacyLemur, Region::Eu) => LEMUR_EU_URL.to_owned(),
            (None, Backend::LlmGateway, _) => LLM_GATEWAY_URL.to_owned(),
            (None, Backend::LegacyLemur, _) => LEMUR_URL.to_owned(),
        };
        crate::handshake::check_base_url(&base)?;
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::config(format!(
                "base URL must start with http:// or https://, got {base:?}"
            )));
        }
        let endpoint = match self.backend {
            Backend::LlmGateway if base.ends_with("/v1") => format!("{base}/chat/completions"),
            Backend::LlmGateway => format!("{base}/v1/chat/completions"),
            Backend::LegacyLemur => format!("{base}/lemur/v3/generate/task"),
        };

        let max_tokens = self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if max_tokens == 0 {
            return Err(Error::config("max_tokens must be at least 1"));
        }
        let max_temperature = match self.backend {
            Backend::LlmGateway => 2.0,
            Backend::LegacyLemur => 1.0,
        };
        if let Some(t) = self.temperature {
            if !(0.0..=max_temperature).contains(&t) {
                return Err(Error::config(format!(
                    "temperature must be within 0–{max_temperature}, got {t}"
                )));
            }
        }
        let model = self.model.unwrap_or_else(|| {
            match self.backend {
                Backend::LlmGateway => DEFAULT_MODEL,
                Backend::LegacyLemur => DEFAULT_LEGACY_MODEL,
            }
            .to_owned()
        });
        if model.trim().is_empty() {
            return Err(Error::config("model must not be empty"));
        }
        let timeout = self.timeout.unwrap_or(Duration::from_secs(30));
        if timeout.is_zero() {
            return Err(Error::config("timeout must be positive"));
        }
        let max_response_bytes = self
            .max_response_bytes
            .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
        if max_response_bytes == 0 {
            return Err(Error::config("max_response_bytes must be positive"));
        }
        let custom_transport = !matches!(self.proxy, crate::proxy::ProxySetting::FromEnv)
            || !self.root_certificates.is_empty();
        let mut secrets = vec![key.expose().to_owned()];
        let http = match self.http_client {
            Some(_) if custom_transport => {
                return Err(Error::config(
                    "proxy(), no_proxy() and add_root_certificate() apply to the HTTP client \
                     Lemur builds; with http_client() set them on that client",
                ));
            }
            Some(c) => c,
            None => http_client(&self.proxy, &self.root_certificates, &mut secrets)?,
        };
        let redactor = crate::redact::Redactor::new(secrets.iter().map(String::as_str));

        Ok(Lemur {
            inner: Arc::new(Inner {
                http,
                key,
                auth,
                backend: self.backend,
                endpoint,
                model,
                max_tokens,
                temperature: self.temperature,
                timeout,
                max_retries: self.max_retries.unwrap_or(2),
                retry_delay: self.retry_delay.unwrap_or(Duration::from_millis(250)),
                max_retry_wait: self.max_retry_wait.unwrap_or(Duration::from_secs(30)),
                max_response_bytes,
                redactor,
            }),
        })
    }
}

/// Client for text tasks and translation; cheap to clone (the clones share one connection pool).
///
/// Build it with [`Lemur::builder`]. It implements [`Translator`], so it plugs straight into
/// [`crate::translate::translate_finals`].
#[derive(Clone)]
pub struct Lemur {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    key: ApiKey,
    auth: HeaderValue,
    backend: Backend,
    endpoint: String,
    model: String,
    max_tokens: u32,
    temperature: Option<f32>,
    timeout: Duration,
    max_retries: u32,
    retry_delay: Duration,
    max_retry_wait: Duration,
    max_response_bytes: usize,
    /// Removes the key (and proxy credentials) from every server text kept or returned.
    redactor: crate::redact::Redactor,
}

impl std::fmt::Debug for Lemur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.inner;
        f.debug_struct("Lemur")
            .field("backend", &i.backend)
            .field("endpoint", &i.endpoint)
            .field("model", &i.model)
            .field("api_key", &i.key)
            .field("max_tokens", &i.max_tokens)
            .field("temperature", &i.temperature)
            .field("timeout", &i.timeout)
            .field("max_retries", &i.max_retries)
            .finish_non_exhaustive()
    }
}

impl Lemur {
    /// A builder with the documented defaults.
    ///
    /// ```
    /// use assemblyai_streaming::lemur::{Backend, Lemur};
    ///
    /// let lemur = Lemur::builder()
    ///     .api_key("my-key")
    ///     .base_url("http://127.0.0.1:8080")
    ///     .model("gemini-2.5-flash-lite")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(lemur.backend(), Backend::LlmGateway);
    /// assert_eq!(lemur.endpoint(), "http://127.0.0.1:8080/v1/chat/completions");
    /// assert!(!format!("{lemur:?}").contains("my-key"));
    /// ```
    pub fn builder() -> LemurBuilder {
        LemurBuilder::default()
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The full URL requests are posted to.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The model requests use unless a [`ChatRequest`] names another.
    pub fn model(&self) -> &str {
        &self.inner.model
    }

    /// Translates `text` into `lang` (a name such as `"Spanish"` or an ISO 639-1 code such as
    /// `"es"`; the prompt names the language in words, see [`translation_prompt`]). Returns the
    /// model's text, trimmed.
    ///
    /// Errors: [`Error::EmptyCompletion`] when the model returned no text, [`Error::Api`] (with
    /// status, message and request id) when the service refused, [`Error::LemurShutDown`] for
    /// a `404` from the legacy route, [`Error::Timeout`], [`Error::Http`].
    pub async fn translate(&self, text: &str, lang: &str) -> Result<String> {
        self.task(&translation_prompt(lang), text).await
    }

    /// Runs `prompt` on `input_text` and returns the model's text, trimmed.
    ///
    /// On the Gateway the prompt is the system message and the input the user message; on
    /// LeMUR they are the `prompt` and `input_text` fields.
    pub async fn task(&self, prompt: &str, input_text: &str) -> Result<String> {
        let text = match self.inner.backend {
            Backend::LlmGateway => {
                let request = ChatRequest::new(vec![
                    ChatMessage::system(prompt),
                    ChatMessage::user(input_text),
                ]);
                self.chat(request).await?.text().map(str::to_owned)
            }
            Backend::LegacyLemur => {
                let request = LemurTaskRequest {
                    prompt,
                    input_text,
                    final_model: &self.inner.model,
                    max_output_size: self.inner.max_tokens,
                    temperature: self.inner.temperature,
                };
                let body = self.post(&request).await?;
                let response: LemurTaskResponse = parse(&body, &self.inner.redactor)?;
                response.response
            }
        };
        let text = text.as_deref().map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Err(Error::EmptyCompletion);
        }
        Ok(text.to_owned())
    }

    /// Sends a chat-completion request to the Gateway as is, filling `model`, `max_tokens` and
    /// `temperature` from the builder when the request leaves them unset. The response is
    /// returned whole; an empty completion is **not** an error here (see
    /// [`ChatResponse::text`]).
    ///
    /// With [`Backend::LegacyLemur`] this fails with [`Error::Config`]: LeMUR had no chat API.
    ///
    /// ```
    /// use assemblyai_streaming::lemur::{ChatMessage, ChatRequest};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let emulator = assemblyai_streaming::emulator::Emulator::builder().start().await?;
    /// # let lemur = assemblyai_streaming::lemur::Lemur::builder()
    /// #     .api_key(emulator.api_key())
    /// #     .base_url(emulator.http_url())
    /// #     .build()?;
    /// let mut request = ChatRequest::new(vec![ChatMessage::user("Name three rivers.")]);
    /// request.max_tokens = Some(50);
    /// let response = lemur.chat(request).await?;
    /// println!("{:?} ({:?})", response.text(), response.usage);
    /// # assert!(response.text().is_some_and(|t| !t.is_empty()));
    /// # assert!(response.usage.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn chat(&self, mut request: ChatRequest) -> Result<ChatResponse> {
        if self.inner.backend == Backend::LegacyLemur {
            return Err(Error::config(
                "chat() needs the LLM Gateway backend; LeMUR only had task()",
            ));
        }
        if request.model.is_none() {
            request.model = Some(self.inner.model.clone());
        }
        if request.max_tokens.is_none() {
            request.max_tokens = Some(self.inner.max_tokens);
        }
        if request.temperature.is_none() {
            request.temperature = self.inner.temperature;
        }
        let body = self.post(&request).await?;
        parse(&body, &self.inner.redactor)
    }

    /// Posts `body` with retries; returns the body of a 2xx response.
    async fn post<B: Serialize + ?Sized>(&self, body: &B) -> Result<Bytes> {
        let inner = &self.inner;
        let mut retry = 0;
        loop {
            let error = match self.attempt(body).await {
                Ok(bytes) => return Ok(bytes),
                Err(e) => e,
            };
            // One classifier and policy for the crate (crate::retry): 429, 5xx and transport
            // failures are retried, with Retry-After honoured up to max_retry_wait.
            let policy = crate::retry::RetryPolicy::new(inner.max_retries, inner.retry_delay, 2)
                .max_retry_wait(inner.max_retry_wait);
            let Some(delay) = policy.next_wait(retry, &error) else {
                return Err(error);
            };
            retry += 1;
            tracing::debug!(
                retry,
                ?delay,
                error = %error,
                "LLM request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP attempt, bounded by the timeout.
    async fn attempt<B: Serialize + ?Sized>(&self, body: &B) -> Result<Bytes> {
        let inner = &self.inner;
        let exchange = async {
            let response = inner
                .http
                .post(&inner.endpoint)
                .header(AUTHORIZATION, inner.auth.clone())
                .json(body)
                .send()
                .await
                .map_err(transport_error)?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let limit = if (200..300).contains(&status) {
                inner.max_response_bytes
            } else {
                MAX_ERROR_BODY
            };
            let bytes = read_capped(response, limit, (200..300).contains(&status)).await?;
            Ok::<_, Error>((status, headers, bytes))
        };
        let (status, headers, bytes) = tokio::time::timeout(inner.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout {
                kind: TimeoutKind::Request,
                after: inner.timeout,
            })??;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        if status == 404 && inner.backend == Backend::LegacyLemur {
            return Err(Error::LemurShutDown);
        }
        Err(api_error(status, &headers, &bytes, &inner.redactor))
    }
}

impl Translator for Lemur {
    fn translate<'a>(&'a self, text: &'a str, lang: &'a str) -> BoxFuture<'a, Result<String>> {
        Box::pin(Lemur::translate(self, text, lang))
    }

    fn translate_stream<'a>(
        &'a self,
        text: &'a str,
        lang: &'a str,
    ) -> BoxStream<'a, Result<String>> {
        Lemur::translate_stream(self, text, lang)
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming completions (Server-Sent Events)
// ---------------------------------------------------------------------------------------------

/// Longest SSE line accepted (bytes). A chunk object is a few hundred bytes; the parser
/// re-scans an unfinished line on every read, so an endless line must end the stream early.
const MAX_SSE_LINE: usize = 256 * 1024;

impl Lemur {
    /// Streams a chat completion: `stream: true` is sent and the Server-Sent Events are parsed
    /// (OpenAI chunk objects, `data: [DONE]` at the end). Yields each non-empty text delta of
    /// the first choice as it arrives, untrimmed; concatenated they are the completion.
    ///
    /// Errors are items of the stream, after which it ends: [`Error::Api`] (or
    /// [`Error::LemurShutDown`]) when the request is refused, an `error` object sent inside
    /// the stream as [`Error::Api`] with its code (500 when it has none), [`Error::Timeout`]
    /// when no byte arrives for [`LemurBuilder::timeout`] (until the response head, then
    /// between reads), [`Error::ConnectionLost`] when the stream ends without `[DONE]`,
    /// [`Error::ResponseTooLarge`] past [`LemurBuilder::max_response_bytes`] in all or a line
    /// over 256 KiB, [`Error::Decode`] for a chunk that is not JSON. Nothing is retried: a
    /// caller that saw half a completion decides what to do. Deltas are redacted of the key
    /// like every server text (an echo split into pieces of under 8 characters can pass).
    ///
    /// With [`Backend::LegacyLemur`] the only item is [`Error::Config`].
    ///
    /// ```
    /// use assemblyai_streaming::lemur::{ChatMessage, ChatRequest};
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let emulator = assemblyai_streaming::emulator::Emulator::builder().start().await?;
    /// # let lemur = assemblyai_streaming::lemur::Lemur::builder()
    /// #     .api_key(emulator.api_key())
    /// #     .base_url(emulator.http_url())
    /// #     .build()?;
    /// # let mut text = String::new();
    /// let mut deltas = lemur.chat_stream(ChatRequest::new(vec![ChatMessage::user("Hi")]));
    /// while let Some(delta) = deltas.next().await {
    ///     let delta = delta?;
    ///     print!("{delta}");
    /// #   text.push_str(&delta);
    /// }
    /// # assert!(text.contains("Hi")); // the emulator echoes the prompt, marked
    /// # Ok(()) }
    /// ```
    pub fn chat_stream(&self, mut request: ChatRequest) -> BoxStream<'static, Result<String>> {
        if self.inner.backend == Backend::LegacyLemur {
            return futures::stream::once(futures::future::ready(Err(Error::config(
                "chat_stream() needs the LLM Gateway backend; LeMUR had no streaming",
            ))))
            .boxed();
        }
        if request.model.is_none() {
            request.model = Some(self.inner.model.clone());
        }
        if request.max_tokens.is_none() {
            request.max_tokens = Some(self.inner.max_tokens);
        }
        if request.temperature.is_none() {
            request.temperature = self.inner.temperature;
        }
        request
            .extra
            .insert("stream".into(), serde_json::Value::Bool(true));
        let inner = Arc::clone(&self.inner);
        futures::stream::once(open_stream(Arc::clone(&inner), request))
            .flat_map(move |opened| match opened {
                Ok(response) => sse_deltas(response, Arc::clone(&inner)).left_stream(),
                Err(e) => futures::stream::once(futures::future::ready(Err(e))).right_stream(),
            })
            .boxed()
    }

    /// [`translate`](Self::translate), streamed: the translation's text deltas as the model
    /// writes them (see [`chat_stream`](Self::chat_stream) for the errors). The same prompt
    /// and messages as `translate`.
    pub fn translate_stream(&self, text: &str, lang: &str) -> BoxStream<'static, Result<String>> {
        self.chat_stream(ChatRequest::new(vec![
            ChatMessage::system(translation_prompt(lang)),
            ChatMessage::user(text),
        ]))
    }
}

/// Sends a streaming request; returns the response once its head says 2xx.
async fn open_stream(inner: Arc<Inner>, request: ChatRequest) -> Result<reqwest::Response> {
    let send = inner
        .http
        .post(&inner.endpoint)
        .header(AUTHORIZATION, inner.auth.clone())
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .json(&request)
        .send();
    let response = tokio::time::timeout(inner.timeout, send)
        .await
        .map_err(|_| Error::Timeout {
            kind: TimeoutKind::Request,
            after: inner.timeout,
        })?
        .map_err(transport_error)?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let headers = response.headers().clone();
    let body = tokio::time::timeout(inner.timeout, read_capped(response, MAX_ERROR_BODY, false))
        .await
        .unwrap_or_else(|_| Ok(Bytes::new()))?;
    Err(api_error(status, &headers, &body, &inner.redactor))
}

/// The body as a stream of byte chunks, each read bounded by the timeout, the whole by the
/// size limit and every line by [`MAX_SSE_LINE`]; ends after its first error.
fn body_chunks(
    response: reqwest::Response,
    inner: Arc<Inner>,
) -> impl futures::Stream<Item = Result<Bytes>> + Send {
    struct State {
        response: reqwest::Response,
        inner: Arc<Inner>,
        total: usize,
        line: usize,
        failed: bool,
    }
    let state = State {
        response,
        inner,
        total: 0,
        line: 0,
        failed: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.failed {
            return None;
        }
        let timeout = st.inner.timeout;
        let item = match tokio::time::timeout(timeout, st.response.chunk()).await {
            Err(_) => Err(Error::Timeout {
                kind: TimeoutKind::Request,
                after: timeout,
            }),
            Ok(Err(e)) => Err(transport_error(e)),
            Ok(Ok(None)) => return None,
            Ok(Ok(Some(chunk))) => {
                st.total += chunk.len();
                st.line = match chunk.iter().rposition(|b| *b == b'\n' || *b == b'\r') {
                    Some(i) => chunk.len() - i - 1,
                    None => st.line + chunk.len(),
                };
                if st.total > st.inner.max_response_bytes {
                    Err(Error::ResponseTooLarge {
                        limit: st.inner.max_response_bytes,
                    })
                } else if st.line > MAX_SSE_LINE {
                    Err(Error::ResponseTooLarge {
                        limit: MAX_SSE_LINE,
                    })
                } else {
                    Ok(chunk)
                }
            }
        };
        st.failed = item.is_err();
        Some((item, st))
    })
}

/// The text deltas of an SSE chat-completion body.
fn sse_deltas(
    response: reqwest::Response,
    inner: Arc<Inner>,
) -> impl futures::Stream<Item = Result<String>> + Send {
    use eventsource_stream::{EventStreamError, Eventsource};
    let events = body_chunks(response, Arc::clone(&inner)).eventsource();
    let state = (Box::pin(events), inner, false);
    futures::stream::unfold(state, |(mut events, inner, finished)| async move {
        if finished {
            return None;
        }
        loop {
            let item = match events.next().await {
                None => Err(Error::connection_lost(
                    "the completion stream ended before `data: [DONE]`",
                )),
                Some(Err(EventStreamError::Transport(e))) => Err(e),
                // The parser's text can quote the stream (server text): redacted like a payload.
                Some(Err(e)) => Err(Error::decode_redacted(
                    format_args!("invalid event stream: {e}"),
                    "",
                    &inner.redactor,
                )),
                Some(Ok(event)) => {
                    let data = event.data.trim();
                    if data == "[DONE]" {
                        return None;
                    }
                    if data.is_empty() {
                        continue;
                    }
                    match chunk_delta(data, &inner.redactor) {
                        Ok(None) => continue,
                        Ok(Some(delta)) => Ok(delta),
                        Err(e) => Err(e),
                    }
                }
            };
            let finished = item.is_err();
            return Some((item, (events, inner, finished)));
        }
    })
}

/// The first choice's text delta of one chunk object; `None` for a chunk without text (the
/// role-only first chunk, `finish_reason`, usage). An `error` object is [`Error::Api`].
fn chunk_delta(data: &str, redactor: &crate::redact::Redactor) -> Result<Option<String>> {
    let chunk: StreamChunk = parse(data.as_bytes(), redactor)?;
    if let Some(error) = chunk.error {
        let status = error
            .get("code")
            .and_then(|c| c.as_u64())
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (400..600).contains(c))
            .unwrap_or(500);
        let body = serde_json::json!({ "error": error }).to_string();
        return Err(api_error(
            status,
            &HeaderMap::new(),
            body.as_bytes(),
            redactor,
        ));
    }
    Ok(chunk
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.delta)
        .and_then(|d| d.content)
        .filter(|t| !t.is_empty()))
}

/// One SSE chunk object (OpenAI's `chat.completion.chunk`); other fields are ignored.
#[derive(Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Vec<StreamChoice>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StreamChoice {
    #[serde(default)]
    delta: Option<StreamDelta>,
}

#[derive(Deserialize)]
struct StreamDelta {
    #[serde(default, deserialize_with = "content_text")]
    content: Option<String>,
}

/// A reqwest failure as [`Error::Http`], with its cause chain (reqwest's own message is often
/// just "error sending request") and without the URL.
fn transport_error(e: reqwest::Error) -> Error {
    let e = e.without_url();
    if e.is_timeout() {
        // Only the user's own client timeout can fire here; ours wraps the whole exchange.
        return Error::from(e);
    }
    if let Some(message) = crate::retry::certificate_failure(&e) {
        // reqwest hides the TLS library's error behind private wrappers: its own error (URL
        // stripped) is the cause kept.
        return Error::Certificate {
            url: String::new(),
            message,
            source: Some(crate::error::Cause::new(e)),
        };
    }
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        // hyper-util's CONNECT tunnel error (not exported, so known by its text): a proxy
        // refusal is not a transient transport failure. It reports 407 and nothing else.
        if text == "tunnel error: proxy authorization required" {
            return Error::ProxyRejected {
                status: 407,
                message: "Proxy Authentication Required".into(),
            };
        }
        if text == "tunnel error: unsuccessful" {
            return Error::ProxyRejected {
                status: 0,
                message: "the proxy refused the CONNECT tunnel (status not reported by the \
                          HTTP stack)"
                    .into(),
            };
        }
        message.push_str(": ");
        message.push_str(&text);
        source = s.source();
    }
    Error::Http {
        message,
        source: Some(crate::error::Cause::new(e)),
    }
}

/// Reads a response body up to `limit` bytes. Past the limit, a success body (`strict`) is
/// [`Error::ResponseTooLarge`]; an error body is cut there. Either way no more is read and the
/// connection is dropped, so memory stays bounded whatever the server sends.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
    strict: bool,
) -> Result<Bytes> {
    if strict && response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(Error::ResponseTooLarge { limit });
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > limit {
            if strict {
                return Err(Error::ResponseTooLarge { limit });
            }
            body.extend_from_slice(&chunk[..limit - body.len()]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Builds the HTTP client with the proxy and root settings; adds the proxy's secrets to
/// `secrets`.
pub(crate) fn http_client(
    proxy: &crate::proxy::ProxySetting,
    roots: &[Vec<u8>],
    secrets: &mut Vec<String>,
) -> Result<reqwest::Client> {
    use crate::proxy::ProxySetting;
    let mut builder = reqwest::Client::builder().user_agent(concat!(
        env!("CARGO_PKG_NAME"),
        "/",
        env!("CARGO_PKG_VERSION")
    ));
    match proxy {
        // reqwest reads the same variables itself.
        ProxySetting::FromEnv => {}
        ProxySetting::Disabled => builder = builder.no_proxy(),
        ProxySetting::Explicit(url) => {
            // Our parser first: the same rules (and errors) as the streaming client's.
            let parsed = crate::proxy::Proxy::parse(url.expose(), "proxy()")?;
            secrets.extend(parsed.secrets);
            let url = if url.expose().contains("://") {
                url.expose().to_owned()
            } else {
                format!("http://{}", url.expose())
            };
            let proxy = reqwest::Proxy::all(url)
                .map_err(|_| Error::config("invalid proxy URL in proxy()"))?;
            builder = builder.proxy(proxy);
        }
    }
    for pem in roots {
        for der in crate::handshake::parse_pem(pem)? {
            #[cfg(any(feature = "rustls", feature = "native-tls"))]
            {
                let cert = reqwest::Certificate::from_der(&der).map_err(|e| {
                    Error::config_caused(
                        format!("add_root_certificate: unusable certificate: {e}"),
                        e,
                    )
                })?;
                builder = builder.add_root_certificate(cert);
            }
            #[cfg(not(any(feature = "rustls", feature = "native-tls")))]
            {
                let _ = der;
                return Err(Error::config(
                    "add_root_certificate needs the `rustls` or `native-tls` feature",
                ));
            }
        }
    }
    builder.build().map_err(|e| {
        // Like every reqwest error kept, without the URL (it could carry credentials).
        let e = e.without_url();
        Error::config_caused(format!("cannot create the HTTP client: {e}"), e)
    })
}

/// Parses a server JSON body with every string in it redacted (see
/// [`Redactor::redact_json`](crate::redact::Redactor::redact_json)); the payload kept by a
/// decode error is redacted before it is cut.
fn parse<T: for<'de> Deserialize<'de>>(
    body: &[u8],
    redactor: &crate::redact::Redactor,
) -> Result<T> {
    let decode_error = |e: serde_json::Error| {
        let text = String::from_utf8_lossy(body);
        Error::decode(
            format_args!("unexpected LLM response: {e}"),
            &redactor.redact(&text),
        )
    };
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(decode_error)?;
    redactor.redact_json(&mut value);
    serde_json::from_value(value).map_err(decode_error)
}

/// Builds [`Error::Api`] from any of the envelopes the services really send:
/// - Gateway business errors `{"message","code","request_id","metadata":{"errors":[…]}}`;
/// - Gateway auth-middleware errors `{"error","status","request_id"}`;
/// - the spec's OpenAI-style `{"error":{"code","message","metadata"}}`;
/// - LeMUR's `{"error":"…"}`;
/// - anything else as (truncated) text, or the status's reason phrase when empty.
fn api_error(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    redactor: &crate::redact::Redactor,
) -> Error {
    // Every piece of server text is redacted before it is cut, so no part of the key survives
    // truncation: JSON strings once parsed, other bodies as a whole.
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::retry::parse_retry_after(v, std::time::SystemTime::now()));
    let header_request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| crate::redact::truncate(&redactor.redact(v), 128));
    let parsed = serde_json::from_slice::<serde_json::Value>(body).map(|mut json| {
        redactor.redact_json(&mut json);
        json
    });

    let mut message: String;
    let mut request_id = None;
    match parsed {
        Ok(json) => {
            request_id = json
                .get("request_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            let details = |v: &serde_json::Value| -> Vec<String> {
                v.get("metadata")
                    .and_then(|m| m.get("errors"))
                    .and_then(|e| e.as_array())
                    .map(|errors| {
                        errors
                            .iter()
                            .map(|e| match e.as_str() {
                                Some(s) => s.to_owned(),
                                None => e.to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (text, extra) = match json.get("error") {
                Some(serde_json::Value::String(s)) => (s.clone(), details(&json)),
                Some(obj @ serde_json::Value::Object(_)) => (
                    obj.get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    details(obj),
                ),
                _ => (
                    json.get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    details(&json),
                ),
            };
            message = text;
            if !extra.is_empty() {
                message = format!("{message} ({})", extra.join("; "));
            }
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            message = redactor.redact_truncated(text.trim(), MAX_ERROR_TEXT);
        }
    }
    if message.trim().is_empty() {
        message = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error")
            .to_owned();
    }
    Error::Api {
        status,
        message: crate::redact::truncate(&message, 4 * MAX_ERROR_TEXT),
        request_id: request_id
            .map(|id| crate::redact::truncate(&id, 128))
            .or(header_request_id),
        retry_after,
    }
}

// ---------------------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------------------

/// LeMUR task request, exactly the quickstart's fields.
#[derive(Serialize)]
struct LemurTaskRequest<'a> {
    prompt: &'a str,
    input_text: &'a str,
    final_model: &'a str,
    max_output_size: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
}

/// LeMUR task response (`request_id` and `usage` are required by the spec but not needed here,
/// so a response lacking them is still used).
#[derive(Deserialize)]
struct LemurTaskResponse {
    #[serde(default)]
    response: Option<String>,
}

/// A message of a [`ChatRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
    /// Other fields (`name`, `tool_call_id`, …), sent as given.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ChatMessage {
    /// A message with this role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
            extra: serde_json::Map::new(),
        }
    }
    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A Gateway chat-completion request (`POST /v1/chat/completions`).
///
/// `model`, `max_tokens` and `temperature` left as `None` are filled in by [`Lemur::chat`]
/// from the builder. Fields this type does not name (`tools`, `tool_choice`,
/// `response_format`, …) go in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatRequest {
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The conversation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<ChatMessage>,
    /// A single prompt, the Gateway's alternative to `messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Maximum output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature, 0–2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Other request fields, sent as given.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ChatRequest {
    /// A request with these messages and everything else left to the client's defaults.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            messages,
            ..Default::default()
        }
    }
}

/// A Gateway chat-completion response (spec 5.2). The Gateway's shape is OpenAI-like but not
/// identical: it has `request_id` and no `id`/`object`/`created`, and `usage` counts
/// `input_tokens`/`output_tokens` (OpenAI-style servers send `prompt_tokens`/
/// `completion_tokens`; both are read).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatResponse {
    /// The Gateway's request id (absent from plain OpenAI-compatible servers).
    #[serde(default)]
    pub request_id: Option<String>,
    /// The completions (usually one).
    #[serde(default)]
    pub choices: Vec<ChatChoice>,
    /// Token counts.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Other fields (`request`, `http_status_code`, `response_time`, `llm_status_code`, `id`,
    /// …).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ChatResponse {
    /// The first choice's text, trimmed; `None` when it is missing or empty.
    pub fn text(&self) -> Option<&str> {
        self.choices
            .first()?
            .message
            .as_ref()?
            .content
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }
}

/// One completion of a [`ChatResponse`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatChoice {
    /// Position in `choices`.
    #[serde(default)]
    pub index: u32,
    /// The generated message.
    #[serde(default)]
    pub message: Option<ResponseMessage>,
    /// Why generation stopped (`stop`, `length`, `tool_calls`, …).
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Other fields (the Gateway may repeat `tool_calls` here).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The message of a [`ChatChoice`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResponseMessage {
    /// Usually `assistant`.
    #[serde(default)]
    pub role: Option<String>,
    /// The text. A list of `{"type":"text","text":…}` parts is joined into one string; `null`
    /// (e.g. a tool call) is `None`.
    #[serde(default, deserialize_with = "content_text")]
    pub content: Option<String>,
    /// Other fields (`thinking`, `tool_calls`, …).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Token counts of a [`ChatResponse`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Prompt tokens (Gateway name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Completion tokens (Gateway name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    /// Prompt tokens (OpenAI name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    /// Completion tokens (OpenAI name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
}

fn content_text<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Array(parts) => {
            let text: String = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect();
            Some(text)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> crate::redact::Redactor {
        crate::redact::Redactor::new(["secret-key-123"])
    }

    #[test]
    fn gateway_business_error_keeps_message_details_and_request_id() {
        let body = br#"{"message":"Validation error","code":400,"request_id":"req-1",
            "metadata":{"errors":["model: Field required"]}}"#;
        let e = api_error(400, &HeaderMap::new(), body, &key());
        match e {
            Error::Api {
                status,
                message,
                request_id,
                retry_after,
            } => {
                assert_eq!(status, 400);
                assert_eq!(message, "Validation error (model: Field required)");
                assert_eq!(request_id.as_deref(), Some("req-1"));
                assert_eq!(retry_after, None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn auth_middleware_error_and_retry_after_are_read() {
        let body = br#"{"error":"Unauthorized","status":401,"request_id":"req-2"}"#;
        let e = api_error(401, &HeaderMap::new(), body, &key());
        assert_eq!(e.kind(), "unauthorized");
        assert!(e.to_string().contains("Unauthorized"));
        assert!(e.to_string().contains("req-2"));

        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let e = api_error(429, &headers, br#"{"error":"Too Many Requests"}"#, &key());
        assert!(
            matches!(e, Error::Api { retry_after: Some(d), .. } if d == Duration::from_secs(7))
        );

        // An HTTP date (RFC 9110 §10.2.3) counts from now.
        let at = std::time::SystemTime::now() + Duration::from_secs(20);
        let mut headers = HeaderMap::new();
        let date = httpdate::fmt_http_date(at);
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let e = api_error(429, &headers, b"", &key());
        assert!(
            matches!(e, Error::Api { retry_after: Some(d), .. } if d > Duration::from_secs(17) && d <= Duration::from_secs(20)),
            "{e:?}"
        );
    }

    #[test]
    fn openai_style_and_non_json_errors_are_read() {
        let body =
            br#"{"error":{"code":500,"message":"upstream failed","metadata":{"errors":["x"]}}}"#;
        let e = api_error(500, &HeaderMap::new(), body, &key());
        assert!(matches!(&e, Error::Api { message, .. } if message == "upstream failed (x)"));

        let e = api_error(503, &HeaderMap::new(), b"", &key());
        assert!(matches!(&e, Error::Api { message, .. } if message == "Service Unavailable"));

        let e = api_error(502, &HeaderMap::new(), b"<html>bad gateway</html>", &key());
        assert!(matches!(&e, Error::Api { message, .. } if message == "<html>bad gateway</html>"));
    }

    #[test]
    fn an_echoed_key_is_redacted_from_error_messages() {
        let body = br#"{"error":"bad key secret-key-123"}"#;
        let e = api_error(401, &HeaderMap::new(), body, &key());
        assert!(!format!("{e} {e:?}").contains("secret-key-123"));
    }

    #[test]
    fn gateway_response_shape_is_parsed() {
        let body = br#"{"request_id":"r","choices":[{"index":0,"message":{"role":"assistant",
            "content":"  Hola.  "},"finish_reason":"stop"}],"request":{"model":"m"},
            "usage":{"input_tokens":5,"output_tokens":2,"total_tokens":7},
            "http_status_code":200,"response_time":123,"llm_status_code":200}"#;
        let r: ChatResponse = parse(body, &key()).unwrap();
        assert_eq!(r.request_id.as_deref(), Some("r"));
        assert_eq!(r.text(), Some("Hola."));
        assert_eq!(r.usage.as_ref().and_then(|u| u.output_tokens), Some(2));
        assert_eq!(r.extra["llm_status_code"], 200);
    }

    #[test]
    fn content_parts_and_null_content_are_handled() {
        let r: ChatResponse = parse(
            br#"{"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]}"#,
            &key(),
        )
        .unwrap();
        assert_eq!(r.text(), Some("ab"));
        let r: ChatResponse =
            parse(br#"{"choices":[{"message":{"content":null}}]}"#, &key()).unwrap();
        assert_eq!(r.text(), None);
        let r: ChatResponse = parse(br#"{"choices":[]}"#, &key()).unwrap();
        assert_eq!(r.text(), None);
        assert!(parse::<ChatResponse>(b"not json", &key()).is_err());
    }

    #[test]
    fn builder_picks_endpoints_by_backend_region_and_base() {
        let b = || Lemur::builder().api_key("k");
        assert_eq!(
            b().build().unwrap().endpoint(),
            "https://llm-gateway.assemblyai.com/v1/chat/completions"
        );
        assert_eq!(
            b().region(Region::Eu).build().unwrap().endpoint(),
            "https://llm-gateway.eu.assemblyai.com/v1/chat/completions"
        );
        let legacy = b().backend(Backend::LegacyLemur).build().unwrap();
        assert_eq!(
            legacy.endpoint(),
            "https://api.assemblyai.com/lemur/v3/generate/task"
        );
        assert_eq!(legacy.model(), DEFAULT_LEGACY_MODEL);
        assert_eq!(
            b().base_url("http://localhost:8000/v1/")
                .build()
                .unwrap()
                .endpoint(),
            "http://localhost:8000/v1/chat/completions"
        );
    }

    #[test]
    fn builder_rejects_bad_settings_without_echoing_the_key() {
        let e = Lemur::builder().api_key("  ").build().unwrap_err();
        assert_eq!(e.kind(), "config");
        let e = Lemur::builder().api_key("bad\nkey").build().unwrap_err();
        assert!(!e.to_string().contains("bad\nkey"));
        assert!(
            Lemur::builder()
                .api_key("k")
                .base_url("ftp://x")
                .build()
                .is_err()
        );
        assert!(Lemur::builder().api_key("k").max_tokens(0).build().is_err());
        assert!(
            Lemur::builder()
                .api_key("k")
                .temperature(2.5)
                .build()
                .is_err()
        );
        assert!(
            Lemur::builder()
                .api_key("k")
                .backend(Backend::LegacyLemur)
                .temperature(1.5)
                .build()
                .is_err()
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let builder = Lemur::builder().api_key("secret-key-123");
        assert!(!format!("{builder:?}").contains("secret-key-123"));
        let lemur = builder.build().unwrap();
        let shown = format!("{lemur:?} {lemur:#?}");
        assert!(!shown.contains("secret-key-123"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
