//! Real-time pacing for audio that is not live (files, buffers).

use std::time::Duration;

use futures::Stream;
use tokio::time::Instant;

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
pub fn paced<I>(
    chunks: I,
    sample_rate: u32,
    encoding: Encoding,
) -> impl Stream<Item = AudioChunk> + Send + 'static
where
    I: IntoIterator<Item = AudioChunk>,
    I::IntoIter: Send + 'static,
{
    let bytes_per_second = (sample_rate.max(1) as u64) * encoding.bytes_per_sample() as u64;
    let state = (chunks.into_iter(), None::<Instant>, 0u64);
    futures::stream::unfold(state, move |(mut iter, start, sent_bytes)| async move {
        let chunk = iter.next()?;
        let start = match start {
            Some(start) => {
                let due = start + Duration::from_micros(sent_bytes * 1_000_000 / bytes_per_second);
                tokio::time::sleep_until(due).await;
                start
            }
            None => Instant::now(),
        };
        let sent_bytes = sent_bytes + chunk.len() as u64;
        Some((chunk, (iter, Some(start), sent_bytes)))
    })
}
