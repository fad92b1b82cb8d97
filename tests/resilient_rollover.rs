//! Rolling over before the session cap: hours of paced speech on a paused clock (see
//! `long_sessions.rs` for why loopback sockets and a paused clock work together), with
//! the service's 3-hour cap and with a temporary token's 60 s cap.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use assemblyai_streaming::emulator::{Emulator, EmulatorBuilder, EmulatorHandle, Script};
use assemblyai_streaming::resilient::ResilientSession;
use assemblyai_streaming::{ConnectionParams, StreamingClient};
use support::faults::client_for;
use support::resilient::*;

const HOUR: u64 = 3600;

fn script(turns: u64) -> Script {
    Script::from_texts((0..turns).map(|i| format!("Utterance number {i}.")))
}

/// An emulator whose `script` goes on across sessions, as one conversation would: a session
/// opened by a rollover says the next turn, not the first.
fn continuing(script: Script) -> EmulatorBuilder {
    Emulator::builder()
        .script(script)
        .script_across_sessions(true)
}

/// Every utterance exactly once, in order, numbered 0.. and at its time on the caller's clock.
fn assert_every_utterance_once(out: &Collected, utterances: u64, every: u64) {
    let starts: Vec<u64> = (0..utterances).map(|k| k * every + 1).collect();
    assert_utterances_at(out, &starts);
}

/// The finals are the script's utterances 0, 1, … once each, the k-th starting at second
/// `starts[k]` of the caller's audio.
fn assert_utterances_at(out: &Collected, starts: &[u64]) {
    out.assert_one_timeline();
    let want: Vec<String> = (0..starts.len())
        .map(|i| format!("Utterance number {i}."))
        .collect();
    assert_eq!(out.transcripts(), want);
    for (t, at) in out.finals().iter().zip(starts) {
        let at = *at as i64 * 1000;
        let first = t.words.first().unwrap().start;
        assert!(
            (first - at).abs() <= 300,
            "turn {} starts at {first} ms, spoken at {at} ms",
            t.turn_order
        );
    }
}

/// A resilient session on `emu` (8 kHz audio in 1 s frames, formatted turns, `params`) whose
/// every connection takes a fresh token capped at 60 s; returns it and the count of tokens
/// minted. Tokens come from a server-side key client; the session itself only sees tokens.
async fn with_60s_tokens(
    emu: &EmulatorHandle,
    params: ConnectionParams,
) -> (ResilientSession, Arc<AtomicUsize>) {
    let minter = client_for(emu).build().unwrap();
    let minted = Arc::new(AtomicUsize::new(0));
    let count = minted.clone();
    let params = params.sample_rate(8_000).format_turns(true);
    let session =
        ResilientSession::builder(StreamingClient::builder().base_url(emu.ws_url()), params)
            .frame_duration(Duration::from_secs(1))
            .token_provider(move || {
                let minter = minter.clone();
                let count = count.clone();
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    minter.create_temporary_token(600, Some(60)).await
                }
            })
            .connect()
            .await
            .unwrap();
    (session, minted)
}

#[tokio::test(start_paused = true)]
async fn seven_hours_roll_over_past_the_three_hour_cap_without_losing_a_turn() {
    let seconds = 7 * HOUR;
    let every = 60;
    let emu = continuing(script(seconds / every + 1))
        .start()
        .await
        .unwrap();
    let session = ResilientSession::builder(
        client_for(&emu),
        ConnectionParams::new()
            .sample_rate(8_000)
            .format_turns(true),
    )
    .frame_duration(Duration::from_secs(1))
    .connect()
    .await
    .unwrap();
    let (sink, events) = session.split();
    let feeder = feed_utterances(sink, seconds, every);
    let out = collect(events, Duration::from_secs(seconds + HOUR)).await;
    let utterances = feeder.await.unwrap();
    assert!(out.error.is_none() && out.terminated(), "{:?}", out.error);
    // Rolled over before 3 h and before 6 h; never reached the cap (no 3008, no reconnect).
    assert_eq!(out.rollovers(), 2);
    assert!(out.reconnects().is_empty(), "{:?}", out.reconnects());
    assert!(out.gaps().is_empty());
    assert_eq!(utterances, 420);
    assert_every_utterance_once(&out, utterances, every);
}

#[tokio::test(start_paused = true)]
async fn a_60_second_token_cap_rolls_over_every_minute_with_a_fresh_token_each_time() {
    let minutes = 10;
    let every = 7;
    let emu = continuing(script(minutes * 60 / every + 1))
        .start()
        .await
        .unwrap();
    let (session, minted) = with_60s_tokens(&emu, ConnectionParams::new()).await;
    let (sink, events) = session.split();
    let feeder = feed_utterances(sink, minutes * 60, every);
    let out = collect(events, Duration::from_secs(minutes * 60 + HOUR)).await;
    let utterances = feeder.await.unwrap();
    assert!(out.error.is_none() && out.terminated(), "{:?}", out.error);
    // A session lasts at most 60 s, so 10 minutes take at least 10 of them; each rollover
    // happens in the last quarter of a session's minute.
    let rollovers = out.rollovers();
    assert!((10..=13).contains(&rollovers), "{rollovers}");
    assert!(
        out.reconnects().is_empty(),
        "no session reached its cap: {:?}",
        out.reconnects()
    );
    assert_eq!(
        minted.load(Ordering::SeqCst),
        rollovers + 1,
        "one token per session"
    );
    assert_every_utterance_once(&out, utterances, every);
}

#[tokio::test(start_paused = true)]
async fn a_turn_still_spoken_at_the_deadline_is_carried_over_whole() {
    // 14 s of continuous speech from 44 s and from 89 s. The 60 s sessions' rollover windows
    // (from 45 s after each one opened: 45 s, then 90 s as the second was opened at 45 s) find
    // a turn in progress until their deadlines (56.25 s, 101.25 s), so each switch happens
    // mid-turn and the new session transcribes the turn from the replay.
    let (out, _) = speech_through_the_rollover_windows(ConnectionParams::new()).await;
    let texts = long_texts();
    assert!(out.error.is_none() && out.terminated(), "{:?}", out.error);
    assert!(out.rollovers() >= 2, "{}", out.rollovers());
    assert!(
        out.reconnects().is_empty() && out.gaps().is_empty(),
        "{out:#?}"
    );
    out.assert_one_timeline();
    assert_eq!(out.transcripts(), texts);
    // Each was interrupted by a switch and replayed: far more than a second was sent again.
    let replays: Vec<Duration> = out
        .events
        .iter()
        .filter_map(|e| match e {
            assemblyai_streaming::ResilientEvent::RolledOver { replayed, .. } => Some(*replayed),
            _ => None,
        })
        .collect();
    assert!(
        replays[0] >= Duration::from_secs(12) && replays[1] >= Duration::from_secs(11),
        "{replays:?}"
    );
    for (t, at) in out.finals().iter().zip([44_000, 89_000]) {
        let first = t.words[0].start;
        assert!(
            (first - at).abs() <= 300,
            "turn {} at {first} ms, spoken at {at} ms",
            t.turn_order
        );
    }
}

/// 150 s of audio with 14 s of continuous speech from 44 s and from 89 s, the [`long_texts`],
/// through [`with_60s_tokens`] with `params`: 60 s sessions whose rollover windows find a turn
/// in progress. Returns what the stream yielded and the count of tokens minted.
async fn speech_through_the_rollover_windows(params: ConnectionParams) -> (Collected, usize) {
    let emu = continuing(Script::from_texts(long_texts()))
        .start()
        .await
        .unwrap();
    let (session, minted) = with_60s_tokens(&emu, params).await;
    let (sink, events) = session.split();
    let speaking = |s: u64| (44..58).contains(&s) || (89..103).contains(&s);
    let feeder = feed_seconds(sink, 150, move |s| if speaking(s) { 1000 } else { 0 });
    let out = collect(events, Duration::from_secs(HOUR)).await;
    assert_eq!(feeder.await.unwrap(), 2, "utterances spoken");
    (out, minted.load(Ordering::SeqCst))
}

/// Two long utterances (about 15 s of words each), so that a 14 s stretch of speech is one turn.
fn long_texts() -> Vec<String> {
    (0..2)
        .map(|i| {
            let filler = vec!["extraordinarily"; 16].join(" ");
            format!("Utterance number {i}, {filler}.")
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_next_session_waits_for_the_switch_through_heartbeats_and_inactivity_timeouts() {
    // Speech over the rollover windows (as in the mid-turn test) keeps the session opened
    // ahead of the switch waiting, without audio, for 11 s. With session_heartbeat it sends
    // Heartbeats meanwhile (not a failure); with inactivity_timeout=5 the service would close it
    // after 5 s idle, so it is sent KeepAlive. Either way: one session (and one token) per
    // rollover, no reconnect.
    let variants = [
        (
            "session_heartbeat",
            ConnectionParams::new().session_heartbeat(true),
        ),
        (
            "inactivity_timeout",
            ConnectionParams::new().inactivity_timeout(5),
        ),
    ];
    for (name, params) in variants {
        let (out, minted) = speech_through_the_rollover_windows(params).await;
        let texts = long_texts();
        assert!(
            out.error.is_none() && out.terminated(),
            "{name}: {:?}",
            out.error
        );
        assert_eq!(out.rollovers(), 3, "{name}");
        assert!(
            out.reconnects().is_empty(),
            "{name}: {:?}",
            out.reconnects()
        );
        assert_eq!(minted, 4, "{name}: no session was opened twice");
        out.assert_one_timeline();
        assert_eq!(out.transcripts(), texts, "{name}");
        let heartbeats = out
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    assemblyai_streaming::ResilientEvent::Turn(
                        assemblyai_streaming::TurnEvent::Heartbeat(_)
                    )
                )
            })
            .count();
        assert_eq!(heartbeats > 0, name == "session_heartbeat", "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn at_the_concurrency_limit_the_rollover_switches_without_overlap() {
    // One session allowed at a time: the session opened ahead of the switch is refused with
    // 3009, so the switch happens at the deadline by closing the live session first; the
    // replay carries the audio of the moment between.
    let emu = continuing(script(30))
        .max_concurrent_sessions(1)
        .start()
        .await
        .unwrap();
    let (session, minted) = with_60s_tokens(&emu, ConnectionParams::new()).await;
    let (sink, events) = session.split();
    let feeder = feed_utterances(sink, 170, 7);
    let out = collect(events, Duration::from_secs(HOUR)).await;
    let utterances = feeder.await.unwrap();
    assert!(out.error.is_none() && out.terminated(), "{:?}", out.error);
    assert!(out.rollovers() >= 2, "{}", out.rollovers());
    assert!(out.reconnects().is_empty(), "{:?}", out.reconnects());
    assert!(out.gaps().is_empty());
    assert_every_utterance_once(&out, utterances, 7);
    // Each rollover first tried a session ahead of time (refused: one token each), then
    // opened one at the deadline.
    assert_eq!(
        minted.load(Ordering::SeqCst),
        1 + 2 * out.rollovers(),
        "{} rollovers",
        out.rollovers()
    );
}
