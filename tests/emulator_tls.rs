//! TLS: `wss://` and `https://` with the certificate made at start-up, next to plain `ws://`.

mod support;

use std::sync::Arc;

use assemblyai_streaming::emulator::{Emulator, TlsCertificate};
use assemblyai_streaming::protocol::ServerMessage;
use futures::StreamExt;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

async fn first_message(url: &str, key: &str, connector: Option<Connector>) -> ServerMessage {
    let mut req = format!("{url}/v3/ws?speech_model=universal-streaming-english")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Authorization", key.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(req, None, true, connector)
        .await
        .unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return ServerMessage::from_json(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn wss_and_https_with_the_generated_ca_and_plain_ws_on_the_same_port() {
    let emu = Emulator::builder()
        .tls(TlsCertificate::SelfSigned)
        .start()
        .await
        .unwrap();
    let ca = emu.ca_certificate_pem().unwrap().to_string();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    let wss = emu.wss_url().unwrap();
    assert!(wss.starts_with("wss://127.0.0.1:"));
    let tls = Connector::Rustls(client_config(&ca));
    assert!(matches!(
        first_message(&wss, emu.api_key(), Some(tls)).await,
        ServerMessage::Begin(_)
    ));
    // Plain ws:// still works on the same port.
    assert!(matches!(
        first_message(&emu.ws_url(), emu.api_key(), None).await,
        ServerMessage::Begin(_)
    ));
    // https:// for the HTTP routes, trusting only the emulator's CA.
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let resp = http
        .get(format!("{}/v1/models", emu.https_url().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A client that does not trust the CA is refused.
    let untrusting = reqwest::Client::builder().build().unwrap();
    assert!(
        untrusting
            .get(format!("{}/v1/models", emu.https_url().unwrap()))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn without_tls_there_is_no_secure_url() {
    let emu = Emulator::builder().start().await.unwrap();
    assert_eq!(emu.wss_url(), None);
    assert_eq!(emu.ca_certificate_pem(), None);
}

#[tokio::test]
async fn an_unusable_certificate_is_an_error_at_start() {
    let err = Emulator::builder()
        .tls(TlsCertificate::Pem {
            cert_chain_pem: "not a pem".into(),
            key_pem: "nor this".into(),
            ca_pem: None,
        })
        .start()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_at_the_header_limit() {
    use tokio::io::AsyncWriteExt;
    let emu = Emulator::builder()
        .tls(TlsCertificate::SelfSigned)
        .header_read_timeout(std::time::Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(emu.local_addr())
        .await
        .unwrap();
    // The first byte of a TLS record, then nothing.
    s.write_all(&[0x16]).await.unwrap();
    assert!(
        support::emulator::server_closes_within(&mut s, std::time::Duration::from_secs(5)).await,
        "the stalled handshake held the connection"
    );
}

#[tokio::test]
async fn a_user_given_certificate_and_key_are_served() {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let emu = Emulator::builder()
        .tls(TlsCertificate::Pem {
            cert_chain_pem: cert.pem(),
            key_pem: signing_key.serialize_pem(),
            ca_pem: Some(cert.pem()),
        })
        .start()
        .await
        .unwrap();
    assert_eq!(emu.ca_certificate_pem(), Some(cert.pem().as_str()));
    let tls = Connector::Rustls(client_config(&cert.pem()));
    assert!(matches!(
        first_message(&emu.wss_url().unwrap(), emu.api_key(), Some(tls)).await,
        ServerMessage::Begin(_)
    ));
}

/// The whole crate over TLS: the streaming client and `Lemur` trust the emulator's generated
/// CA through `add_root_certificate`, and stream the bundled sample to its final turns.
#[tokio::test]
async fn the_crates_own_clients_trust_the_emulator_ca_and_work_over_wss_and_https() {
    use assemblyai_streaming::audio::paced;
    use assemblyai_streaming::lemur::Lemur;
    use assemblyai_streaming::{ConnectionParams, Encoding, StreamingClient, TurnEvent};

    let (chunks, script) = support::emulator::bundled_sample();
    let emulator = Emulator::builder()
        .script(script)
        .tls(TlsCertificate::SelfSigned)
        .start()
        .await
        .unwrap();
    let ca = emulator.ca_certificate_pem().unwrap().to_owned();
    let client = StreamingClient::builder()
        .api_key(emulator.api_key())
        .base_url(emulator.wss_url().unwrap())
        .add_root_certificate(&ca)
        .build()
        .unwrap();
    let session = client
        .connect(ConnectionParams::new().format_turns(true))
        .await
        .unwrap();
    let events: Vec<_> = session
        .stream_audio(paced(chunks, 16_000, Encoding::PcmS16le))
        .collect()
        .await;
    let finals: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Ok(TurnEvent::Final(t)) => Some(t.transcript.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(finals.len(), 3, "{events:?}");
    assert!(matches!(events.last(), Some(Ok(TurnEvent::Termination(_)))));

    let lemur = Lemur::builder()
        .api_key(emulator.api_key())
        .base_url(emulator.https_url().unwrap())
        .add_root_certificate(&ca)
        .build()
        .unwrap();
    let spanish = lemur.translate(&finals[0], "es").await.unwrap();
    assert!(spanish.starts_with("Hola"), "{spanish}");
}
