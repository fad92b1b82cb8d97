//! The translation pipeline: transcript events are never delayed, translations follow their
//! finals in `turn_order` order, run concurrently up to a limit, fail one turn at a time, and
//! are cancelled when the stream is dropped.
//!
//! All tests run on tokio's paused clock, so "the LLM takes 500 ms" costs no real time and the
//! timings asserted are exact virtual times, not measurements.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use assemblyai_streaming::protocol::Turn;
use assemblyai_streaming::translate::{
    TranslateOptions, TranslatedEvent, Translator, translate_finals, translator_fn,
};
use assemblyai_streaming::{Error, Result, TurnEvent};
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use tokio::time::{Instant, sleep};

fn turn(order: u64, text: &str) -> Turn {
    serde_json::from_value(serde_json::json!({
        "turn_order": order, "turn_is_formatted": true, "end_of_turn": true,
        "transcript": text, "end_of_turn_confidence": 0.9, "words": []
    }))
    .expect("valid turn")
}

fn partial(order: u64, text: &str) -> TurnEvent {
    let mut t = turn(order, text);
    t.end_of_turn = false;
    TurnEvent::Partial(t)
}

fn final_(order: u64, text: &str) -> TurnEvent {
    TurnEvent::Final(turn(order, text))
}

/// A session stand-in: events are pushed by the test, the stream ends when the sender drops.
fn session() -> (
    mpsc::UnboundedSender<Result<TurnEvent>>,
    impl Stream<Item = Result<TurnEvent>>,
) {
    mpsc::unbounded()
}

/// A translator that takes `delay(text)` and answers `"<lang>:<text>"`.
fn slow_translator(
    delay: impl Fn(&str) -> Duration + Send + Sync + 'static,
) -> impl Translator + 'static {
    let delay = Arc::new(delay);
    translator_fn(move |text, lang| {
        let wait = delay(&text);
        async move {
            sleep(wait).await;
            Ok(format!("{lang}:{text}"))
        }
    })
}

/// What the consumer saw, with the virtual time it saw it at.
#[derive(Debug, PartialEq)]
enum Seen {
    Partial(u64),
    Final(u64),
    Translation(u64, String),
    Failed(u64),
    Other,
}

fn describe(item: Result<TranslatedEvent>) -> Seen {
    match item {
        Ok(TranslatedEvent::Event(TurnEvent::Partial(t))) => Seen::Partial(t.turn_order),
        Ok(TranslatedEvent::Event(TurnEvent::Final(t))) => Seen::Final(t.turn_order),
        Ok(TranslatedEvent::Translation(t)) => Seen::Translation(t.turn_order, t.text),
        Err(Error::Translation { turn_order, .. }) => Seen::Failed(turn_order),
        _ => Seen::Other,
    }
}

#[tokio::test(start_paused = true)]
async fn partials_and_finals_pass_through_while_a_translation_is_in_flight() {
    let (tx, events) = session();
    let mut out = translate_finals(
        events,
        slow_translator(|_| Duration::from_millis(500)),
        "es",
        TranslateOptions::default(),
    );
    let start = Instant::now();

    tx.unbounded_send(Ok(final_(0, "Hello."))).unwrap();
    assert_eq!(describe(out.next().await.unwrap()), Seen::Final(0));
    assert_eq!(start.elapsed(), Duration::ZERO);

    // The translation of turn 0 is running; the next turn's partials are not held back by it.
    sleep(Duration::from_millis(100)).await;
    tx.unbounded_send(Ok(partial(1, "how"))).unwrap();
    assert_eq!(describe(out.next().await.unwrap()), Seen::Partial(1));
    assert_eq!(start.elapsed(), Duration::from_millis(100));

    // Then the translation, 500 ms after its final.
    assert_eq!(
        describe(out.next().await.unwrap()),
        Seen::Translation(0, "es:Hello.".into())
    );
    assert_eq!(start.elapsed(), Duration::from_millis(500));

    drop(tx);
    assert!(out.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn translations_keep_turn_order_even_when_later_ones_finish_first() {
    let (tx, events) = session();
    // Turn 0 is the slowest: 900 ms, 700 ms, 500 ms, 300 ms, 100 ms.
    let delays = |text: &str| {
        let n: u64 = text.trim_start_matches('t').parse().unwrap_or(0);
        Duration::from_millis(900 - 200 * n)
    };
    let mut out = translate_finals(
        events,
        slow_translator(delays),
        "fr",
        TranslateOptions::default().max_concurrent(8),
    );
    for n in 0..5 {
        tx.unbounded_send(Ok(final_(n, &format!("t{n}")))).unwrap();
    }
    drop(tx);

    let start = Instant::now();
    let mut seen = Vec::new();
    while let Some(item) = out.next().await {
        seen.push(describe(item));
    }
    let finals: Vec<_> = (0..5).map(Seen::Final).collect();
    let translations: Vec<_> = (0..5)
        .map(|n| Seen::Translation(n, format!("fr:t{n}")))
        .collect();
    assert_eq!(&seen[..5], &finals[..], "every final is delivered at once");
    assert_eq!(&seen[5..], &translations[..], "translations in turn order");
    // All five ran at the same time: the whole batch took as long as the slowest one.
    assert_eq!(start.elapsed(), Duration::from_millis(900));
}

#[tokio::test(start_paused = true)]
async fn no_more_than_max_concurrent_translations_run_at_once() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let translator = {
        let (running, peak) = (running.clone(), peak.clone());
        translator_fn(move |text, _lang| {
            let (running, peak) = (running.clone(), peak.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                sleep(Duration::from_millis(500)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(text)
            }
        })
    };
    let (tx, events) = session();
    let mut out = translate_finals(
        events,
        translator,
        "de",
        TranslateOptions::default().max_concurrent(2),
    );
    for n in 0..6 {
        tx.unbounded_send(Ok(final_(n, &format!("turn {n}"))))
            .unwrap();
    }
    drop(tx);
    let start = Instant::now();
    let mut translated = Vec::new();
    while let Some(item) = out.next().await {
        if let Seen::Translation(n, _) = describe(item) {
            translated.push(n);
        }
    }
    assert_eq!(translated, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    // Three waves of two.
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn a_failed_translation_is_an_error_item_and_the_stream_goes_on() {
    let translator = translator_fn(|text, _lang| async move {
        if text.contains("bad") {
            Err(Error::Api {
                status: 500,
                message: "model exploded".into(),
                request_id: Some("req-9".into()),
                retry_after: None,
            })
        } else {
            Ok(text.to_uppercase())
        }
    });
    let (tx, events) = session();
    let mut out = translate_finals(events, translator, "es", TranslateOptions::default());
    tx.unbounded_send(Ok(final_(0, "good"))).unwrap();
    tx.unbounded_send(Ok(final_(1, "bad"))).unwrap();
    tx.unbounded_send(Ok(final_(2, "fine"))).unwrap();
    drop(tx);

    let mut seen = Vec::new();
    let mut failure = None;
    while let Some(item) = out.next().await {
        if let Err(e) = &item {
            failure = Some((e.kind(), e.code(), e.to_string()));
        }
        seen.push(describe(item));
    }
    // The translator answers at once, so each outcome comes right after its own final.
    assert_eq!(
        seen,
        vec![
            Seen::Final(0),
            Seen::Translation(0, "GOOD".into()),
            Seen::Final(1),
            Seen::Failed(1),
            Seen::Final(2),
            Seen::Translation(2, "FINE".into()),
        ]
    );
    let (kind, code, text) = failure.unwrap();
    assert_eq!(kind, "translation");
    assert_eq!(code, Some(500), "the cause's status is kept");
    assert!(
        text.contains("turn 1") && text.contains("model exploded"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn session_errors_and_other_events_pass_through_unchanged() {
    let (tx, events) = session();
    let mut out = translate_finals(
        events,
        slow_translator(|_| Duration::from_millis(10)),
        "es",
        TranslateOptions::default(),
    );
    tx.unbounded_send(Err(Error::closed(3005, ""))).unwrap();
    tx.unbounded_send(Ok(TurnEvent::Unknown(serde_json::json!({"type": "New"}))))
        .unwrap();
    drop(tx);
    match out.next().await {
        Some(Err(e)) => assert_eq!(e.code(), Some(3005)),
        other => panic!("expected the session error, got {other:?}"),
    }
    assert!(matches!(
        out.next().await,
        Some(Ok(TranslatedEvent::Event(TurnEvent::Unknown(_))))
    ));
    assert!(out.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn an_empty_final_gets_an_empty_translation_without_calling_the_translator() {
    let calls = Arc::new(AtomicUsize::new(0));
    let translator = {
        let calls = calls.clone();
        translator_fn(move |text, _| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok(text) }
        })
    };
    let (tx, events) = session();
    let mut out = translate_finals(events, translator, "es", TranslateOptions::default());
    tx.unbounded_send(Ok(final_(0, "  "))).unwrap();
    drop(tx);
    let seen: Vec<_> = out.by_ref().map(describe).collect().await;
    assert_eq!(
        seen,
        vec![Seen::Final(0), Seen::Translation(0, String::new())]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// Sets its flag when dropped: proves a future was cancelled rather than left running.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_stream_cancels_translations_in_flight() {
    let started = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let translator = {
        let (started, dropped, finished) = (started.clone(), dropped.clone(), finished.clone());
        translator_fn(move |text, _| {
            let (started, dropped, finished) = (started.clone(), dropped.clone(), finished.clone());
            async move {
                let _guard = DropFlag(dropped);
                started.store(true, Ordering::SeqCst);
                sleep(Duration::from_secs(10)).await;
                finished.store(true, Ordering::SeqCst);
                Ok(text)
            }
        })
    };
    let (tx, events) = session();
    let mut out = translate_finals(events, translator, "es", TranslateOptions::default());
    tx.unbounded_send(Ok(final_(0, "never translated")))
        .unwrap();
    assert_eq!(describe(out.next().await.unwrap()), Seen::Final(0));
    assert!(
        started.load(Ordering::SeqCst),
        "translation starts with its final"
    );
    assert!(!dropped.load(Ordering::SeqCst));

    drop(out);
    assert!(
        dropped.load(Ordering::SeqCst),
        "in-flight translation dropped"
    );
    sleep(Duration::from_secs(20)).await;
    assert!(
        !finished.load(Ordering::SeqCst),
        "it never ran to completion"
    );
}

#[tokio::test(start_paused = true)]
async fn translation_items_carry_source_language_and_latency() {
    let (tx, events) = session();
    let mut out = translate_finals(
        events,
        slow_translator(|_| Duration::from_millis(300)),
        "Spanish",
        TranslateOptions::default(),
    );
    tx.unbounded_send(Ok(final_(7, " Good morning. "))).unwrap();
    drop(tx);
    let mut translation = None;
    while let Some(item) = out.next().await {
        if let Ok(TranslatedEvent::Translation(t)) = item {
            translation = Some(t);
        }
    }
    let t = translation.expect("one translation");
    assert_eq!(t.turn_order, 7);
    assert_eq!(t.source_text, "Good morning.");
    assert_eq!(t.lang, "Spanish");
    assert_eq!(t.text, "Spanish:Good morning.");
    assert_eq!(t.elapsed, Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn the_extension_method_is_the_adapter_with_default_options() {
    use assemblyai_streaming::translate::TranslateExt;
    let (tx, events) = session();
    let mut out = events.translated(slow_translator(|_| Duration::from_millis(100)), "it");
    tx.unbounded_send(Ok(final_(0, "Ciao"))).unwrap();
    drop(tx);
    let seen: Vec<_> = out.by_ref().map(describe).collect().await;
    assert_eq!(
        seen,
        vec![Seen::Final(0), Seen::Translation(0, "it:Ciao".into())]
    );
}
