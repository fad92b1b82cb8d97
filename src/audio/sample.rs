//! PCM sample formats the converter accepts.

/// A PCM sample type that can be normalised to `f32` in `[-1.0, 1.0]`.
///
/// Implemented for the formats audio devices and WAV files deliver: signed and unsigned
/// integers of 8, 16 and 32 bits, and `f32`/`f64`. Unsigned formats are centred on their
/// midpoint (e.g. `u16` 32768 is silence), as devices deliver them.
///
/// The integer scalings are powers of two, so `i16` audio survives the round trip through
/// `f32` bit-exact. Float samples are clipped to `[-1.0, 1.0]` and NaN is silence: a broken
/// file or device must not feed the resampler values it cannot take (a NaN makes its FFT
/// fail), and anything outside full scale would saturate on the way to 16 bits anyway.
///
/// ```
/// use assemblyai_streaming::audio::PcmSample;
///
/// assert_eq!(16384i16.to_f32(), 0.5);
/// assert_eq!(32768u16.to_f32(), 0.0);
/// assert_eq!((-1.0f32).to_f32(), -1.0);
/// assert_eq!(f32::NAN.to_f32(), 0.0);
/// assert_eq!(f64::INFINITY.to_f32(), 1.0);
/// ```
pub trait PcmSample: Copy + Send + 'static {
    /// The sample as a float in `[-1.0, 1.0]`.
    fn to_f32(self) -> f32;
}

/// A float sample in full scale: clipped, NaN as silence.
#[inline]
fn full_scale(x: f32) -> f32 {
    if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) }
}

impl PcmSample for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        full_scale(self)
    }
}

impl PcmSample for f64 {
    #[inline]
    fn to_f32(self) -> f32 {
        full_scale(self as f32)
    }
}

impl PcmSample for i8 {
    #[inline]
    fn to_f32(self) -> f32 {
        f32::from(self) / 128.0
    }
}

impl PcmSample for u8 {
    #[inline]
    fn to_f32(self) -> f32 {
        (f32::from(self) - 128.0) / 128.0
    }
}

impl PcmSample for i16 {
    #[inline]
    fn to_f32(self) -> f32 {
        f32::from(self) / 32768.0
    }
}

impl PcmSample for u16 {
    #[inline]
    fn to_f32(self) -> f32 {
        (f32::from(self) - 32768.0) / 32768.0
    }
}

impl PcmSample for i32 {
    #[inline]
    fn to_f32(self) -> f32 {
        // Through f64 so the scaling itself adds no error beyond the final rounding.
        (f64::from(self) / 2_147_483_648.0) as f32
    }
}

impl PcmSample for u32 {
    #[inline]
    fn to_f32(self) -> f32 {
        ((f64::from(self) - 2_147_483_648.0) / 2_147_483_648.0) as f32
    }
}

/// Converts a float sample to 16-bit PCM: scaled by 32768 (the inverse of [`PcmSample`] for
/// `i16`), rounded, and clipped to the `i16` range (so over-range floats saturate instead of
/// wrapping).
#[inline]
pub fn f32_to_i16(x: f32) -> i16 {
    // `as` saturates and maps NaN to 0, which is what we want for garbage input.
    (x * 32768.0).round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_scale_maps_to_unit_range() {
        assert_eq!(i8::MIN.to_f32(), -1.0);
        assert_eq!(u8::MIN.to_f32(), -1.0);
        assert_eq!(128u8.to_f32(), 0.0);
        assert_eq!(i16::MIN.to_f32(), -1.0);
        assert_eq!(u16::MIN.to_f32(), -1.0);
        assert_eq!(i32::MIN.to_f32(), -1.0);
        assert_eq!(u32::MIN.to_f32(), -1.0);
        assert_eq!(0.25f64.to_f32(), 0.25);
    }

    #[test]
    fn i16_round_trips_bit_exact() {
        for s in [i16::MIN, -12345, -1, 0, 1, 12345, i16::MAX] {
            assert_eq!(f32_to_i16(s.to_f32()), s);
        }
    }

    #[test]
    fn out_of_range_floats_saturate() {
        assert_eq!(f32_to_i16(1.5), i16::MAX);
        assert_eq!(f32_to_i16(-1.5), i16::MIN);
        assert_eq!(f32_to_i16(f32::NAN), 0);
    }
}
