//! Property tests: the server-message decoder never panics and always answers with either a
//! message or a typed error, whatever the bytes.

use assemblyai_streaming::protocol::{DecodeError, ServerMessage};
use proptest::prelude::*;
use serde_json::{Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("turn_order".to_string()),
                    Just("words".to_string()),
                    Just("transcript".to_string()),
                    Just("error".to_string()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const TYPES: &[&str] = &[
    "Begin",
    "Turn",
    "SpeechStarted",
    "Termination",
    "Error",
    "Warning",
    "Heartbeat",
    "Silence",
    "SpeakerRevision",
    "LLMGatewayResponse",
    "Other",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = ServerMessage::from_json(&text);
    }

    #[test]
    fn arbitrary_json_is_a_message_or_a_typed_error(value in arb_json()) {
        let _ = ServerMessage::from_json(&value.to_string());
    }

    #[test]
    fn known_types_with_wrong_field_types_are_typed_errors(
        kind in prop::sample::select(TYPES),
        fields in prop::collection::btree_map("[a-z_]{1,24}", arb_json(), 0..10),
        turn_order in arb_json(),
        words in arb_json(),
    ) {
        let mut obj: serde_json::Map<String, Value> = fields.into_iter().collect();
        obj.insert("type".into(), json!(kind));
        obj.insert("turn_order".into(), turn_order);
        obj.insert("words".into(), words);
        match ServerMessage::from_json(&Value::Object(obj).to_string()) {
            Ok(msg) => prop_assert!(msg.type_name().is_some()),
            Err(DecodeError::Json(_)) | Err(DecodeError::NotAMessage) => {}
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn truncated_real_messages_are_typed_errors(cut in 0usize..200) {
        let text = r#"{"type":"Turn","turn_order":0,"turn_is_formatted":false,"end_of_turn":false,"transcript":"hi","end_of_turn_confidence":0.1,"words":[{"start":1,"end":2,"text":"hi","confidence":0.9,"word_is_final":true}],"utterance":""}"#;
        let cut = cut.min(text.len() - 1);
        prop_assert!(ServerMessage::from_json(&text[..cut]).is_err());
    }
}

#[test]
fn deep_nesting_is_rejected_without_overflowing_the_stack() {
    let depth = 100_000;
    let text = format!(
        r#"{{"type":"Unknownish","x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert!(matches!(
        ServerMessage::from_json(&text),
        Err(DecodeError::Json(_))
    ));
}

#[test]
fn a_huge_words_array_decodes() {
    let word = r#"{"start":1,"end":2,"text":"w","confidence":0.5,"word_is_final":true}"#;
    let words = vec![word; 100_000].join(",");
    let text = format!(
        r#"{{"type":"Turn","turn_order":1,"turn_is_formatted":false,"end_of_turn":true,"transcript":"","end_of_turn_confidence":1,"words":[{words}]}}"#
    );
    let ServerMessage::Turn(turn) = ServerMessage::from_json(&text).unwrap() else {
        panic!("not a turn")
    };
    assert_eq!(turn.words.len(), 100_000);
}

#[test]
fn oversized_frames_are_refused_before_parsing() {
    let text = " ".repeat(assemblyai_streaming::protocol::MAX_SERVER_FRAME_BYTES + 1);
    assert!(matches!(
        ServerMessage::from_json(&text),
        Err(DecodeError::TooLarge(_))
    ));
}

#[test]
fn every_shared_fixture_decodes() {
    // The protocol fixtures live in ../shared (CI has them); they are not copied here.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/spec/fixtures/streaming_v3_messages.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing under CI",
            path.display()
        );
        println!(
            "notice: {} not found; skipping the shared fixture check",
            path.display()
        );
        return;
    };
    let mut kinds = std::collections::BTreeMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let msg = ServerMessage::from_json(line)
            .unwrap_or_else(|e| panic!("line {}: {e}: {line}", i + 1));
        assert!(
            !matches!(msg, ServerMessage::Unknown(_)),
            "line {} decoded as Unknown",
            i + 1
        );
        *kinds
            .entry(msg.type_name().unwrap_or("(untyped error)").to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(kinds.values().sum::<i32>(), 53, "{kinds:?}");
}
