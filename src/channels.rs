//! Multi-channel audio (e.g. stereo call recordings): one session per channel, events tagged
//! with their channel and merged in audio-time order.
//!
//! AssemblyAI's advice for multichannel streaming is one session per channel (its
//! "Multichannel streaming audio" guide), which also keeps each speaker's turn detection
//! independent of the other's. [`MergedChannels`] merges the sessions' event streams:
//!
//! - each event gets a time on the audio clock (ms from the start of the stream): a turn's
//!   first word `start` for partials and finals, the latest audio time seen on its channel for
//!   other events, 0 for `Begin`;
//! - events of one channel keep their order; across channels, the event with the earliest time
//!   goes first. An event is held until every other channel has moved past its time (a channel
//!   with a turn in progress has not moved past that turn's start; an ended channel has moved
//!   past everything) — but never longer than [`MergedChannels::max_hold`] (default 1 s), so a
//!   silent channel, which sends nothing, cannot stall the others;
//! - the stream ends when every channel's stream has ended.
//!
//! ```
//! use assemblyai_streaming::channels::MergedChannels;
//! use assemblyai_streaming::{ConnectionParams, StreamingClient, TurnEvent};
//! use futures::StreamExt;
//! # use assemblyai_streaming::emulator::{Emulator, Script};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let script = Script::from_texts(["Hello, world."]);
//! # let emulator = Emulator::builder().script(script).start().await?;
//! # // A 1.5 s stereo call: the left channel speaks first (0–0.5 s), the right one answers
//! # // (0.6–1.1 s).
//! # let call = std::env::temp_dir().join(format!("channels-doc-{}.wav", std::process::id()));
//! # let spec = hound::WavSpec {
//! #     channels: 2,
//! #     sample_rate: 16_000,
//! #     bits_per_sample: 16,
//! #     sample_format: hound::SampleFormat::Int,
//! # };
//! # let mut wav = hound::WavWriter::create(&call, spec)?;
//! # for i in 0..24_000 {
//! #     let tone = ((i as f32 * 0.2).sin() * 8_000.0) as i16;
//! #     wav.write_sample(if i < 8_000 { tone } else { 0 })?;
//! #     wav.write_sample(if (9_600..17_600).contains(&i) { tone } else { 0 })?;
//! # }
//! # wav.finalize()?;
//! let client = StreamingClient::builder() // key from ASSEMBLYAI_API_KEY
//! #   .api_key(emulator.api_key())
//! #   .base_url(emulator.ws_url())
//!     .build()?;
//! let params = ConnectionParams::new().format_turns(true);
//! // `call`: a stereo WAV with one speaker per channel, streamed at real time.
//! let mut events = MergedChannels::from_wav(&client, params, &call, true).await?;
//! # let mut speakers = Vec::new();
//! while let Some(tagged) = events.next().await {
//!     if let TurnEvent::Final(turn) = tagged.event? {
//!         println!("channel {}: {}", tagged.channel, turn.transcript);
//! #       speakers.push(tagged.channel);
//!     }
//! }
//! # assert_eq!(speakers, [0, 1]); // in audio-time order
//! # std::fs::remove_file(&call)?;
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use futures::stream::BoxStream;
use tokio::time::{Instant, Sleep};

use crate::error::Result;
use crate::session::TurnEvent;

/// An event of one channel's session.
#[derive(Debug)]
#[non_exhaustive]
pub struct ChannelEvent {
    /// The channel, 0-based (0 is the left channel of a stereo file).
    pub channel: u16,
    /// The audio time the merge ordered this event by, ms from the start of the stream.
    pub audio_ms: i64,
    /// The session's event, or its error.
    pub event: Result<TurnEvent>,
}

/// Events held per channel before the merge lets them through; beyond this the oldest goes
/// out regardless of order (a bounded buffer).
pub const MAX_HELD_PER_CHANNEL: usize = 1024;

struct Channel {
    events: Option<BoxStream<'static, Result<TurnEvent>>>,
    queue: VecDeque<(i64, Instant, Result<TurnEvent>)>,
    /// Start of the turn in progress (a partial seen, its final not yet).
    open_turn: Option<i64>,
    /// Latest audio time seen on this channel.
    now_ms: i64,
}

impl Channel {
    /// The earliest audio time a future event of this channel can have.
    fn lower_bound(&self) -> i64 {
        match (&self.events, self.queue.front()) {
            (_, Some((key, _, _))) => *key,
            (None, None) => i64::MAX,
            (Some(_), None) => self.open_turn.unwrap_or(self.now_ms),
        }
    }

    fn key(&mut self, item: &Result<TurnEvent>) -> i64 {
        let Ok(event) = item else {
            return self.now_ms;
        };
        match event {
            TurnEvent::Begin(_) => 0,
            TurnEvent::Partial(turn) | TurnEvent::Final(turn) => {
                let start = turn.words.first().map(|w| w.start);
                if let Some(end) = turn.words.iter().map(|w| w.end).max() {
                    self.now_ms = self.now_ms.max(end);
                }
                let key = start.or(self.open_turn).unwrap_or(self.now_ms);
                self.open_turn = if event.is_final() { None } else { Some(key) };
                key
            }
            TurnEvent::SpeechStarted(s) => {
                self.now_ms = self.now_ms.max(s.timestamp);
                s.timestamp
            }
            _ => self.now_ms,
        }
    }
}

/// The merged, channel-tagged events of one session per channel; see the
/// [module docs](self).
#[must_use = "streams do nothing unless polled"]
pub struct MergedChannels {
    channels: Vec<Channel>,
    max_hold: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for MergedChannels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergedChannels")
            .field("channels", &self.channels.len())
            .field("max_hold", &self.max_hold)
            .finish_non_exhaustive()
    }
}

impl MergedChannels {
    /// Merges the event streams of one session per channel; the `i`-th stream is channel `i`.
    /// Usually each is a [`StreamingSession::stream_audio`](crate::StreamingSession::stream_audio)
    /// fed that channel's audio.
    pub fn new<I, S>(streams: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Stream<Item = Result<TurnEvent>> + Send + 'static,
    {
        let channels = streams
            .into_iter()
            .map(|s| Channel {
                events: Some(Box::pin(s) as BoxStream<'static, _>),
                queue: VecDeque::new(),
                open_turn: None,
                now_ms: 0,
            })
            .collect();
        MergedChannels {
            channels,
            max_hold: Duration::from_secs(1),
            timer: None,
        }
    }

    /// Number of channels merged.
    pub fn channels(&self) -> u16 {
        u16::try_from(self.channels.len()).unwrap_or(u16::MAX)
    }

    /// Sets how long an event may wait for slower channels before it goes out anyway
    /// (default 1 s; `Duration::ZERO` passes events in arrival order).
    pub fn max_hold(mut self, max_hold: Duration) -> Self {
        self.max_hold = max_hold;
        self
    }

    /// Opens one session per channel of the WAV file at `path` (with the same `params`) and
    /// streams each its own channel, converted to the session's rate, at real-time pace when
    /// `realtime` (required by the service for audio that is not live; the emulator can be
    /// told otherwise). Fails like [`open_wav`](crate::audio::open_wav) and
    /// [`connect`](crate::StreamingClient::connect); sessions already opened are dropped
    /// (closed) on failure.
    #[cfg(feature = "wav")]
    #[cfg_attr(docsrs, doc(cfg(feature = "wav")))]
    pub async fn from_wav(
        client: &crate::StreamingClient,
        params: crate::ConnectionParams,
        path: impl AsRef<std::path::Path>,
        realtime: bool,
    ) -> Result<Self> {
        let path = path.as_ref();
        let rate = params.get_sample_rate();
        let encoding = params.get_encoding();
        let channels = crate::audio::open_wav(path, rate)?.info().channels;
        let mut audio = Vec::new();
        for channel in 0..channels {
            audio.push(crate::audio::open_wav(path, rate)?.only_channel(channel)?);
        }
        let sources = audio.into_iter().map(|chunks| {
            // A read error ends that channel's audio with one `Err` event.
            let chunks: BoxStream<'static, Result<crate::AudioChunk>> = if realtime {
                Box::pin(paced_results(chunks, rate, encoding))
            } else {
                Box::pin(futures::stream::iter(chunks))
            };
            chunks
        });
        Self::connect(client, params, sources).await
    }

    /// Opens one session per audio source (source `i` is channel `i`; each a mono stream in
    /// the session's format, e.g. one [`AudioConverter`](crate::audio::AudioConverter) per
    /// channel of a live stereo input) and pumps each into its session with
    /// [`stream_audio`](crate::StreamingSession::stream_audio). The sessions connect
    /// concurrently; if one fails, the others are closed and the error is returned.
    pub async fn connect<I, S>(
        client: &crate::StreamingClient,
        params: crate::ConnectionParams,
        sources: I,
    ) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Stream + Send + 'static,
        S::Item: crate::AudioItem,
    {
        let sources: Vec<S> = sources.into_iter().collect();
        let sessions =
            futures::future::try_join_all(sources.iter().map(|_| client.connect(params.clone())))
                .await?;
        Ok(Self::new(
            sessions
                .into_iter()
                .zip(sources)
                .map(|(session, source)| session.stream_audio(source)),
        ))
    }

    /// Index of the channel whose head event goes next, if any may go now; else when to look
    /// again.
    fn next_ready(&self, now: Instant) -> (Option<usize>, Option<Instant>) {
        let mut best: Option<(i64, usize)> = None;
        for (i, ch) in self.channels.iter().enumerate() {
            if let Some((key, _, _)) = ch.queue.front() {
                if best.is_none_or(|(k, _)| *key < k) {
                    best = Some((*key, i));
                }
            }
        }
        let Some((key, i)) = best else {
            return (None, None);
        };
        let (_, arrived, _) = &self.channels[i].queue[0];
        let others_past = self
            .channels
            .iter()
            .enumerate()
            .all(|(j, ch)| j == i || ch.lower_bound() >= key);
        let due = *arrived + self.max_hold;
        if others_past || now >= due || self.channels[i].queue.len() > MAX_HELD_PER_CHANNEL {
            (Some(i), None)
        } else {
            // The earliest moment any held event is due.
            let next = self
                .channels
                .iter()
                .filter_map(|ch| ch.queue.front().map(|(_, at, _)| *at + self.max_hold))
                .min();
            (None, next)
        }
    }
}

#[cfg(feature = "wav")]
fn paced_results(
    chunks: crate::audio::WavChunks,
    rate: u32,
    encoding: crate::Encoding,
) -> impl Stream<Item = Result<crate::AudioChunk>> + Send + 'static {
    use futures::StreamExt;
    // Pacing needs the chunks themselves; a read error is passed on after the audio before it.
    let mut error = None;
    let mut ok = Vec::new();
    for chunk in chunks {
        match chunk {
            Ok(c) => ok.push(c),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    crate::audio::paced(ok, rate, encoding)
        .map(Ok)
        .chain(futures::stream::iter(error.map(Err)))
}

impl Stream for MergedChannels {
    type Item = ChannelEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ChannelEvent>> {
        let this = &mut *self;
        for ch in &mut this.channels {
            while let Some(events) = &mut ch.events {
                if ch.queue.len() > MAX_HELD_PER_CHANNEL {
                    break;
                }
                match events.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => {
                        let key = ch.key(&item);
                        ch.queue.push_back((key, Instant::now(), item));
                    }
                    Poll::Ready(None) => ch.events = None,
                    Poll::Pending => break,
                }
            }
        }
        let (ready, wake_at) = this.next_ready(Instant::now());
        if let Some(i) = ready {
            this.timer = None;
            let ch = &mut this.channels[i];
            if let Some((audio_ms, _, event)) = ch.queue.pop_front() {
                return Poll::Ready(Some(ChannelEvent {
                    channel: u16::try_from(i).unwrap_or(u16::MAX),
                    audio_ms,
                    event,
                }));
            }
        }
        if this
            .channels
            .iter()
            .all(|ch| ch.events.is_none() && ch.queue.is_empty())
        {
            return Poll::Ready(None);
        }
        if let Some(at) = wake_at {
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            timer.as_mut().reset(at);
            if timer.as_mut().poll(cx).is_ready() {
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    }
}
