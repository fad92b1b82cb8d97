//! The close code as it was on the wire.
//!
//! tungstenite replaces a close code that may not appear on the wire (1005, 1006, 1015, 0–999:
//! RFC 6455 §7.4.1–7.4.2) with 1002 "Protocol violation" before the application sees it. To
//! report what the server really sent, [`Sniff`] watches the bytes read from the server and
//! records the code of the last Close frame. It only parses frame headers and the first two
//! bytes of Close payloads; everything else passes through untouched.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// No Close frame seen yet.
const NONE: u32 = u32::MAX;
/// A Close frame without a payload (no code).
const NO_CODE: u32 = 0x1_0000;

/// What the last Close frame from the server carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireClose {
    /// A frame with no payload.
    NoCode,
    /// The code as sent.
    Code(u16),
}

/// Frame-boundary tracker for server-to-client bytes (pure).
#[derive(Debug, Default)]
pub(crate) struct CloseScanner {
    header: [u8; 14],
    have: usize,
    /// Payload bytes still to skip in the current frame.
    remaining: u64,
    /// Collecting the code of a Close frame: bytes seen, and the mask.
    close: Option<(usize, [u8; 2], Option<[u8; 4]>)>,
    last: Option<WireClose>,
}

impl CloseScanner {
    fn header_len(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        let len7 = self.header[1] & 0x7F;
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        2 + ext + mask
    }

    /// Scans `bytes`, the next bytes read from the server.
    pub(crate) fn scan(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining == 0 && self.close.is_none() {
                // In a header.
                self.header[self.have] = bytes[0];
                self.have += 1;
                bytes = &bytes[1..];
                if self.have < self.header_len() {
                    continue;
                }
                self.start_frame();
                continue;
            }
            if let Some((got, mut code, mask)) = self.close.take() {
                let b = match mask {
                    Some(m) => bytes[0] ^ m[got % 4],
                    None => bytes[0],
                };
                code[got] = b;
                bytes = &bytes[1..];
                self.remaining -= 1;
                if got == 1 {
                    self.last = Some(WireClose::Code(u16::from_be_bytes(code)));
                } else {
                    self.close = Some((got + 1, code, mask));
                }
                continue;
            }
            let skip = (self.remaining.min(bytes.len() as u64)) as usize;
            bytes = &bytes[skip..];
            self.remaining -= skip as u64;
        }
    }

    fn start_frame(&mut self) {
        let h = &self.header;
        let opcode = h[0] & 0x0F;
        let len7 = h[1] & 0x7F;
        let (len, at) = match len7 {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), 4),
            127 => (
                u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
                10,
            ),
            n => (u64::from(n), 2),
        };
        let mask = (h[1] & 0x80 != 0).then(|| [h[at], h[at + 1], h[at + 2], h[at + 3]]);
        self.have = 0;
        self.remaining = len;
        if opcode == 0x8 {
            if len == 0 {
                self.last = Some(WireClose::NoCode);
            } else if len >= 2 {
                self.close = Some((0, [0; 2], mask));
            }
        }
    }

    /// The last Close frame seen.
    pub(crate) fn last(&self) -> Option<WireClose> {
        self.last
    }
}

/// A stream that records the close code of the server's Close frames as they are read.
#[derive(Debug)]
pub(crate) struct Sniff<S> {
    inner: S,
    scanner: CloseScanner,
    last: Arc<AtomicU32>,
}

impl<S> Sniff<S> {
    /// Wraps `inner`; `already_read` are bytes read past the handshake response (they reach
    /// the websocket without passing through this wrapper).
    pub(crate) fn new(inner: S, already_read: &[u8]) -> Self {
        let mut sniff = Self {
            inner,
            scanner: CloseScanner::default(),
            last: Arc::new(AtomicU32::new(NONE)),
        };
        sniff.observe(already_read);
        sniff
    }

    fn observe(&mut self, bytes: &[u8]) {
        self.scanner.scan(bytes);
        if let Some(last) = self.scanner.last() {
            let v = match last {
                WireClose::NoCode => NO_CODE,
                WireClose::Code(c) => u32::from(c),
            };
            self.last.store(v, Ordering::Relaxed);
        }
    }

    /// The last Close frame the server sent, as it was on the wire.
    pub(crate) fn last_close(&self) -> Option<WireClose> {
        match self.last.load(Ordering::Relaxed) {
            NONE => None,
            NO_CODE => Some(WireClose::NoCode),
            c => Some(WireClose::Code(c as u16)),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniff<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.observe(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Sniff<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The close a session should report: tungstenite's, unless the wire said otherwise (a code
/// tungstenite replaced, or a frame without a code).
pub(crate) fn as_received(
    parsed: Option<(u16, String)>,
    wire: Option<WireClose>,
) -> Option<(u16, String)> {
    match (parsed, wire) {
        (_, Some(WireClose::NoCode)) => None,
        (Some((code, reason)), Some(WireClose::Code(raw))) if raw != code => {
            // tungstenite's replacement reason ("Protocol violation") is not the server's.
            let _ = reason;
            Some((raw, String::new()))
        }
        (parsed, _) => parsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => f.push(m | n as u8),
            n if n < 65536 => {
                f.push(m | 126);
                f.extend((n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend((n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                f.extend(k);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => f.extend(payload),
        }
        f
    }

    #[test]
    fn close_codes_are_found_across_any_split_and_frame_size() {
        let mut bytes = frame(0x1, &[b'x'; 300], None);
        bytes.extend(frame(0x2, &vec![7u8; 70_000], None));
        bytes.extend(frame(0x9, b"ping", None));
        bytes.extend(frame(0x8, &[0x03, 0xED, b'o', b'k'], None)); // 1005
        for chunk in [1, 2, 3, 7, 100, 4096, bytes.len()] {
            let mut s = CloseScanner::default();
            for piece in bytes.chunks(chunk) {
                s.scan(piece);
            }
            assert_eq!(s.last(), Some(WireClose::Code(1005)), "chunks of {chunk}");
        }
    }

    #[test]
    fn empty_masked_and_illegal_closes() {
        let mut s = CloseScanner::default();
        s.scan(&frame(0x8, &[], None));
        assert_eq!(s.last(), Some(WireClose::NoCode));
        let mut s = CloseScanner::default();
        s.scan(&frame(0x8, &[0x00, 0x00], Some([1, 2, 3, 4])));
        assert_eq!(s.last(), Some(WireClose::Code(0)));
        let mut s = CloseScanner::default();
        s.scan(&frame(0x1, b"{}", None));
        assert_eq!(s.last(), None);
    }

    #[test]
    fn the_received_code_wins_over_tungstenites_replacement() {
        let replaced = Some((1002, "Protocol violation".to_string()));
        assert_eq!(
            as_received(replaced, Some(WireClose::Code(1006))),
            Some((1006, String::new()))
        );
        let same = Some((3005, "x".to_string()));
        assert_eq!(as_received(same.clone(), Some(WireClose::Code(3005))), same);
        assert_eq!(as_received(None, Some(WireClose::NoCode)), None);
    }
}
