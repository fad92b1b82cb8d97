//! Real-time translation of final turns, without ever stalling the transcript.
//!
//! AssemblyAI's quickstart translates each final transcript inside the websocket callback and
//! blocks there until the LLM answers, so every turn waits for the translations of all turns
//! before it. [`translate_finals`] instead wraps the session's event stream:
//!
//! - every event (partials, finals, `Termination`, …) is passed through **at once**;
//! - each final turn starts a translation in the background, up to
//!   [`TranslateOptions::max_concurrent`] at a time (default 4);
//! - translations are yielded in `turn_order` order, each after its own final;
//! - a failed translation yields one `Err(Error::Translation { turn_order, .. })` item and the
//!   stream goes on;
//! - dropping the stream cancels the translations still in flight.
//!
//! ```
//! use assemblyai_streaming::lemur::Lemur;
//! use assemblyai_streaming::translate::{translate_finals, TranslateOptions, TranslatedEvent};
//! use assemblyai_streaming::TurnEvent;
//! use futures::StreamExt;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let script: assemblyai_streaming::emulator::Script = serde_json::from_str(
//! #     r#"{"turns":[{"text":"Hello, world.","translations":{"es":"Hola, mundo."}}]}"#,
//! # )?;
//! # use assemblyai_streaming::{audio::paced, emulator::Emulator, AudioChunk, Encoding};
//! # let emulator = Emulator::builder().script(script).start().await?;
//! # let client = assemblyai_streaming::StreamingClient::builder()
//! #     .api_key(emulator.api_key())
//! #     .base_url(emulator.ws_url())
//! #     .build()?;
//! # let tone: Vec<i16> = (0..9_600).map(|i| ((i as f32 * 0.2).sin() * 8e3) as i16).collect();
//! # let audio = [tone, vec![0; 9_600]].map(|s| AudioChunk::from_pcm16(&s)); // 600 ms each
//! # let session = client
//! #     .connect(assemblyai_streaming::ConnectionParams::new().format_turns(true))
//! #     .await?
//! #     .stream_audio(paced(audio, 16_000, Encoding::PcmS16le));
//! // `session`: a session's events, e.g. `StreamingSession::stream_audio(..)`.
//! let lemur = Lemur::builder() // key from ASSEMBLYAI_API_KEY
//! #   .api_key(emulator.api_key())
//! #   .base_url(emulator.http_url())
//!     .build()?;
//! let mut events = translate_finals(session, lemur, "es", TranslateOptions::default());
//! # let mut lines = Vec::new();
//! while let Some(item) = events.next().await {
//!     match item {
//!         Ok(TranslatedEvent::Event(TurnEvent::Final(turn))) => {
//!             println!("EN: {}", turn.transcript);
//! #           lines.push(format!("EN: {}", turn.transcript));
//!         }
//!         Ok(TranslatedEvent::Translation(t)) => {
//!             println!("ES: {}", t.text);
//! #           lines.push(format!("ES: {}", t.text));
//!         }
//!         Ok(_) => {}
//!         Err(e) => eprintln!("{e}"), // a failed translation: the stream goes on
//!     }
//! }
//! # // Each translation follows its final.
//! # assert_eq!(lines, ["EN: Hello, world.", "ES: Hola, mundo."]);
//! # Ok(()) }
//! ```
//!
//! For translation with no extra round trip from the client, let the streaming service run the
//! prompt itself: see [`server_side_translation`].

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, FuturesUnordered, Stream, StreamExt};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::protocol::LlmGatewayResponse;
use crate::session::TurnEvent;

// ---------------------------------------------------------------------------------------------
// Languages
// ---------------------------------------------------------------------------------------------

/// ISO 639-1 codes of common languages and their English names, used to name the target
/// language in words in prompts (models follow "into Spanish" more reliably than "into es").
pub const LANGUAGES: &[(&str, &str)] = &[
    ("af", "Afrikaans"),
    ("ar", "Arabic"),
    ("bg", "Bulgarian"),
    ("bn", "Bengali"),
    ("ca", "Catalan"),
    ("cs", "Czech"),
    ("da", "Danish"),
    ("de", "German"),
    ("el", "Greek"),
    ("en", "English"),
    ("es", "Spanish"),
    ("et", "Estonian"),
    ("fa", "Persian"),
    ("fi", "Finnish"),
    ("fr", "French"),
    ("gl", "Galician"),
    ("he", "Hebrew"),
    ("hi", "Hindi"),
    ("hr", "Croatian"),
    ("hu", "Hungarian"),
    ("id", "Indonesian"),
    ("it", "Italian"),
    ("ja", "Japanese"),
    ("ko", "Korean"),
    ("lt", "Lithuanian"),
    ("lv", "Latvian"),
    ("ms", "Malay"),
    ("nl", "Dutch"),
    ("no", "Norwegian"),
    ("pl", "Polish"),
    ("pt", "Portuguese"),
    ("ro", "Romanian"),
    ("ru", "Russian"),
    ("sk", "Slovak"),
    ("sl", "Slovenian"),
    ("sr", "Serbian"),
    ("sv", "Swedish"),
    ("sw", "Swahili"),
    ("ta", "Tamil"),
    ("te", "Telugu"),
    ("th", "Thai"),
    ("tl", "Tagalog"),
    ("tr", "Turkish"),
    ("uk", "Ukrainian"),
    ("ur", "Urdu"),
    ("vi", "Vietnamese"),
    ("zh", "Chinese"),
];

/// The language to name in a prompt: an ISO 639-1 code becomes its English name, a known name is
/// returned in its canonical spelling, and anything else is used as given (trimmed).
///
/// A region subtag is kept: `pt-BR` becomes `Portuguese (BR)`.
///
/// ```
/// use assemblyai_streaming::translate::language_name;
///
/// assert_eq!(language_name("es"), "Spanish");
/// assert_eq!(language_name("spanish"), "Spanish");
/// assert_eq!(language_name("pt-BR"), "Portuguese (BR)");
/// assert_eq!(language_name("Klingon"), "Klingon");
/// ```
pub fn language_name(lang: &str) -> Cow<'_, str> {
    let lang = lang.trim();
    if let Some(code) = language_code(lang) {
        if let Some((_, name)) = LANGUAGES.iter().find(|(c, _)| *c == code) {
            return Cow::Borrowed(name);
        }
    }
    if let Some((primary, region)) = lang.split_once(['-', '_']) {
        if let Some((_, name)) = LANGUAGES
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(primary))
        {
            return Cow::Owned(format!("{name} ({})", region.to_ascii_uppercase()));
        }
    }
    Cow::Borrowed(lang)
}

/// The ISO 639-1 code of a language given by code or English name (case-insensitive), if it is
/// in [`LANGUAGES`].
///
/// ```
/// use assemblyai_streaming::translate::language_code;
///
/// assert_eq!(language_code("French"), Some("fr"));
/// assert_eq!(language_code("FR"), Some("fr"));
/// assert_eq!(language_code("Klingon"), None);
/// ```
pub fn language_code(lang: &str) -> Option<&'static str> {
    let lang = lang.trim();
    LANGUAGES
        .iter()
        .find(|(code, name)| code.eq_ignore_ascii_case(lang) || name.eq_ignore_ascii_case(lang))
        .map(|(code, _)| *code)
}

/// The translation instruction sent to the model, naming the language in words. It is the
/// prompt of AssemblyAI's quickstart, so results match what users of that recipe saw.
///
/// ```
/// use assemblyai_streaming::translate::translation_prompt;
///
/// assert_eq!(
///     translation_prompt("es"),
///     "Translate the following text into Spanish. Do not write a preamble. \
///      Just return the translated text."
/// );
/// ```
pub fn translation_prompt(lang: &str) -> String {
    format!(
        "Translate the following text into {}. Do not write a preamble. \
         Just return the translated text.",
        language_name(lang)
    )
}

// ---------------------------------------------------------------------------------------------
// Server-side translation (the `llm_gateway` connection parameter)
// ---------------------------------------------------------------------------------------------

/// Builds the `llm_gateway` connection parameter that makes the streaming service translate
/// every final turn itself, with no extra round trip from the client. Each result arrives as a
/// [`TurnEvent::LlmGatewayResponse`]; read it with [`server_side_text`].
///
/// The prompt carries the `{{turn}}` placeholder, which the service replaces with the turn's
/// transcript.
///
/// ```
/// use assemblyai_streaming::translate::server_side_translation;
/// use assemblyai_streaming::ConnectionParams;
///
/// let config = server_side_translation("es", "claude-haiku-4-5-20251001");
/// assert_eq!(config["model"], "claude-haiku-4-5-20251001");
/// assert!(config["messages"][0]["content"].as_str().unwrap().contains("into Spanish"));
/// assert!(config["messages"][0]["content"].as_str().unwrap().ends_with("{{turn}}"));
/// let params = ConnectionParams::new().llm_gateway(&config);
/// ```
pub fn server_side_translation(lang: &str, model: &str) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [{
            "role": "user",
            "content": format!("{}\n\n{{{{turn}}}}", translation_prompt(lang)),
        }],
        "max_tokens": 1000,
    })
}

/// The completion text of a server-side `LLMGatewayResponse`, trimmed; `None` when the server
/// sent no text (an empty completion or an error payload).
///
/// ```
/// use assemblyai_streaming::protocol::LlmGatewayResponse;
/// use assemblyai_streaming::translate::server_side_text;
///
/// let r = LlmGatewayResponse {
///     turn_order: 3,
///     transcript: "Hello.".into(),
///     data: serde_json::json!({"choices": [{"message": {"content": " Hola. "}}]}),
/// };
/// assert_eq!(server_side_text(&r), Some("Hola."));
/// ```
pub fn server_side_text(response: &LlmGatewayResponse) -> Option<&str> {
    response
        .content()
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Translator
// ---------------------------------------------------------------------------------------------

/// Something that translates text: [`crate::lemur::Lemur`], or your own provider or test double.
///
/// The method returns a boxed `Send` future so that translators can be stored as
/// `Arc<dyn Translator>` and run on any executor thread; `lang` is what the user gave (a code
/// such as `"es"` or a name such as `"Spanish"`, see [`language_name`]).
///
/// The quickest way to make one is [`translator_fn`]:
///
/// ```
/// use assemblyai_streaming::translate::{translator_fn, Translator};
///
/// let shout = translator_fn(|text, _lang| async move { Ok(text.to_uppercase()) });
/// # futures::executor::block_on(async {
/// assert_eq!(shout.translate("hola", "es").await.unwrap(), "HOLA");
/// # });
/// ```
pub trait Translator: Send + Sync {
    /// Translates `text` into `lang`.
    fn translate<'a>(&'a self, text: &'a str, lang: &'a str) -> BoxFuture<'a, Result<String>>;

    /// Translates `text` into `lang` as a stream of text deltas, which concatenated are the
    /// translation. Used by [`translate_finals`] when [`TranslateOptions::stream_deltas`] is
    /// on. Default: the whole result of [`translate`](Self::translate) as one delta;
    /// [`crate::lemur::Lemur`] streams the model's output.
    fn translate_stream<'a>(
        &'a self,
        text: &'a str,
        lang: &'a str,
    ) -> BoxStream<'a, Result<String>> {
        futures::stream::once(self.translate(text, lang)).boxed()
    }
}

impl<T: Translator + ?Sized> Translator for Arc<T> {
    fn translate<'a>(&'a self, text: &'a str, lang: &'a str) -> BoxFuture<'a, Result<String>> {
        (**self).translate(text, lang)
    }
    fn translate_stream<'a>(
        &'a self,
        text: &'a str,
        lang: &'a str,
    ) -> BoxStream<'a, Result<String>> {
        (**self).translate_stream(text, lang)
    }
}

impl<T: Translator + ?Sized> Translator for Box<T> {
    fn translate<'a>(&'a self, text: &'a str, lang: &'a str) -> BoxFuture<'a, Result<String>> {
        (**self).translate(text, lang)
    }
    fn translate_stream<'a>(
        &'a self,
        text: &'a str,
        lang: &'a str,
    ) -> BoxStream<'a, Result<String>> {
        (**self).translate_stream(text, lang)
    }
}

/// A [`Translator`] made from a closure; see [`translator_fn`].
#[derive(Clone)]
pub struct FnTranslator<F>(F);

impl<F> std::fmt::Debug for FnTranslator<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnTranslator")
    }
}

/// Wraps `f(text, lang)` as a [`Translator`]. The closure gets owned strings so its future can
/// be `'static`.
pub fn translator_fn<F, Fut>(f: F) -> FnTranslator<F>
where
    F: Fn(String, String) -> Fut + Send + Sync,
    Fut: Future<Output = Result<String>> + Send + 'static,
{
    FnTranslator(f)
}

impl<F, Fut> Translator for FnTranslator<F>
where
    F: Fn(String, String) -> Fut + Send + Sync,
    Fut: Future<Output = Result<String>> + Send + 'static,
{
    fn translate<'a>(&'a self, text: &'a str, lang: &'a str) -> BoxFuture<'a, Result<String>> {
        Box::pin((self.0)(text.to_owned(), lang.to_owned()))
    }
}

// ---------------------------------------------------------------------------------------------
// The stream adapter
// ---------------------------------------------------------------------------------------------

/// Settings of [`translate_finals`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TranslateOptions {
    /// How many translations may run at the same time. Default 4: with an LLM taking ~0.5 s and
    /// a final turn every ~0.2 s at the fastest, 3 are in flight; 4 leaves headroom. Finals
    /// beyond the limit wait in a queue (events still pass through at once). `0` counts as 1.
    pub max_concurrent: usize,
    /// Forward each translation's text deltas as [`TranslatedEvent::Delta`] items while the
    /// model writes them (through [`Translator::translate_stream`]), so a UI can show a
    /// translation being written. Default `false`: only whole translations.
    pub stream_deltas: bool,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions {
            max_concurrent: 4,
            stream_deltas: false,
        }
    }
}

impl TranslateOptions {
    /// Sets [`TranslateOptions::stream_deltas`].
    pub fn stream_deltas(mut self, yes: bool) -> Self {
        self.stream_deltas = yes;
        self
    }

    /// Sets [`TranslateOptions::max_concurrent`].
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }
}

/// The translation of one final turn.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Translation {
    /// The final turn that was translated.
    pub turn_order: u64,
    /// The translated text, trimmed. Empty only when the turn's transcript was empty (such
    /// turns are not sent to the translator).
    pub text: String,
    /// The target language as the user gave it.
    pub lang: String,
    /// The turn's transcript.
    pub source_text: String,
    /// Time from the final turn's arrival to the translation being ready (excluding any wait
    /// for earlier turns' translations to keep the order).
    pub elapsed: Duration,
}

/// An item of [`translate_finals`]: a session event, passed through unchanged, or a
/// translation.
///
/// Serialized (serde) as the event itself or the translation itself (untagged).
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum TranslatedEvent {
    /// A session event, delivered as soon as the session produced it.
    Event(TurnEvent),
    /// The translation of a final turn (after that final, in `turn_order` order).
    Translation(Translation),
    /// A piece of a translation still being written (only with
    /// [`TranslateOptions::stream_deltas`]). A turn's deltas come in order, after its final
    /// and before its [`Translation`](Self::Translation), which holds the whole text; deltas
    /// of turns translated at the same time may interleave (tell them apart by `turn_order`).
    Delta(TranslationDelta),
}

/// A piece of a translation as the model wrote it; see [`TranslatedEvent::Delta`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct TranslationDelta {
    /// The final turn being translated.
    pub turn_order: u64,
    /// The new text, untrimmed (append it to the earlier deltas of the turn).
    pub text: String,
}

/// Deltas waiting for the consumer; a translation that gets this far ahead waits (bounded).
const DELTA_BUFFER: usize = 64;

struct Job {
    seq: u64,
    turn_order: u64,
    text: String,
    arrived: Instant,
}

type Outcome = Result<Translation>;

/// The stream returned by [`translate_finals`].
#[must_use = "streams do nothing unless polled"]
pub struct TranslatedStream<S> {
    events: Option<Pin<Box<S>>>,
    translator: Arc<dyn Translator>,
    lang: Arc<str>,
    max_concurrent: usize,
    /// Finals waiting for a free translation slot.
    waiting: VecDeque<Job>,
    running: FuturesUnordered<BoxFuture<'static, (u64, Outcome)>>,
    /// Finished translations, by sequence number, until their turn to be yielded.
    done: BTreeMap<u64, Outcome>,
    next_seq: u64,
    next_emit: u64,
    stream_deltas: bool,
    delta_tx: tokio::sync::mpsc::Sender<TranslationDelta>,
    delta_rx: tokio::sync::mpsc::Receiver<TranslationDelta>,
}

impl<S> std::fmt::Debug for TranslatedStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TranslatedStream")
            .field("lang", &self.lang)
            .field("max_concurrent", &self.max_concurrent)
            .field("waiting", &self.waiting.len())
            .field("running", &self.running.len())
            .field("ready", &self.done.len())
            .field("upstream_ended", &self.events.is_none())
            .finish()
    }
}

/// Adds the translation of every final turn to a session's event stream; see the
/// [module documentation](self) for the guarantees.
///
/// Turns with an empty transcript get an empty [`Translation`] without calling the translator,
/// so every final is followed by exactly one translation item (`Ok` or `Err`). The stream ends
/// when the session's stream has ended and every pending translation has been yielded, so the
/// translations of the last turns may come after `Termination`.
///
/// [`TranslateExt::translated`] is the same with default options, as a method.
pub fn translate_finals<S, T>(
    events: S,
    translator: T,
    lang: impl Into<String>,
    options: TranslateOptions,
) -> TranslatedStream<S>
where
    S: Stream<Item = Result<TurnEvent>>,
    T: Translator + 'static,
{
    let (delta_tx, delta_rx) = tokio::sync::mpsc::channel(DELTA_BUFFER);
    TranslatedStream {
        stream_deltas: options.stream_deltas,
        delta_tx,
        delta_rx,
        events: Some(Box::pin(events)),
        translator: Arc::new(translator),
        lang: Arc::from(lang.into()),
        max_concurrent: options.max_concurrent.max(1),
        waiting: VecDeque::new(),
        running: FuturesUnordered::new(),
        done: BTreeMap::new(),
        next_seq: 0,
        next_emit: 0,
    }
}

impl<S> TranslatedStream<S> {
    fn enqueue(&mut self, turn_order: u64, text: &str) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let text = text.trim();
        let arrived = Instant::now();
        if text.is_empty() {
            self.done.insert(
                seq,
                Ok(Translation {
                    turn_order,
                    text: String::new(),
                    lang: self.lang.to_string(),
                    source_text: String::new(),
                    elapsed: Duration::ZERO,
                }),
            );
        } else {
            self.waiting.push_back(Job {
                seq,
                turn_order,
                text: text.to_owned(),
                arrived,
            });
        }
    }

    fn start(&self, job: Job) -> BoxFuture<'static, (u64, Outcome)> {
        let translator = Arc::clone(&self.translator);
        let lang = Arc::clone(&self.lang);
        let deltas = self.stream_deltas.then(|| self.delta_tx.clone());
        Box::pin(async move {
            let result = match deltas {
                None => translator.translate(&job.text, &lang).await,
                Some(tx) => {
                    let mut stream = translator.translate_stream(&job.text, &lang);
                    let mut text = String::new();
                    let mut failed = None;
                    while let Some(item) = stream.next().await {
                        match item {
                            Ok(delta) => {
                                text.push_str(&delta);
                                let delta = TranslationDelta {
                                    turn_order: job.turn_order,
                                    text: delta,
                                };
                                // Fails only when the stream was dropped: nobody to tell.
                                let _ = tx.send(delta).await;
                            }
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    match failed {
                        Some(e) => Err(e),
                        None if text.trim().is_empty() => Err(Error::EmptyCompletion),
                        None => Ok(text),
                    }
                }
            };
            let outcome = match result {
                Ok(text) => Ok(Translation {
                    turn_order: job.turn_order,
                    text: text.trim().to_owned(),
                    lang: lang.to_string(),
                    source_text: job.text,
                    elapsed: job.arrived.elapsed(),
                }),
                Err(e) => Err(Error::Translation {
                    turn_order: job.turn_order,
                    source: Box::new(e),
                }),
            };
            (job.seq, outcome)
        })
    }

    /// Starts queued jobs while slots are free and collects finished ones.
    fn drive(&mut self, cx: &mut Context<'_>) {
        loop {
            while self.running.len() < self.max_concurrent {
                let Some(job) = self.waiting.pop_front() else {
                    break;
                };
                let fut = self.start(job);
                self.running.push(fut);
            }
            match self.running.poll_next_unpin(cx) {
                Poll::Ready(Some((seq, outcome))) => {
                    self.done.insert(seq, outcome);
                }
                // Empty, or nothing finished (the waker is registered).
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
    }
}

impl<S> Stream for TranslatedStream<S>
where
    S: Stream<Item = Result<TurnEvent>>,
{
    type Item = Result<TranslatedEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        this.drive(cx);

        // Deltas before translations: a turn's deltas are all sent before its job finishes.
        if let Poll::Ready(Some(delta)) = this.delta_rx.poll_recv(cx) {
            return Poll::Ready(Some(Ok(TranslatedEvent::Delta(delta))));
        }

        // Translations first: they are older news than whatever the session has ready now.
        if let Some(outcome) = this.done.remove(&this.next_emit) {
            this.next_emit += 1;
            return Poll::Ready(Some(outcome.map(TranslatedEvent::Translation)));
        }

        if let Some(events) = this.events.as_mut() {
            match events.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(TurnEvent::Final(turn)))) => {
                    this.enqueue(turn.turn_order, &turn.transcript);
                    // Start the translation before handing the final over, so its clock runs
                    // while the consumer handles the event.
                    this.drive(cx);
                    return Poll::Ready(Some(Ok(TranslatedEvent::Event(TurnEvent::Final(turn)))));
                }
                Poll::Ready(Some(item)) => {
                    return Poll::Ready(Some(item.map(TranslatedEvent::Event)));
                }
                Poll::Ready(None) => this.events = None,
                Poll::Pending => {}
            }
        }

        if this.events.is_none()
            && this.waiting.is_empty()
            && this.running.is_empty()
            && this.done.is_empty()
            && this.delta_rx.is_empty()
        {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

/// [`translate_finals`] as a method on any session event stream.
///
/// ```
/// use assemblyai_streaming::lemur::Lemur;
/// use assemblyai_streaming::translate::{TranslateExt, TranslatedEvent};
/// use futures::StreamExt;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let script: assemblyai_streaming::emulator::Script = serde_json::from_str(
/// #     r#"{"turns":[{"text":"Hello, world.","translations":{"es":"Hola, mundo."}}]}"#,
/// # )?;
/// # use assemblyai_streaming::{audio::paced, emulator::Emulator, AudioChunk, Encoding};
/// # let emulator = Emulator::builder().script(script).start().await?;
/// # let client = assemblyai_streaming::StreamingClient::builder()
/// #     .api_key(emulator.api_key())
/// #     .base_url(emulator.ws_url())
/// #     .build()?;
/// # let tone: Vec<i16> = (0..9_600).map(|i| ((i as f32 * 0.2).sin() * 8e3) as i16).collect();
/// # let audio = [tone, vec![0; 9_600]].map(|s| AudioChunk::from_pcm16(&s)); // 600 ms each
/// # let events = client
/// #     .connect(assemblyai_streaming::ConnectionParams::new().format_turns(true))
/// #     .await?
/// #     .stream_audio(paced(audio, 16_000, Encoding::PcmS16le));
/// // `events`: a session's events, e.g. `StreamingSession::stream_audio(..)`.
/// let lemur = Lemur::builder() // key from ASSEMBLYAI_API_KEY
/// #   .api_key(emulator.api_key())
/// #   .base_url(emulator.http_url())
///     .build()?;
/// let mut events = events.translated(lemur, "es");
/// # let mut translations = Vec::new();
/// while let Some(item) = events.next().await {
///     if let Ok(TranslatedEvent::Translation(t)) = item {
///         println!("{}: {}", t.turn_order, t.text);
/// #       translations.push((t.turn_order, t.text));
///     }
/// }
/// # assert_eq!(translations, [(0, "Hola, mundo.".to_string())]);
/// # Ok(()) }
/// ```
pub trait TranslateExt: Stream<Item = Result<TurnEvent>> + Sized {
    /// Adds each final turn's translation into `lang`, with [`TranslateOptions::default`].
    fn translated<T: Translator + 'static>(
        self,
        translator: T,
        lang: impl Into<String>,
    ) -> TranslatedStream<Self> {
        translate_finals(self, translator, lang, TranslateOptions::default())
    }

    /// Adds each final turn's translation into `lang`, with these options.
    fn translated_with<T: Translator + 'static>(
        self,
        translator: T,
        lang: impl Into<String>,
        options: TranslateOptions,
    ) -> TranslatedStream<Self> {
        translate_finals(self, translator, lang, options)
    }
}

impl<S: Stream<Item = Result<TurnEvent>>> TranslateExt for S {}
