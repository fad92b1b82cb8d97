//! Property tests of the emulator's two input parsers, the client-message parser
//! (`parse_client_message`) and the query-string parser (`parse_query`): whatever a client
//! sends, they answer with a value or a typed error (close 3006 with the service's reason
//! prefix), never panic, and never allocate more than a small multiple of the input.
//!
//! The decoder of *server* messages has its own suite in `decoder_fuzz.rs`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use assemblyai_streaming::emulator::{parse_client_message, parse_query};
use assemblyai_streaming::protocol::ClientMessage;
use assemblyai_streaming::{CloseKind, Error};
use proptest::prelude::*;
use serde_json::{Value, json};

// ----- allocation accounting --------------------------------------------------------------

/// Counts the bytes live on the *current thread* and their peak, so a measurement is not
/// disturbed by tests running in parallel on other threads.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    // `try_with`: the thread-locals may already be gone while a thread shuts down.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the peak number of bytes it had allocated at once.
fn peak_bytes<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as usize)
}

/// The emulator's websocket layer refuses client messages over 4 MiB, so that is the largest
/// input a parser can see.
const MAX_CLIENT_MESSAGE: usize = 4 * 1024 * 1024;

/// Parsing may use at most this many bytes per input byte (plus a constant). serde_json's
/// `Value` costs up to ~32 bytes per one-byte-long element before `Vec` doubling; the worst
/// case measured below is printed by `large_inputs_allocate_linearly`.
const MAX_BYTES_PER_INPUT_BYTE: usize = 64;

// ----- helpers ----------------------------------------------------------------------------

/// The typed error every rejection must be: `Closed` with code 3006, an `invalid_message`
/// kind, not retryable, and a reason that starts with one of `prefixes` and stays short
/// however long the input was.
fn assert_3006(err: &Error, prefixes: &[&str]) -> Result<(), TestCaseError> {
    let Error::Closed { code, kind, reason } = err else {
        return Err(TestCaseError::fail(format!("not a Closed error: {err:?}")));
    };
    prop_assert_eq!(*code, 3006);
    prop_assert_eq!(*kind, CloseKind::InvalidMessage);
    prop_assert_eq!(err.kind(), "invalid_message");
    prop_assert!(!err.is_retryable());
    prop_assert!(
        prefixes.iter().any(|p| reason.starts_with(p)),
        "unexpected reason {reason:?}"
    );
    // Reasons quote at most 200 bytes of input (clipped on a char boundary).
    prop_assert!(reason.len() <= 512, "reason of {} bytes", reason.len());
    Ok(())
}

const MESSAGE_REASONS: &[&str] = &[
    "Invalid JSON: ",
    "Invalid Message Type: ",
    "Invalid Message: ",
];
const QUERY_REASONS: &[&str] = &["Invalid Parameter: "];

fn check_message(text: &str) -> Result<Option<ClientMessage>, TestCaseError> {
    match parse_client_message(text) {
        Ok(m) => Ok(Some(m)),
        Err(e) => assert_3006(&e, MESSAGE_REASONS).map(|()| None),
    }
}

fn check_query(query: &str) -> Result<bool, TestCaseError> {
    match parse_query(query) {
        Ok(_) => Ok(true),
        Err(e) => assert_3006(&e, QUERY_REASONS).map(|()| false),
    }
}

/// Arbitrary JSON, biased towards the shapes the parsers look at.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const CLIENT_TYPES: &[&str] = &[
    "UpdateConfiguration",
    "ForceEndpoint",
    "KeepAlive",
    "Terminate",
    "terminate",
    "Begin",
    "",
];

/// Every field `UpdateConfiguration` accepts.
const UPDATE_FIELDS: &[&str] = &[
    "end_of_turn_confidence_threshold",
    "min_turn_silence",
    "max_turn_silence",
    "min_end_of_turn_silence_when_confident",
    "vad_threshold",
    "format_turns",
    "filter_profanity",
    "prompt",
    "keyterms_prompt",
    "agent_context",
    "interruption_delay",
    "turn_left_pad_ms",
    "language_codes",
];

/// Every query parameter the emulator reads (and so validates).
const QUERY_KEYS: &[&str] = &[
    "speech_model",
    "sample_rate",
    "encoding",
    "format_turns",
    "end_of_turn_confidence_threshold",
    "min_turn_silence",
    "min_end_of_turn_silence_when_confident",
    "max_turn_silence",
    "vad_threshold",
    "keyterms_prompt",
    "prompt",
    "language_detection",
    "language_codes",
    "redact_pii_policies",
    "inactivity_timeout",
    "speaker_labels",
    "max_speakers",
    "session_heartbeat",
    "acknowledge_silence",
    "llm_gateway",
    "mode",
    "token",
    "filter_profanity",
    "continuous_partials",
    "include_partial_turns",
    "redact_pii",
    "speaker_labels_revision_interval_ms",
];

/// Values that look like what a parameter wants, and many that do not.
fn arb_query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("True".to_string()),
        Just("u3-rt-pro".to_string()),
        Just("universal-streaming-english".to_string()),
        Just("pcm_mulaw".to_string()),
        Just("16000.0".to_string()),
        Just("1e400".to_string()),
        Just("NaN".to_string()),
        Just("-0".to_string()),
        Just("%5B%22a%22%5D".to_string()),
        Just("%7B%7D".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        arb_json().prop_map(|v| v.to_string()),
        "[%+&=a-zA-Z0-9._~-]{0,24}",
        ".{0,24}",
    ]
}

// ----- client messages --------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_are_a_message_or_a_3006(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_message(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_json_is_a_message_or_a_3006(value in arb_json()) {
        check_message(&value.to_string())?;
    }

    #[test]
    fn every_field_of_every_type_with_any_value_is_a_message_or_a_3006(
        kind in prop::sample::select(CLIENT_TYPES),
        fields in prop::collection::vec((prop::sample::select(UPDATE_FIELDS), arb_json()), 0..6),
        extra in prop::collection::btree_map("[a-z_]{1,10}", arb_json(), 0..3),
    ) {
        let mut obj: serde_json::Map<String, Value> = extra.into_iter().collect();
        for (k, v) in fields {
            obj.insert(k.to_string(), v);
        }
        obj.insert("type".into(), json!(kind));
        let parsed = check_message(&Value::Object(obj).to_string())?;
        if let Some(ClientMessage::UpdateConfiguration(u)) = parsed {
            // Whatever was accepted is within the documented ranges.
            for v in [u.end_of_turn_confidence_threshold, u.vad_threshold].into_iter().flatten() {
                prop_assert!((0.0..=1.0).contains(&v));
            }
            prop_assert!(u.keyterms_prompt.map_or(0, |k| k.len()) <= 100);
        }
    }

    #[test]
    fn a_wrong_type_for_any_update_field_is_a_3006(
        field in prop::sample::select(UPDATE_FIELDS),
        // An object is a wrong type for every field.
        value in prop::collection::btree_map("[a-z]{1,4}", arb_json(), 0..3),
    ) {
        let text = json!({"type": "UpdateConfiguration", field: value}).to_string();
        prop_assert!(check_message(&text)?.is_none(), "{text} was accepted");
    }

    #[test]
    fn a_type_that_is_not_a_string_is_a_3006(kind in arb_json().prop_filter("not a string", |v| !v.is_string())) {
        let text = json!({"type": kind}).to_string();
        prop_assert!(check_message(&text)?.is_none());
    }

    #[test]
    fn truncated_messages_are_3006(cut in 0usize..400) {
        let text = json!({
            "type": "UpdateConfiguration", "end_of_turn_confidence_threshold": 0.5,
            "min_turn_silence": 160, "max_turn_silence": 1280, "vad_threshold": 0.4,
            "format_turns": true, "prompt": "Transcribe\u{e9}\u{1F600}", "keyterms_prompt": ["Rust", "tokio"],
        }).to_string();
        prop_assume!(text.is_char_boundary(cut.min(text.len())));
        let cut = cut.min(text.len() - 1);
        prop_assert!(check_message(&text[..cut])?.is_none());
    }
}

#[test]
fn valid_messages_parse() {
    for (text, expected) in [
        (r#"{"type":"Terminate"}"#, ClientMessage::Terminate),
        (
            r#"{"type":"KeepAlive","extra":1}"#,
            ClientMessage::KeepAlive,
        ),
        (r#"{"type":"ForceEndpoint"}"#, ClientMessage::ForceEndpoint),
    ] {
        assert_eq!(parse_client_message(text).unwrap(), expected);
    }
    let Ok(ClientMessage::UpdateConfiguration(u)) = parse_client_message(
        r#"{"type":"UpdateConfiguration","vad_threshold":0.5,"keyterms_prompt":["a"]}"#,
    ) else {
        panic!("not an UpdateConfiguration")
    };
    assert_eq!(u.vad_threshold, Some(0.5));
}

#[test]
fn deep_nesting_is_a_3006_not_a_stack_overflow() {
    for depth in [200, 100_000] {
        for text in [
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
            format!(
                r#"{{"type":"UpdateConfiguration","prompt":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            ),
            // Unclosed: the parser must stop at its recursion limit, not at the end.
            format!(r#"{{"type":"KeepAlive","x":{}"#, r#"{"a":"#.repeat(depth)),
        ] {
            let err = parse_client_message(&text).unwrap_err();
            assert_eq!(err.code(), Some(3006), "depth {depth}");
            assert!(err.to_string().len() < 600);
        }
    }
}

#[test]
fn too_many_keyterms_is_a_3006_with_the_service_text() {
    let terms: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let text = json!({"type": "UpdateConfiguration", "keyterms_prompt": terms}).to_string();
    let err = parse_client_message(&text).unwrap_err();
    assert_eq!(err.code(), Some(3006));
    assert!(err.to_string().contains("at most 100 terms"), "{err}");
}

#[test]
fn large_inputs_allocate_linearly() {
    // Inputs up to the 4 MiB websocket limit, each shaped to make the parser allocate as much
    // as possible per input byte. None may be a panic, and the peak allocation must stay a
    // bounded multiple of the input.
    let n = MAX_CLIENT_MESSAGE / 4;
    let cases: Vec<(&str, String)> = vec![
        ("array of zeros", format!("[{}0]", "0,".repeat(n - 1))),
        (
            "keyterms of empty strings",
            format!(
                r#"{{"type":"UpdateConfiguration","keyterms_prompt":[{}""]}}"#,
                r#""","#.repeat(n / 3)
            ),
        ),
        (
            "many tiny objects",
            format!(
                r#"{{"type":"KeepAlive","x":[{}{{}}]}}"#,
                "{},".repeat(n - 1)
            ),
        ),
        (
            "long prompt",
            format!(
                r#"{{"type":"UpdateConfiguration","prompt":"{}"}}"#,
                "\\u00e9".repeat(n / 2)
            ),
        ),
        ("long garbage", "x".repeat(MAX_CLIENT_MESSAGE)),
        (
            "long unknown type",
            format!(r#"{{"type":"{}"}}"#, "A".repeat(MAX_CLIENT_MESSAGE - 16)),
        ),
    ];
    let mut worst = 0.0f64;
    for (name, text) in &cases {
        assert!(text.len() <= MAX_CLIENT_MESSAGE + 64, "{name}");
        let (result, peak) = peak_bytes(|| parse_client_message(text));
        if let Err(e) = &result {
            assert_eq!(e.code(), Some(3006), "{name}");
            assert!(e.to_string().len() < 600, "{name}: reason echoes the input");
        }
        let ratio = peak as f64 / text.len() as f64;
        worst = worst.max(ratio);
        println!(
            "{name}: {} input bytes, peak {} bytes allocated ({ratio:.1}x), {}",
            text.len(),
            peak,
            if result.is_ok() { "accepted" } else { "3006" }
        );
        assert!(
            peak <= MAX_BYTES_PER_INPUT_BYTE * text.len() + 64 * 1024,
            "{name}: {peak} bytes for {} input bytes",
            text.len()
        );
    }
    println!("worst client-message amplification: {worst:.1}x");
    // And the query parser, on a query string of the same size.
    for (name, query) in [
        ("many pairs", "a=1&".repeat(MAX_CLIENT_MESSAGE / 4)),
        ("percent escapes", format!("prompt={}", "%41".repeat(n))),
        (
            "keyterms list",
            format!(
                "speech_model=u3-rt-pro&keyterms_prompt=[{}\"\"]",
                "\"\",".repeat(n / 3)
            ),
        ),
    ] {
        let (result, peak) = peak_bytes(|| parse_query(&query));
        if let Err(e) = &result {
            assert_eq!(e.code(), Some(3006), "{name}");
            assert!(e.to_string().len() < 600, "{name}: reason echoes the input");
        }
        println!(
            "query {name}: {} bytes, peak {peak} bytes ({:.1}x)",
            query.len(),
            peak as f64 / query.len() as f64
        );
        assert!(peak <= MAX_BYTES_PER_INPUT_BYTE * query.len() + 64 * 1024);
    }
}

// ----- query strings ----------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_query_strings_are_params_or_a_3006(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_query(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn query_shaped_strings_are_params_or_a_3006(q in "[%+&=a-zA-Z0-9_.~\\[\\]\"{}-]{0,200}") {
        check_query(&q)?;
    }

    #[test]
    fn any_value_for_any_known_key_is_params_or_a_3006(
        model in prop_oneof![Just("u3-rt-pro"), Just("universal-streaming-multilingual"), Just("bogus")],
        pairs in prop::collection::vec((prop::sample::select(QUERY_KEYS), arb_query_value()), 0..8),
    ) {
        let mut q = format!("speech_model={model}");
        for (k, v) in &pairs {
            q.push('&');
            q.push_str(k);
            q.push('=');
            q.push_str(v);
        }
        check_query(&q)?;
    }

    #[test]
    fn accepted_params_survive_a_round_trip_through_the_client_encoder(
        pairs in prop::collection::vec((prop::sample::select(QUERY_KEYS), arb_query_value()), 0..6),
    ) {
        // What the emulator accepted, re-encoded by the client's `ConnectionParams::to_query`,
        // is accepted again: the client never turns valid parameters into invalid ones.
        let mut q = String::from("speech_model=u3-rt-pro");
        for (k, v) in &pairs {
            q.push_str(&format!("&{k}={v}"));
        }
        if let Ok(params) = parse_query(&q) {
            let again = params.to_query();
            prop_assert!(check_query(&again)?, "{q} -> {again} rejected: {:?}", parse_query(&again));
        }
    }

    #[test]
    fn truncated_percent_escapes_never_panic(prefix in "[a-z_=]{0,12}", tail in prop_oneof![Just("%"), Just("%4"), Just("%G1"), Just("%\u{e9}"), Just("%%%")]) {
        check_query(&format!("speech_model=u3-rt-pro&{prefix}{tail}"))?;
    }
}

#[test]
fn out_of_range_numbers_are_3006_with_the_parameter_named() {
    for (q, name) in [
        (
            "speech_model=u3-rt-pro&sample_rate=99999999999999999999",
            "sample_rate",
        ),
        ("speech_model=u3-rt-pro&sample_rate=1e400", "sample_rate"),
        ("speech_model=u3-rt-pro&sample_rate=NaN", "sample_rate"),
        ("speech_model=u3-rt-pro&max_speakers=-1", "max_speakers"),
        (
            "speech_model=u3-rt-pro&inactivity_timeout=3601",
            "inactivity_timeout",
        ),
        ("speech_model=u3-rt-pro&vad_threshold=inf", "vad_threshold"),
        (
            "speech_model=u3-rt-pro&end_of_turn_confidence_threshold=-0.1",
            "end_of_turn",
        ),
    ] {
        let err = parse_query(q).unwrap_err();
        assert_eq!(err.code(), Some(3006), "{q}");
        assert!(err.to_string().contains(name), "{q}: {err}");
    }
}

/// Found by `cargo fuzz run -s none query` (fuzz/README.md) in its first minute.
#[test]
fn parse_query_reports_the_sample_rate_the_emulator_uses() {
    let p = parse_query("speech_model=u3-rt-pro&sample_rate=8000.0").unwrap();
    assert_eq!(p.get_sample_rate(), 8000);
    // The fuzzer's reduced case: accepted, yet its re-encoding is rejected (sample_rate=1).
    let p = parse_query("speech_model=u3-rt-pro&sample_rate=1&sample_rate=16000.").unwrap();
    assert!(parse_query(&p.to_query()).is_ok(), "{}", p.to_query());
}
