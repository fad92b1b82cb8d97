//! `StreamingSession::stream_audio`: one call pumps audio into a session, ends it when the
//! audio ends, reports a failing source without losing turns, and leaves nothing running when
//! its events are dropped. Also `audio::paced` as an `Unpin` stream.

mod support;

use std::time::Duration;

use assemblyai_streaming::audio::paced;
use assemblyai_streaming::{AudioChunk, Encoding, Error, TurnEvent};
use futures::{SinkExt, StreamExt};
use support::emulator::{bundled_sample, fast_emulator, formatted_session, sessions_drained};

fn finals(events: &[TurnEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            TurnEvent::Final(t) => Some(t.transcript.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_audio_ending_terminates_the_session_and_every_turn_arrives() {
    let (chunks, script) = bundled_sample();
    let emu = fast_emulator(script.clone()).await;
    let session = formatted_session(&emu).await;
    let events: Vec<TurnEvent> = session
        .stream_audio(futures::stream::iter(chunks))
        .map(Result::unwrap)
        .collect()
        .await;
    let want: Vec<String> = script.turns.iter().map(|t| t.text.clone()).collect();
    assert_eq!(finals(&events), want);
    assert!(matches!(events.first(), Some(TurnEvent::Begin(_))));
    assert!(matches!(events.last(), Some(TurnEvent::Termination(_))));
    assert_eq!(sessions_drained(&emu).await, 0);
}

#[tokio::test]
async fn a_failing_audio_source_is_reported_once_and_the_turns_so_far_still_arrive() {
    let (chunks, script) = bundled_sample();
    let emu = fast_emulator(script.clone()).await;
    let session = formatted_session(&emu).await;
    // 3.8 s: the first sentence and part of its pause, then the source fails.
    let audio = futures::stream::iter(chunks)
        .take(38)
        .map(Ok)
        .chain(futures::stream::iter([Err(Error::audio(
            "microphone unplugged",
        ))]));
    let items: Vec<_> = session.stream_audio(audio).collect().await;
    let errors: Vec<String> = items
        .iter()
        .filter_map(|i| i.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("microphone unplugged"));
    let events: Vec<TurnEvent> = items.into_iter().filter_map(Result::ok).collect();
    assert_eq!(finals(&events), vec![script.turns[0].text.clone()]);
    assert!(matches!(events.last(), Some(TurnEvent::Termination(_))));
    assert_eq!(sessions_drained(&emu).await, 0);
}

#[tokio::test]
async fn dropping_the_events_stops_the_pump_and_ends_the_session() {
    let (chunks, script) = bundled_sample();
    let emu = fast_emulator(script).await;
    let session = formatted_session(&emu).await;
    // A source that never ends (a microphone): some audio, then nothing, forever.
    let audio =
        futures::stream::iter(chunks.into_iter().take(20)).chain(futures::stream::pending());
    let mut events = session.stream_audio(audio);
    assert!(matches!(events.next().await, Some(Ok(TurnEvent::Begin(_)))));
    assert_eq!(emu.active_sessions(), 1);
    drop(events);
    assert_eq!(
        sessions_drained(&emu).await,
        0,
        "the session outlived its events"
    );
}

#[tokio::test]
async fn a_session_that_ends_first_stops_the_pump() {
    let (chunks, script) = bundled_sample();
    let emu = fast_emulator(script).await;
    let mut session = formatted_session(&emu).await;
    let handle = session.handle();
    session.send(chunks[0].clone()).await.unwrap();
    // The service ends the session while the source still has audio (and more to come).
    let audio = futures::stream::iter(chunks).chain(futures::stream::pending());
    let mut events = session.stream_audio(audio);
    tokio::spawn(async move { handle.terminate().await });
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(item) = events.next().await {
            if matches!(item, Ok(TurnEvent::Termination(_))) {
                return true;
            }
        }
        false
    })
    .await
    .expect("the events end");
    assert!(ended);
    assert_eq!(sessions_drained(&emu).await, 0);
}

#[tokio::test(start_paused = true)]
async fn paced_is_unpin_so_send_all_takes_it_by_reference() {
    fn unpin<T: Unpin + Send>(_: &T) {}
    let chunks = vec![AudioChunk::from_pcm16(&[0; 1600]); 5];
    let mut audio = paced(chunks, 16_000, Encoding::PcmS16le).map(Ok::<_, Error>);
    unpin(&audio);
    let mut sink = futures::sink::drain().sink_map_err(|_| Error::SessionClosed);
    let started = tokio::time::Instant::now();
    sink.send_all(&mut audio).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(400));
}
