//! The client against the emulator, end to end: real speech in, scripted turns out.

mod support;

use std::time::Duration;

use assemblyai_streaming::emulator::{Emulator, EmulatorHandle, Formatting, Script};
use assemblyai_streaming::{ConnectionParams, Error, StreamingClient, TurnEvent};
use futures::{SinkExt, StreamExt};
use support::emulator::{bundled_sample, emulator_client, emulator_with_script};

/// An emulator that lets tests send audio faster than real time: turn detection follows the
/// audio clock, so the result is the same as a real-time stream, only quicker.
async fn emulator(script: Script, formatting: Formatting) -> EmulatorHandle {
    Emulator::builder()
        .script(script)
        .formatting(formatting)
        .realtime_tolerance(Duration::from_secs(3600))
        .start()
        .await
        .unwrap()
}

async fn finals_of(params: ConnectionParams, formatting: Formatting) -> (Vec<TurnEvent>, Script) {
    let (chunks, script) = bundled_sample();
    let emu = emulator(script.clone(), formatting).await;
    let mut session = emulator_client(&emu).connect(params).await.unwrap();
    for chunk in chunks {
        session.send(chunk).await.unwrap();
    }
    session.terminate().await.unwrap();
    let mut events = Vec::new();
    while let Some(e) = session.next().await {
        events.push(e.unwrap());
    }
    (events, script)
}

#[tokio::test]
async fn spoken_sample_yields_one_formatted_final_per_scripted_turn() {
    for formatting in [Formatting::InModel, Formatting::Legacy] {
        let (events, script) =
            finals_of(ConnectionParams::new().format_turns(true), formatting).await;
        let finals: Vec<(u64, String)> = events
            .iter()
            .filter_map(|e| match e {
                TurnEvent::Final(t) => Some((t.turn_order, t.transcript.clone())),
                _ => None,
            })
            .collect();
        let expected: Vec<(u64, String)> = script
            .turns
            .iter()
            .enumerate()
            .map(|(i, t)| (i as u64, t.text.clone()))
            .collect();
        assert_eq!(finals, expected, "{formatting:?}");
        assert!(matches!(events.first(), Some(TurnEvent::Begin(_))));
        assert!(
            matches!(events.last(), Some(TurnEvent::Termination(t)) if t.audio_duration_seconds == Some(12.0))
        );
        let partials = events
            .iter()
            .filter(|e| matches!(e, TurnEvent::Partial(_)))
            .count();
        assert!(
            partials > 20,
            "a partial per frame while speaking, got {partials}"
        );
    }
}

#[tokio::test]
async fn without_formatting_finals_are_unformatted_end_of_turns() {
    let (events, script) = finals_of(ConnectionParams::new(), Formatting::Legacy).await;
    let finals: Vec<&assemblyai_streaming::protocol::Turn> = events
        .iter()
        .filter_map(|e| match e {
            TurnEvent::Final(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(finals.len(), script.turns.len());
    assert!(finals.iter().all(|t| t.end_of_turn && !t.turn_is_formatted));
    assert_eq!(
        finals[0].transcript,
        "hello and welcome to the live translation demo"
    );
}

#[tokio::test]
async fn a_wrong_key_is_a_1008_error_and_not_retried() {
    let (_, script) = bundled_sample();
    let emu = emulator(script, Formatting::InModel).await;
    let err = StreamingClient::builder()
        .api_key("wrong-key")
        .base_url(emu.ws_url())
        .build()
        .unwrap()
        .connect(ConnectionParams::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Closed { code: 1008, .. }), "{err:?}");
    assert_eq!(err.kind(), "unauthorized");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn temporary_tokens_are_minted_used_once_and_validated() {
    let (chunks, script) = bundled_sample();
    let emu = emulator(script, Formatting::InModel).await;
    let token = emulator_client(&emu)
        .create_temporary_token(60, Some(600))
        .await
        .unwrap();
    let with_token = StreamingClient::builder()
        .token(&token)
        .base_url(emu.ws_url())
        .retries(0, Duration::ZERO)
        .build()
        .unwrap();
    let mut session = with_token.connect(ConnectionParams::new()).await.unwrap();
    session.send(chunks[0].clone()).await.unwrap();
    session.terminate().await.unwrap();

    let reused = with_token
        .connect(ConnectionParams::new())
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Some(1008), "{reused:?}");

    let err = emulator_client(&emu)
        .create_temporary_token(0, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "config");
    let err = emulator_client(&emu)
        .create_temporary_token(60, Some(30))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "config");
    let err = with_token
        .create_temporary_token(60, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "config", "a token cannot mint tokens");
}

#[tokio::test]
async fn audio_faster_than_real_time_is_closed_with_3007() {
    let (chunks, script) = bundled_sample();
    // The emulator's default tolerance: about 1 s ahead of the wall clock.
    let emu = emulator_with_script(script).await;
    let session = emulator_client(&emu)
        .connect(ConnectionParams::new())
        .await
        .unwrap();
    let (mut sink, mut events) = session.split();
    tokio::spawn(async move {
        for chunk in chunks {
            if sink.send(chunk).await.is_err() {
                break;
            }
        }
    });
    let mut last = None;
    while let Some(e) = events.next().await {
        last = Some(e);
    }
    let err = last.unwrap().unwrap_err();
    assert_eq!(err.code(), Some(3007), "{err:?}");
    assert!(
        err.to_string().contains("Audio Transmission Rate Exceeded"),
        "{err}"
    );
}
