//! Translation pipeline benchmarks.
//!
//! ```text
//! cargo bench --bench translate --features emulator
//! ```
//!
//! 1. **Scenario** (wall clock, printed as a table): an LLM that takes 500 ms (the emulator's
//!    Gateway route with 500 ms latency, reached over loopback HTTP through `Lemur`) and a final
//!    turn every 200 ms, with partials every 50 ms in between. It compares
//!    `translate_finals` with the quickstart's serial approach (translate inside the event loop,
//!    blocking it), and reports how late transcript events and translations arrive.
//! 2. **Overhead** (criterion): the cost per event of passing events through
//!    `translate_finals`, compared with reading the stream directly.

use std::time::Duration;

use assemblyai_streaming::emulator::{Emulator, EmulatorHandle, LlmOptions, Script, ScriptTurn};
use assemblyai_streaming::lemur::Lemur;
use assemblyai_streaming::protocol::Turn;
use assemblyai_streaming::translate::{
    TranslateOptions, TranslatedEvent, translate_finals, translator_fn,
};
use assemblyai_streaming::{Result, TurnEvent};
use criterion::{BenchmarkId, Criterion, Throughput};
use futures::channel::mpsc;
use futures::{StreamExt, stream};
use tokio::time::{Instant, sleep_until};

const TURNS: u64 = 15;
const TURN_EVERY: Duration = Duration::from_millis(200);
const PARTIAL_EVERY: Duration = Duration::from_millis(50);
const LLM_LATENCY: Duration = Duration::from_millis(500);

fn turn(order: u64, text: String, end: bool) -> Turn {
    serde_json::from_value(serde_json::json!({
        "turn_order": order, "turn_is_formatted": end, "end_of_turn": end,
        "transcript": text, "end_of_turn_confidence": 0.5, "words": []
    }))
    .expect("valid turn")
}

fn final_text(order: u64) -> String {
    format!("This is sentence number {order}.")
}

/// Every event of the scripted session, with the time (from the start) it is emitted.
fn timeline() -> Vec<(Duration, TurnEvent)> {
    let mut events = Vec::new();
    for order in 0..TURNS {
        let start = TURN_EVERY * order as u32;
        let mut at = start + PARTIAL_EVERY;
        while at < start + TURN_EVERY {
            events.push((
                at,
                TurnEvent::Partial(turn(order, format!("partial {order}"), false)),
            ));
            at += PARTIAL_EVERY;
        }
        events.push((
            start + TURN_EVERY,
            TurnEvent::Final(turn(order, final_text(order), true)),
        ));
    }
    events
}

/// A session stand-in emitting the timeline at its real pace. Returns the stream and the
/// instant the timeline started.
fn session(start: Instant) -> mpsc::UnboundedReceiver<Result<TurnEvent>> {
    let (tx, rx) = mpsc::unbounded();
    tokio::spawn(async move {
        for (at, event) in timeline() {
            sleep_until(start + at).await;
            if tx.unbounded_send(Ok(event)).is_err() {
                return;
            }
        }
    });
    rx
}

/// When an event was due, from its turn and kind (the timeline is deterministic).
fn due(event: &TurnEvent, partial_index: &mut std::collections::HashMap<u64, u32>) -> Duration {
    match event {
        TurnEvent::Final(t) => TURN_EVERY * (t.turn_order as u32 + 1),
        TurnEvent::Partial(t) => {
            let k = partial_index.entry(t.turn_order).or_insert(0);
            *k += 1;
            TURN_EVERY * t.turn_order as u32 + PARTIAL_EVERY * *k
        }
        _ => Duration::ZERO,
    }
}

#[derive(Default)]
struct Lateness {
    event_delays: Vec<Duration>,
    translation_delays: Vec<Duration>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(name: &str, l: &Lateness) {
    let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    let mean =
        |v: &[Duration]| v.iter().sum::<Duration>() / u32::try_from(v.len().max(1)).unwrap_or(1);
    let t = &l.translation_delays;
    println!(
        "{name:<28} events: mean {:>7.1} ms, max {:>7.1} ms | translation after its final: \
         first {:>6.0} ms, last {:>6.0} ms, mean {:>6.0} ms, max {:>6.0} ms",
        ms(mean(&l.event_delays)),
        ms(max(&l.event_delays)),
        ms(t.first().copied().unwrap_or_default()),
        ms(t.last().copied().unwrap_or_default()),
        ms(mean(t)),
        ms(max(t)),
    );
}

async fn emulator() -> EmulatorHandle {
    let script = Script {
        turns: (0..TURNS)
            .map(|n| ScriptTurn {
                text: final_text(n),
                translations: [("es".to_owned(), format!("Esta es la frase número {n}."))].into(),
                ..Default::default()
            })
            .collect(),
    };
    Emulator::builder()
        .script(script)
        .llm(LlmOptions {
            latency: LLM_LATENCY,
            ..Default::default()
        })
        .start()
        .await
        .expect("emulator")
}

/// `translate_finals`: events pass through, translations run concurrently.
async fn pipelined(lemur: Lemur) -> Lateness {
    let start = Instant::now();
    let mut out = translate_finals(session(start), lemur, "es", TranslateOptions::default());
    let mut partials = Default::default();
    let mut l = Lateness::default();
    while let Some(item) = out.next().await {
        let now = start.elapsed();
        match item.expect("no failures in the scenario") {
            TranslatedEvent::Event(e) => l
                .event_delays
                .push(now.saturating_sub(due(&e, &mut partials))),
            TranslatedEvent::Translation(t) => {
                let final_due = TURN_EVERY * (t.turn_order as u32 + 1);
                l.translation_delays.push(now.saturating_sub(final_due));
            }
            _ => {}
        }
    }
    l
}

/// Baseline: the session read directly, without translation (the stand-in's own timer jitter).
async fn direct() -> Lateness {
    let start = Instant::now();
    let mut events = session(start);
    let mut partials = Default::default();
    let mut l = Lateness::default();
    while let Some(item) = events.next().await {
        let event = item.expect("no failures");
        l.event_delays
            .push(start.elapsed().saturating_sub(due(&event, &mut partials)));
    }
    l
}

/// The quickstart's approach: translate inside the event handler, before reading the next
/// event.
async fn serial(lemur: Lemur) -> Lateness {
    let start = Instant::now();
    let mut events = session(start);
    let mut partials = Default::default();
    let mut l = Lateness::default();
    while let Some(item) = events.next().await {
        let event = item.expect("no failures");
        let now = start.elapsed();
        l.event_delays
            .push(now.saturating_sub(due(&event, &mut partials)));
        if let TurnEvent::Final(t) = &event {
            lemur
                .translate(&t.transcript, "es")
                .await
                .expect("translation");
            let final_due = TURN_EVERY * (t.turn_order as u32 + 1);
            l.translation_delays
                .push(start.elapsed().saturating_sub(final_due));
        }
    }
    l
}

fn scenario(rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        let emu = emulator().await;
        let lemur = Lemur::builder()
            .api_key(emu.api_key())
            .base_url(emu.http_url())
            .build()
            .expect("client");
        // Warm the connection pool so both runs start equal.
        let _ = lemur.translate(&final_text(0), "es").await;
        println!(
            "\nScenario: {TURNS} turns, a final every {} ms (partials every {} ms), LLM latency {} ms \
             (emulator over loopback HTTP)",
            TURN_EVERY.as_millis(),
            PARTIAL_EVERY.as_millis(),
            LLM_LATENCY.as_millis()
        );
        summary("baseline (no translation)", &direct().await);
        summary("translate_finals (4 conc.)", &pipelined(lemur.clone()).await);
        summary("serial (quickstart)", &serial(lemur).await);
        println!();
    });
}

fn overhead(c: &mut Criterion) {
    const N: usize = 1_000;
    let partials: Vec<Turn> = (0..N)
        .map(|i| turn(i as u64, "a few words here".into(), false))
        .collect();
    // `TurnEvent` need not be `Clone`: build the events from cloned turns.
    let events = || {
        partials
            .iter()
            .map(|t| Ok::<_, assemblyai_streaming::Error>(TurnEvent::Partial(t.clone())))
    };
    let mut group = c.benchmark_group("translate_finals_overhead");
    group.throughput(Throughput::Elements(N as u64));
    // Building the events is part of both variants, so the difference is the adapter's cost.
    group.bench_function(BenchmarkId::new("direct", N), |b| {
        b.iter(|| futures::executor::block_on(stream::iter(events()).count()))
    });
    group.bench_function(BenchmarkId::new("through_adapter", N), |b| {
        let translator = translator_fn(|text, _| async move { Ok(text) });
        let translator = std::sync::Arc::new(translator);
        b.iter(|| {
            let out = translate_finals(
                stream::iter(events()),
                translator.clone(),
                "es",
                TranslateOptions::default(),
            );
            futures::executor::block_on(out.count())
        })
    });
    group.finish();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // `cargo test --benches` runs benches once in test mode: skip the slow scenario there.
    let test_mode = std::env::args().any(|a| a == "--test");
    if !test_mode {
        scenario(&rt);
    }
    let mut c = Criterion::default().configure_from_args();
    overhead(&mut c);
    c.final_summary();
}
