//! Cancellation: dropping a session, either half, or a `terminate()` future at any point leaves
//! no task running, closes the socket, and leaks no memory.

mod support;

use std::time::Duration;

use assemblyai_streaming::{AudioChunk, ConnectionParams, StreamingClient};
use futures::{SinkExt, StreamExt};
use support::server::*;

fn client(url: &str) -> StreamingClient {
    StreamingClient::builder()
        .api_key(KEY)
        .base_url(url)
        .terminate_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// A server that keeps talking: a Turn per audio frame, Termination on Terminate.
async fn chatty_server() -> MockServer {
    serve(
        |_| None,
        |mut ws, _| async move {
            if ws.send(begin()).await.is_err() {
                return;
            }
            let mut order = 0;
            while let Some(Ok(msg)) = ws.next().await {
                let reply = match msg {
                    tokio_tungstenite::tungstenite::Message::Binary(_) => {
                        order += 1;
                        turn(order / 5, order % 5 == 4, false, "word")
                    }
                    tokio_tungstenite::tungstenite::Message::Text(t)
                        if t.as_str().contains("Terminate") =>
                    {
                        let _ = ws.send(termination()).await;
                        close(&mut ws, 1000, "").await;
                        return;
                    }
                    _ => continue,
                };
                if ws.send(reply).await.is_err() {
                    return;
                }
            }
        },
    )
    .await
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

async fn settle_to(baseline: usize) -> usize {
    for _ in 0..100 {
        if alive_tasks() <= baseline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alive_tasks()
}

/// Runs a scripted session and drops everything after `step` steps.
async fn run_and_drop_at(url: &str, step: usize, split: Option<bool>) {
    let session = client(url).connect(ConnectionParams::new()).await.unwrap();
    let chunk = AudioChunk::from_pcm16(&[1; 1600]);
    match split {
        None => {
            let mut session = session;
            for i in 0..step {
                match i % 3 {
                    // Fails with SessionClosed once a terminate has started; that is fine here.
                    0 => drop(session.send(chunk.clone()).await),
                    1 => {
                        let _ = session.next().await;
                    }
                    _ => {
                        // Start terminating, then abandon the future midway.
                        let _ = tokio::time::timeout(Duration::from_millis(1), session.terminate())
                            .await;
                    }
                }
            }
        }
        Some(keep_sink) => {
            let (mut sink, mut events) = session.split();
            for _ in 0..step {
                let _ = sink.send(chunk.clone()).await;
                let _ = events.next().await;
            }
            // Drop one half first, then the other, at different points.
            if keep_sink {
                drop(events);
                let _ = sink.send(chunk.clone()).await;
                drop(sink);
            } else {
                drop(sink);
                let _ = events.next().await;
                drop(events);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_at_any_step_leaves_no_task_behind() {
    let server = chatty_server().await;
    let baseline = alive_tasks();
    for step in 0..12 {
        for split in [None, Some(true), Some(false)] {
            run_and_drop_at(&server.url, step, split).await;
        }
    }
    let left = settle_to(baseline).await;
    assert!(left <= baseline, "{left} tasks alive, {baseline} before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sessions_opened_and_dropped_keep_memory_flat() {
    fn rss_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
    let server = chatty_server().await;
    let baseline = alive_tasks();
    let chunk = AudioChunk::from_pcm16(&[1; 1600]);
    let mut rss_at = Vec::new();
    for i in 0..10_000 {
        let mut session = client(&server.url)
            .connect(ConnectionParams::new())
            .await
            .unwrap();
        session.send(chunk.clone()).await.unwrap();
        let _ = session.next().await;
        drop(session);
        if i == 1_999 || i == 9_999 {
            settle_to(baseline).await;
            rss_at.push(rss_kb());
        }
    }
    let growth_kb = rss_at[1].saturating_sub(rss_at[0]);
    println!(
        "RSS after 2,000 sessions: {} KiB; after 10,000: {} KiB",
        rss_at[0], rss_at[1]
    );
    // 8,000 more sessions at even 1 KiB each would add 8 MiB; allow allocator noise only.
    assert!(growth_kb < 4 * 1024, "RSS grew by {growth_kb} KiB");
    assert!(settle_to(baseline).await <= baseline);
}
