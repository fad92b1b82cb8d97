//! The `live_captions` service without a browser: its websocket contract for bad input (a text
//! frame, an odd-length or oversized audio frame), several connections at once, and a client
//! that vanishes, and a service connection that fails mid-stream (reconnected when a new
//! connection can help, the error on the page when not). Each case must end cleanly with nothing
//! left running.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use assemblyai_streaming::emulator::{Emulator, Faults};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

struct Service {
    child: Child,
    url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Service {
    start_with(&[], None)
}

/// The service with extra arguments, and `ASSEMBLYAI_API_KEY` set to `key` (unset if `None`).
fn start_with(args: &[&str], key: Option<&str>) -> Service {
    let mut command = Command::new(support::server::example_binary("live_captions"));
    command.args(["--port", "0"]).args(args);
    match key {
        Some(key) => command.env("ASSEMBLYAI_API_KEY", key),
        None => command.env_remove("ASSEMBLYAI_API_KEY"),
    };
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("start live_captions");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Service {
        child,
        url: line.trim().to_owned(),
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(service: &Service) -> Ws {
    let ws_url = service.url.replace("http://", "ws://") + "ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let ready = next_json(&mut ws).await.expect("ready");
    assert_eq!(ready["event"], "ready");
    ws
}

async fn next_json<S>(ws: &mut S) -> Option<Value>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the service answers within 10 s")?;
        match msg {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Everything the service sends until it closes the socket.
async fn until_closed(ws: &mut Ws) -> Vec<Value> {
    let mut all = Vec::new();
    while let Some(v) = next_json(ws).await {
        all.push(v);
    }
    all
}

async fn health(service: &Service) -> Value {
    reqwest::get(format!("{}health", service.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn drained(service: &Service) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let h = health(service).await;
        if (h["sessions"] == 0 && h["emulator_sessions"] == 0)
            || tokio::time::Instant::now() > deadline
        {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_frames_get_a_clear_message_and_a_clean_end() {
    let service = start();
    assert_eq!(health(&service).await["mode"], "emulated");
    let cases: [(Message, &str); 3] = [
        (Message::text("hello"), "text frame"),
        (Message::binary(vec![0u8; 3201]), "whole 16-bit samples"),
        (Message::binary(vec![0u8; 64_000]), "limit"),
    ];
    for (frame, expected) in cases {
        let mut ws = open(&service).await;
        // 200 ms of real audio first: the bad frame must not lose it.
        ws.send(Message::binary(vec![0u8; 6400])).await.unwrap();
        ws.send(frame).await.unwrap();
        let messages = until_closed(&mut ws).await;
        let errors: Vec<&str> = messages
            .iter()
            .filter(|m| m["event"] == "error")
            .filter_map(|m| m["message"].as_str())
            .collect();
        assert_eq!(errors.len(), 1, "{messages:?}");
        assert!(errors[0].contains(expected), "{errors:?}");
        assert_eq!(
            messages.last().map(|m| m["event"].clone()),
            Some("termination".into()),
            "the session ends with Termination: {messages:?}"
        );
    }
    let h = drained(&service).await;
    assert_eq!(
        (h["sessions"].as_u64(), h["emulator_sessions"].as_u64()),
        (Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_connection_has_its_own_session_and_a_vanished_client_ends_it() {
    let service = start();
    let a = open(&service).await;
    let b = open(&service).await;
    let h = health(&service).await;
    assert_eq!(
        (h["sessions"].as_u64(), h["emulator_sessions"].as_u64()),
        (Some(2), Some(2))
    );
    // One closes properly, the other just disappears (TCP closed without a close frame).
    let mut a = a;
    a.close(None).await.unwrap();
    drop(b);
    let h = drained(&service).await;
    assert_eq!(
        (h["sessions"].as_u64(), h["emulator_sessions"].as_u64()),
        (Some(0), Some(0))
    );
    // Captions of a finished session stay available; an unknown one is 404.
    let ok = reqwest::get(format!("{}captions/1.vtt", service.url))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "WEBVTT\n\n");
    let missing = reqwest::get(format!("{}captions/99.vtt", service.url))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

/// In the middle of the sample's second sentence (4.6–7.2 s).
const MID_SECOND_SENTENCE: Duration = Duration::from_millis(5_800);

/// A browser's session through the service against an emulator scripted for the sample (the
/// script going on across sessions, as the real service's transcription of the same audio
/// would) with `faults`: the page sends the sample at real time, then up to `silence` of
/// silence, until `done` says it has all it waits for (plus 1 s for anything repeated) or the
/// service closes the socket; then it closes the page. Returns what the page got, once the
/// service and the emulator have no session open.
async fn caption_sample(
    faults: Faults,
    silence: Duration,
    done: fn(&[Value]) -> bool,
) -> Vec<Value> {
    let (chunks, script) = support::emulator::bundled_sample();
    let emu = Emulator::builder()
        .script(script)
        .script_across_sessions(true)
        .faults(faults)
        .start()
        .await
        .unwrap();
    let service = start_with(&["--emulator", &emu.ws_url()], Some(emu.api_key()));
    assert_eq!(health(&service).await["mode"], "emulated");
    let (to_service, mut from_service) = open(&service).await.split();

    let stop = Arc::new(AtomicBool::new(false));
    let feeder = tokio::spawn({
        let stop = stop.clone();
        let frames = chunks
            .into_iter()
            .map(|c| c.as_bytes().to_vec())
            .chain(std::iter::repeat_n(
                vec![0u8; 3_200],
                (silence.as_millis() / 100) as usize,
            ));
        let mut to_service = to_service;
        async move {
            let start = tokio::time::Instant::now();
            let mut at = Duration::ZERO;
            for frame in frames {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                at += Duration::from_millis(frame.len() as u64 / 32);
                if to_service.send(Message::binary(frame)).await.is_err() {
                    break; // the service closed the page
                }
                tokio::time::sleep_until(start + at).await;
            }
            to_service
        }
    });

    let mut messages = Vec::new();
    let mut quiet_by = None;
    let mut open = true;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while open && quiet_by.is_none_or(|at| tokio::time::Instant::now() < at) {
        assert!(tokio::time::Instant::now() < deadline, "{messages:#?}");
        let Ok(next) =
            tokio::time::timeout(Duration::from_millis(200), next_json(&mut from_service)).await
        else {
            continue;
        };
        match next {
            Some(message) => messages.push(message),
            None => open = false,
        }
        if quiet_by.is_none() && done(&messages) {
            quiet_by = Some(tokio::time::Instant::now() + Duration::from_secs(1));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut ws = feeder.await.unwrap().reunite(from_service).unwrap();
    if open {
        ws.close(None).await.unwrap();
        // The close is answered once the session has ended (well within `next_json`'s 10 s).
        until_closed(&mut ws).await;
    }

    // The closed page ended the session: nothing left open at the service or the emulator.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while health(&service).await["sessions"] != 0 || emu.active_sessions() != 0 {
        assert!(tokio::time::Instant::now() < deadline, "sessions left open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    messages
}

/// The three finals and their translations are on the page.
fn all_captions(messages: &[Value]) -> bool {
    of(messages, "final").len() == 3 && of(messages, "translation").len() == 3
}

fn of<'a>(messages: &'a [Value], event: &str) -> Vec<&'a Value> {
    messages.iter().filter(|m| m["event"] == event).collect()
}

/// The three scripted finals once, whole, in order, numbered on one timeline, with the one
/// reconnect told to the page between the first and the second.
fn assert_captions_went_on(messages: &[Value]) -> &Value {
    let scripted: Vec<String> = support::emulator::bundled_sample()
        .1
        .turns
        .iter()
        .map(|t| t.text.clone())
        .collect();
    assert!(of(messages, "error").is_empty(), "{messages:#?}");
    let reconnects = of(messages, "reconnected");
    assert_eq!(reconnects.len(), 1, "one reconnect, told to the page");
    let reconnect = reconnects[0];
    assert_eq!(reconnect["data"]["attempt"], 1);
    assert!(reconnect["data"]["replayed_ms"].as_u64() > Some(0));
    let finals = of(messages, "final");
    let texts: Vec<&str> = finals
        .iter()
        .filter_map(|f| f["data"]["transcript"].as_str())
        .collect();
    assert_eq!(
        texts, scripted,
        "every scripted final once, whole, in order"
    );
    let orders: Vec<u64> = finals
        .iter()
        .filter_map(|f| f["data"]["turn_order"].as_u64())
        .collect();
    assert_eq!(orders, [0, 1, 2], "one timeline across the two connections");
    assert_eq!(of(messages, "translation").len(), 3);
    let position = |m: &Value| messages.iter().position(|x| x == m).unwrap();
    assert!(position(finals[0]) < position(reconnect));
    assert!(position(reconnect) < position(finals[1]));
    reconnect
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_service_connection_is_reconnected_and_the_captions_go_on() {
    let messages = caption_sample(
        Faults {
            drop_after: Some(MID_SECOND_SENTENCE),
            faulty_sessions: Some(1),
            ..Faults::default()
        },
        Duration::from_secs(30),
        all_captions,
    )
    .await;
    assert_captions_went_on(&messages);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_restart_is_reconnected_and_the_captions_go_on() {
    let messages = caption_sample(
        Faults {
            close_after: Some((MID_SECOND_SENTENCE, 1012)),
            faulty_sessions: Some(1),
            ..Faults::default()
        },
        Duration::from_secs(30),
        all_captions,
    )
    .await;
    let reconnect = assert_captions_went_on(&messages);
    let cause = reconnect["data"]["cause"].as_str().unwrap();
    assert!(cause.contains("1012"), "{cause}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_a_new_connection_cannot_fix_ends_the_page_with_the_error() {
    // 1008: the credentials were refused mid-stream; retrying would only be refused again.
    let messages = caption_sample(
        Faults {
            close_after: Some((MID_SECOND_SENTENCE, 1008)),
            ..Faults::default()
        },
        Duration::from_secs(30),
        all_captions,
    )
    .await;
    assert!(of(&messages, "reconnected").is_empty(), "{messages:#?}");
    assert_eq!(
        of(&messages, "final").len(),
        1,
        "only the sentence before the close"
    );
    let errors = of(&messages, "error");
    assert_eq!(errors.len(), 1, "{messages:#?}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(message.contains("1008"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_that_ends_while_the_page_is_quiet_closes_the_page() {
    // The page sent the sample and then nothing (a paused microphone), and stays open; the
    // session then ends with an error. The page must hear it and be closed, not left waiting.
    let messages = caption_sample(
        Faults {
            close_after: Some((Duration::from_secs(15), 1008)),
            ..Faults::default()
        },
        Duration::ZERO,
        |_| false, // until the service closes the page
    )
    .await;
    assert_eq!(of(&messages, "final").len(), 3);
    let errors = of(&messages, "error");
    assert_eq!(errors.len(), 1, "{messages:#?}");
    assert!(errors[0]["message"].as_str().unwrap().contains("1008"));
}
