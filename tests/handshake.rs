//! A hostile or broken server during the opening handshake: whatever bytes come back to the
//! upgrade request (or right after a correct upgrade), `connect()` returns a typed error within
//! its timeout — no panic, no hang, no unbounded read.

mod support;

use std::time::{Duration, Instant};

use assemblyai_streaming::{ConnectionParams, Error, StreamingClient};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Serves one connection: reads the request head, answers `respond(accept_key)`, closes.
async fn one_shot(respond: impl FnOnce(String) -> Vec<u8> + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head);
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap_or_default()
            .trim()
            .to_string();
        let _ = tcp
            .write_all(&respond(derive_accept_key(key.as_bytes())))
            .await;
        let _ = tcp.shutdown().await;
        // Drain until the client hangs up, so it sees our bytes and then EOF.
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    format!("ws://{addr}")
}

fn client(url: &str) -> StreamingClient {
    support::server::client_builder("k", url).build().unwrap()
}

/// Connects and returns the error, checking it came in time and is a handshake-class error.
fn connect_error(respond: impl FnOnce(String) -> Vec<u8> + Send + 'static) -> Error {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let url = one_shot(respond).await;
        let started = Instant::now();
        let err = match client(&url).connect(ConnectionParams::new()).await {
            Ok(_) => panic!("connected to a hostile server"),
            Err(e) => e,
        };
        assert!(started.elapsed() < Duration::from_secs(3), "{err:?}");
        assert!(
            matches!(
                err,
                Error::Connect { .. }
                    | Error::HandshakeRejected { .. }
                    | Error::ConnectionLost { .. }
                    | Error::Closed { .. }
                    | Error::Server { .. }
                    | Error::WebSocket { .. }
                    | Error::Timeout { .. }
            ),
            "{err:?}"
        );
        err
    })
}

fn arb_head_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("HTTP/1.1 101 Switching Protocols".to_string()),
        (100u16..600).prop_map(|s| format!("HTTP/1.1 {s} X")),
        "[ -~]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_bytes_for_an_upgrade_response_are_a_typed_error(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        connect_error(move |_| bytes);
    }

    #[test]
    fn random_heads_and_bodies_are_a_typed_error(
        line in arb_head_line(),
        headers in prop::collection::vec(("[A-Za-z-]{1,20}", "[ -~]{0,40}"), 0..80),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        connect_error(move |_| {
            let mut out = format!("{line}\r\n");
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let mut out = out.into_bytes();
            out.extend(body);
            out
        });
    }

    #[test]
    fn random_frames_after_a_correct_upgrade_are_a_typed_error(
        frames in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        connect_error(move |accept| {
            let mut out = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .into_bytes();
            out.extend(frames);
            out
        });
    }
}

#[test]
fn a_rejection_with_a_huge_body_is_read_only_up_to_64_kib() {
    let err = connect_error(|_| {
        let mut out = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 10000000\r\n\r\n".to_vec();
        out.extend(vec![b'x'; 1_000_000]);
        out
    });
    let Error::HandshakeRejected { status, body } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 401);
    assert_eq!(body.len(), 64 * 1024);
    assert_eq!(err.kind(), "unauthorized");
}

#[test]
fn an_endless_response_head_is_refused_at_64_kib() {
    let err = connect_error(|_| {
        let mut out = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        for i in 0..20 {
            out.extend(format!("X-{i}: {}\r\n", "y".repeat(10_000)).into_bytes());
        }
        out
    });
    let Error::Connect { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(message, "handshake response head too large");
    // Too many headers is refused by the parser first.
    let err = connect_error(|_| {
        let mut out = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        for i in 0..100 {
            out.extend(format!("X-{i}: y\r\n").into_bytes());
        }
        out
    });
    let Error::Connect { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(message, "invalid handshake response: too many headers");
}

#[test]
fn a_wrong_accept_key_is_refused() {
    let err = connect_error(|_| {
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
            .to_vec()
    });
    let Error::Connect { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        message,
        "server answered the upgrade with a wrong Sec-WebSocket-Accept"
    );
}

/// The first error of `T` in `e`'s source chain.
fn find<T: std::error::Error + 'static>(e: &Error) -> Option<&T> {
    std::iter::successors(std::error::Error::source(e), |&s| s.source())
        .find_map(|s| s.downcast_ref::<T>())
}

#[test]
fn a_malformed_response_head_keeps_the_parser_error_as_its_source() {
    let err = connect_error(|_| b"SPEAK FRIEND\r\n\r\n".to_vec());
    assert_eq!(err.kind().as_str(), "connect");
    assert!(
        err.to_string()
            .contains("/v3/ws: invalid handshake response: "),
        "{err}"
    );
    assert!(find::<httparse::Error>(&err).is_some(), "{err:?}");
}

/// Serves one connection: reads the start of the request, then hands the socket to `then`.
async fn after_request<F, Fut>(then: F) -> std::net::SocketAddr
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        then(tcp).await;
    });
    addr
}

#[tokio::test]
async fn a_reset_during_the_handshake_keeps_the_socket_error() {
    let addr = after_request(|tcp| async move {
        // Linger 0: the close is a RST, so the client's read fails rather than ends. (The
        // deprecation is about blocking on drop with a non-zero linger; zero never blocks.)
        #[allow(deprecated)]
        tcp.set_linger(Some(Duration::ZERO)).unwrap();
        drop(tcp);
    })
    .await;
    let err = client(&format!("ws://{addr}"))
        .connect(ConnectionParams::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind().as_str(), "connect", "{err:?}");
    let io = find::<std::io::Error>(&err).expect("the socket's io::Error is the source");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset, "{err:?}");
    assert!(err.to_string().ends_with(&io.to_string()), "{err}");
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn a_failed_tls_handshake_keeps_the_tls_error_as_its_source() {
    // Plain text where a TLS ServerHello should be.
    let addr = after_request(|mut tcp| async move {
        let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        let mut buf = [0u8; 4096];
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
    let err = client(&format!("wss://{addr}"))
        .connect(ConnectionParams::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind().as_str(), "connect", "{err:?}");
    let tls = find::<rustls::Error>(&err).expect("rustls' error is the source");
    // The text is what it always was: the URL, then the TLS library's words.
    assert_eq!(
        err.to_string(),
        format!("could not connect to wss://{addr}/v3/ws: websocket error: TLS: {tls}")
    );
    assert!(err.is_retryable());
}
