//! Edge cases of the session task found while testing robustness, against the scripted server.

mod support;

use std::time::Duration;

use assemblyai_streaming::{AudioChunk, ConnectionParams, Error, StreamingClient, TimeoutKind};
use futures::{SinkExt, StreamExt};
use support::faults::*;
use support::server::*;

#[tokio::test]
async fn a_drop_noticed_by_a_failed_write_while_the_consumer_is_behind_is_still_an_error() {
    // The server sends 20 finals, then closes TCP without a close frame. The client keeps
    // sending audio, so it learns of the drop from a failed write while its event buffer is
    // full (the consumer is not reading). The stream must still end with an error after every
    // final that was received, never silently.
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        for i in 0..20 {
            ws.send(turn(i, true, false, &format!("turn {i}")))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(ws);
    })
    .await;
    let session = open_session(default_client(&server.url).event_buffer(1)).await;
    let (mut sink, events) = session.split();
    for _ in 0..30 {
        if sink.send(AudioChunk::from_pcm16(&[0; 1600])).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The consumer comes back well after the write failed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut ended = drain(events, Duration::from_secs(10)).await;
    println!("{} finals, end: {:?}", ended.finals().len(), ended.error);
    let err = ended.take_error();
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err:?}");
    assert_eq!(ended.finals().len(), 20);
}

#[tokio::test]
async fn wait_forever_settings_do_not_panic() {
    // `Duration::MAX` is a natural way to say "no limit"; no deadline computed from a setting
    // may overflow.
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        // Legacy formatting: an unformatted end-of-turn makes the client wait `format_wait`.
        ws.send(turn(0, true, false, "held")).await.unwrap();
        read_until_terminate(&mut ws).await;
        ws.send(turn(0, true, true, "Held.")).await.unwrap();
        ws.send(termination()).await.unwrap();
        close(&mut ws, 1000, "").await;
    })
    .await;
    let mut session = open_session_with(
        default_client(&server.url)
            .connect_timeout(Duration::MAX)
            .terminate_timeout(Duration::MAX)
            .keep_alive_interval(Some(Duration::MAX))
            .format_wait(Duration::MAX)
            .retries(3, Duration::MAX),
        ConnectionParams::new().format_turns(true),
    )
    .await;
    session
        .send(AudioChunk::from_pcm16(&[0; 1600]))
        .await
        .unwrap();
    session.terminate().await.unwrap();
    let ended = drain(session, Duration::from_secs(10)).await;
    assert!(ended.terminated(), "{ended:?}");
    assert_eq!(ended.finals(), [(0, "Held.".to_string())]);
}

#[tokio::test]
async fn minting_a_token_with_an_unbounded_connect_timeout_does_not_panic() {
    let emu = assemblyai_streaming::emulator::Emulator::builder()
        .start()
        .await
        .unwrap();
    let token = StreamingClient::builder()
        .api_key(emu.api_key())
        .base_url(emu.ws_url())
        .connect_timeout(Duration::MAX)
        .build()
        .unwrap()
        .create_temporary_token(60, None)
        .await
        .unwrap();
    assert!(!token.is_empty());
}

#[tokio::test]
async fn frames_are_never_shorter_than_50_ms_at_any_sample_rate() {
    // At 22 050 Hz or 11 025 Hz, 50 ms is a fractional number of samples; rounding down made
    // the client's shortest frames 49.98 ms, which the service's 50–1000 ms rule rejects.
    let emu = assemblyai_streaming::emulator::Emulator::builder()
        .realtime_tolerance(Duration::from_secs(3600))
        .start()
        .await
        .unwrap();
    for rate in [11_025u32, 22_050, 44_100, 8_000, 16_000] {
        let mut session = StreamingClient::builder()
            .api_key(emu.api_key())
            .base_url(emu.ws_url())
            .frame_duration(Duration::from_millis(50))
            .build()
            .unwrap()
            .connect(ConnectionParams::new().sample_rate(rate))
            .await
            .unwrap();
        // Two and a half frames: whole frames, then a padded tail.
        let samples = (rate as usize * 125).div_ceil(1000);
        session
            .send(AudioChunk::from_pcm16(&vec![0; samples]))
            .await
            .unwrap();
        let result = session.terminate().await;
        assert!(result.is_ok(), "{rate} Hz: {result:?}");
    }
}

#[tokio::test]
async fn a_server_frame_over_16_mib_ends_the_session_with_an_error() {
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        ws.send(turn(0, true, false, "before")).await.unwrap();
        let huge = format!(
            r#"{{"type":"Warning","warning":"{}"}}"#,
            "x".repeat(17 << 20)
        );
        let _ = ws
            .send(tokio_tungstenite::tungstenite::Message::text(huge))
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let session = open_session(default_client(&server.url)).await;
    let mut ended = drain(session, Duration::from_secs(10)).await;
    assert_eq!(ended.finals(), [(0, "before".to_string())]);
    let err = ended.take_error();
    let Error::ConnectionLost { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.starts_with("Space limit exceeded: Message too long"),
        "{message}"
    );
}

#[tokio::test]
async fn termination_without_a_close_ends_the_stream_promptly() {
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        read_until_terminate(&mut ws).await;
        ws.send(termination()).await.unwrap();
        // Never closes and never answers the client's close.
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let mut session = open_session(default_client(&server.url)).await;
    let started = std::time::Instant::now();
    session.terminate().await.unwrap();
    let ended = drain(session, Duration::from_secs(5)).await;
    assert!(ended.terminated() && ended.error.is_none());
    // Bounded by the 1 s wait for the close handshake.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_error_frame_without_a_close_ends_the_stream_after_a_second() {
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        ws.send(error_frame(3005, "internal hiccup")).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let session = open_session(default_client(&server.url)).await;
    let started = std::time::Instant::now();
    let mut ended = drain(session, Duration::from_secs(5)).await;
    let err = ended.take_error();
    assert!(
        matches!(&err, Error::Closed { code: 3005, reason, .. } if reason == "internal hiccup"),
        "{err:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(3000),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_held_end_of_turn_is_delivered_as_final_before_the_error() {
    // Older formatting: the unformatted end-of-turn is held for its formatted twin. If the
    // session fails first, the held turn is still the Final, ahead of the error.
    let server =
        serve_turn_then_close(turn(0, true, false, "held turn"), 3005, "Server error").await;
    let session = open_session_with(
        default_client(&server.url).format_wait(Duration::from_secs(30)),
        ConnectionParams::new().format_turns(true),
    )
    .await;
    let ended = drain(session, Duration::from_secs(5)).await;
    assert_eq!(ended.finals(), [(0, "held turn".to_string())]);
    assert_eq!(ended.error.as_ref().and_then(Error::code), Some(3005));
}

// ----- the sink and the session task sharing the socket -----------------------------------------
//
// The audio sink writes a chunk itself when nothing is queued and the socket is idle; anything
// it cannot finish must be finished by the session task, whoever polls what afterwards.

/// A server that sends `Begin`, waits `stall` (the client's writes back up), then reads audio
/// until it has `bytes`, announces that with a final turn "got it", and ends gracefully.
/// Reports the audio it read, in order.
async fn serve_counting_audio(
    stall: Duration,
    bytes: usize,
) -> (MockServer, Reports<(Vec<u8>, Vec<String>)>) {
    use tokio_tungstenite::tungstenite::Message;
    serve_reporting(move |mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        tokio::time::sleep(stall).await;
        let mut audio = Vec::new();
        let mut texts = Vec::new();
        let mut announced = false;
        while let Some(Ok(msg)) = ws.next().await {
            match msg {
                Message::Binary(b) => audio.extend_from_slice(&b),
                Message::Text(t) => {
                    texts.push(t.to_string());
                    if t.as_str().contains("\"Terminate\"") {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
            if !announced && audio.len() >= bytes {
                announced = true;
                ws.send(turn(0, true, false, "got it")).await.unwrap();
            }
        }
        let _ = ws.send(termination()).await;
        close(&mut ws, 1000, "").await;
        (audio, texts)
    })
    .await
}

/// One chunk far larger than the socket's buffers goes in through the sink, which is then
/// never polled again (it stays alive, so the audio does not end): the session task must
/// finish the write the sink started.
async fn a_big_chunk_is_written_out_without_the_sink_being_polled_again() {
    // 2,620 frames of 100 ms: whole frames, so none is held back for the next chunk.
    const BYTES: usize = 2_620 * 3_200;
    let (server, mut reports) = serve_counting_audio(Duration::from_millis(300), BYTES).await;
    let session = open_session(default_client(&server.url)).await;
    let (mut sink, mut events) = session.split();
    let chunk: Vec<u8> = (0..BYTES).map(|i| (i % 251) as u8).collect();
    sink.send(AudioChunk::from_bytes(chunk.clone()))
        .await
        .unwrap();
    let got_it = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next().await {
            if event.unwrap().is_final() {
                return;
            }
        }
        panic!("the stream ended before the server had the audio");
    })
    .await;
    assert!(got_it.is_ok(), "the write stalled: nobody finished it");
    sink.close().await.unwrap();
    let ended = drain(events, Duration::from_secs(5)).await;
    assert!(ended.terminated(), "{ended:?}");
    let (audio, _) = reports.next().await;
    assert_eq!(audio, chunk, "the audio arrived whole and in order");
}

#[tokio::test]
async fn a_big_chunk_is_written_out_by_the_task_on_a_current_thread_runtime() {
    a_big_chunk_is_written_out_without_the_sink_being_polled_again().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_chunk_is_written_out_by_the_task_on_a_multi_thread_runtime() {
    a_big_chunk_is_written_out_without_the_sink_being_polled_again().await;
}

/// 100 ms of audio whose every sample is `n`: the server can tell the chunks apart.
fn numbered_chunk(n: u16) -> Vec<u8> {
    std::iter::repeat_n(n.to_le_bytes(), 1600)
        .flatten()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_keeps_its_order_while_other_tasks_send_control_messages() {
    let (server, mut reports) = serve_counting_audio(Duration::ZERO, usize::MAX).await;
    let session = open_session(default_client(&server.url).audio_buffer(4)).await;
    let handles: Vec<_> = (0..3).map(|_| session.handle()).collect();
    let (mut sink, events) = session.split();
    let controls: Vec<_> = handles
        .into_iter()
        .map(|h| {
            tokio::spawn(async move {
                for _ in 0..50 {
                    h.keep_alive().await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut expected = Vec::new();
    for n in 0..300u16 {
        let chunk = numbered_chunk(n);
        expected.extend_from_slice(&chunk);
        sink.send(AudioChunk::from_bytes(chunk)).await.unwrap();
    }
    for c in controls {
        c.await.unwrap();
    }
    sink.close().await.unwrap();
    let ended = drain(events, Duration::from_secs(10)).await;
    assert!(ended.terminated(), "{ended:?}");
    let (audio, texts) = reports.next().await;
    assert!(audio == expected, "audio reordered or lost");
    let keep_alives = texts.iter().filter(|t| t.contains("KeepAlive")).count();
    assert_eq!(keep_alives, 150, "{texts:?}");
    assert!(texts.last().unwrap().contains("Terminate"), "{texts:?}");
}

#[tokio::test]
async fn a_control_message_given_up_while_the_queue_is_full_is_never_sent() {
    // The server reads nothing for a second: the audio queue fills and `force_endpoint()`
    // waits for room. Dropping that future (a timeout here) must leave nothing behind.
    let (server, mut reports) = serve_counting_audio(Duration::from_secs(1), usize::MAX).await;
    let session = open_session(default_client(&server.url).audio_buffer(2)).await;
    let handle = session.handle();
    let (mut sink, events) = session.split();
    let feeder = tokio::spawn(async move {
        for _ in 0..64 {
            sink.send(AudioChunk::from_bytes(vec![0u8; 1 << 20]))
                .await
                .unwrap();
        }
        sink
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gave_up = tokio::time::timeout(Duration::from_millis(100), handle.force_endpoint()).await;
    assert!(gave_up.is_err(), "the queue should have been full");
    let mut sink = tokio::time::timeout(Duration::from_secs(10), feeder)
        .await
        .expect("the feeder finished once the server read")
        .unwrap();
    sink.close().await.unwrap();
    let ended = drain(events, Duration::from_secs(10)).await;
    assert!(ended.terminated(), "{ended:?}");
    let (audio, texts) = reports.next().await;
    assert_eq!(audio.len(), 64 << 20);
    assert_eq!(texts, [r#"{"type":"Terminate"}"#]);
}

#[tokio::test]
async fn a_terminate_given_up_after_it_was_queued_still_ends_the_session() {
    // Termination comes 300 ms after Terminate; the caller stops waiting after 100 ms. The
    // session still terminates, once, and the stream says so.
    let (server, mut reports) = serve_reporting(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        let log = read_log_until_terminate(&mut ws).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        ws.send(termination()).await.unwrap();
        close(&mut ws, 1000, "").await;
        log
    })
    .await;
    let session = open_session(default_client(&server.url)).await;
    let handle = session.handle();
    let (mut sink, events) = session.split();
    sink.send(AudioChunk::from_pcm16(&[0; 1600])).await.unwrap();
    let gave_up = tokio::time::timeout(Duration::from_millis(100), handle.terminate()).await;
    assert!(gave_up.is_err(), "Termination came early: {gave_up:?}");
    let ended = drain(events, Duration::from_secs(5)).await;
    assert!(ended.terminated(), "{ended:?}");
    assert_eq!(
        reports.next().await,
        ["audio 3200", r#"{"type":"Terminate"}"#]
    );
    // After the end, a terminate is refused at once (no second Terminate, no wait).
    let again = tokio::time::timeout(Duration::from_millis(500), handle.terminate())
        .await
        .expect("refused at once");
    assert!(matches!(again, Err(Error::SessionClosed)), "{again:?}");
    assert!(matches!(
        sink.send(AudioChunk::from_pcm16(&[0; 1600])).await,
        Err(Error::SessionClosed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_terminates_share_one_termination() {
    let (server, mut reports) = serve_reporting(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        let log = read_log_until_terminate(&mut ws).await;
        // Every caller is waiting by then (one calling after the end gets `SessionClosed`).
        tokio::time::sleep(Duration::from_millis(300)).await;
        ws.send(termination()).await.unwrap();
        // Anything after the first Terminate would show here.
        let mut after = Vec::new();
        while let Some(Ok(m)) = ws.next().await {
            if m.is_text() {
                after.push(m.to_string());
            }
            if m.is_close() {
                break;
            }
        }
        (log, after)
    })
    .await;
    let session = open_session(default_client(&server.url)).await;
    let waits: Vec<_> = (0..4)
        .map(|_| {
            let h = session.handle();
            tokio::spawn(async move { h.terminate().await })
        })
        .collect();
    for w in waits {
        let outcome = w.await.unwrap();
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    let (log, after) = reports.next().await;
    assert_eq!(log, [r#"{"type":"Terminate"}"#]);
    assert!(after.is_empty(), "{after:?}");
    let ended = drain(session, Duration::from_secs(5)).await;
    assert!(ended.terminated(), "{ended:?}");
}

#[tokio::test]
async fn the_audio_ends_when_the_sink_and_every_handle_are_gone() {
    let (server, mut reports) = serve_logging_session().await;
    let session = open_session(default_client(&server.url)).await;
    let handle = session.handle();
    let (mut sink, events) = session.split();
    // 130 ms: one frame goes out, 30 ms wait for the rest of their frame.
    sink.send(AudioChunk::from_pcm16(&[0; 2080])).await.unwrap();
    drop(sink);
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.force_endpoint().await.expect("a handle still sends");
    drop(handle);
    let ended = drain(events, Duration::from_secs(5)).await;
    assert!(ended.terminated(), "{ended:?}");
    // Audio waiting to complete a frame is sent when the audio ends (padded to the 50 ms
    // minimum), so a control message sent meanwhile goes before it (documented on
    // `SessionHandle`).
    assert_eq!(
        reports.next().await,
        [
            "audio 3200",
            r#"{"type":"ForceEndpoint"}"#,
            "audio 1600",
            r#"{"type":"Terminate"}"#
        ]
    );
}

#[tokio::test]
async fn the_sink_contract_holds_after_close() {
    let server = serve_session(vec![]).await;
    let session = open_session(default_client(&server.url)).await;
    let (mut sink, events) = session.split();
    sink.send(AudioChunk::from_pcm16(&[0; 1600])).await.unwrap();
    sink.close().await.unwrap();
    sink.close().await.expect("closing twice is fine");
    sink.flush().await.expect("nothing to flush after close");
    let sent = sink.send(AudioChunk::from_pcm16(&[0; 1600])).await;
    assert!(matches!(sent, Err(Error::SessionClosed)), "{sent:?}");
    let ended = drain(events, Duration::from_secs(5)).await;
    assert!(ended.terminated(), "{ended:?}");
    // And after the end, the same.
    sink.close().await.unwrap();
    assert!(sink.send(AudioChunk::from_pcm16(&[0; 1600])).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_reading_releases_the_sink_and_every_handle_on_a_multi_thread_runtime()
{
    let server = serve_begin_then_stall(Duration::from_secs(30)).await;
    let session = open_session(
        default_client(&server.url)
            .write_timeout(Duration::from_millis(500))
            .audio_buffer(4),
    )
    .await;
    let handles: Vec<_> = (0..4).map(|_| session.handle()).collect();
    let (mut sink, events) = session.split();
    let started = std::time::Instant::now();
    let feeder = tokio::spawn(async move {
        for _ in 0..200 {
            if let Err(e) = sink.send(AudioChunk::from_bytes(vec![0u8; 1 << 20])).await {
                return e;
            }
        }
        panic!("200 MB went into a socket nobody reads");
    });
    let controls: Vec<_> = handles
        .into_iter()
        .map(|h| {
            tokio::spawn(async move {
                loop {
                    if let Err(e) = h.keep_alive().await {
                        return e;
                    }
                }
            })
        })
        .collect();
    let mut ended = drain(events, Duration::from_secs(5)).await;
    let end = ended.take_error();
    assert!(
        matches!(
            end,
            Error::Timeout {
                kind: TimeoutKind::Write,
                ..
            }
        ),
        "{end:?}"
    );
    for task in std::iter::once(feeder).chain(controls) {
        let e = tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("every sender is released")
            .unwrap();
        assert_eq!(e.to_string(), end.to_string());
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// Runs `f` on its own thread; its result, or `None` when it did not finish within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn the_sink_and_handles_work_from_threads_outside_any_runtime() {
    // An audio callback thread may drive the sink with a plain executor; the sink then writes
    // to the socket from that thread.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server, mut reports, session) = rt.block_on(async {
        let (server, reports) = serve_counting_audio(Duration::ZERO, usize::MAX).await;
        let session = open_session(default_client(&server.url)).await;
        (server, reports, session)
    });
    let handle = session.handle();
    let (mut sink, events) = session.split();
    let expected: Vec<u8> = (0..50u16).flat_map(numbered_chunk).collect();
    let fed = within(Duration::from_secs(10), move || {
        futures::executor::block_on(async {
            for n in 0..50u16 {
                sink.send(AudioChunk::from_bytes(numbered_chunk(n))).await?;
                if n == 25 {
                    handle.force_endpoint().await?;
                }
            }
            handle.terminate().await
        })
    });
    let outcome = fed.expect("the thread finished");
    assert!(outcome.is_ok(), "{outcome:?}");
    rt.block_on(async {
        let ended = drain(events, Duration::from_secs(5)).await;
        assert!(ended.terminated(), "{ended:?}");
        let (audio, texts) = reports.next().await;
        assert!(audio == expected, "audio reordered or lost");
        assert_eq!(
            texts,
            [r#"{"type":"ForceEndpoint"}"#, r#"{"type":"Terminate"}"#]
        );
    });
    drop(server);
}

#[test]
fn a_runtime_shut_down_under_a_blocked_sink_releases_it_and_ends_the_stream_with_an_error() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let session = rt.block_on(async {
        let server = serve_begin_then_stall(Duration::from_secs(30)).await;
        open_session(default_client(&server.url).audio_buffer(2)).await
    });
    let handle = session.handle();
    let (mut sink, events) = session.split();
    let (blocked_tx, blocked_rx) = std::sync::mpsc::channel();
    let feeder = std::thread::spawn(move || {
        futures::executor::block_on(async {
            for _ in 0..200 {
                if let Err(e) = sink.send(AudioChunk::from_bytes(vec![0u8; 1 << 20])).await {
                    return e;
                }
                let _ = blocked_tx.send(());
            }
            panic!("200 MB went into a socket nobody reads");
        })
    });
    // Wait until the feeder stops making progress (the queue is full).
    while blocked_rx.recv_timeout(Duration::from_millis(500)).is_ok() {}
    drop(rt);
    let err = within(Duration::from_secs(3), move || feeder.join().unwrap())
        .expect("the blocked sink is released when its session task is dropped");
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err:?}");
    let items = within(Duration::from_secs(3), move || {
        futures::executor::block_on(events.collect::<Vec<_>>())
    })
    .expect("the stream ends when its session task is dropped");
    let last = items.last().expect("the stream says how it ended");
    assert!(
        matches!(last, Err(Error::ConnectionLost { .. })),
        "a stream cut by a runtime shutdown must not look like a clean end: {items:?}"
    );
    // Handles get the same error at once; `terminate()` does not panic without the runtime.
    let refused = within(Duration::from_secs(3), move || {
        futures::executor::block_on(async {
            (handle.force_endpoint().await, handle.terminate().await)
        })
    })
    .expect("a handle is refused at once");
    assert!(
        matches!(refused.0, Err(Error::ConnectionLost { .. })),
        "{refused:?}"
    );
    assert!(
        matches!(refused.1, Err(Error::ConnectionLost { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn audio_written_by_the_sink_and_queued_controls_keep_their_order() {
    // The first chunk is written by the sink itself (nothing queued, socket idle); the
    // control after it is queued for the task, so the next chunk must queue behind it rather
    // than take the direct path ahead of it.
    let (server, mut reports) = serve_logging_session().await;
    let mut session = open_session(default_client(&server.url)).await;
    // Let the session task run once, so the sink may write directly.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let handle = session.handle();
    let mut expected = Vec::new();
    for n in 0..20u16 {
        session
            .send(AudioChunk::from_bytes(numbered_chunk(n)))
            .await
            .unwrap();
        expected.push("audio 3200".to_string());
        if n % 3 == 0 {
            handle.keep_alive().await.unwrap();
            expected.push(r#"{"type":"KeepAlive"}"#.to_string());
        }
    }
    session.terminate().await.unwrap();
    expected.push(r#"{"type":"Terminate"}"#.to_string());
    assert_eq!(reports.next().await, expected);
}

#[tokio::test]
async fn dropping_the_event_stream_answers_a_pending_terminate_at_once() {
    // Termination would come only after 3 s; the consumer gives up first. The waiting
    // terminate() learns the session is over then, not at its own timeout.
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        read_until_terminate(&mut ws).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = ws.send(termination()).await;
        close(&mut ws, 1000, "").await;
    })
    .await;
    let session =
        open_session(default_client(&server.url).terminate_timeout(Duration::from_secs(10))).await;
    let handle = session.handle();
    let (_sink, events) = session.split();
    let waiting = tokio::spawn(async move { handle.terminate().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    drop(events);
    let outcome = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("terminate() is answered when the stream is dropped")
        .unwrap();
    assert!(matches!(outcome, Err(Error::SessionClosed)), "{outcome:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn start_send_without_poll_ready_cannot_grow_the_queue_past_its_bound() {
    // The server never reads: the first big chunk fills the socket, the rest must queue.
    let server = serve_begin_then_stall(Duration::from_secs(30)).await;
    let session = open_session(default_client(&server.url).audio_buffer(4)).await;
    let (mut sink, _events) = session.split();
    let mut accepted = 0;
    let refused = loop {
        // The Sink contract says poll_ready first; a caller that skips it gets an error, not
        // an unbounded queue.
        match futures::Sink::start_send(
            std::pin::Pin::new(&mut sink),
            AudioChunk::from_bytes(vec![0u8; 1 << 20]),
        ) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100, "100 MB queued without poll_ready");
    };
    assert_eq!(refused.kind().as_str(), "config", "{refused:?}");
    assert!(refused.to_string().contains("poll_ready"), "{refused}");
    // The written chunk, 4 queued (audio_buffer), one more for the sink's own race allowance.
    assert!(accepted <= 1 + 4 + 1, "{accepted} accepted");
}
