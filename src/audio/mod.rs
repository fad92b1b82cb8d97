//! Audio handed to a session.
//!
//! The service takes mono audio in the session's encoding and sample rate: 16-bit little-endian
//! PCM (`pcm_s16le`, the default) or 8-bit μ-law (`pcm_mulaw`). An [`AudioChunk`] is any amount of
//! such audio; the session's sink re-cuts chunks into frames the service accepts (50–1000 ms).
//!
//! Audio from elsewhere (a microphone, a WAV file at 44.1 kHz stereo, ...) goes through an
//! [`AudioConverter`]: downmix to mono, stateful anti-aliased resampling, s16le, exact chunks.
//! With the `wav` feature (on by default), `read_wav` / `open_wav` (files) and `read_wav_bytes` /
//! `open_wav_reader` (memory, any `Read + Seek`) convert any WAV that way, and `WavRecorder`
//! saves what a session sent.

use bytes::Bytes;

mod convert;
mod pace;
mod resample;
mod sample;
#[cfg(feature = "wav")]
mod wav;
#[cfg(feature = "wav")]
mod wav_decode;

pub use convert::{
    AudioConverter, Chunks, DEFAULT_CHUNK_DURATION, MAX_CHUNK_DURATION, MIN_CHUNK_DURATION,
    rms_level,
};
pub use pace::{Paced, paced};
pub use sample::{PcmSample, f32_to_i16};
#[cfg(feature = "wav")]
#[cfg_attr(docsrs, doc(cfg(feature = "wav")))]
pub use wav::{
    WavChunks, WavInfo, WavRecorder, WavSampleFormat, open_wav, open_wav_reader, read_wav,
    read_wav_bytes, read_wav_with_chunk,
};

/// A piece of mono audio in the session's encoding and sample rate, of any length.
///
/// ```
/// use assemblyai_streaming::AudioChunk;
///
/// let chunk = AudioChunk::from_pcm16(&[0, 1000, -1000]);
/// assert_eq!(chunk.as_bytes(), &[0, 0, 0xe8, 0x03, 0x18, 0xfc]);
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AudioChunk {
    data: Bytes,
}

impl std::fmt::Debug for AudioChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AudioChunk({} bytes)", self.data.len())
    }
}

impl AudioChunk {
    /// Audio from raw bytes already in the session's encoding (s16le or μ-law).
    pub fn from_bytes(data: impl Into<Bytes>) -> Self {
        Self { data: data.into() }
    }

    /// Audio from 16-bit samples (encoded little-endian).
    pub fn from_pcm16(samples: &[i16]) -> Self {
        let mut data = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            data.extend_from_slice(&s.to_le_bytes());
        }
        Self { data: data.into() }
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the chunk holds no audio.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The bytes, without copying.
    pub fn into_bytes(self) -> Bytes {
        self.data
    }

    /// Decodes s16le bytes into samples (a trailing odd byte is ignored).
    pub fn to_pcm16(&self) -> Vec<i16> {
        self.data
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }
}

impl From<Vec<u8>> for AudioChunk {
    fn from(v: Vec<u8>) -> Self {
        Self::from_bytes(v)
    }
}

impl From<Bytes> for AudioChunk {
    fn from(b: Bytes) -> Self {
        Self::from_bytes(b)
    }
}

impl From<&[i16]> for AudioChunk {
    fn from(samples: &[i16]) -> Self {
        Self::from_pcm16(samples)
    }
}
