//! The emulator's session behaviour with real speech: Begin, turns that follow the pauses in the
//! audio, words revealed over time, both formatting behaviours, Termination.

mod support;

use assemblyai_streaming::emulator::{Emulator, Formatting, Script};
use assemblyai_streaming::protocol::ServerMessage;
use support::emulator::*;

#[tokio::test]
async fn two_utterances_separated_by_a_pause_make_two_turns() {
    let (Some(a), Some(b)) = (
        speech("Hello there, my friend."),
        speech("How are you today?"),
    ) else {
        return;
    };
    let emu = Emulator::builder()
        .script(Script::from_texts([
            "Hello there, my friend.",
            "How are you today?",
        ]))
        .start()
        .await
        .unwrap();
    let audio = concat(&[&silence(300), &a, &silence(1500), &b, &silence(600)]);
    let ws = open_ws(&emu).await;
    let out = stream(ws, &audio).await;

    let ServerMessage::Begin(begin) = &out.messages[0] else {
        panic!("first message is not Begin: {:?}", out.messages[0]);
    };
    assert_eq!(begin.id.len(), 36);
    let config = begin.configuration.as_ref().unwrap();
    assert_eq!(config.model.as_deref(), Some("universal-streaming-english"));

    let finals = out.finals();
    assert_eq!(finals.len(), 2, "{:#?}", out.finals());
    assert_eq!(finals[0].turn_order, 0);
    assert_eq!(finals[1].turn_order, 1);
    // format_turns defaults to false: unformatted text.
    assert_eq!(finals[0].transcript, "hello there my friend");
    assert_eq!(finals[1].transcript, "how are you today");
    assert!(!finals[0].turn_is_formatted);
    // The first turn ends during the pause, before the second utterance starts.
    let a_end_ms = (300 + a.len() / 32) as i64;
    let last_word = finals[0].words.last().unwrap();
    assert!(
        last_word.end <= a_end_ms + 100,
        "{last_word:?} vs {a_end_ms}"
    );
    assert!(finals[1].words[0].start >= a_end_ms + 1000);

    // Partials came before each final, one per audio frame, with words turning final over time.
    let partials: Vec<_> = out
        .turns()
        .into_iter()
        .filter(|t| !t.end_of_turn && t.turn_order == 0)
        .collect();
    assert!(partials.len() > 10, "{}", partials.len());
    assert!(
        partials
            .iter()
            .any(|t| t.words.iter().any(|w| !w.word_is_final))
    );
    for t in &partials {
        let finalized: Vec<&str> = t
            .words
            .iter()
            .filter(|w| w.word_is_final)
            .map(|w| w.text.as_str())
            .collect();
        assert_eq!(t.transcript, finalized.join(" "));
    }

    let ServerMessage::Termination(term) = out.messages.last().unwrap() else {
        panic!("last message is not Termination: {:?}", out.messages.last());
    };
    let audio_secs = audio.len() as f64 / 32_000.0;
    assert!((term.audio_duration_seconds.unwrap() - audio_secs).abs() <= 1.0);
    assert_eq!(out.close_code(), Some(1000));
}

#[tokio::test]
async fn in_model_formatting_formats_every_turn() {
    let Some(a) = speech("Good morning, everyone.") else {
        return;
    };
    let emu = emulator_with_script(Script::from_texts(["Good morning, everyone."])).await;
    let ws = open_ws_with(&emu, "&format_turns=True").await;
    let out = stream(ws, &concat(&[&a, &silence(800)])).await;
    let turns = out.turns();
    assert!(!turns.is_empty());
    assert!(turns.iter().all(|t| t.turn_is_formatted));
    let finals = out.finals();
    assert_eq!(finals.len(), 1);
    assert_eq!(finals[0].transcript, "Good morning, everyone.");
    // The utterance comes once per turn: on the partial at the pause, and the end-of-turn Turn
    // after it has "" (as the service's own examples show).
    let utterances: Vec<&str> = turns
        .iter()
        .filter_map(|t| t.utterance.as_deref().filter(|u| !u.is_empty()))
        .collect();
    assert_eq!(utterances, ["Good morning, everyone."]);
    assert_eq!(finals[0].utterance.as_deref(), Some(""));
}

#[tokio::test]
async fn legacy_formatting_sends_a_second_formatted_turn() {
    let Some(a) = speech("Good morning, everyone.") else {
        return;
    };
    let emu = Emulator::builder()
        .script(Script::from_texts(["Good morning, everyone."]))
        .formatting(Formatting::Legacy)
        .start()
        .await
        .unwrap();
    let ws = open_ws_with(&emu, "&format_turns=true").await;
    let out = stream(ws, &concat(&[&a, &silence(800)])).await;
    let finals = out.finals();
    assert_eq!(finals.len(), 2, "{finals:#?}");
    assert_eq!(finals[0].turn_order, finals[1].turn_order);
    assert!(!finals[0].turn_is_formatted);
    assert_eq!(finals[0].transcript, "good morning everyone");
    let utterances: Vec<&str> = out
        .turns()
        .iter()
        .filter_map(|t| t.utterance.as_deref().filter(|u| !u.is_empty()))
        .collect();
    assert_eq!(utterances, ["Good morning everyone"]);
    assert_eq!(finals[0].utterance.as_deref(), Some(""));
    assert!(finals[1].turn_is_formatted);
    assert_eq!(finals[1].transcript, "Good morning, everyone.");
    assert_eq!(finals[1].utterance.as_deref(), Some(""));
    assert!(
        out.turns()
            .iter()
            .filter(|t| !t.end_of_turn)
            .all(|t| !t.turn_is_formatted)
    );
}

#[tokio::test]
async fn without_a_script_words_are_marked_placeholders() {
    let Some(a) = speech("Testing one two three.") else {
        return;
    };
    let emu = Emulator::builder().start().await.unwrap();
    let ws = open_ws(&emu).await;
    let out = stream(ws, &concat(&[&a, &silence(800)])).await;
    let finals = out.finals();
    assert_eq!(finals.len(), 1);
    assert!(!finals[0].words.is_empty());
    assert!(
        finals[0]
            .words
            .iter()
            .all(|w| w.text.starts_with("[word") && w.text.ends_with(']'))
    );
}

#[tokio::test]
async fn force_endpoint_ends_the_turn_at_once() {
    let Some(a) = speech("This sentence is cut short by the client.") else {
        return;
    };
    let emu = Emulator::builder()
        .script(Script::from_texts([
            "This sentence is cut short by the client.",
        ]))
        .start()
        .await
        .unwrap();
    let ws = open_ws(&emu).await;
    // ForceEndpoint one second in, while the speaker is still talking.
    let out = run(
        ws,
        &a,
        Plan {
            texts: vec![(20, r#"{"type":"ForceEndpoint"}"#.into())],
            terminate: true,
            ..Default::default()
        },
    )
    .await;
    let finals = out.finals();
    assert!(!finals.is_empty());
    assert!(
        finals[0].words.last().unwrap().end <= 1100,
        "{:?}",
        finals[0].words.last()
    );
    assert_eq!(out.close_code(), Some(1000));
}
