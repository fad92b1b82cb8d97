//! Helpers shared by the integration tests, one module per subject. Each test binary compiles
//! the whole tree and uses what it needs, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

/// The in-process emulator: clients for it, speech, sessions, and the official SDKs.
pub mod emulator;
/// Fault tests: clients with short timeouts, event collection, error assertions.
pub mod faults;
/// `ResilientSession` tests: paced feeding, collected timelines.
pub mod resilient;
/// Scripted websocket servers (Begin … Termination), example binaries.
pub mod server;
/// Transport tests: a test CA, a CONNECT proxy, TLS/HTTP/SSE responders.
pub mod transport;
