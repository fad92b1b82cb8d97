//! Optional behaviours driven by connection parameters: language detection, speaker labels,
//! heartbeats, silence acknowledgements, LLM Gateway responses, Universal-3 turns and live
//! configuration changes.

mod support;

use assemblyai_streaming::emulator::{Emulator, Script, ScriptTurn};
use assemblyai_streaming::protocol::ServerMessage;
use support::emulator::*;

/// The messages of one type the server sent, in order: `of_type!(out, Heartbeat)`.
macro_rules! of_type {
    ($out:expr, $variant:ident) => {
        $out.messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::$variant(x) => Some(x),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
}

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
    let emu = emulator_with_script(spanish_script()).await;
    let ws = open_ws_with(&emu, "&language_detection=true&speaker_labels=TRUE").await;
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

/// The query parameters that ask for formatted turns and an LLM Gateway `request` on each.
fn llm_gateway_query(request: &serde_json::Value) -> String {
    format!(
        "&format_turns=true&llm_gateway={}",
        urlencode(&request.to_string())
    )
}

/// Sends `request` and parses its JSON body.
async fn json_of(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn llm_gateway_answers_each_final_turn() {
    let Some(a) = speech("Good morning, everyone.") else {
        return;
    };
    let emu = emulator_with_script(spanish_script()).await;
    let gateway = serde_json::json!({
        "model": "claude-sonnet-4-20250514",
        "messages": [{"role": "user", "content": "Translate into Spanish: {{turn}}"}],
        "max_tokens": 200
    });
    let ws = open_ws_with(&emu, &llm_gateway_query(&gateway)).await;
    let out = stream(ws, &concat(&[&a, &silence(800)])).await;
    let responses = of_type!(out, LlmGatewayResponse);
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
    let ws = open_ws_with(&emu, &llm_gateway_query(&gateway)).await;
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
    let ws = open_ws_with(&emu, "&session_heartbeat=true&acknowledge_silence=true").await;
    let out = stream(ws, &noise(3500)).await;
    let heartbeats = of_type!(out, Heartbeat);
    assert!(heartbeats.len() >= 2, "{out:?}");
    let last = heartbeats.last().unwrap();
    assert!(last.total_audio_received_ms > 1000);
    assert!(
        last.realtime_factor > 0.5 && last.realtime_factor < 1.5,
        "{last:?}"
    );
    let silences = of_type!(out, Silence);
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
    let emu = emulator_with_script(Script::from_texts(["My name is Sonny."])).await;
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
    let emu = emulator_with_script(Script::from_texts(["First part.", "Second part."])).await;
    // A 700 ms pause is not enough with max_turn_silence=5000 and an impossible confidence
    // threshold ... until UpdateConfiguration lowers max_turn_silence to 300 ms.
    let audio = concat(&[&a, &silence(700), &b, &silence(700)]);
    let query = "&end_of_turn_confidence_threshold=1&max_turn_silence=5000";
    let ws = open_ws_with(&emu, query).await;
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

    let ws = open_ws_with(&emu, query).await;
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

#[tokio::test]
async fn llm_gateway_usage_stream_models_and_understanding() {
    let emu = Emulator::builder().start().await.unwrap();
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", emu.http_url());
    let body = serde_json::json!({
        "model": "gpt-5",
        "messages": [{"role": "user", "content": "Say hello to the world"}],
    });
    // usage in the service's shape: OpenAI names, Gateway names and the details objects.
    let v = json_of(
        http.post(url("/v1/chat/completions"))
            .header("Authorization", emu.api_key())
            .json(&body),
    )
    .await;
    let usage = &v["usage"];
    for field in [
        "prompt_tokens",
        "completion_tokens",
        "input_tokens",
        "output_tokens",
    ] {
        assert!(usage[field].as_u64().unwrap() > 0, "{field}: {usage}");
    }
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
    assert!(usage["prompt_tokens_details"]["cached_tokens"].is_u64());
    assert!(usage["completion_tokens_details"]["reasoning_tokens"].is_u64());
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();

    // stream: true -> SSE of OpenAI chunks whose deltas add up to the same text, then [DONE].
    let mut streamed = body.clone();
    streamed["stream"] = serde_json::json!(true);
    let resp = http
        .post(url("/v1/chat/completions"))
        .header("Authorization", emu.api_key())
        .json(&streamed)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let sse = resp.text().await.unwrap();
    let events: Vec<&str> = sse
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let mut joined = String::new();
    let mut finish = None;
    for e in &events[..events.len() - 1] {
        let chunk: serde_json::Value = serde_json::from_str(e).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert!(chunk["id"].is_string() && chunk["created"].is_u64());
        if let Some(c) = chunk["choices"][0]["delta"]["content"].as_str() {
            joined.push_str(c);
        }
        if let Some(f) = chunk["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
    }
    assert!(events.len() > 4, "{sse}");
    assert_eq!(joined, text);
    assert_eq!(finish.as_deref(), Some("stop"));

    // GET /v1/models needs no key.
    let models = json_of(http.get(url("/v1/models"))).await;
    let m = &models["data"][0];
    for field in [
        "id",
        "name",
        "description",
        "context_length",
        "pricing",
        "retirement_date",
        "available_regions",
        "providers",
    ] {
        assert!(!m[field].is_null(), "{field} missing: {m}");
    }
    assert!(m["pricing"]["global"]["prompt"].is_number());

    // An unknown transcript: the business-error envelope.
    let resp = http
        .post(url("/v1/understanding"))
        .header("Authorization", emu.api_key())
        .json(&serde_json::json!({"transcript_id": "nope", "speech_understanding": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let e: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(e["code"], 404);
    assert!(e["message"].is_string() && e["request_id"].is_string());
    assert!(
        e["metadata"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("nope")
    );
}
