//! Edge cases of the session task found while testing robustness, against the scripted server.

mod common;
mod robust_support;

use std::time::Duration;

use assemblyai_streaming::{AudioChunk, ConnectionParams, Error, StreamingClient};
use common::*;
use futures::SinkExt;
use robust_support::*;

#[tokio::test]
async fn a_drop_noticed_by_a_failed_write_while_the_consumer_is_behind_is_still_an_error() {
    // The server sends 20 finals, then closes TCP without a close frame. The client keeps
    // sending audio, so it learns of the drop from a failed write while its event buffer is
    // full (the consumer is not reading). The stream must still end with an error after every
    // final that was received, never silently.
    let server = serve(
        |_| None,
        |mut ws, _| async move {
            ws.send(begin()).await.unwrap();
            for i in 0..20 {
                ws.send(turn(i, true, false, &format!("turn {i}")))
                    .await
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(ws);
        },
    )
    .await;
    let session = StreamingClient::builder()
        .api_key(KEY)
        .base_url(&server.url)
        .event_buffer(1)
        .build()
        .unwrap()
        .connect(ConnectionParams::new())
        .await
        .unwrap();
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
    let err = ended.error.take().expect("the drop is reported");
    assert!(matches!(err, Error::ConnectionLost(_)), "{err:?}");
    assert_eq!(ended.finals().len(), 20);
}
