//! A local emulator of the AssemblyAI streaming service (feature `emulator`).
//!
//! It speaks the Universal Streaming v3 protocol on `ws://127.0.0.1:PORT/v3/ws`, mints temporary
//! tokens on `GET /v3/token`, and serves the LLM Gateway and LeMUR routes on the same port — close
//! enough to the real service that the official Python (1.8.2) and Node (4.41.5) SDKs work
//! against it unchanged. With [`EmulatorBuilder::tls`] the same port also serves `wss://` and
//! `https://` (the Node SDK accepts nothing else). Nothing is
//! recognised: a voice activity detector finds speech and pauses in the audio you stream, and the
//! words come from a [`Script`] of what is "said" (or are placeholders such as `[word1]`).
//!
//! # In your own tests
//!
//! ```
//! use assemblyai_streaming::audio::paced;
//! use assemblyai_streaming::emulator::{Emulator, Script};
//! use assemblyai_streaming::{AudioChunk, ConnectionParams, Encoding, StreamingClient, TurnEvent};
//! use futures::StreamExt;
//!
//! # #[tokio::main]
//! # async fn main() { my_service_transcribes().await }
//! #[cfg_attr(test, tokio::test)] // i.e. `#[tokio::test]` in your tests
//! async fn my_service_transcribes() {
//!     let emulator = Emulator::builder()
//!         .script(Script::from_texts(["Hello, world."]))
//!         .start()
//!         .await
//!         .unwrap();
//!     let client = StreamingClient::builder()
//!         .api_key(emulator.api_key())
//!         .base_url(emulator.ws_url())
//!         .build()
//!         .unwrap();
//!     let session = client.connect(ConnectionParams::new().format_turns(true)).await.unwrap();
//!     // Stream "speech" at real-time pace: turns end where the audio pauses, and their words
//!     // come from the script. Any other client works too: connect to
//!     // `{ws_url}/v3/ws?speech_model=...` with `Authorization: {api_key}`.
//!     let tone: Vec<i16> = (0..9_600).map(|i| ((i as f32 * 0.2).sin() * 8e3) as i16).collect();
//!     let silence = vec![0; 9_600];
//!     let audio = [&tone, &silence].map(|s| AudioChunk::from_pcm16(s)); // 600 ms each
//!     let mut events = session.stream_audio(paced(audio, 16_000, Encoding::PcmS16le));
//!     let mut finals = Vec::new();
//!     while let Some(event) = events.next().await {
//!         if let TurnEvent::Final(turn) = event.unwrap() {
//!             finals.push(turn.transcript);
//!         }
//!     }
//!     assert_eq!(finals, ["Hello, world."]);
//! }
//! ```
//!
//! Standalone: `cargo run --example emulator -- --port 8080 [--api-key KEY] [--script FILE.json]`
//! prints `ws://127.0.0.1:8080` and serves until Ctrl+C (`--help` lists the flags, faults
//! included; `--tls` adds `wss://`/`https://` and prints the CA file on a `tls:` line after the
//! others). The official Python SDK connects to it with
//! `StreamingClientOptions(api_key=KEY, api_host="ws://127.0.0.1:8080")`; the Node SDK with
//! `websocketBaseUrl: "wss://127.0.0.1:8080/v3/ws"` and `NODE_EXTRA_CA_CERTS` set to that file.
//!
//! A script file looks like
//! `{"turns":[{"text":"Hello, world.","translations":{"es":"Hola, mundo."}}]}`; see [`ScriptTurn`]
//! for the optional language, speaker and word timings.
//!
//! # What it enforces (like the service)
//!
//! | rule | close code | reason text |
//! |---|---|---|
//! | missing or wrong key / token (or [`EmulatorBuilder::reject_bad_auth_with_http_401`] for HTTP 401) | 1008 | `Unauthorized Connection: Missing Authorization header` / `… Invalid API key` / `… Invalid token` / `… Token already used` / `… Token expired` |
//! | `speech_model` missing, or an invalid parameter value | 3006 | `Invalid Parameter: …` (the service's text is undocumented) |
//! | a text frame that is not JSON / an unknown `type` / a bad message | 3006 | `Invalid JSON: …` / `Invalid Message Type: …` / `Invalid Message: …` |
//! | an audio frame shorter than 50 ms or longer than 1000 ms | 3007 | `Input duration violation: <n> ms. Expected between 50 and 1000 ms` |
//! | audio ahead of the wall clock (since the upgrade) by more than the tolerance (default 1 s, [`EmulatorBuilder::realtime_tolerance`]) | 3007 | `Audio Transmission Rate Exceeded: Received <x> sec. audio in <y> sec` |
//! | session older than 3 h, or the token's `max_session_duration_seconds` ([`EmulatorBuilder::max_session_duration`]) | 3008 | `Session Expired: Maximum session duration exceeded` |
//! | more sessions than [`EmulatorBuilder::max_concurrent_sessions`] | 3009 | `Unauthorized Connection: Too many concurrent sessions` |
//! | `inactivity_timeout` seconds without audio or any message | 3005 ([`INACTIVITY_CLOSE_CODE`]; undocumented for v3) | `Session Cancelled: No audio or message received for <n> seconds (inactivity_timeout)` |
//!
//! Every such close is preceded by an `Error` frame `{"type":"Error","error_code":<code>,"error":<reason>}`.
//! `Terminate` ends the turn in progress, then sends `Termination` (whole seconds of audio and of
//! session) and closes with 1000.
//!
//! # Turns
//!
//! Energy VAD over 20 ms windows (threshold from `vad_threshold`). The script is one stream of
//! sentences; each turn takes the words heard during its speech, in order, so no scripted word
//! is lost or repeated. A turn ends after `min_turn_silence` of silence once its last word ends a
//! sentence (Universal-3: with terminal punctuation) and every word is final, or after
//! `max_turn_silence` in any case; at least 80 ms of speech is needed (spec §3). At a pause, a
//! sentence whose speech covered at least half its estimated time counts as fully heard.
//! `ForceEndpoint` (and `Terminate`) end the turn with what was heard so far; the rest of the
//! sentence opens the next turn. A pause shorter than the silence needed merges sentences into
//! one turn. A speech blip too short to be a turn uses up nothing (placeholder words `[word1]`…
//! once the script is used up).
//!
//! Universal-Streaming models send one `Turn` per audio frame while a turn is open, words moving
//! from `word_is_final:false` to `true`; the `utterance` comes once, on the partial at the first
//! pause of a complete turn, or on the end-of-turn `Turn` when no partial carried it (then that
//! `Turn` has `""`, as in the fixtures). Universal-3 models send `SpeechStarted`, sparse partials
//! ending in "—", and a formatted final. [`Formatting`] picks how `format_turns` behaves.
//! `language_detection`, `speaker_labels`, `session_heartbeat`, `acknowledge_silence` and
//! `llm_gateway` add their fields and messages. With `speaker_labels`, turns under 1 s are
//! labelled `UNKNOWN` live, and the `SpeakerRevision` sent before `Termination` gives the
//! script's speakers for those turns and for turns that span several speakers' sentences.
//!
//! `Warning` frames: key terms longer than 50 characters are ignored with a warning
//! ([`WARNING_KEYTERMS_IGNORED`]), and a minute before the session cap a "session ending soon"
//! warning comes ([`WARNING_SESSION_ENDING`]); both codes are undocumented for the service.

//! # TLS
//!
//! [`TlsCertificate::SelfSigned`] makes a private CA and a server certificate for `localhost`,
//! `127.0.0.1` and `::1` at start-up (rcgen); [`TlsCertificate::Pem`] uses yours. Clients trust
//! [`EmulatorHandle::ca_certificate_pem`] and connect to [`EmulatorHandle::wss_url`] /
//! [`EmulatorHandle::https_url`]; plain `ws://`/`http://` keep working on the same port (the
//! first byte of a connection tells TLS from HTTP). Node: `NODE_EXTRA_CA_CERTS=ca.pem`; Python:
//! `SSL_CERT_FILE=ca.pem`.
//!
//! # LLM Gateway
//!
//! `POST /v1/chat/completions` validates the request and answers with `usage` in the service's
//! shape (`prompt_tokens`/`completion_tokens`, `input_tokens`/`output_tokens`, `total_tokens`
//! and the `*_tokens_details` objects); with `"stream": true` it answers with Server-Sent Events
//! of OpenAI `chat.completion.chunk` objects (role, one word per `delta`, `finish_reason`, a
//! usage chunk) ending with `data: [DONE]`. `GET /v1/models` lists the accepted models with the
//! fields of spec §5.2 (prices and limits are placeholders). `POST /v1/understanding` answers
//! 404 in the business-error envelope, since the emulator keeps no transcripts. The completion
//! text is a scripted translation or the input visibly marked (see [`LlmOptions`]).
//!
//! # Hardening
//!
//! A connection must send its request head (and finish a TLS handshake) within
//! [`EmulatorBuilder::header_read_timeout`] (10 s); every websocket write must finish within
//! [`EmulatorBuilder::write_timeout`] (10 s), so a client that stops reading loses its session
//! instead of holding a slot past the session cap or `inactivity_timeout`.
//! `UpdateConfiguration` values have the query parser's bounds (`min_turn_silence` and
//! `max_turn_silence` 0–60000 ms, thresholds 0–1, at most 100 key terms), else close 3006.
//!
//! # What it does not emulate
//!
//! - **Compressed audio** (`encoding=opus`, `ogg_opus`, `aac`): refused with 3006. Accepting them
//!   faithfully means decoding them (for the voice activity detection that drives turns, and for
//!   the 50–1000 ms chunk rule, which is measured in audio time); that needs an Opus/Ogg/AAC
//!   decoder, a large native or unsafe dependency for a test tool, so it is left out.
//! - **Recognition**: words come from the [`Script`] or are placeholders; `keyterms_prompt`,
//!   `prompt`, `filter_profanity`, PII redaction, `domain` and `language_codes` are accepted and
//!   have no effect on the words.
//! - **Webhooks** (`webhook_url`): accepted, never called.
//! - **Periodic speaker reclustering**: `SpeakerRevision` comes once, before `Termination`
//!   (as with `speaker_labels_revision_interval_ms=0`).
//! - **Dual-channel audio**, the v2 realtime API, and the rate-limit auto-scaling of
//!   new-sessions-per-minute (`max_concurrent_sessions` is a plain concurrency cap).
//! - **Undocumented codes**: the inactivity close code and the `Warning` codes are the
//!   emulator's choices, marked where they are defined.
//!
//! # Faults
//!
//! See [`Faults`] for the table of injectable faults and what a client sees for each.

mod engine;
mod faults;
mod gateway;
mod ids;
mod llm;
mod query;
mod script;
mod server;
mod session;
mod state;
mod tls;
mod vad;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::Faults;
pub use llm::{LegacyLemur, LlmOptions};
pub use query::parse_query;
pub use script::{Script, ScriptTurn, ScriptWord};
pub use session::{
    INACTIVITY_CLOSE_CODE, WARNING_KEYTERMS_IGNORED, WARNING_SESSION_ENDING, parse_client_message,
};
pub use tls::TlsCertificate;

/// Default write limit and request-head limit.
const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The API key the emulator accepts unless told otherwise.
pub const DEV_API_KEY: &str = "emulator-dev-key";

/// How `format_turns=true` behaves (spec section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Formatting {
    /// The current service (since ~2026-03-20): every Turn, partials included, is formatted.
    #[default]
    InModel,
    /// The older service: partials and the end-of-turn Turn are unformatted, and a second,
    /// formatted end-of-turn Turn with the same `turn_order` follows.
    Legacy,
}

/// Entry point: `Emulator::builder()…start().await`.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// A builder with the defaults listed on [`EmulatorBuilder`].
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }
}

/// Configures an emulator.
///
/// Defaults: key [`DEV_API_KEY`], no script (placeholder words), [`Formatting::InModel`], no
/// faults, no session limit, bad credentials get an `Error` frame and close 1008, no send-time
/// stamps, default [`LlmOptions`], bound to `127.0.0.1:0`, 3-hour session cap, 1 s real-time
/// tolerance, 10 s write limit, 10 s request-head limit.
#[derive(Clone, Default)]
pub struct EmulatorBuilder {
    api_key: Option<String>,
    script: Script,
    formatting: Formatting,
    faults: Faults,
    max_concurrent_sessions: Option<usize>,
    reject_with_401: bool,
    stamp_send_time: bool,
    llm: LlmOptions,
    bind: Option<SocketAddr>,
    max_session_duration: Option<Duration>,
    realtime_tolerance: Option<Duration>,
    write_timeout: Option<Duration>,
    header_read_timeout: Option<Duration>,
    tls: Option<TlsCertificate>,
    script_across_sessions: bool,
}

impl std::fmt::Debug for EmulatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("script_turns", &self.script.turns.len())
            .field("formatting", &self.formatting)
            .field("faults", &self.faults)
            .field("max_concurrent_sessions", &self.max_concurrent_sessions)
            .field("reject_with_401", &self.reject_with_401)
            .field("stamp_send_time", &self.stamp_send_time)
            .field("llm", &self.llm)
            .field("bind", &self.bind)
            .field("max_session_duration", &self.max_session_duration)
            .field("realtime_tolerance", &self.realtime_tolerance)
            .field("write_timeout", &self.write_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("tls", &self.tls)
            .field("script_across_sessions", &self.script_across_sessions)
            .finish()
    }
}

impl EmulatorBuilder {
    /// The accepted API key (default [`DEV_API_KEY`]).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// What is said in the audio, turn by turn (default: none, placeholder words).
    pub fn script(mut self, script: Script) -> Self {
        self.script = script;
        self
    }

    /// How `format_turns` behaves (default [`Formatting::InModel`]).
    pub fn formatting(mut self, formatting: Formatting) -> Self {
        self.formatting = formatting;
        self
    }

    /// Faults to inject into every session (default: none).
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Sessions allowed at once; one more is closed with 3009 (default: no limit).
    pub fn max_concurrent_sessions(mut self, n: usize) -> Self {
        self.max_concurrent_sessions = Some(n);
        self
    }

    /// Refuse bad credentials with HTTP 401 at the upgrade instead of an `Error` frame and close
    /// 1008 (default `false`).
    pub fn reject_bad_auth_with_http_401(mut self, yes: bool) -> Self {
        self.reject_with_401 = yes;
        self
    }

    /// Add the wall-clock send time (ns since the Unix epoch) to every message, in the field
    /// [`crate::protocol::SENT_AT_FIELD`] (default `false`; the real service never sends it).
    pub fn stamp_send_time(mut self, yes: bool) -> Self {
        self.stamp_send_time = yes;
        self
    }

    /// Behaviour of the LLM Gateway and LeMUR routes.
    pub fn llm(mut self, options: LlmOptions) -> Self {
        self.llm = options;
        self
    }

    /// Address to listen on (default `127.0.0.1:0`, a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Longest session (default 3 h, as the service); sessions are closed with 3008 when they
    /// reach it. Lower it to test the cap without waiting hours.
    pub fn max_session_duration(mut self, d: Duration) -> Self {
        self.max_session_duration = Some(d);
        self
    }

    /// How far audio may run ahead of the wall clock before the session is closed with 3007
    /// (default 1 s).
    pub fn realtime_tolerance(mut self, d: Duration) -> Self {
        self.realtime_tolerance = Some(d);
        self
    }

    /// Treat the script as one conversation across sessions (default `false`: every session
    /// starts at the first script turn). Each session then starts at the first script turn no
    /// session has finalised yet, so a turn cut off by a dropped connection is said again,
    /// whole, on the next one — what a client that reconnects and replays audio expects.
    pub fn script_across_sessions(mut self, yes: bool) -> Self {
        self.script_across_sessions = yes;
        self
    }

    /// Longest time one write to a client may take (default 10 s). A client that stops reading
    /// its socket fills the TCP window; its session then ends when a write hits this limit, so
    /// it cannot hold a `max_concurrent_sessions` slot past the session cap or
    /// `inactivity_timeout`.
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.write_timeout = Some(d);
        self
    }

    /// Longest time a connection may take to send a complete HTTP request head (default 10 s);
    /// a connection that does not is closed, so idle TCP connections cannot exhaust file
    /// descriptors.
    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.header_read_timeout = Some(d);
        self
    }

    /// Serve `wss://` and `https://` too, on the same port (default: plain only). With
    /// [`TlsCertificate::SelfSigned`] a private CA and a certificate for `localhost`,
    /// `127.0.0.1` and `::1` are made at start-up; clients trust
    /// [`EmulatorHandle::ca_certificate_pem`]. Plain `ws://`/`http://` keep working.
    pub fn tls(mut self, certificate: TlsCertificate) -> Self {
        self.tls = Some(certificate);
        self
    }

    /// Binds and starts serving on the current tokio runtime. Fails with `InvalidInput` when a
    /// given TLS certificate or key cannot be used.
    pub async fn start(self) -> std::io::Result<EmulatorHandle> {
        let tls = match &self.tls {
            Some(cert) => Some(
                tls::Tls::new(cert)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let addr = self
            .bind
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let api_key = self.api_key.unwrap_or_else(|| DEV_API_KEY.to_string());
        let script: Arc<[Arc<script::PreparedTurn>]> = self
            .script
            .turns
            .iter()
            .map(|t| Arc::new(script::PreparedTurn::new(t)))
            .collect();
        let llm = llm::LlmState::new(self.llm, api_key.clone(), &self.script);
        let (stop_tx, stop_rx) = watch::channel(false);
        let config = state::Config {
            api_key: api_key.clone(),
            formatting: self.formatting,
            faults: self.faults,
            max_sessions: self.max_concurrent_sessions,
            reject_with_401: self.reject_with_401,
            stamp_send_time: self.stamp_send_time,
            max_session_duration: self
                .max_session_duration
                .unwrap_or(Duration::from_secs(10_800)),
            realtime_tolerance: self.realtime_tolerance.unwrap_or(Duration::from_secs(1)),
            write_timeout: self.write_timeout.unwrap_or(DEFAULT_IO_TIMEOUT),
            header_read_timeout: self.header_read_timeout.unwrap_or(DEFAULT_IO_TIMEOUT),
            script_across_sessions: self.script_across_sessions,
        };
        let shared = Arc::new(state::Shared::new(config, script, llm, stop_rx));
        let ca_pem = tls.as_ref().and_then(|t| t.ca_pem.clone());
        let tls_on = tls.is_some();
        let task = tokio::spawn(server::serve(
            listener,
            Arc::clone(&shared),
            tls.map(|t| t.acceptor),
        ));
        Ok(EmulatorHandle {
            local_addr,
            api_key,
            tls: tls_on,
            ca_pem,
            shared,
            stop: stop_tx,
            task: Some(task),
        })
    }
}

/// A running emulator. Dropping it stops the server and ends every session.
pub struct EmulatorHandle {
    local_addr: SocketAddr,
    api_key: String,
    tls: bool,
    ca_pem: Option<String>,
    shared: Arc<state::Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmulatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorHandle")
            .field("local_addr", &self.local_addr)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

impl EmulatorHandle {
    /// Base websocket URL, e.g. `ws://127.0.0.1:8080` (clients append `/v3/ws`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.local_addr)
    }

    /// Base HTTP URL, e.g. `http://127.0.0.1:8080` (`/v3/token`, `/v1/chat/completions`,
    /// `/lemur/v3/generate/task`).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Base secure websocket URL, e.g. `wss://127.0.0.1:8080`, when TLS is on
    /// ([`EmulatorBuilder::tls`]); the generated certificate holds that IP address.
    pub fn wss_url(&self) -> Option<String> {
        self.tls.then(|| format!("wss://{}", self.local_addr))
    }

    /// Base HTTPS URL, e.g. `https://127.0.0.1:8080`, when TLS is on.
    pub fn https_url(&self) -> Option<String> {
        self.tls.then(|| format!("https://{}", self.local_addr))
    }

    /// PEM of the CA that clients must trust for `wss://`/`https://`: the generated CA with
    /// [`TlsCertificate::SelfSigned`], the given `ca_pem` otherwise; `None` without TLS.
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The address the emulator listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The API key it accepts.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Streaming sessions open right now (upgraded and not yet ended): lets a test check that
    /// a client or service it drives leaves nothing running.
    pub fn active_sessions(&self) -> usize {
        self.shared
            .active
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Stops accepting connections, ends every session and waits for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
