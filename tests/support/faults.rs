//! Helpers of the fault tests (faults, long sessions, no lost data, session edges): synthetic
//! "speech" the emulator's energy VAD turns into turns, a client preset for the emulator, and a
//! collector that checks how a stream ends.
#![allow(dead_code)]

use std::time::Duration;

use assemblyai_streaming::emulator::EmulatorHandle;
use assemblyai_streaming::{AudioChunk, Error, StreamingClientBuilder, TurnEvent};
use futures::{Stream, StreamExt};

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

/// 100 ms chunks of `audio`.
pub fn chunks(audio: &[u8]) -> Vec<AudioChunk> {
    audio
        .chunks(100 * BYTES_PER_MS)
        .map(|c| AudioChunk::from_bytes(c.to_vec()))
        .collect()
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

    /// Whether the last event is `Termination`.
    pub fn terminated(&self) -> bool {
        matches!(self.events.last(), Some(TurnEvent::Termination(_)))
    }
}

/// Reads `stream` to its end (bounded by `limit`), checking the documented contract: a decode
/// error may be followed by more items; any other error is the last item; after the end,
/// `next()` keeps returning `None`.
pub async fn drain<S>(mut stream: S, limit: Duration) -> Ended
where
    S: Stream<Item = assemblyai_streaming::Result<TurnEvent>> + Unpin,
{
    let mut out = Ended::default();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let item = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("stream did not end within {limit:?}: {out:#?}"));
        match item {
            None => break,
            Some(Ok(event)) => {
                assert!(
                    out.error.is_none(),
                    "an item after the final error: {event:?}"
                );
                assert!(!out.terminated(), "an item after Termination: {event:?}");
                out.events.push(event);
            }
            Some(Err(e @ Error::Decode { .. })) => {
                assert!(out.error.is_none(), "an item after the final error: {e:?}");
                out.decode_errors.push(e);
            }
            Some(Err(e)) => {
                assert!(
                    out.error.is_none(),
                    "two final errors: {:?} then {e:?}",
                    out.error
                );
                out.error = Some(e);
            }
        }
    }
    for _ in 0..3 {
        assert!(
            stream.next().await.is_none(),
            "the stream yielded after its end"
        );
    }
    out
}
