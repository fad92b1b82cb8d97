//! The `live_captions` service without a browser: its websocket contract for bad input (a text
//! frame, an odd-length or oversized audio frame), several connections at once, and a client
//! that vanishes, and a service connection that drops mid-stream. Each case must end cleanly
//! with nothing left running.

mod common;
mod resilient_support;

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
    let mut command = Command::new(common::example_binary("live_captions"));
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

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_service_connection_is_reconnected_and_the_captions_go_on() {
    let (chunks, script) = resilient_support::sample();
    let scripted: Vec<String> = script.turns.iter().map(|t| t.text.clone()).collect();
    // The first session drops in the middle of the second sentence (4.6–7.2 s); the script
    // goes on across sessions, as the real service's transcription of the same audio would.
    let emu = Emulator::builder()
        .script(script)
        .script_across_sessions(true)
        .faults(Faults {
            drop_after: Some(Duration::from_millis(5_800)),
            faulty_sessions: Some(1),
            ..Faults::default()
        })
        .start()
        .await
        .unwrap();
    let service = start_with(&["--emulator", &emu.ws_url()], Some(emu.api_key()));
    assert_eq!(health(&service).await["mode"], "emulated");
    let (to_service, mut from_service) = open(&service).await.split();

    // The page's microphone: the sample at real time, then silence until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = tokio::spawn({
        let stop = stop.clone();
        let silence = vec![0u8; 3_200];
        let frames = chunks
            .into_iter()
            .map(|c| c.as_bytes().to_vec())
            .chain(std::iter::repeat_n(silence, 300));
        let mut to_service = to_service;
        async move {
            let start = tokio::time::Instant::now();
            let mut at = Duration::ZERO;
            for frame in frames {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                at += Duration::from_millis(frame.len() as u64 / 32);
                to_service.send(Message::binary(frame)).await.unwrap();
                tokio::time::sleep_until(start + at).await;
            }
            to_service
        }
    });

    // Until the third final and its translation, then one more second for anything repeated.
    let mut messages = Vec::new();
    let mut quiet_by = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while quiet_by.is_none_or(|at| tokio::time::Instant::now() < at) {
        assert!(tokio::time::Instant::now() < deadline, "{messages:#?}");
        let Ok(next) =
            tokio::time::timeout(Duration::from_millis(200), next_json(&mut from_service)).await
        else {
            continue;
        };
        messages.push(next.expect("the service keeps the page open"));
        let count = |event: &str| messages.iter().filter(|m| m["event"] == event).count();
        if quiet_by.is_none() && count("final") == 3 && count("translation") == 3 {
            quiet_by = Some(tokio::time::Instant::now() + Duration::from_secs(1));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut ws = feeder.await.unwrap().reunite(from_service).unwrap();
    ws.close(None).await.unwrap();
    // The close is answered once the session has ended (well within `next_json`'s 10 s).
    until_closed(&mut ws).await;

    let of =
        |event: &str| -> Vec<&Value> { messages.iter().filter(|m| m["event"] == event).collect() };
    assert!(of("error").is_empty(), "{messages:#?}");
    let reconnects = of("reconnected");
    assert_eq!(reconnects.len(), 1, "one reconnect, told to the page");
    assert_eq!(reconnects[0]["data"]["attempt"], 1);
    assert!(reconnects[0]["data"]["replayed_ms"].as_u64() > Some(0));
    let finals = of("final");
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
    // The reconnect came between the first and the second final.
    let position = |m: &Value| messages.iter().position(|x| x == m).unwrap();
    assert!(position(finals[0]) < position(reconnects[0]));
    assert!(position(reconnects[0]) < position(finals[1]));

    // The closed page ended the session: nothing left open at the service or the emulator.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while health(&service).await["sessions"] != 0 || emu.active_sessions() != 0 {
        assert!(tokio::time::Instant::now() < deadline, "sessions left open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
