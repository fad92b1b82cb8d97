//! Optional behaviours driven by connection parameters: language detection, speaker labels,
//! heartbeats, silence acknowledgements, LLM Gateway responses, Universal-3 turns and live
//! configuration changes.

mod emulator_support;

use assemblyai_streaming::emulator::{Emulator, Script, ScriptTurn};
use assemblyai_streaming::protocol::ServerMessage;
use emulator_support::*;

fn spanish_script() -> Script {
    let mut turn = ScriptTurn {
        text: "Good morning, everyone.".into(),
        language_code: Some("en".into()),
        speaker: Some("B".into()),
        ..Default::default()
    };
    turn.translations
        .insert("es".into(), "Buenos días a todos.".into());
    Script { turns: vec![turn] }
}

#[tokio::test]
async fn language_and_speaker_fields_on_final_turns() {
    let Some(a) = speech("Good morning, everyone.") else {
        return;
    };
    let emu = Emulator::builder()
        .script(spanish_script())
        .start()
        .await
        .unwrap();
    let ws = connect(
        &emu.ws_url(),
        &format!("{Q}&language_detection=true&speaker_labels=TRUE"),
        Auth::Header(emu.api_key()),
    )
    .await;
    let out = stream(ws, &concat(&[&a, &silence(800)])).await;
    let finals = out.finals();
    assert_eq!(finals.len(), 1);
    assert_eq!(finals[0].language_code.as_deref(), Some("en"));
    assert!(finals[0].language_confidence.is_some());
    assert_eq!(finals[0].speaker_label.as_deref(), Some("B"));
    assert!(
        finals[0]
            .words
            .iter()
            .all(|w| w.speaker.as_deref() == Some("B"))
    );
    // Diarization sends a last SpeakerRevision just before Termination.
    let n = out.messages.len();
    assert!(
        matches!(out.messages[n - 2], ServerMessage::SpeakerRevision(_)),
        "{:?}",
        out.messages[n - 2]
    );
    assert!(matches!(out.messages[n - 1], ServerMessage::Termination(_)));
    // Partials carry no language until the utterance is complete, and no turn-level speaker.
    let partials: Vec<_> = out.turns().into_iter().filter(|t| !t.end_of_turn).collect();
    assert!(partials.iter().all(|t| t.speaker_label.is_none()));
    assert!(
        partials
            .iter()
            .filter(|t| t.utterance.as_deref() == Some(""))
            .all(|t| t.language_code.is_none())
    );
}

#[tokio::test]
async fn llm_gateway_answers_each_final_turn() {
    let Some(a) = speech("Good morning, everyone.") else {
        return;
    };
    let emu = Emulator::builder()
        .script(spanish_script())
        .start()
        .await
        .unwrap();
    let gateway = serde_json::json!({
        "model": "claude-sonnet-4-20250514",
        "messages": [{"role": "user", "content": "Translate into Spanish: {{turn}}"}],
        "max_tokens": 200
    });
    let query = format!(
        "{Q}&format_turns=true&llm_gateway={}",
        urlencode(&gateway.to_string())
    );
    let ws = connect(&emu.ws_url(), &query, Auth::Header(emu.api_key())).await;
    let out = stream(ws, &concat(&[&a, &silence(800)])).await;
    let responses: Vec<_> = out
        .messages
        .iter()
        .filter_map(|m| match m {
            ServerMessage::LlmGatewayResponse(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(responses.len(), 1, "{out:?}");
    assert_eq!(responses[0].turn_order, 0);
    assert_eq!(responses[0].transcript, "Good morning, everyone.");
    assert_eq!(responses[0].content(), Some("Buenos días a todos."));
    assert_eq!(
        responses[0].data["usage"]["total_tokens"]
            .as_u64()
            .map(|n| n > 0),
        Some(true)
    );

    // A language the script has no translation for is marked, never faked.
    let gateway = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "Translate into German: {{turn}}"}]});
    let query = format!(
        "{Q}&format_turns=true&llm_gateway={}",
        urlencode(&gateway.to_string())
    );
    let ws = connect(&emu.ws_url(), &query, Auth::Header(emu.api_key())).await;
    let out = stream(ws, &concat(&[&a, &silence(800)])).await;
    let content = out.messages.iter().find_map(|m| match m {
        ServerMessage::LlmGatewayResponse(r) => r.content().map(str::to_string),
        _ => None,
    });
    assert_eq!(content.as_deref(), Some("[de] Good morning, everyone."));
}

#[tokio::test]
async fn heartbeats_and_silence_acknowledgements() {
    let emu = Emulator::builder().start().await.unwrap();
    let ws = connect(
        &emu.ws_url(),
        &format!("{Q}&session_heartbeat=true&acknowledge_silence=true"),
        Auth::Header(emu.api_key()),
    )
    .await;
    let out = stream(ws, &noise(3500)).await;
    let heartbeats: Vec<_> = out
        .messages
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Heartbeat(h) => Some(h),
            _ => None,
        })
        .collect();
    assert!(heartbeats.len() >= 2, "{out:?}");
    let last = heartbeats.last().unwrap();
    assert!(last.total_audio_received_ms > 1000);
    assert!(
        last.realtime_factor > 0.5 && last.realtime_factor < 1.5,
        "{last:?}"
    );
    let silences: Vec<_> = out
        .messages
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Silence(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(silences.len() >= 3, "{out:?}");
    assert_eq!(silences[0].start_ms, 0);
    assert!(silences.windows(2).all(|w| w[0].end_ms == w[1].start_ms));
    assert_eq!(out.count("Turn"), 0, "a quiet noise floor is not speech");
}

#[tokio::test]
async fn universal_3_pro_sends_speech_started_and_sparse_partials() {
    let Some(a) = speech("My name is Sonny.") else {
        return;
    };
    let emu = Emulator::builder()
        .script(Script::from_texts(["My name is Sonny."]))
        .start()
        .await
        .unwrap();
    let ws = connect(
        &emu.ws_url(),
        "speech_model=u3-rt-pro&sample_rate=16000",
        Auth::Header(emu.api_key()),
    )
    .await;
    let out = stream(ws, &concat(&[&silence(500), &a, &silence(1200)])).await;
    let types: Vec<_> = out.messages.iter().filter_map(|m| m.type_name()).collect();
    let started = types
        .iter()
        .position(|t| *t == "SpeechStarted")
        .expect("SpeechStarted");
    let first_turn = types.iter().position(|t| *t == "Turn").unwrap();
    assert!(started < first_turn, "{types:?}");
    let ServerMessage::SpeechStarted(s) = &out.messages[started] else {
        panic!()
    };
    assert!((400..=700).contains(&s.timestamp), "{s:?}");
    let turns = out.turns();
    let partials: Vec<_> = turns.iter().filter(|t| !t.end_of_turn).collect();
    assert!(
        (1..=3).contains(&partials.len()),
        "U3 partials are sparse: {}",
        partials.len()
    );
    assert!(
        partials
            .iter()
            .all(|t| !t.turn_is_formatted && t.transcript.ends_with('—'))
    );
    let finals = out.finals();
    assert_eq!(finals.len(), 1);
    assert!(finals[0].turn_is_formatted);
    assert_eq!(finals[0].transcript, "My name is Sonny.");
    assert_eq!(finals[0].end_of_turn_confidence, 1.0);
}

#[tokio::test]
async fn update_configuration_changes_turn_detection_live() {
    let (Some(a), Some(b)) = (speech("First part."), speech("Second part.")) else {
        return;
    };
    let emu = Emulator::builder()
        .script(Script::from_texts(["First part.", "Second part."]))
        .start()
        .await
        .unwrap();
    // A 700 ms pause is not enough with max_turn_silence=5000 and an impossible confidence
    // threshold ... until UpdateConfiguration lowers max_turn_silence to 300 ms.
    let audio = concat(&[&a, &silence(700), &b, &silence(700)]);
    let query = format!("{Q}&end_of_turn_confidence_threshold=1&max_turn_silence=5000");
    let ws = connect(&emu.ws_url(), &query, Auth::Header(emu.api_key())).await;
    let out = run(
        ws,
        &audio,
        Plan {
            terminate: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(out.finals().len(), 1, "one turn: the pause was too short");

    let ws = connect(&emu.ws_url(), &query, Auth::Header(emu.api_key())).await;
    let out = run(
        ws,
        &audio,
        Plan {
            texts: vec![(
                0,
                r#"{"type":"UpdateConfiguration","max_turn_silence":300}"#.into(),
            )],
            terminate: true,
            ..Default::default()
        },
    )
    .await;
    let finals = out.finals();
    assert_eq!(finals.len(), 2, "{finals:#?}");
    assert_eq!(finals[0].transcript, "first part");
    assert_eq!(finals[1].transcript, "second part");
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
