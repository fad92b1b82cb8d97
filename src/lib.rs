#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod audio;
mod client;
#[cfg(feature = "emulator")]
pub mod emulator;
pub mod error;
mod handshake;
pub mod lemur;
#[cfg(feature = "mic")]
pub mod mic;
pub mod params;
pub mod protocol;
// Wired into the error paths by the transport work; allowed unused until then.
#[allow(dead_code)]
mod redact;
pub mod retry;
mod session;
pub mod translate;

pub use audio::AudioChunk;
pub use client::{API_KEY_ENV, Region, Secret, StreamingClient, StreamingClientBuilder};
pub use error::{Cause, CloseKind, Error, ErrorKind, Result, TimeoutKind};
pub use params::{ConnectionParams, Encoding, SpeechModel};
pub use retry::RetryPolicy;
pub use session::{
    AudioSink, EventStream, SessionHandle, SessionInfo, StreamingSession, TurnEvent,
};
