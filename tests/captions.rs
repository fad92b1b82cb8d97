//! The transcript accumulator and its caption export: finals in `turn_order` with their
//! translations joined (also those that arrive after `Termination`), WebVTT and SRT from the
//! word timings; and the JSON shapes of session events and translations a service sends on.

mod support;

use std::time::Duration;

use assemblyai_streaming::TurnEvent;
use assemblyai_streaming::captions::{MAX_CUE_DURATION, MAX_LINE_CHARS, Transcript};
use assemblyai_streaming::protocol::Turn;
use assemblyai_streaming::translate::{TranslateExt, TranslatedEvent, translator_fn};
use futures::StreamExt;
use serde_json::json;
use support::emulator::{bundled_sample, emulator_lemur, fast_emulator, formatted_session};

/// A final turn whose words are `(text, start_ms, end_ms)`.
fn final_turn(turn_order: u64, words: &[(&str, i64, i64)]) -> TurnEvent {
    let transcript = words.iter().map(|w| w.0).collect::<Vec<_>>().join(" ");
    let words: Vec<_> = words
        .iter()
        .map(|(text, start, end)| {
            json!({"text": text, "start": start, "end": end, "confidence": 0.9, "word_is_final": true})
        })
        .collect();
    let turn: Turn = serde_json::from_value(json!({
        "turn_order": turn_order, "turn_is_formatted": true, "end_of_turn": true,
        "transcript": transcript, "words": words
    }))
    .unwrap();
    TurnEvent::Final(turn)
}

/// A translation as `translate_finals` yields it (built through its JSON-free public path).
async fn translation(turn_order: u64, text: &str, lang: &str) -> TranslatedEvent {
    let source = final_turn(turn_order, &[("x", 0, 1)]);
    let text = text.to_owned();
    let mut stream = futures::stream::iter([Ok(source)]).translated(
        translator_fn(move |_, _| {
            let t = text.clone();
            async move { Ok(t) }
        }),
        lang,
    );
    while let Some(item) = stream.next().await {
        if let Ok(t @ TranslatedEvent::Translation(_)) = item {
            return t;
        }
    }
    unreachable!("one translation per final")
}

#[tokio::test]
async fn finals_are_kept_in_turn_order_with_translations_joined_whenever_they_come() {
    let mut transcript = Transcript::new();
    // A translation before its final, finals out of order, a translation after the end.
    transcript.push(&translation(1, "Segundo.", "es").await);
    transcript.push_event(&final_turn(1, &[("Second.", 2000, 2500)]));
    transcript.push_event(&final_turn(0, &[("First.", 100, 600)]));
    assert!(!transcript.push_event(&TurnEvent::Unknown(json!({"type": "Termination"}))));
    transcript.push(&translation(0, "Primero.", "Spanish").await);
    transcript.push(&translation(0, "Premier.", "fr").await);

    let got: Vec<(u64, &str, Option<&str>, Option<&str>)> = transcript
        .captions()
        .map(|c| {
            (
                c.turn.turn_order,
                c.turn.transcript.as_str(),
                c.translation("es"),
                c.translation("French"),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "First.", Some("Primero."), Some("Premier.")),
            (1, "Second.", Some("Segundo."), None),
        ]
    );
    // A repeated final (a replayed turn) replaces the text and keeps the translations.
    transcript.push_event(&final_turn(
        1,
        &[("Second", 2000, 2300), ("again.", 2300, 2500)],
    ));
    assert_eq!(transcript.len(), 2);
    assert_eq!(
        transcript.get(1).unwrap().translation("es"),
        Some("Segundo.")
    );
}

#[test]
fn webvtt_and_srt_from_word_timings() {
    let mut transcript = Transcript::new();
    transcript.push_event(&final_turn(
        0,
        &[("Tom", 300, 500), ("&", 500, 600), ("<Jerry>", 600, 1200)],
    ));
    transcript.push_event(&final_turn(1, &[("Bye.", 3_723_004, 3_723_500)]));
    assert_eq!(
        transcript.to_webvtt(None),
        "WEBVTT\n\n\
         1\n00:00:00.300 --> 00:00:01.200\nTom &amp; &lt;Jerry&gt;\n\n\
         2\n01:02:03.004 --> 01:02:03.500\nBye.\n\n"
    );
    assert_eq!(
        transcript.to_srt(None),
        "1\n00:00:00,300 --> 00:00:01,200\nTom & <Jerry>\n\n\
         2\n01:02:03,004 --> 01:02:03,500\nBye.\n\n"
    );
}

#[test]
fn long_turns_are_cut_into_cues_of_two_short_lines_and_at_most_seven_seconds() {
    // 40 words of 5–9 characters, 400 ms each: 16 s of speech in one turn.
    let texts: Vec<String> = (0..40)
        .map(|i| format!("word{}", "x".repeat(i % 5)))
        .collect();
    let words: Vec<(&str, i64, i64)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i as i64 * 400, i as i64 * 400 + 350))
        .collect();
    let mut transcript = Transcript::new();
    transcript.push_event(&final_turn(0, &words));
    let cues = transcript.cues(None);
    assert!(cues.len() >= 3, "{cues:?}");
    for cue in &cues {
        assert!(cue.lines.len() <= 2, "{cue:?}");
        assert!(
            cue.lines
                .iter()
                .all(|l| l.chars().count() <= MAX_LINE_CHARS),
            "{cue:?}"
        );
        assert!(
            cue.end_ms - cue.start_ms <= MAX_CUE_DURATION.as_millis() as i64,
            "{cue:?}"
        );
    }
    // Nothing lost, nothing repeated, in order, cues back to back without overlap.
    let all: Vec<String> = cues
        .iter()
        .flat_map(|c| {
            c.lines
                .join(" ")
                .split(' ')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(all, texts);
    assert!(cues.windows(2).all(|w| w[0].end_ms <= w[1].start_ms));
}

#[tokio::test]
async fn a_translation_track_spans_each_turn_and_leaves_out_missing_translations() {
    let mut transcript = Transcript::new();
    transcript.push_event(&final_turn(0, &[("Hello", 100, 400), ("there.", 450, 900)]));
    transcript.push_event(&final_turn(1, &[("Untranslated.", 1000, 1500)]));
    transcript.push(
        &translation(
            0,
            "Hola a todos, esta es una frase bastante larga para una línea.",
            "es",
        )
        .await,
    );
    assert_eq!(
        transcript.to_webvtt(Some("es")),
        "WEBVTT\n\n1\n00:00:00.100 --> 00:00:00.900\n\
         Hola a todos, esta es una frase bastante\nlarga para una línea.\n\n"
    );
    assert_eq!(transcript.to_srt(Some("de")), "");
}

#[test]
fn speakers_become_webvtt_voice_spans() {
    let mut turn = match final_turn(0, &[("Hi.", 0, 300)]) {
        TurnEvent::Final(t) => t,
        _ => unreachable!(),
    };
    turn.speaker_label = Some("B".into());
    let mut transcript = Transcript::new();
    transcript.push_event(&TurnEvent::Final(turn));
    assert!(transcript.to_webvtt(None).contains("\n<v B>Hi.\n"));
}

#[tokio::test]
async fn the_spoken_sample_with_slow_translations_exports_every_caption() {
    let (chunks, script) = bundled_sample();
    let emu = fast_emulator(script.clone()).await;
    let session = formatted_session(&emu).await;
    let lemur = emulator_lemur(&emu);
    // Translations slower than the session: the last ones come after Termination.
    let slow = translator_fn(move |text, lang| {
        let lemur = lemur.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            lemur.translate(&text, &lang).await
        }
    });
    let mut events = session
        .stream_audio(futures::stream::iter(chunks))
        .translated(slow, "es");
    let mut transcript = Transcript::new();
    let (mut terminated, mut translations_after_termination) = (false, 0);
    while let Some(item) = events.next().await {
        let item = item.unwrap();
        match &item {
            TranslatedEvent::Event(TurnEvent::Termination(_)) => terminated = true,
            TranslatedEvent::Translation(_) if terminated => translations_after_termination += 1,
            _ => {}
        }
        transcript.push(&item);
    }
    assert!(
        translations_after_termination > 0,
        "the test must cover late translations"
    );
    let got: Vec<(String, Option<String>)> = transcript
        .captions()
        .map(|c| {
            (
                c.turn.transcript.clone(),
                c.translation("es").map(str::to_owned),
            )
        })
        .collect();
    let want: Vec<(String, Option<String>)> = script
        .turns
        .iter()
        .map(|t| (t.text.clone(), Some(t.translations["es"].clone())))
        .collect();
    assert_eq!(got, want);
    let vtt = transcript.to_webvtt(None);
    assert!(vtt.starts_with("WEBVTT\n\n1\n00:00:00."), "{vtt}");
    assert_eq!(transcript.cues(Some("es")).len(), 3);
}

#[test]
fn session_events_and_translations_serialize_for_a_service() {
    let event = final_turn(2, &[("Hi.", 0, 300)]);
    let value = serde_json::to_value(&event).unwrap();
    assert_eq!(value["event"], "final");
    assert_eq!(value["data"]["turn_order"], 2);
    assert_eq!(value["data"]["transcript"], "Hi.");
    let unknown = serde_json::to_value(TurnEvent::Unknown(json!({"type": "New"}))).unwrap();
    assert_eq!(
        unknown,
        json!({"event": "unknown", "data": {"type": "New"}})
    );
    let wrapped = serde_json::to_value(TranslatedEvent::Event(event)).unwrap();
    assert_eq!(
        wrapped, value,
        "a passed-through event serializes as itself"
    );
}

#[tokio::test]
async fn a_translation_serializes_with_its_turn_and_language() {
    let value = serde_json::to_value(translation(4, "Hola.", "es").await).unwrap();
    assert_eq!(value["turn_order"], 4);
    assert_eq!(value["text"], "Hola.");
    assert_eq!(value["lang"], "es");
}
