//! Real-time pacing for audio that is not live (files, buffers).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::time::{Instant, Sleep};

use super::AudioChunk;
use crate::params::Encoding;

/// Yields `chunks` no faster than real time: each chunk when the audio before it has "played".
///
/// The service closes a session that receives audio faster than real time (3007), and a file
/// read in a tight loop would do exactly that. Pacing follows the audio clock from the first
/// chunk, so scheduling delays do not accumulate into drift.
///
/// ```
/// use assemblyai_streaming::{AudioChunk, Encoding, audio::paced};
/// use futures::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let chunks = vec![AudioChunk::from_pcm16(&[0; 1600]); 3]; // 3 × 100 ms at 16 kHz
/// let started = tokio::time::Instant::now();
/// let sent: Vec<AudioChunk> = paced(chunks, 16_000, Encoding::PcmS16le).collect().await;
/// assert_eq!(sent.len(), 3);
/// // The last chunk left 200 ms after the first: when the first two had played.
/// assert_eq!(started.elapsed().as_millis(), 200);
/// # }
/// ```
///
/// The stream is `Unpin` and `Send`, so it can be polled in place, e.g. with
/// `sink.send_all(&mut paced(..).map(Ok))`.
pub fn paced<I>(chunks: I, sample_rate: u32, encoding: Encoding) -> Paced<I::IntoIter>
where
    I: IntoIterator<Item = AudioChunk>,
{
    Paced {
        chunks: chunks.into_iter(),
        bytes_per_second: u64::from(sample_rate.max(1)) * encoding.bytes_per_sample() as u64,
        start: None,
        sent_bytes: 0,
        next: None,
        sleep: None,
    }
}

/// The stream returned by [`paced`].
#[must_use = "streams do nothing unless polled"]
pub struct Paced<I> {
    chunks: I,
    bytes_per_second: u64,
    /// When the first chunk left: the audio clock's zero.
    start: Option<Instant>,
    /// Bytes yielded so far.
    sent_bytes: u64,
    /// A chunk waiting for its time.
    next: Option<AudioChunk>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<I> std::fmt::Debug for Paced<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Paced")
            .field("bytes_per_second", &self.bytes_per_second)
            .field("sent_bytes", &self.sent_bytes)
            .finish_non_exhaustive()
    }
}

// The iterator is never pinned (only the boxed timer is), so the stream is `Unpin` whatever `I`.
impl<I> Unpin for Paced<I> {}

impl<I: Iterator<Item = AudioChunk>> Stream for Paced<I> {
    type Item = AudioChunk;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<AudioChunk>> {
        let this = &mut *self;
        if this.next.is_none() {
            let Some(chunk) = this.chunks.next() else {
                return Poll::Ready(None);
            };
            this.next = Some(chunk);
            if let Some(start) = this.start {
                let due = start
                    + Duration::from_micros(
                        this.sent_bytes.saturating_mul(1_000_000) / this.bytes_per_second,
                    );
                this.sleep = Some(Box::pin(tokio::time::sleep_until(due)));
            }
        }
        if let Some(sleep) = &mut this.sleep {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        let chunk = this.next.take().unwrap_or_default();
        this.start.get_or_insert_with(Instant::now);
        this.sent_bytes += chunk.len() as u64;
        Poll::Ready(Some(chunk))
    }
}
