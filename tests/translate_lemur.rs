//! The pipeline end to end: `translate_finals` with a real `Lemur` talking HTTP to the
//! emulator's Gateway route.

mod support;

use std::time::Duration;

use assemblyai_streaming::emulator::{Emulator, LlmOptions, Script, ScriptTurn};
use assemblyai_streaming::protocol::Turn;
use assemblyai_streaming::translate::{TranslateOptions, TranslatedEvent, translate_finals};
use assemblyai_streaming::{Result, TurnEvent};
use futures::StreamExt;
use support::emulator::emulator_lemur;

fn final_turn(order: u64, text: &str) -> Result<TurnEvent> {
    let turn: Turn = serde_json::from_value(serde_json::json!({
        "turn_order": order, "turn_is_formatted": true, "end_of_turn": true,
        "transcript": text, "end_of_turn_confidence": 0.9, "words": []
    }))
    .expect("valid turn");
    Ok(TurnEvent::Final(turn))
}

#[tokio::test]
async fn finals_are_followed_by_their_scripted_translations_in_order() {
    let turn = |text: &str, es: &str| ScriptTurn {
        text: text.into(),
        translations: [("es".to_owned(), es.to_owned())].into(),
        ..Default::default()
    };
    let emu = Emulator::builder()
        .script(Script {
            turns: vec![
                turn("Good morning.", "Buenos días."),
                turn("Thank you.", "Gracias."),
            ],
        })
        .llm(LlmOptions {
            latency: Duration::from_millis(50),
            ..Default::default()
        })
        .start()
        .await
        .unwrap();
    let lemur = emulator_lemur(&emu);
    let session = futures::stream::iter([
        final_turn(0, "Good morning."),
        final_turn(1, "Thank you."),
        final_turn(2, "Unscripted words."),
    ]);
    let translations: Vec<(u64, String)> =
        translate_finals(session, lemur, "Spanish", TranslateOptions::default())
            .filter_map(|item| async move {
                match item.expect("no failures") {
                    TranslatedEvent::Translation(t) => Some((t.turn_order, t.text)),
                    _ => None,
                }
            })
            .collect()
            .await;
    assert_eq!(
        translations,
        vec![
            (0, "Buenos días.".to_owned()),
            (1, "Gracias.".to_owned()),
            (2, "[es] Unscripted words.".to_owned()),
        ]
    );
}
