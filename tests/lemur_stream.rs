//! `Lemur::chat_stream` / `translate_stream` against a scripted Server-Sent Events server:
//! chunk boundaries anywhere, comments, CRLF line endings, unknown fields, a stream that stops
//! without `[DONE]`, errors inside the stream, stalls; and the translation adapter forwarding
//! deltas as they arrive.

mod support;

use std::time::Duration;

use assemblyai_streaming::lemur::{Backend, ChatMessage, ChatRequest, Lemur, LemurBuilder};
use assemblyai_streaming::protocol::Turn;
use assemblyai_streaming::translate::{TranslateOptions, TranslatedEvent, translate_finals};
use assemblyai_streaming::{Error, Result, TurnEvent};
use futures::StreamExt;
use support::transport::*;

fn lemur(url: &str) -> LemurBuilder {
    direct_lemur(url).timeout(Duration::from_secs(5))
}

/// The server sends `body` cut into these pieces, `gap` apart, then closes.
async fn sse(pieces: Vec<Vec<u8>>, gap: Duration) -> (String, std::sync::Arc<Seen>) {
    http_server(Reply::Pieces {
        head: open_head("200 OK", "text/event-stream"),
        pieces,
        gap,
        hold: None,
    })
    .await
}

async fn collect(lemur: &Lemur) -> Vec<Result<String>> {
    lemur
        .translate_stream("Hello, world.", "es")
        .collect()
        .await
}

/// [`collect`] with a [`lemur`] client of the server at `url`.
async fn stream_items(url: &str) -> Vec<Result<String>> {
    collect(&lemur(url).build().unwrap()).await
}

fn texts(items: &[Result<String>]) -> String {
    items
        .iter()
        .filter_map(|i| i.as_ref().ok())
        .cloned()
        .collect()
}

#[tokio::test]
async fn deltas_arrive_in_order_and_the_request_asks_for_a_stream() {
    let body = sse_body(&["Hola", ", ", "mundo", "."], true);
    let (url, seen) = sse(vec![body.into_bytes()], Duration::ZERO).await;
    let items = stream_items(&url).await;
    let deltas: Vec<String> = items.into_iter().map(|i| i.unwrap()).collect();
    assert_eq!(deltas, ["Hola", ", ", "mundo", "."]);

    let (head, body) = seen.requests.lock().unwrap()[0].clone();
    assert!(
        head.to_lowercase().contains("accept: text/event-stream"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["stream"], true);
    assert_eq!(json["messages"][1]["content"], "Hello, world.");
    assert!(
        json["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("Spanish")
    );
}

#[tokio::test]
async fn chunk_boundaries_anywhere_give_the_same_deltas() {
    let body = sse_body(&["¿Cómo ", "estás", " hoy?"], true).into_bytes();
    // Every split point (byte by byte included, through multi-byte UTF-8 characters).
    let mut splits: Vec<Vec<Vec<u8>>> = (1..body.len())
        .step_by(7)
        .map(|at| vec![body[..at].to_vec(), body[at..].to_vec()])
        .collect();
    splits.push(body.iter().map(|b| vec![*b]).collect());
    for pieces in splits {
        let sizes: Vec<usize> = pieces.iter().map(Vec::len).collect();
        let (url, _) = sse(pieces, Duration::from_millis(1)).await;
        let items = stream_items(&url).await;
        assert!(items.iter().all(|i| i.is_ok()), "{sizes:?}: {items:?}");
        assert_eq!(texts(&items), "¿Cómo estás hoy?", "{sizes:?}");
    }
}

#[tokio::test]
async fn comments_crlf_event_fields_and_unknown_members_are_tolerated() {
    let body = concat!(
        ": OPENROUTER PROCESSING\r\n\r\n",
        "retry: 1000\r\n",
        "id: 1\r\n",
        "event: message\r\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Ho\"},\"logprobs\":null}],\"x\":{\"y\":1}}\r\n\r\n",
        ":keep-alive\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":[{\"type\":\"text\",\"text\":\"la\"}]}}]}\r\r",
        "data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1},\"choices\":[]}\n\n",
        "data:[DONE]\r\n\r\n",
    );
    let (url, _) = sse(vec![body.as_bytes().to_vec()], Duration::ZERO).await;
    let items = stream_items(&url).await;
    assert!(items.iter().all(|i| i.is_ok()), "{items:?}");
    assert_eq!(texts(&items), "Hola");
}

#[tokio::test]
async fn a_stream_that_stops_without_done_ends_with_a_typed_error_after_its_deltas() {
    let body = sse_body(&["Hola", " mundo"], false);
    let (url, _) = sse(vec![body.into_bytes()], Duration::ZERO).await;
    let items = stream_items(&url).await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(texts(&items), "Hola mundo");
    let err = items[2].as_ref().unwrap_err();
    assert_eq!(err.kind(), "connection_lost", "{err:?}");
    assert!(err.to_string().contains("[DONE]"), "{err}");

    // Cut in the middle of an event: the half event is dropped, the error says so.
    let (url, _) = sse(
        vec![b"data: {\"choices\":[{\"delta\":{\"content\":\"Ho".to_vec()],
        Duration::ZERO,
    )
    .await;
    let items = stream_items(&url).await;
    assert!(
        matches!(&items[..], [Err(Error::ConnectionLost { .. })]),
        "{items:?}"
    );
}

#[tokio::test]
async fn an_error_object_inside_the_stream_is_an_api_error() {
    let body = "data: {\"choices\":[{\"delta\":{\"content\":\"Ho\"}}]}\n\n\
                data: {\"error\":{\"code\":502,\"message\":\"upstream went away\"}}\n\n";
    let (url, _) = sse(vec![body.as_bytes().to_vec()], Duration::ZERO).await;
    let items = stream_items(&url).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(
        matches!(&items[1], Err(Error::Api { status: 502, message, .. }) if message == "upstream went away"),
        "{items:?}"
    );
}

#[tokio::test]
async fn a_chunk_that_is_not_json_is_a_decode_error() {
    let (url, _) = sse(vec![b"data: {nope\n\n".to_vec()], Duration::ZERO).await;
    let items = stream_items(&url).await;
    assert!(
        matches!(&items[..], [Err(Error::Decode { .. })]),
        "{items:?}"
    );
}

#[tokio::test]
async fn a_refused_request_is_the_only_item() {
    let (url, seen) = http_server(Reply::Full(json_response(
        "401 Unauthorized",
        r#"{"error":"Unauthorized","request_id":"r-9"}"#,
    )))
    .await;
    let items = stream_items(&url).await;
    assert!(
        matches!(&items[..], [Err(e @ Error::Api { status: 401, .. })] if e.kind() == "unauthorized"),
        "{items:?}"
    );
    assert_eq!(
        seen.requests.lock().unwrap().len(),
        1,
        "streams are not retried"
    );

    let legacy = lemur(&url).backend(Backend::LegacyLemur).build().unwrap();
    let items: Vec<_> = legacy
        .chat_stream(ChatRequest::new(vec![ChatMessage::user("x")]))
        .collect()
        .await;
    assert!(
        matches!(&items[..], [Err(Error::Config { .. })]),
        "{items:?}"
    );
}

#[tokio::test]
async fn a_stalled_stream_times_out_between_reads() {
    let (url, _) = http_server(Reply::Pieces {
        head: open_head("200 OK", "text/event-stream"),
        pieces: vec![sse_body(&["Hola"], false).into_bytes()],
        gap: Duration::ZERO,
        hold: Some(Duration::from_secs(30)),
    })
    .await;
    let lemur = lemur(&url)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let items = collect(&lemur).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(texts(&items), "Hola");
    assert!(
        matches!(items.last(), Some(Err(Error::Timeout { after, .. })) if *after == Duration::from_millis(300)),
        "{items:?}"
    );
}

fn final_turn(order: u64, text: &str) -> TurnEvent {
    let turn: Turn = serde_json::from_value(serde_json::json!({
        "type": "Turn", "turn_order": order, "turn_is_formatted": true, "end_of_turn": true,
        "transcript": text, "end_of_turn_confidence": 0.9, "words": []
    }))
    .unwrap();
    TurnEvent::Final(turn)
}

#[tokio::test]
async fn the_translation_adapter_forwards_deltas_as_they_arrive_when_asked() {
    let pieces: Vec<Vec<u8>> = sse_body(&["Hola", ", ", "mundo."], true)
        .split_inclusive("\n\n")
        .map(|e| e.as_bytes().to_vec())
        .collect();
    let (url, _) = sse(pieces, Duration::from_millis(20)).await;
    let lemur = lemur(&url).build().unwrap();
    let events = futures::stream::iter(vec![Ok(final_turn(0, "Hello, world."))]);

    let options = TranslateOptions::default().stream_deltas(true);
    let mut stream = translate_finals(events, lemur.clone(), "es", options);
    let mut seen = Vec::new();
    let (mut first_delta, mut whole) = (None, None);
    while let Some(item) = stream.next().await {
        let now = std::time::Instant::now();
        match item.unwrap() {
            TranslatedEvent::Delta(d) if first_delta.is_none() => {
                first_delta = Some(now);
                seen.push(format!("delta {} {:?}", d.turn_order, d.text));
            }
            TranslatedEvent::Translation(t) => {
                whole = Some(now);
                seen.push(format!("translation {} {}", t.turn_order, t.text));
            }
            TranslatedEvent::Event(TurnEvent::Final(t)) => {
                seen.push(format!("final {}", t.turn_order))
            }
            TranslatedEvent::Delta(d) => seen.push(format!("delta {} {:?}", d.turn_order, d.text)),
            other => panic!("{other:?}"),
        }
    }
    // The server writes one event every 20 ms: the first delta is shown while the rest of the
    // translation is still being written.
    let ahead = whole.unwrap() - first_delta.unwrap();
    assert!(
        ahead >= Duration::from_millis(30),
        "first delta only {ahead:?} ahead"
    );
    assert_eq!(
        seen,
        [
            "final 0",
            "delta 0 \"Hola\"",
            "delta 0 \", \"",
            "delta 0 \"mundo.\"",
            "translation 0 Hola, mundo.",
        ]
    );

    // Off by default: the same server, whole translations only.
    let events = futures::stream::iter(vec![Ok(final_turn(0, "Hello, world."))]);
    let items: Vec<_> = translate_finals(events, lemur, "es", TranslateOptions::default())
        .collect()
        .await;
    assert!(
        items
            .iter()
            .all(|i| !matches!(i, Ok(TranslatedEvent::Delta(_)))),
        "{items:?}"
    );
}

#[tokio::test]
async fn a_failed_streamed_translation_is_one_error_item_and_the_stream_goes_on() {
    let (url, _) = sse(
        vec![sse_body(&["Hola"], false).into_bytes()],
        Duration::ZERO,
    )
    .await;
    let lemur = lemur(&url).build().unwrap();
    let events = futures::stream::iter(vec![
        Ok(final_turn(0, "Hello.")),
        Ok(final_turn(1, "Again.")),
    ]);
    let options = TranslateOptions::default().stream_deltas(true);
    let items: Vec<_> = translate_finals(events, lemur, "es", options)
        .collect()
        .await;
    let errors: Vec<_> = items
        .iter()
        .filter_map(|i| i.as_ref().err())
        .map(|e| (e.kind(), e.to_string()))
        .collect();
    assert_eq!(errors.len(), 2, "{items:?}");
    assert!(
        errors
            .iter()
            .all(|(k, m)| *k == "translation" && m.contains("[DONE]")),
        "{errors:?}"
    );
    let finals = items
        .iter()
        .filter(|i| matches!(i, Ok(TranslatedEvent::Event(TurnEvent::Final(_)))))
        .count();
    assert_eq!(finals, 2);
}
