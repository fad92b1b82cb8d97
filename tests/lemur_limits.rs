//! Bounded memory on every `Lemur` response: success bodies stop at the configured limit with a
//! typed error, error bodies are read to their first KiB, and a server that sends forever
//! cannot make the client buffer more than that.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use assemblyai_streaming::Error;
use assemblyai_streaming::lemur::{DEFAULT_MAX_RESPONSE_BYTES, LemurBuilder};
use support::transport::*;

fn lemur(url: &str) -> LemurBuilder {
    direct_lemur(url)
        .retry_delay(Duration::from_millis(1))
        .timeout(Duration::from_secs(20))
}

/// Peak resident memory of this process (kB), from `/proc` (Linux).
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test]
async fn an_endless_success_body_stops_at_the_limit_promptly_with_flat_memory() {
    let (url, seen) = http_server(Reply::Endless {
        head: open_head("200 OK", "application/json"),
        chunk: vec![b' '; 64 * 1024],
    })
    .await;
    let before = peak_rss_kb();
    let started = Instant::now();
    let err = translate_hello(lemur(&url)).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, Error::ResponseTooLarge { limit } if limit == DEFAULT_MAX_RESPONSE_BYTES),
        "{err:?}"
    );
    assert_eq!(err.kind(), "response_too_large");
    assert!(!err.is_retryable());
    assert!(
        took < Duration::from_secs(5),
        "prompt, not at the 20 s timeout: {took:?}"
    );
    assert_eq!(seen.requests.lock().unwrap().len(), 1, "not retried");
    // The server kept writing until the client hung up: what it got out is the limit plus
    // what the sockets' buffers hold, not the gigabytes an unbounded read would take.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let written = seen.written.load(Ordering::SeqCst);
    eprintln!(
        "limit {DEFAULT_MAX_RESPONSE_BYTES} B: error after {took:?}, server wrote {written} B, \
         peak RSS {before:?} -> {:?} kB",
        peak_rss_kb()
    );
    assert!(
        written < DEFAULT_MAX_RESPONSE_BYTES + 16 * 1024 * 1024,
        "server wrote {written} bytes"
    );
    if let (Some(before), Some(after)) = (before, peak_rss_kb()) {
        assert!(
            after.saturating_sub(before) < 64 * 1024,
            "peak RSS grew by {} kB",
            after - before
        );
    }
}

#[tokio::test]
async fn the_limit_is_configurable_and_a_declared_length_over_it_is_refused_unread() {
    let body = format!(
        r#"{{"choices":[{{"index":0,"message":{{"content":"{}"}}}}]}}"#,
        "a".repeat(5000)
    );
    let (url, _) = http_server(Reply::Full(json_response("200 OK", &body))).await;
    let err = translate_hello(lemur(&url).max_response_bytes(4096))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ResponseTooLarge { limit: 4096 }),
        "{err:?}"
    );
    // The same body fits the default limit.
    assert_eq!(
        translate_hello(lemur(&url)).await.unwrap(),
        "a".repeat(5000)
    );
    assert_eq!(
        lemur(&url)
            .max_response_bytes(0)
            .build()
            .unwrap_err()
            .kind(),
        "config"
    );
}

#[tokio::test]
async fn an_endless_error_body_is_read_to_its_first_kib() {
    for status in ["400 Bad Request", "503 Service Unavailable"] {
        let (url, seen) = http_server(Reply::Endless {
            head: open_head(status, "text/plain"),
            chunk: b"x".repeat(64 * 1024),
        })
        .await;
        let started = Instant::now();
        let err = translate_hello(lemur(&url).max_retries(1))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{status}");
        let Error::Api { message, .. } = &err else {
            panic!("{status}: {err:?}")
        };
        assert!(
            message.starts_with("xxxx") && message.len() <= 1024 + 4,
            "{status}: {}",
            message.len()
        );
        let attempts = seen.requests.lock().unwrap().len();
        assert_eq!(
            attempts,
            if status.starts_with('5') { 2 } else { 1 },
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_streamed_completion_is_bounded_by_the_same_limit() {
    use futures::StreamExt;
    let event = format!(
        "data: {}\n\n",
        serde_json::json!({"choices":[{"index":0,"delta":{"content":"ab"}}]})
    );
    let (url, _) = http_server(Reply::Endless {
        head: open_head("200 OK", "text/event-stream"),
        chunk: event.repeat(100).into_bytes(),
    })
    .await;
    let lemur = lemur(&url).max_response_bytes(256 * 1024).build().unwrap();
    let mut deltas = lemur.translate_stream("Hello", "es");
    let mut text = 0;
    let err = loop {
        match deltas.next().await {
            Some(Ok(d)) => text += d.len(),
            Some(Err(e)) => break e,
            None => panic!("an endless stream cannot end"),
        }
    };
    assert!(
        matches!(err, Error::ResponseTooLarge { limit } if limit == 256 * 1024),
        "{err:?}"
    );
    assert!(text > 0, "the deltas before the limit were delivered");
    assert!(
        deltas.next().await.is_none(),
        "the stream ends after its error"
    );
}

#[tokio::test]
async fn an_endless_sse_line_is_cut_off_long_before_the_body_limit() {
    use futures::StreamExt;
    let (url, seen) = http_server(Reply::Endless {
        head: open_head("200 OK", "text/event-stream"),
        chunk: b"data: aaaaaaaa".repeat(4096),
    })
    .await;
    let lemur = lemur(&url).build().unwrap();
    let started = Instant::now();
    let items: Vec<_> = lemur.translate_stream("Hello", "es").collect().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(
        matches!(items[0], Err(Error::ResponseTooLarge { limit }) if limit == 256 * 1024),
        "{items:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(seen.written.load(Ordering::SeqCst) < 32 * 1024 * 1024);
}
