//! Live captions in the browser: microphone → this Rust service → AssemblyAI → captions and
//! translations on the page.
//!
//! ```text
//! cargo run --example live_captions -- [--port P] [--lang es]... [--emulator URL]
//! ```
//!
//! Prints its URL (`http://127.0.0.1:P/`, default port 3000; 0 picks a free one) as the first
//! line of stdout. The page captures the microphone, downsamples it to 16 kHz s16le in an
//! `AudioWorklet` and sends 100 ms binary frames over `/ws`. Per browser connection the service
//! opens one [`ResilientSession`]: a dropped connection or a service restart is reconnected and
//! the unfinalised audio replayed, so the captions go on, on one timeline (`turn_order`
//! continues). It sends back JSON: `{"event":"partial"|"final"|"termination",...}` (the crate's
//! serialized `TurnEvent`), `{"event":"translation","data":{...}}` per final and language,
//! `{"event":"reconnected"|"rolled_over"|"audio_gap","data":{...}}` (times in ms),
//! `{"event":"ready","captions":URL}` and `{"event":"error","message":...}`. The key stays here.
//! Without `ASSEMBLYAI_API_KEY` the in-process emulator serves (scripted for the bundled sample)
//! and the page says "emulated"; `--emulator URL` uses an emulator already running there instead
//! (e.g. `cargo run --example emulator -- --drop-after-ms 5000` to watch reconnects; its key from
//! `ASSEMBLYAI_API_KEY`, else the emulator's development key). `GET /captions/N.vtt[?lang=es]` is
//! session N's WebVTT; `GET /health` reports the mode and open sessions.
//!
//! Page contract (tests check it): `#status` (contains "emulated" under the emulator),
//! `#partial`, `.final[data-turn-order]`, and `.translation[lang]` inside each final.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assemblyai_streaming::captions::Transcript;
use assemblyai_streaming::emulator::{DEV_API_KEY, Emulator, EmulatorHandle, Script};
use assemblyai_streaming::lemur::Lemur;
use assemblyai_streaming::resilient::{ResilientEvent, ResilientSession, ResilientSink};
use assemblyai_streaming::{API_KEY_ENV, AudioChunk, ConnectionParams, Error, StreamingClient};
use assemblyai_streaming::{StreamingClientBuilder, TurnEvent};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::{Json, Router, http::header, routing::get};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, SplitSink};
use futures::{SinkExt, StreamExt};
use serde_json::json;

const PAGE: &str = include_str!("assets/live_captions/index.html");
const WORKLET: &str = include_str!("assets/live_captions/worklet.js");
/// Largest audio frame accepted from a browser: 1 s of 16 kHz s16le (the page sends 100 ms).
const MAX_FRAME_BYTES: usize = 32_000;
/// Translations in flight per session; more are reported as skipped rather than queued.
const MAX_TRANSLATIONS_IN_FLIGHT: usize = 16;
/// Finished sessions whose captions stay downloadable.
const KEPT_TRANSCRIPTS: usize = 32;
/// How long a session whose page is gone may take to end (`Terminate`, then `Termination`).
const FINISH_WITHOUT_PAGE: Duration = Duration::from_secs(10);

struct App {
    client: StreamingClientBuilder,
    lemur: Lemur,
    langs: Vec<String>,
    /// Whether an emulator serves; the handle when it runs in this process.
    emulated: bool,
    emulator: Option<EmulatorHandle>,
    open: AtomicUsize,
    next_id: AtomicU64,
    transcripts: Mutex<BTreeMap<u64, Arc<Mutex<Transcript>>>>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut port, mut langs, mut emulator_url) = (3000u16, Vec::new(), None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(p)) => port = p.parse()?,
            ("--lang", Some(l)) => langs.push(l),
            ("--emulator", Some(url)) => emulator_url = Some(url),
            _ => {
                return Err(
                    "usage: live_captions [--port P] [--lang CODE]... [--emulator URL]".into(),
                );
            }
        }
    }
    if langs.is_empty() {
        langs.push("es".into());
    }
    let key = std::env::var(API_KEY_ENV)
        .ok()
        .filter(|k| !k.trim().is_empty());
    let emulated = emulator_url.is_some() || key.is_none();
    let (client, lemur, emulator) = match (emulator_url, key) {
        (None, Some(_)) => (StreamingClient::builder(), Lemur::builder().build()?, None),
        (Some(url), key) => {
            let key = key.unwrap_or_else(|| DEV_API_KEY.into());
            let http = url
                .strip_prefix("ws")
                .map_or(url.clone(), |s| format!("http{s}"));
            let client = StreamingClient::builder().api_key(&key).base_url(url);
            let lemur = Lemur::builder().api_key(key).base_url(http).build()?;
            (client, lemur, None)
        }
        (None, None) => {
            let script = Script::from_json_file(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/assets/sample.script.json"
            ))?;
            let emu = Emulator::builder().script(script).start().await?;
            let client = StreamingClient::builder()
                .api_key(emu.api_key())
                .base_url(emu.ws_url());
            let lemur = Lemur::builder()
                .api_key(emu.api_key())
                .base_url(emu.http_url())
                .build()?;
            (client, lemur, Some(emu))
        }
    };
    // Fails now, not at the first browser, if the settings are wrong.
    client.clone().build()?;
    let app = Arc::new(App {
        client,
        lemur,
        langs,
        emulated,
        emulator,
        open: AtomicUsize::new(0),
        next_id: AtomicU64::new(1),
        transcripts: Mutex::default(),
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("http://{}/", listener.local_addr()?);
    let routes = Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/worklet.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], WORKLET) }),
        )
        .route("/health", get(health))
        .route("/captions/{file}", get(captions))
        .route(
            "/ws",
            get(
                |ws: WebSocketUpgrade, State(app): State<Arc<App>>| async move {
                    ws.on_upgrade(|socket| session(socket, app))
                },
            ),
        )
        .with_state(app);
    axum::serve(listener, routes).await?;
    Ok(())
}

async fn health(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    let mode = if app.emulated {
        "emulated"
    } else {
        "assemblyai"
    };
    let emulator_sessions = app.emulator.as_ref().map(EmulatorHandle::active_sessions);
    Json(
        json!({"mode": mode, "langs": app.langs, "sessions": app.open.load(Ordering::Acquire), "emulator_sessions": emulator_sessions}),
    )
}

async fn captions(
    State(app): State<Arc<App>>,
    Path(file): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let id = file
        .strip_suffix(".vtt")
        .and_then(|id| id.parse::<u64>().ok());
    let transcript = id.and_then(|id| app.transcripts.lock().ok()?.get(&id).cloned());
    match transcript.and_then(|t| Some(t.lock().ok()?.to_webvtt(q.get("lang").map(String::as_str))))
    {
        Some(vtt) => ([(header::CONTENT_TYPE, "text/vtt; charset=utf-8")], vtt).into_response(),
        None => (axum::http::StatusCode::NOT_FOUND, "no such captions").into_response(),
    }
}

/// Browser frames as session audio: binary frames of whole 16-bit samples, at most 1 s each.
fn audio_frame(message: Result<Message, axum::Error>) -> Option<Result<AudioChunk, Error>> {
    match message {
        Ok(Message::Binary(b)) if b.len() % 2 != 0 => Some(Err(Error::InvalidAudio(format!(
            "an audio frame of {} bytes is not whole 16-bit samples",
            b.len()
        )))),
        Ok(Message::Binary(b)) if b.len() > MAX_FRAME_BYTES => {
            Some(Err(Error::InvalidAudio(format!(
                "an audio frame of {} bytes is over the {MAX_FRAME_BYTES}-byte limit",
                b.len()
            ))))
        }
        Ok(Message::Binary(b)) => Some(Ok(AudioChunk::from_bytes(b))),
        Ok(Message::Text(_)) => Some(Err(Error::InvalidAudio(
            "a text frame came where audio was expected".into(),
        ))),
        Ok(Message::Ping(_) | Message::Pong(_)) => Some(Ok(AudioChunk::default())),
        Ok(Message::Close(_)) | Err(_) => None,
    }
}

async fn send(
    page: &mut SplitSink<WebSocket, Message>,
    value: serde_json::Value,
) -> Result<(), axum::Error> {
    page.send(Message::text(value.to_string())).await
}

type Translating = FuturesUnordered<BoxFuture<'static, (u64, String, Result<String, Error>)>>;

async fn session(socket: WebSocket, app: Arc<App>) {
    let (mut to_page, from_page) = socket.split();
    let params = ConnectionParams::new().format_turns(true);
    let session = match ResilientSession::builder(app.client.clone(), params)
        .connect()
        .await
    {
        Ok(s) => s,
        Err(e) => return drop(send(&mut to_page, error_message(&e)).await),
    };
    let id = app.next_id.fetch_add(1, Ordering::Relaxed);
    let transcript = Arc::new(Mutex::new(Transcript::new()));
    if let Ok(mut kept) = app.transcripts.lock() {
        kept.insert(id, transcript.clone());
        while kept.len() > KEPT_TRANSCRIPTS {
            kept.pop_first();
        }
    }
    app.open.fetch_add(1, Ordering::AcqRel);
    let (sink, mut events) = session.split();
    let audio = from_page.scan((), |_, m| futures::future::ready(audio_frame(m)));
    let mut pump = tokio::spawn(pump(audio, sink));
    let (mut pumping, mut ended) = (true, false);
    let mut translating = Translating::new();
    let ready = json!({"event": "ready", "captions": format!("/captions/{id}.vtt")});
    let _ = send(&mut to_page, ready).await;
    loop {
        let message = tokio::select! {
            // First: a bad frame is reported before the Termination its end brings.
            biased;
            pumped = &mut pump, if pumping && !ended => {
                pumping = false;
                match pumped {
                    Ok(Some(e)) => error_message(&e),
                    _ => continue,
                }
            }
            // The session's end ends the page's, even if the page goes on sending audio (or not).
            event = events.next(), if !ended => {
                let message = event.map(|e| on_event(e, &app, &transcript, &mut translating));
                match message {
                    Some(Some(message)) => message,
                    Some(None) => continue,
                    None => {
                        ended = true;
                        continue;
                    }
                }
            }
            Some((order, lang, result)) = translating.next() => match result {
                Ok(text) => {
                    if let Ok(mut t) = transcript.lock() {
                        t.add_translation(order, &lang, &text);
                    }
                    json!({"event": "translation", "data": {"turn_order": order, "lang": lang, "text": text.trim()}})
                }
                Err(e) => error_message(&e),
            },
            else => break,
        };
        if send(&mut to_page, message).await.is_err() {
            break;
        }
    }
    // A page that is gone ends its audio too: the pump closes the sink, so the session sends
    // `Terminate` and ends. Dropping the events then (or after the bound) ends the session's
    // task and its connection, whatever state they are in.
    let finished = events.for_each(|_| async {});
    let _ = tokio::time::timeout(FINISH_WITHOUT_PAGE, finished).await;
    pump.abort();
    let _ = to_page.close().await;
    app.open.fetch_sub(1, Ordering::AcqRel);
}

/// Sends the page's audio to the session, then closes the sink (the buffered audio, then
/// `Terminate`). Returns the bad frame's error that ended it early, if one did.
async fn pump(
    audio: impl futures::Stream<Item = Result<AudioChunk, Error>>,
    mut sink: ResilientSink,
) -> Option<Error> {
    let mut audio = std::pin::pin!(audio);
    let mut bad = None;
    while let Some(frame) = audio.next().await {
        match frame {
            Ok(chunk) => {
                if sink.send(chunk).await.is_err() {
                    return None; // the session ended; its events say why
                }
            }
            Err(e) => {
                bad = Some(e);
                break;
            }
        }
    }
    let _ = sink.close().await;
    bad
}

/// Records a final and starts its translations; returns the event as the page gets it.
fn on_event(
    event: Result<ResilientEvent, Error>,
    app: &App,
    transcript: &Mutex<Transcript>,
    translating: &mut Translating,
) -> Option<serde_json::Value> {
    let ms = |d: Duration| d.as_millis() as u64;
    let event = match event {
        Ok(ResilientEvent::Turn(event)) => event,
        Ok(ResilientEvent::Reconnected {
            attempt,
            downtime,
            replayed,
            cause,
            ..
        }) => {
            return Some(json!({"event": "reconnected", "data": {"attempt": attempt,
                "downtime_ms": ms(downtime), "replayed_ms": ms(replayed), "cause": cause.to_string()}}));
        }
        Ok(ResilientEvent::RolledOver { replayed, .. }) => {
            return Some(json!({"event": "rolled_over", "data": {"replayed_ms": ms(replayed)}}));
        }
        Ok(ResilientEvent::AudioGap { start, duration }) => {
            return Some(json!({"event": "audio_gap",
                "data": {"start_ms": ms(start), "duration_ms": ms(duration)}}));
        }
        Ok(_) => return None,
        Err(e) => return Some(error_message(&e)),
    };
    if let (TurnEvent::Final(turn), Ok(mut t)) = (&event, transcript.lock()) {
        t.push_event(&event);
        for lang in app
            .langs
            .iter()
            .filter(|_| !turn.transcript.trim().is_empty())
        {
            if translating.len() >= MAX_TRANSLATIONS_IN_FLIGHT {
                break; // bounded: a final beyond the limit stays untranslated
            }
            let (lemur, text, lang) = (app.lemur.clone(), turn.transcript.clone(), lang.clone());
            let order = turn.turn_order;
            translating.push(Box::pin(async move {
                let result = lemur.translate(&text, &lang).await;
                (order, lang, result)
            }));
        }
    }
    serde_json::to_value(&event).ok()
}

fn error_message(e: &Error) -> serde_json::Value {
    json!({"event": "error", "message": e.to_string()})
}
