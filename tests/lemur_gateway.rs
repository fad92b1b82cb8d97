//! `Lemur` against the emulator's LLM Gateway and legacy LeMUR routes: translations, every error
//! path, retries, and the key staying secret.

use std::time::{Duration, Instant};

use assemblyai_streaming::Error;
use assemblyai_streaming::emulator::{
    Emulator, EmulatorHandle, LegacyLemur, LlmOptions, Script, ScriptTurn,
};
use assemblyai_streaming::lemur::{Backend, ChatMessage, ChatRequest, Lemur, LemurBuilder};

const KEY: &str = "test-key-9f8e7d";

fn script() -> Script {
    Script {
        turns: vec![
            ScriptTurn {
                text: "Hello, world.".into(),
                translations: [
                    ("es".to_owned(), "Hola, mundo.".to_owned()),
                    ("fr".to_owned(), "Bonjour, le monde.".to_owned()),
                ]
                .into(),
                ..Default::default()
            },
            ScriptTurn {
                text: "How are you today?".into(),
                translations: [("es".to_owned(), "¿Cómo estás hoy?".to_owned())].into(),
                ..Default::default()
            },
        ],
    }
}

async fn emulator(options: LlmOptions) -> EmulatorHandle {
    Emulator::builder()
        .api_key(KEY)
        .script(script())
        .llm(options)
        .start()
        .await
        .expect("emulator starts")
}

fn client(emu: &EmulatorHandle) -> LemurBuilder {
    Lemur::builder()
        .api_key(emu.api_key())
        .base_url(emu.http_url())
        .retry_delay(Duration::from_millis(10))
}

/// Asserts that `lemur` translates `text` into `lang` as `expected`.
async fn assert_translates(lemur: &Lemur, text: &str, lang: &str, expected: &str) {
    let got = lemur
        .translate(text, lang)
        .await
        .unwrap_or_else(|e| panic!("{text:?} into {lang}: {e:?}"));
    assert_eq!(got, expected, "{text:?} into {lang}");
}

#[tokio::test]
async fn translates_scripted_turns_by_language_code_or_name() {
    let emu = emulator(LlmOptions::default()).await;
    let lemur = client(&emu).build().unwrap();
    assert_translates(&lemur, "Hello, world.", "es", "Hola, mundo.").await;
    assert_translates(&lemur, "Hello, world.", "French", "Bonjour, le monde.").await;
    assert_translates(&lemur, "how are you today", "Spanish", "¿Cómo estás hoy?").await;
}

#[tokio::test]
async fn the_emulator_marks_what_it_cannot_translate() {
    let emu = emulator(LlmOptions::default()).await;
    let lemur = client(&emu).build().unwrap();
    assert_translates(
        &lemur,
        "Not in the script.",
        "de",
        "[de] Not in the script.",
    )
    .await;
}

#[tokio::test]
async fn an_openai_style_base_url_ending_in_v1_works() {
    let emu = emulator(LlmOptions::default()).await;
    let lemur = client(&emu)
        .base_url(format!("{}/v1/", emu.http_url()))
        .build()
        .unwrap();
    assert_translates(&lemur, "Hello, world.", "es", "Hola, mundo.").await;
}

#[tokio::test]
async fn chat_returns_the_gateway_response_with_request_id_and_usage() {
    let emu = emulator(LlmOptions::default()).await;
    let lemur = client(&emu).model("gemini-2.5-flash-lite").build().unwrap();
    let response = lemur
        .chat(ChatRequest::new(vec![
            ChatMessage::system("Translate into Spanish."),
            ChatMessage::user("Hello, world."),
        ]))
        .await
        .unwrap();
    assert_eq!(response.text(), Some("Hola, mundo."));
    assert!(
        response
            .request_id
            .as_deref()
            .is_some_and(|id| id.len() == 36)
    );
    let usage = response.usage.expect("usage");
    assert!(usage.input_tokens.unwrap() > 0 && usage.output_tokens.unwrap() > 0);
    assert_eq!(response.choices[0].finish_reason.as_deref(), Some("stop"));
    // The Gateway echoes the request settings (without the messages).
    assert_eq!(response.extra["request"]["model"], "gemini-2.5-flash-lite");
    assert!(response.extra["request"].get("messages").is_none());
}

#[tokio::test]
async fn a_wrong_key_is_a_401_that_never_shows_either_key() {
    let emu = emulator(LlmOptions::default()).await;
    let wrong = "wrong-key-5a4b3c";
    let lemur = client(&emu).api_key(wrong).build().unwrap();
    let e = lemur.translate("Hello, world.", "es").await.unwrap_err();
    assert_eq!(e.kind(), "unauthorized");
    assert_eq!(e.code(), Some(401));
    assert!(!e.is_retryable());
    match &e {
        Error::Api {
            message,
            request_id,
            ..
        } => {
            assert_eq!(message, "Invalid API key");
            assert!(
                request_id.is_some(),
                "the auth envelope's request id is kept"
            );
        }
        other => panic!("expected Error::Api, got {other:?}"),
    }
    let shown = format!("{e} {e:?} {lemur:?}");
    assert!(!shown.contains(wrong) && !shown.contains(KEY), "{shown}");
}

#[tokio::test]
async fn a_bearer_prefix_is_refused_by_the_assemblyai_gateway() {
    let emu = emulator(LlmOptions::default()).await;
    let lemur = client(&emu).bearer_auth(true).build().unwrap();
    let e = lemur.translate("Hello, world.", "es").await.unwrap_err();
    assert_eq!(e.code(), Some(401));
}

#[tokio::test]
async fn a_429_is_retried_after_the_retry_after_delay() {
    let emu = emulator(LlmOptions {
        fail_429_times: 1,
        retry_after_secs: 1,
        ..Default::default()
    })
    .await;
    let lemur = client(&emu).build().unwrap();
    let start = Instant::now();
    assert_translates(&lemur, "Hello, world.", "es", "Hola, mundo.").await;
    // The client waited as long as the service asked, not its own 10 ms backoff.
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_429_without_retries_left_reports_the_requested_wait() {
    let emu = emulator(LlmOptions {
        fail_429_times: 1,
        retry_after_secs: 7,
        ..Default::default()
    })
    .await;
    // Retry-After (7 s) exceeds the longest wait the caller accepts: give up at once.
    let lemur = client(&emu)
        .max_retry_wait(Duration::from_secs(2))
        .build()
        .unwrap();
    let e = lemur.translate("Hello, world.", "es").await.unwrap_err();
    assert_eq!(e.kind(), "rate_limited");
    assert!(e.is_retryable());
    match e {
        Error::Api {
            status: 429,
            retry_after,
            message,
            request_id,
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert_eq!(message, "Too Many Requests");
            assert!(request_id.is_some());
        }
        other => panic!("expected a 429, got {other:?}"),
    }
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let emu = emulator(LlmOptions {
        fail_500_times: 2,
        ..Default::default()
    })
    .await;
    let lemur = client(&emu).max_retries(2).build().unwrap();
    assert_translates(&lemur, "Hello, world.", "es", "Hola, mundo.").await;
}

#[tokio::test]
async fn server_errors_beyond_the_retry_budget_are_reported() {
    let emu = emulator(LlmOptions {
        fail_500_times: 3,
        ..Default::default()
    })
    .await;
    let lemur = client(&emu).max_retries(2).build().unwrap();
    let e = lemur.translate("Hello, world.", "es").await.unwrap_err();
    assert_eq!(e.code(), Some(500));
    assert!(e.to_string().contains("Internal server error"), "{e}");
    // The fourth request would have succeeded: exactly three were made.
    assert_translates(&lemur, "Hello, world.", "es", "Hola, mundo.").await;
}

#[tokio::test]
async fn an_empty_completion_is_an_error_not_an_empty_string() {
    let emu = emulator(LlmOptions {
        empty_completion: true,
        ..Default::default()
    })
    .await;
    let lemur = client(&emu).build().unwrap();
    let e = lemur.translate("Hello, world.", "es").await.unwrap_err();
    assert!(matches!(e, Error::EmptyCompletion), "{e:?}");
    assert_eq!(e.kind(), "empty_completion");
    // chat() hands the response over as is: the caller sees there is no text.
    let response = lemur
        .chat(ChatRequest::new(vec![ChatMessage::user("Hello, world.")]))
        .await
        .unwrap();
    assert_eq!(response.text(), None);
}

#[tokio::test]
async fn invalid_requests_get_the_business_error_envelope() {
    let emu = emulator(LlmOptions::default()).await;
    let lemur = client(&emu).model("gpt-9-ultra").build().unwrap();
    let e = lemur.translate("Hello, world.", "es").await.unwrap_err();
    match e {
        Error::Api {
            status: 400,
            message,
            request_id,
            ..
        } => {
            assert!(
                message.contains("unsupported model 'gpt-9-ultra'"),
                "{message}"
            );
            assert!(request_id.is_some());
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test]
async fn the_legacy_route_answers_404_and_the_error_says_how_to_switch() {
    let emu = emulator(LlmOptions::default()).await;
    let lemur = client(&emu).backend(Backend::LegacyLemur).build().unwrap();
    let e = lemur.translate("Hello, world.", "es").await.unwrap_err();
    assert!(matches!(e, Error::LemurShutDown), "{e:?}");
    assert_eq!(e.kind(), "lemur_shut_down");
    assert_eq!(e.code(), Some(404));
    assert!(e.to_string().contains("LLM Gateway"));
}

#[tokio::test]
async fn a_working_legacy_route_uses_the_historical_shapes() {
    let emu = emulator(LlmOptions {
        legacy_lemur: LegacyLemur::Working,
        ..Default::default()
    })
    .await;
    let lemur = client(&emu).backend(Backend::LegacyLemur).build().unwrap();
    assert_translates(&lemur, "Hello, world.", "es", "Hola, mundo.").await;
    assert_eq!(
        lemur
            .task("Translate into Italian.", "Hello, world.")
            .await
            .unwrap(),
        "[it] Hello, world."
    );
    // LeMUR had no chat API.
    let e = lemur.chat(ChatRequest::new(vec![])).await.unwrap_err();
    assert_eq!(e.kind(), "config");

    let wrong = client(&emu)
        .backend(Backend::LegacyLemur)
        .api_key("nope")
        .build()
        .unwrap();
    let e = wrong.translate("Hello, world.", "es").await.unwrap_err();
    assert!(
        matches!(&e, Error::Api { status: 401, message, .. }
            if message == "Authentication error, API token missing/invalid"),
        "{e:?}"
    );
}

#[tokio::test]
async fn legacy_server_errors_are_retried_too() {
    let emu = emulator(LlmOptions {
        legacy_lemur: LegacyLemur::Working,
        fail_500_times: 1,
        ..Default::default()
    })
    .await;
    let lemur = client(&emu).backend(Backend::LegacyLemur).build().unwrap();
    assert_translates(&lemur, "Hello, world.", "es", "Hola, mundo.").await;
}

/// Collects everything logged, at every level, into a buffer.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn trace_logs_of_requests_retries_and_failures_never_contain_the_key() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emu = emulator(LlmOptions {
        fail_500_times: 1,
        ..Default::default()
    })
    .await;
    let lemur = client(&emu).build().unwrap();
    assert_translates(&lemur, "Hello, world.", "es", "Hola, mundo.").await;
    let wrong = client(&emu)
        .api_key("wrong-key-in-logs-42")
        .build()
        .unwrap();
    let _ = wrong.translate("Hello, world.", "es").await.unwrap_err();
    tracing::trace!(?lemur, ?wrong, "clients");

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(text.contains("retrying"), "the retry was logged: {text}");
    assert!(
        !text.contains(KEY) && !text.contains("wrong-key-in-logs-42"),
        "{text}"
    );
}
