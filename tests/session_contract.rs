//! The session core's behaviours (issue 10), each through the client against a scripted
//! server: bounded waits under a server that stops reading, a socket that is always read, a
//! close before `Termination` as an error, the completed closing handshake, one retry table,
//! dropping the event stream, and the end error repeated by `send()`/`terminate()`.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use assemblyai_streaming::{AudioChunk, Error, StreamingClientBuilder, TimeoutKind, TurnEvent};
use futures::{SinkExt, StreamExt};
use support::server::*;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A client for the scripted server at `url`: 1 s terminate wait, two connect retries 20 ms
/// apart.
fn builder(url: &str) -> StreamingClientBuilder {
    client_builder(KEY, url)
        .terminate_timeout(Duration::from_secs(1))
        .retries(2, Duration::from_millis(20))
}

/// Every item of `events` until the end, bounded.
async fn collect<S>(mut events: S, limit: Duration) -> Vec<assemblyai_streaming::Result<TurnEvent>>
where
    S: futures::Stream<Item = assemblyai_streaming::Result<TurnEvent>> + Unpin,
{
    let mut out = Vec::new();
    tokio::time::timeout(limit, async {
        while let Some(item) = events.next().await {
            out.push(item);
        }
    })
    .await
    .expect("the stream ends in time");
    out
}

// ----- 1. every wait is bounded --------------------------------------------------------------

#[tokio::test]
async fn a_server_that_stops_reading_cannot_hang_terminate_or_the_stream() {
    let server = serve_begin_then_stall(Duration::from_secs(30)).await;
    let session =
        open_session(builder(&server.url).write_timeout(Duration::from_millis(500))).await;
    let handle = session.handle();
    let (mut sink, events) = session.split();
    let feeder = tokio::spawn(async move {
        // 1 MB chunks (31 s of audio each) until the sink refuses.
        for _ in 0..200 {
            if sink
                .send(AudioChunk::from_bytes(vec![0u8; 1 << 20]))
                .await
                .is_err()
            {
                return sink;
            }
        }
        panic!("200 MB went into a socket nobody reads");
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let outcome = handle.terminate().await;
    assert!(
        started.elapsed() < Duration::from_millis(1300),
        "terminate() took {:?}",
        started.elapsed()
    );
    assert!(matches!(outcome, Err(Error::Timeout { .. })), "{outcome:?}");
    let items = collect(events, Duration::from_secs(3)).await;
    let errors: Vec<_> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        matches!(
            errors[0],
            Error::Timeout {
                kind: TimeoutKind::Write,
                ..
            }
        ),
        "{:?}",
        errors[0]
    );
    let sink = tokio::time::timeout(Duration::from_secs(3), feeder)
        .await
        .expect("the sink is released")
        .unwrap();
    drop(sink);
}

// ----- 2. the socket is always read ----------------------------------------------------------

#[tokio::test]
async fn a_paused_consumer_neither_stalls_pings_nor_grows_memory_and_loses_no_final() {
    // The script reports whether a pong was late.
    let (server, mut reports) = serve_reporting(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        for i in 0..3000 {
            ws.feed(turn(0, false, false, &format!("word {i}")))
                .await
                .unwrap();
        }
        ws.flush().await.unwrap();
        // Ping every 200 ms for 2.5 s; a pong later than 1 s closes 1011.
        for _ in 0..12 {
            ws.send(Message::Ping(vec![1].into())).await.unwrap();
            let pong = tokio::time::timeout(Duration::from_secs(1), async {
                while let Some(Ok(m)) = ws.next().await {
                    if matches!(m, Message::Pong(_)) {
                        return true;
                    }
                }
                false
            })
            .await;
            if !matches!(pong, Ok(true)) {
                close(&mut ws, 1011, "pong late").await;
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        ws.send(turn(0, true, false, "the final")).await.unwrap();
        end_on_terminate(&mut ws).await;
        false
    })
    .await;
    let mut session =
        open_session(builder(&server.url).terminate_timeout(Duration::from_secs(5))).await;
    // The consumer pauses well past the pong deadline.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let termination = session.terminate().await;
    assert!(termination.is_ok(), "{termination:?}");
    let coalesced = session.coalesced_partials();
    let items = collect(session, Duration::from_secs(5)).await;
    assert!(!reports.next().await, "a pong was late");
    let events: Vec<_> = items.into_iter().map(|i| i.unwrap()).collect();
    assert!(matches!(events.first(), Some(TurnEvent::Begin(_))));
    assert!(matches!(events.last(), Some(TurnEvent::Termination(_))));
    let finals: Vec<_> = events.iter().filter(|e| e.is_final()).collect();
    assert_eq!(finals.len(), 1);
    let partials = events
        .iter()
        .filter(|e| matches!(e, TurnEvent::Partial(_)))
        .count();
    // Bounded by the event buffer (256): the rest were superseded and coalesced.
    assert!(partials <= 256, "{partials} partials queued");
    assert!(coalesced >= 3000 - 256, "{coalesced} coalesced");
}

// ----- 3. a close before Termination is an error --------------------------------------------

#[tokio::test]
async fn any_close_before_termination_is_one_error_with_the_code_received() {
    for (frame, code) in [
        (
            Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }),
            1000,
        ),
        (None, 1005),
        (
            Some(CloseFrame {
                code: CloseCode::from(1012),
                reason: "".into(),
            }),
            1012,
        ),
        // Codes that may not appear on the wire (RFC 6455 §7.4.1): reported as received, not
        // as tungstenite's 1002 "Protocol violation".
        (
            Some(CloseFrame {
                code: CloseCode::from(1005),
                reason: "".into(),
            }),
            1005,
        ),
        (
            Some(CloseFrame {
                code: CloseCode::from(1006),
                reason: "".into(),
            }),
            1006,
        ),
        (
            Some(CloseFrame {
                code: CloseCode::from(1015),
                reason: "".into(),
            }),
            1015,
        ),
        (
            Some(CloseFrame {
                code: CloseCode::from(0),
                reason: "".into(),
            }),
            0,
        ),
    ] {
        let server = serve_script(move |mut ws, _| {
            let frame = frame.clone();
            async move {
                ws.send(begin()).await.unwrap();
                ws.send(turn(0, true, false, "kept")).await.unwrap();
                let _ = ws.send(Message::Close(frame)).await;
                while let Some(Ok(_)) = ws.next().await {}
            }
        })
        .await;
        let session = open_session(builder(&server.url)).await;
        let items = collect(session, Duration::from_secs(3)).await;
        let errors: Vec<_> = items.iter().filter_map(|i| i.as_ref().err()).collect();
        assert_eq!(errors.len(), 1, "close {code}: {items:?}");
        assert_eq!(errors[0].code(), Some(code), "{:?}", errors[0]);
        assert!(items.last().unwrap().is_err(), "the error is the last item");
        assert!(
            items
                .iter()
                .any(|i| matches!(i, Ok(TurnEvent::Final(t)) if t.transcript == "kept"))
        );
    }
}

// ----- 4. the closing handshake is completed -------------------------------------------------

#[tokio::test]
async fn the_client_answers_a_server_close_before_dropping_tcp() {
    let (server, mut reports) = serve_reporting(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        ws.send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(3005),
            reason: "gone".into(),
        })))
        .await
        .unwrap();
        let mut reply = None;
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(frame) = m {
                reply = Some(frame.map(|f| u16::from(f.code)));
            }
        }
        reply
    })
    .await;
    let session = open_session(builder(&server.url)).await;
    let items = collect(session, Duration::from_secs(3)).await;
    assert_eq!(
        items.last().unwrap().as_ref().unwrap_err().code(),
        Some(3005)
    );
    assert_eq!(
        reports.next().await,
        Some(Some(3005)),
        "the client echoes the close code"
    );
}

// ----- 5. one retry table --------------------------------------------------------------------

#[tokio::test]
async fn closes_before_begin_are_retried_only_when_they_mean_try_again() {
    for (code, retried) in [
        (1012, true),
        (1013, true),
        (3005, true),
        (3009, false),
        (3006, false),
        (1008, false),
    ] {
        let server = serve_script(move |mut ws, _| async move {
            close(&mut ws, code, "").await;
        })
        .await;
        let err = connect_error(builder(&server.url).retries(2, Duration::from_millis(10))).await;
        assert_eq!(err.code(), Some(code), "{err:?}");
        let attempts = server.connections.load(Ordering::SeqCst);
        assert_eq!(attempts, if retried { 3 } else { 1 }, "close {code}");
        assert_eq!(err.is_retryable(), retried, "close {code}");
    }
}

// ----- 6. dropping the event stream ends the session -------------------------------------------

#[tokio::test]
async fn dropping_the_event_stream_ends_the_session_while_the_sink_lives() {
    let (server, mut reports) = serve_reporting(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        let (_, texts) = read_until_terminate(&mut ws).await;
        let mut closed = false;
        while let Some(Ok(m)) = ws.next().await {
            closed |= matches!(m, Message::Close(_));
        }
        (texts, closed)
    })
    .await;
    let session = open_session(builder(&server.url)).await;
    let (mut sink, events) = session.split();
    sink.send(AudioChunk::from_pcm16(&[0; 1600])).await.unwrap();
    drop(events);
    let (texts, closed) = reports.next().await;
    assert!(texts.iter().any(|t| t.contains("Terminate")), "{texts:?}");
    assert!(closed, "the client closed the socket");
    let after = sink.send(AudioChunk::from_pcm16(&[0; 1600])).await;
    assert!(after.is_err(), "{after:?}");
}

// ----- 7. send() and terminate() return the end error ------------------------------------------

#[tokio::test]
async fn after_an_error_send_and_terminate_return_that_error() {
    let server = serve_script(|mut ws, _| async move {
        ws.send(begin()).await.unwrap();
        ws.send(error_frame(3005, "the backend fell over"))
            .await
            .unwrap();
        close(&mut ws, 3005, "").await;
    })
    .await;
    let session = open_session(builder(&server.url)).await;
    let handle = session.handle();
    let (mut sink, events) = session.split();
    let items = collect(events, Duration::from_secs(3)).await;
    let end = items.last().unwrap().as_ref().unwrap_err().clone();
    assert_eq!(end.code(), Some(3005));
    let sent = sink
        .send(AudioChunk::from_pcm16(&[0; 1600]))
        .await
        .unwrap_err();
    assert_eq!(sent.to_string(), end.to_string());
    let terminated = handle.terminate().await.unwrap_err();
    assert_eq!(terminated.to_string(), end.to_string());
    let control = handle.force_endpoint().await.unwrap_err();
    assert_eq!(control.code(), Some(3005));
}

// ----- 5b. a certificate that fails verification is never retried ------------------------------

/// A TLS server with a self-signed certificate (not in any root store); counts connections.
async fn self_signed_server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs =
        vec![CertificateDer::from_pem_slice(include_bytes!("support/selfsigned.crt")).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("support/selfsigned.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    (port, count)
}

#[tokio::test]
async fn a_certificate_that_fails_verification_is_never_retried() {
    let (port, count) = self_signed_server().await;
    let err = connect_error(
        builder(&format!("wss://localhost:{port}")).retries(3, Duration::from_millis(10)),
    )
    .await;
    assert!(matches!(err, Error::Certificate { .. }), "{err:?}");
    assert_eq!(err.kind(), "certificate");
    assert!(!err.is_retryable());
    assert_eq!(count.load(Ordering::SeqCst), 1, "one attempt only");

    let lemur = assemblyai_streaming::lemur::Lemur::builder()
        .api_key(KEY)
        .base_url(format!("https://localhost:{port}"))
        .max_retries(3)
        .retry_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let err = lemur.translate("Hello", "es").await.unwrap_err();
    assert!(matches!(err, Error::Certificate { .. }), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 2, "one more attempt only");
}

#[tokio::test]
async fn a_rejected_certificate_keeps_the_tls_error_as_its_source() {
    use std::error::Error as _;
    let find = |e: &Error| -> Vec<String> {
        std::iter::successors(e.source(), |&s| s.source())
            .map(|s| {
                if let Some(tls) = s.downcast_ref::<rustls::Error>() {
                    format!("rustls:{tls:?}")
                } else if s.is::<reqwest::Error>() {
                    "reqwest".into()
                } else {
                    "other".into()
                }
            })
            .collect()
    };
    let (port, _) = self_signed_server().await;
    let err =
        connect_error(builder(&format!("wss://localhost:{port}")).retries(0, Duration::ZERO)).await;
    assert_eq!(err.kind(), "certificate");
    assert!(
        err.to_string().starts_with(&format!(
            "TLS certificate rejected (wss://localhost:{port}/v3/ws): invalid peer certificate: "
        )),
        "{err}"
    );
    assert!(
        find(&err)
            .iter()
            .any(|s| s.starts_with("rustls:InvalidCertificate")),
        "{:?}",
        find(&err)
    );

    let lemur = assemblyai_streaming::lemur::Lemur::builder()
        .api_key(KEY)
        .base_url(format!("https://localhost:{port}"))
        .max_retries(0)
        .build()
        .unwrap();
    let err = lemur.translate("Hello", "es").await.unwrap_err();
    assert_eq!(err.kind(), "certificate");
    assert!(
        find(&err).iter().any(|s| s == "reqwest"),
        "{:?}",
        find(&err)
    );
}

/// How a run of the `transcribe` example ended.
struct TranscribeRun {
    status: std::process::ExitStatus,
    stderr: String,
    /// The last stderr line, parsed: the example's JSON error line.
    error_line: serde_json::Value,
    /// From process start to exit.
    took: Duration,
}

/// Runs `transcribe --fast --url <server>` on a 16 kHz mono WAV of `samples` (written to a
/// temporary `<name>.wav`); the run must end within `limit`.
async fn transcribe_fast(
    server: &str,
    name: &str,
    samples: impl Iterator<Item = i16>,
    limit: Duration,
) -> TranscribeRun {
    let binary = tokio::task::spawn_blocking(|| example_binary("transcribe"))
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("robust-core-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join(format!("{name}.wav"));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&wav, spec).unwrap();
    for sample in samples {
        writer.write_sample(sample).unwrap();
    }
    writer.finalize().unwrap();
    let started = Instant::now();
    let output = tokio::process::Command::new(binary)
        .args(["--fast", "--url", server])
        .arg(&wav)
        .env("ASSEMBLYAI_API_KEY", KEY)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(limit, output)
        .await
        .unwrap_or_else(|_| panic!("transcribe --fast on {name}.wav hung"))
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let error_line = serde_json::from_str(stderr.lines().last().unwrap_or("")).unwrap();
    TranscribeRun {
        status: output.status,
        stderr,
        error_line,
        took,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcribe_fast_exits_non_zero_in_bounded_time_when_the_server_stops_reading() {
    let server = serve_begin_then_stall(Duration::from_secs(60)).await;
    // Five minutes of 16 kHz mono audio (9.6 MB): far more than the socket buffers hold.
    // Bounded by the write limit (5 s) + terminate timeout (5 s), plus process start-up.
    let run = transcribe_fast(
        &server.url,
        "five-minutes",
        (0..16_000 * 300).map(|i| ((i % 64) * 100) as i16),
        Duration::from_secs(15),
    )
    .await;
    assert!(!run.status.success());
    assert!(run.took < Duration::from_secs(15));
    assert_eq!(run.error_line["error"]["kind"], "timeout", "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcribe_reports_a_close_1000_before_termination_on_stderr() {
    let server = serve_turn_then_close(turn(0, true, false, "only this"), 1000, "").await;
    let run = transcribe_fast(
        &server.url,
        "one-second",
        std::iter::repeat_n(0i16, 16_000),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(run.error_line["error"]["code"], 1000, "{}", run.stderr);
    assert_eq!(run.error_line["error"]["kind"], "closed", "{}", run.stderr);
}

#[tokio::test]
async fn errors_keep_their_causes_and_clone_with_them() {
    // A refused connection to the LLM Gateway: the reqwest error is the source.
    let url = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let lemur = assemblyai_streaming::lemur::Lemur::builder()
        .api_key(KEY)
        .base_url(url)
        .max_retries(0)
        .build()
        .unwrap();
    let err = lemur.translate("Hello", "es").await.unwrap_err();
    let copy = err.clone();
    for e in [&err, &copy] {
        let cause = std::error::Error::source(e).expect("a source");
        let cause = cause.downcast_ref::<assemblyai_streaming::Cause>().unwrap();
        assert!(
            cause.get().downcast_ref::<reqwest::Error>().is_some(),
            "{e:?}"
        );
    }
    // A refused websocket connection: the socket's io::Error is the source, with its kind.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let err = connect_error(default_client(&format!("ws://127.0.0.1:{port}")).max_retries(0)).await;
    assert_eq!(err.kind(), "connect", "{err:?}");
    for e in [&err, &err.clone()] {
        let cause = std::error::Error::source(e).expect("a source");
        let cause = cause.downcast_ref::<assemblyai_streaming::Cause>().unwrap();
        let io = cause
            .get()
            .downcast_ref::<std::io::Error>()
            .expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
