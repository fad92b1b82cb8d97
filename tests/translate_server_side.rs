//! Server-side translation: the `llm_gateway` connection parameter built by
//! `server_side_translation`, and reading the `LLMGatewayResponse` the service sends back.

use assemblyai_streaming::ConnectionParams;
use assemblyai_streaming::protocol::ServerMessage;
use assemblyai_streaming::translate::{server_side_text, server_side_translation};

#[test]
fn the_parameter_carries_model_prompt_and_turn_placeholder() {
    let config = server_side_translation("fr", "gemini-2.5-flash-lite");
    assert_eq!(
        config,
        serde_json::json!({
            "model": "gemini-2.5-flash-lite",
            "messages": [{
                "role": "user",
                "content": "Translate the following text into French. Do not write a preamble. \
                            Just return the translated text.\n\n{{turn}}"
            }],
            "max_tokens": 1000
        })
    );
    // It travels JSON-encoded in the query string (spec 1.2).
    let params = ConnectionParams::new().llm_gateway(&config);
    let sent: serde_json::Value =
        serde_json::from_str(params.get("llm_gateway").expect("set")).expect("JSON");
    assert_eq!(sent, config);
}

#[test]
fn the_translation_is_read_from_the_llm_gateway_response() {
    let frame = r#"{"type":"LLMGatewayResponse","turn_order":4,"transcript":"Thank you.",
        "data":{"request_id":"r","choices":[{"index":0,"message":{"role":"assistant",
        "content":"Merci.\n"},"finish_reason":"stop"}],"usage":{"input_tokens":9,"output_tokens":2}}}"#;
    let ServerMessage::LlmGatewayResponse(response) = ServerMessage::from_json(frame).unwrap()
    else {
        panic!("not an LLMGatewayResponse");
    };
    assert_eq!(response.turn_order, 4);
    assert_eq!(server_side_text(&response), Some("Merci."));
}

#[test]
fn an_llm_gateway_response_without_text_reads_as_none() {
    let frame = r#"{"type":"LLMGatewayResponse","turn_order":1,"transcript":"x",
        "data":{"choices":[{"message":{"content":"  "}}]}}"#;
    let ServerMessage::LlmGatewayResponse(response) = ServerMessage::from_json(frame).unwrap()
    else {
        panic!("not an LLMGatewayResponse");
    };
    assert_eq!(server_side_text(&response), None);
}
