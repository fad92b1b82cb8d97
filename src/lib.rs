//! Async client for AssemblyAI's Universal Streaming (v3) speech-to-text API.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod audio;
pub mod error;
#[cfg(feature = "mic")]
pub mod mic;
pub mod params;
pub mod protocol;

pub use audio::AudioChunk;
pub use error::{CloseKind, Error, Result, TimeoutKind};
pub use params::{ConnectionParams, Encoding, SpeechModel};
