//! Dual-channel sessions: one session per channel, events tagged with their channel and merged
//! in audio-time order; a stereo call whose channels say different scripted sentences.
#![cfg(feature = "wav")]

mod support;

use std::time::Duration;

use assemblyai_streaming::channels::{ChannelEvent, MergedChannels};
use assemblyai_streaming::emulator::Script;
use assemblyai_streaming::protocol::Turn;
use assemblyai_streaming::{ConnectionParams, Result, TurnEvent};
use futures::{Stream, StreamExt};
use serde_json::json;
use support::emulator::{emulator_client, fast_emulator, sessions_drained, stereo_call};

fn final_at(turn_order: u64, start_ms: i64, text: &str) -> TurnEvent {
    let turn: Turn = serde_json::from_value(json!({
        "turn_order": turn_order, "turn_is_formatted": true, "end_of_turn": true,
        "transcript": text,
        "words": [{"text": text, "start": start_ms, "end": start_ms + 400, "confidence": 1.0, "word_is_final": true}]
    }))
    .unwrap();
    TurnEvent::Final(turn)
}

/// A channel's events, each after `delay_ms` of wall time, then the end.
fn timed(events: Vec<(u64, TurnEvent)>) -> impl Stream<Item = Result<TurnEvent>> + Send + 'static {
    futures::stream::iter(events).then(|(delay_ms, e)| async move {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        Ok(e)
    })
}

fn summary(events: &[ChannelEvent]) -> Vec<(u16, String)> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Ok(TurnEvent::Final(t)) => Some((e.channel, t.transcript.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn events_are_merged_by_audio_time_not_arrival_time() {
    // Channel 1's turn was spoken first (1 s) but its final arrives later (wall clock).
    let ch0 = timed(vec![
        (0, final_at(0, 5_000, "second")),
        (300, final_at(1, 9_000, "fourth")),
    ]);
    let ch1 = timed(vec![
        (200, final_at(0, 1_000, "first")),
        (400, final_at(1, 7_000, "third")),
    ]);
    let merged: Vec<ChannelEvent> = MergedChannels::new([ch0.boxed(), ch1.boxed()])
        .collect()
        .await;
    assert_eq!(
        summary(&merged),
        vec![
            (1, "first".into()),
            (0, "second".into()),
            (1, "third".into()),
            (0, "fourth".into())
        ]
    );
    let times: Vec<i64> = merged.iter().map(|e| e.audio_ms).collect();
    assert_eq!(times, vec![1_000, 5_000, 7_000, 9_000]);
}

#[tokio::test(start_paused = true)]
async fn a_silent_channel_holds_events_no_longer_than_max_hold() {
    let ch0 = timed(vec![(0, final_at(0, 500, "hello"))]).boxed();
    // A channel with nothing to say, and no end (a live listener).
    let ch1 = futures::stream::pending::<Result<TurnEvent>>().boxed();
    let mut merged = MergedChannels::new([ch0, ch1]).max_hold(Duration::from_millis(700));
    let started = tokio::time::Instant::now();
    let first = merged.next().await.unwrap();
    assert_eq!(first.channel, 0);
    assert_eq!(started.elapsed(), Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn one_channel_keeps_its_own_order_and_errors_are_tagged() {
    let ch0 = futures::stream::iter(vec![
        Ok(final_at(0, 3_000, "a")),
        Err(assemblyai_streaming::Error::audio("bad")),
        Ok(final_at(1, 2_000, "b")), // an earlier time later in the stream stays behind "a"
    ]);
    let merged: Vec<ChannelEvent> = MergedChannels::new([ch0]).collect().await;
    assert_eq!(merged.len(), 3);
    assert!(merged[1].event.is_err());
    assert_eq!(summary(&merged), vec![(0, "a".into()), (0, "b".into())]);
}

#[tokio::test]
async fn a_stereo_call_gives_each_channel_its_own_session_and_transcript() {
    let path = stereo_call();
    let left_text = "Hello, and welcome to the live translation demo.";
    let right_text = "Today we are testing real-time speech recognition.";
    // Each channel's "speech recognition" is its own emulator, scripted with what it says.
    let left = fast_emulator(Script::from_texts([left_text])).await;
    let right = fast_emulator(Script::from_texts([right_text])).await;
    let params = ConnectionParams::new().format_turns(true);
    let mut streams = Vec::new();
    for (channel, emu) in [(0u16, &left), (1, &right)] {
        let session = emulator_client(emu).connect(params.clone()).await.unwrap();
        let audio = assemblyai_streaming::audio::open_wav(&path, 16_000)
            .unwrap()
            .only_channel(channel)
            .unwrap();
        streams.push(session.stream_audio(futures::stream::iter(audio)));
    }
    let merged: Vec<ChannelEvent> = MergedChannels::new(streams).collect().await;
    assert_eq!(
        summary(&merged),
        vec![(0, left_text.to_owned()), (1, right_text.to_owned())]
    );
    assert!(merged.iter().all(|e| e.event.is_ok()));
    let begins = merged
        .iter()
        .take(2)
        .filter(|e| matches!(e.event, Ok(TurnEvent::Begin(_))));
    assert_eq!(begins.count(), 2, "both sessions begin first");
    let terminations = merged
        .iter()
        .filter(|e| matches!(e.event, Ok(TurnEvent::Termination(_))))
        .count();
    assert_eq!(terminations, 2);
    // Audio time never goes backwards across the merged finals.
    let final_times: Vec<i64> = merged
        .iter()
        .filter(|e| matches!(e.event, Ok(TurnEvent::Final(_))))
        .map(|e| e.audio_ms)
        .collect();
    assert!(
        final_times[0] < 3_100 && final_times[1] >= 4_000,
        "{final_times:?}"
    );
    assert_eq!(
        sessions_drained(&left).await + sessions_drained(&right).await,
        0
    );
}

#[tokio::test]
async fn from_wav_opens_one_session_per_channel() {
    let path = stereo_call();
    let emu = fast_emulator(Script::default()).await;
    let client = emulator_client(&emu);
    let merged: Vec<ChannelEvent> = MergedChannels::from_wav(
        &client,
        ConnectionParams::new().format_turns(true),
        &path,
        false,
    )
    .await
    .unwrap()
    .collect()
    .await;
    let finals: Vec<(u16, i64)> = merged
        .iter()
        .filter(|e| matches!(e.event, Ok(TurnEvent::Final(_))))
        .map(|e| (e.channel, e.audio_ms))
        .collect();
    assert_eq!(finals.len(), 2, "{finals:?}");
    assert_eq!(finals[0].0, 0);
    assert_eq!(finals[1].0, 1);
    assert_eq!(sessions_drained(&emu).await, 0);
    let missing =
        MergedChannels::from_wav(&client, ConnectionParams::new(), "/no/such.wav", false).await;
    assert_eq!(missing.unwrap_err().kind(), "io");
}
