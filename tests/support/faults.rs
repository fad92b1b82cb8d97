//! Helpers of the fault tests (faults, long sessions, no lost data, session edges): synthetic
//! "speech" the emulator's energy VAD turns into turns, a client preset for the emulator, and a
//! collector that checks how a stream ends.
#![allow(dead_code)]

use std::time::Duration;

use assemblyai_streaming::emulator::EmulatorHandle;
use assemblyai_streaming::{AudioChunk, Error, StreamingClientBuilder, TurnEvent};
use futures::{SinkExt, Stream, StreamExt};

/// Bytes per ms of 16 kHz s16le audio.
pub const BYTES_PER_MS: usize = 32;

/// `n` "utterances": a 300 Hz tone (about -12 dBFS, far above the VAD threshold) of
/// `speech_ms`, each followed by `pause_ms` of silence, after 200 ms of silence. The emulator
/// makes one turn of each tone burst.
pub fn tone_turns(n: usize, speech_ms: usize, pause_ms: usize) -> Vec<u8> {
    let mut samples: Vec<i16> = vec![0; 200 * 16];
    for _ in 0..n {
        samples.extend((0..speech_ms * 16).map(|i| {
            let t = i as f64 / 16_000.0;
            (8000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16
        }));
        samples.extend(std::iter::repeat_n(0, pause_ms * 16));
    }
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// An emulator with `faults` whose turns say `texts`, accepting audio faster than real time
/// (these tests send audio as fast as the socket takes it; turn detection follows the audio
/// clock, so the turns are those of a real-time stream).
pub async fn fast_emulator_with(
    faults: assemblyai_streaming::emulator::Faults,
    texts: impl IntoIterator<Item = impl Into<String>>,
) -> EmulatorHandle {
    assemblyai_streaming::emulator::Emulator::builder()
        .faults(faults)
        .script(assemblyai_streaming::emulator::Script::from_texts(texts))
        .realtime_tolerance(Duration::from_secs(3600))
        .start()
        .await
        .unwrap()
}

/// 100 ms chunks of `audio`.
pub fn chunks(audio: &[u8]) -> Vec<AudioChunk> {
    audio
        .chunks(100 * BYTES_PER_MS)
        .map(|c| AudioChunk::from_bytes(c.to_vec()))
        .collect()
}

/// Sends `audio` to `session` in 100 ms chunks, as fast as the session takes them.
pub async fn send_all(session: &mut assemblyai_streaming::StreamingSession, audio: &[u8]) {
    for chunk in chunks(audio) {
        session
            .send(chunk)
            .await
            .expect("the session takes the audio");
    }
}

/// A client for `emu` with short timeouts and fast retries.
pub fn client_for(emu: &EmulatorHandle) -> StreamingClientBuilder {
    assemblyai_streaming::StreamingClient::builder()
        .api_key(emu.api_key())
        .base_url(emu.ws_url())
        .connect_timeout(Duration::from_secs(2))
        .terminate_timeout(Duration::from_secs(2))
        .retries(2, Duration::from_millis(50))
}

/// A session on `emu` with [`client_for`]'s settings and default connection parameters.
pub async fn connect(emu: &EmulatorHandle) -> assemblyai_streaming::StreamingSession {
    client_for(emu)
        .build()
        .unwrap()
        .connect(assemblyai_streaming::ConnectionParams::new())
        .await
        .unwrap()
}

/// One complete turn (800 ms of tone, 1.5 s of silence), then a second tone that ends with the
/// audio, so its turn is still open when the audio stops.
pub fn one_turn_then_an_open_one() -> Vec<u8> {
    let mut audio = tone_turns(1, 800, 1500);
    audio.extend(&tone_turns(1, 800, 0)[200 * BYTES_PER_MS..]);
    audio
}

/// How a stream went: its events, the decode errors it survived, and the error it ended with.
#[derive(Debug, Default)]
pub struct Ended {
    pub events: Vec<TurnEvent>,
    pub decode_errors: Vec<Error>,
    pub error: Option<Error>,
}

impl Ended {
    /// Transcripts of the finals, in order.
    pub fn finals(&self) -> Vec<(u64, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                TurnEvent::Final(t) => Some((t.turn_order, t.transcript.clone())),
                _ => None,
            })
            .collect()
    }

    /// The error the stream ended with (taken out); fails the test when it ended without one.
    pub fn take_error(&mut self) -> Error {
        self.error
            .take()
            .unwrap_or_else(|| panic!("the stream ended without an error: {self:#?}"))
    }

    /// Whether the last event is `Termination`.
    pub fn terminated(&self) -> bool {
        matches!(self.events.last(), Some(TurnEvent::Termination(_)))
    }
}

/// Reads `stream` to its end (bounded by `limit`), checking the documented contract: a decode
/// error may be followed by more items; any other error is the last item; after the end,
/// `next()` keeps returning `None`.
pub async fn drain<S>(stream: S, limit: Duration) -> Ended
where
    S: Stream<Item = assemblyai_streaming::Result<TurnEvent>> + Unpin,
{
    let (events, decode_errors, error) =
        read_to_end(stream, limit, |e| matches!(e, TurnEvent::Termination(_))).await;
    Ended {
        events,
        decode_errors,
        error,
    }
}

/// The events, decode errors and final error of a stream read to its end.
pub type StreamItems<E> = (Vec<E>, Vec<Error>, Option<Error>);

/// Reads a stream of session events to its end (bounded by `limit`), checking the contract
/// both session types document: a decode error may be followed by more items; any other error,
/// and an event `is_last` (`Termination`), is the last item; after the end, `next()` keeps
/// returning `None`. One reader for [`drain`] and `support::resilient::collect`.
pub async fn read_to_end<S, E>(
    mut stream: S,
    limit: Duration,
    is_last: impl Fn(&E) -> bool,
) -> StreamItems<E>
where
    S: Stream<Item = assemblyai_streaming::Result<E>> + Unpin,
    E: std::fmt::Debug,
{
    let (mut events, mut decode_errors, mut error): StreamItems<E> = Default::default();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let item = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "stream did not end within {limit:?}: {:#?}",
                    (&events, &decode_errors, &error)
                )
            });
        match item {
            None => break,
            Some(Ok(event)) => {
                assert!(error.is_none(), "an item after the final error: {event:?}");
                assert!(
                    !events.last().is_some_and(&is_last),
                    "an item after Termination: {event:?}"
                );
                events.push(event);
            }
            Some(Err(e @ Error::Decode { .. })) => {
                assert!(error.is_none(), "an item after the final error: {e:?}");
                decode_errors.push(e);
            }
            Some(Err(e)) => {
                assert!(error.is_none(), "two final errors: {error:?} then {e:?}");
                error = Some(e);
            }
        }
    }
    for _ in 0..3 {
        assert!(
            stream.next().await.is_none(),
            "the stream yielded after its end"
        );
    }
    (events, decode_errors, error)
}
