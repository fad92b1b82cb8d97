//! A tolerant WAV parser: the RIFF/RF64 header, then the samples of the `data` chunk as `f32`.
//!
//! Written here rather than taken from `hound` because a WAV that was written to a pipe has no
//! true length in its header: sox writes `0x7ffff000`, ffmpeg `0xFFFFFFFF`, others 0. Such a
//! file must stream the samples that are present, and a file cut short mid-frame must yield
//! every whole frame before the cut. Rules (Microsoft's RIFF WAVE and RF64 specifications,
//! EBU Tech 3306 for RF64):
//! - the `data` length is a placeholder when it is `0xFFFFFFFF`, at least `0x7fff0000`, or 0
//!   while the RIFF length is a placeholder too; then samples are read to the end of input;
//! - a `data` length beyond the end of input reads what is there; a partial last frame is
//!   dropped;
//! - formats: integer PCM of 8 (unsigned), 16, 24 and 32 bits, IEEE float of 32 and 64 bits,
//!   8-bit A-law and μ-law, each also inside `WAVE_FORMAT_EXTENSIBLE`.

use std::io::{self, Read};

/// How samples are encoded in the `data` chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Integer PCM in a container of this many bytes (1 = unsigned 8-bit).
    Int(u16),
    /// IEEE float, 4 or 8 bytes.
    Float(u16),
    ALaw,
    MuLaw,
}

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub sample_rate: u32,
    pub channels: u16,
    pub bits_per_sample: u16,
    pub codec: Codec,
    /// Bytes per frame (all channels).
    pub block_align: usize,
    /// Bytes of sample data the header promises; `None` when it is a placeholder.
    pub data_len: Option<u64>,
}

/// A header problem: becomes `Error::Audio` (bad input), unlike an I/O failure.
#[derive(Debug)]
pub(crate) enum HeaderError {
    Bad(String),
    Io(io::Error),
}

impl From<io::Error> for HeaderError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            HeaderError::Bad("truncated header (the input ends before the audio data)".into())
        } else {
            HeaderError::Io(e)
        }
    }
}

fn bad<T>(msg: impl Into<String>) -> Result<T, HeaderError> {
    Err(HeaderError::Bad(msg.into()))
}

const WAVE_FORMAT_PCM: u16 = 1;
const WAVE_FORMAT_IEEE_FLOAT: u16 = 3;
const WAVE_FORMAT_ALAW: u16 = 6;
const WAVE_FORMAT_MULAW: u16 = 7;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Sample rates accepted, Hz: telephony's lowest to the highest studio rate (DXD × 2). Outside
/// this a header is more likely broken than real, and resampling it would be absurdly costly.
pub(crate) const MIN_RATE: u32 = 1_000;
/// See [`MIN_RATE`].
pub(crate) const MAX_RATE: u32 = 768_000;
/// Channels accepted (ambisonic and studio files go well beyond stereo; nothing real near this).
pub(crate) const MAX_CHANNELS: u16 = 256;

/// Chunks before `data` larger than this are refused rather than skipped (a bounded header).
const MAX_SKIPPED_CHUNK: u64 = 64 << 20;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn is_placeholder(len: u32) -> bool {
    len == u32::MAX || len >= 0x7fff_0000
}

/// Reads the header up to the first byte of sample data.
pub(crate) fn read_header(r: &mut impl Read) -> Result<Header, HeaderError> {
    let mut riff = [0u8; 12];
    let got = read_up_to(r, &mut riff)?;
    if got == 0 {
        return bad("empty input (no WAV header)");
    }
    let magic_ok = |m: &[u8]| {
        [&b"RIFF"[..], b"RF64", b"BW64"]
            .iter()
            .any(|k| k.starts_with(m))
    };
    if !magic_ok(&riff[..got.min(4)]) {
        return bad("not a WAV file (no RIFF header)");
    }
    if got < 12 {
        return bad("truncated header (shorter than a RIFF header)");
    }
    let rf64 = match &riff[0..4] {
        b"RIFF" => false,
        b"RF64" | b"BW64" => true,
        _ => return bad("not a WAV file (no RIFF header)"),
    };
    if &riff[8..12] != b"WAVE" {
        return bad("not a WAV file (RIFF type is not WAVE)");
    }
    let riff_len = u32_at(&riff, 4);
    let mut ds64_data: Option<u64> = None;
    let mut fmt: Option<(u32, u16, u16, Codec, usize)> = None;
    loop {
        let mut head = [0u8; 8];
        r.read_exact(&mut head)?;
        let id = [head[0], head[1], head[2], head[3]];
        let len = u32_at(&head, 4);
        match &id {
            b"fmt " => {
                if !(16..=1024).contains(&len) {
                    return bad(format!("bad fmt chunk length {len}"));
                }
                let mut body = vec![0u8; len as usize + (len as usize & 1)];
                r.read_exact(&mut body)?;
                fmt = Some(parse_fmt(&body)?);
            }
            b"ds64" => {
                if !(24..=1024).contains(&len) {
                    return bad(format!("bad ds64 chunk length {len}"));
                }
                let mut body = vec![0u8; len as usize + (len as usize & 1)];
                r.read_exact(&mut body)?;
                let data = u64::from(u32_at(&body, 8)) | (u64::from(u32_at(&body, 12)) << 32);
                ds64_data = Some(data);
            }
            b"data" => {
                let Some((sample_rate, channels, bits_per_sample, codec, block_align)) = fmt else {
                    return bad("data chunk before the fmt chunk");
                };
                let data_len = if rf64 && len == u32::MAX {
                    ds64_data.filter(|&n| n > 0)
                } else if is_placeholder(len)
                    || (len == 0 && (riff_len == 0 || is_placeholder(riff_len)))
                {
                    None
                } else {
                    Some(u64::from(len))
                };
                return Ok(Header {
                    sample_rate,
                    channels,
                    bits_per_sample,
                    codec,
                    block_align,
                    data_len,
                });
            }
            _ => {
                let skip = u64::from(len) + u64::from(len & 1);
                if skip > MAX_SKIPPED_CHUNK {
                    return bad(format!(
                        "chunk {:?} of {len} bytes before the audio data",
                        String::from_utf8_lossy(&id)
                    ));
                }
                let skipped = io::copy(&mut r.take(skip), &mut io::sink())?;
                if skipped < skip {
                    return bad("truncated header (the input ends before the audio data)");
                }
            }
        }
    }
}

fn parse_fmt(b: &[u8]) -> Result<(u32, u16, u16, Codec, usize), HeaderError> {
    let mut tag = u16_at(b, 0);
    let channels = u16_at(b, 2);
    let sample_rate = u32_at(b, 4);
    let block_align = usize::from(u16_at(b, 12));
    let bits = u16_at(b, 14);
    if tag == WAVE_FORMAT_EXTENSIBLE {
        if b.len() < 40 {
            return bad("WAVE_FORMAT_EXTENSIBLE without its extension");
        }
        // The sub-format GUID starts with the plain format tag.
        tag = u16_at(b, 24);
    }
    if channels == 0 {
        return bad("the header says 0 channels");
    }
    if !(MIN_RATE..=MAX_RATE).contains(&sample_rate) {
        return bad(format!(
            "unsupported sample rate {sample_rate} Hz (supported: {MIN_RATE}–{MAX_RATE} Hz)"
        ));
    }
    if channels > MAX_CHANNELS {
        return bad(format!(
            "unsupported channel count {channels} (at most {MAX_CHANNELS})"
        ));
    }
    if bits == 0 {
        return bad("the header says 0 bits per sample");
    }
    // The container is what block_align says when it is consistent; some writers leave it 0 or
    // wrong, and then the bit depth decides.
    let from_bits = usize::from(bits).div_ceil(8);
    let per_channel = if block_align != 0 && block_align % usize::from(channels) == 0 {
        (block_align / usize::from(channels)).max(from_bits)
    } else {
        from_bits
    };
    let codec = match (tag, per_channel) {
        (WAVE_FORMAT_PCM, 1..=4) => Codec::Int(per_channel as u16),
        (WAVE_FORMAT_IEEE_FLOAT, 4 | 8) => Codec::Float(per_channel as u16),
        (WAVE_FORMAT_ALAW, 1) => Codec::ALaw,
        (WAVE_FORMAT_MULAW, 1) => Codec::MuLaw,
        (WAVE_FORMAT_PCM | WAVE_FORMAT_IEEE_FLOAT | WAVE_FORMAT_ALAW | WAVE_FORMAT_MULAW, _) => {
            return bad(format!(
                "unsupported sample size: {bits} bits (format tag {tag})"
            ));
        }
        _ => return bad(format!("unsupported WAV format tag {tag:#06x}")),
    };
    Ok((
        sample_rate,
        channels,
        bits,
        codec,
        per_channel * usize::from(channels),
    ))
}

/// Fills `buf` as far as the input allows; returns the bytes read (short only at the end).
pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Decodes whole frames of `bytes` (a multiple of the frame size) into `out` as `f32` in
/// [-1, 1], interleaved.
pub(crate) fn decode(codec: Codec, bytes: &[u8], out: &mut Vec<f32>) {
    match codec {
        Codec::Int(1) => out.extend(bytes.iter().map(|&b| (f32::from(b) - 128.0) / 128.0)),
        Codec::Int(2) => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0),
        ),
        Codec::Int(3) => out.extend(bytes.chunks_exact(3).map(|b| {
            let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
            (f64::from(v) / 8_388_608.0) as f32
        })),
        Codec::Int(_) => out.extend(bytes.chunks_exact(4).map(|b| {
            let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            (f64::from(v) / 2_147_483_648.0) as f32
        })),
        Codec::Float(8) => out.extend(bytes.chunks_exact(8).map(|b| {
            let v = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            sanitize(v as f32)
        })),
        Codec::Float(_) => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| sanitize(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        ),
        Codec::ALaw => out.extend(bytes.iter().map(|&b| f32::from(alaw(b)) / 32_768.0)),
        Codec::MuLaw => out.extend(bytes.iter().map(|&b| f32::from(mulaw(b)) / 32_768.0)),
    }
}

/// NaN and infinities (a broken float file) become silence rather than poisoning the resampler.
fn sanitize(v: f32) -> f32 {
    if v.is_finite() { v } else { 0.0 }
}

/// G.711 μ-law to 16-bit linear (ITU-T G.711).
pub(crate) fn mulaw(b: u8) -> i16 {
    let b = !b;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if b & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// G.711 A-law to 16-bit linear (ITU-T G.711).
pub(crate) fn alaw(b: u8) -> i16 {
    let b = b ^ 0x55;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0f);
    let magnitude = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    (if b & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_extremes() {
        assert_eq!(mulaw(0xff), 0);
        assert_eq!(mulaw(0x80), 32_124);
        assert_eq!(mulaw(0x00), -32_124);
        assert_eq!(alaw(0xd5), 8);
        assert_eq!(alaw(0x55), -8);
        assert_eq!(alaw(0xaa), 32_256);
    }

    #[test]
    fn int_containers_are_left_justified() {
        let mut out = Vec::new();
        decode(Codec::Int(3), &[0, 0, 0x80, 0xff, 0xff, 0x7f], &mut out);
        assert_eq!(out[0], -1.0);
        assert!((out[1] - 1.0).abs() < 1e-6);
        out.clear();
        decode(Codec::Int(1), &[0, 128, 255], &mut out);
        assert_eq!(out[..2], [-1.0, 0.0]);
    }
}
