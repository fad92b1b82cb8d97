//! A cheap energy-based voice activity detector.
//!
//! Audio is cut into 20 ms windows; a window is speech when its RMS level is above a threshold
//! derived from `vad_threshold` (0 → -55 dBFS, the default 0.4 → -45 dBFS, 1 → -30 dBFS). The cost
//! is one multiply-add per sample, so thousands of sessions fit on one core.

/// Window length, ms.
pub(crate) const WINDOW_MS: u32 = 20;

/// Speech threshold in dBFS for a `vad_threshold` value.
pub(crate) fn threshold_dbfs(vad_threshold: f64) -> f64 {
    -55.0 + 25.0 * vad_threshold.clamp(0.0, 1.0)
}

/// Mean-square sample value (in i16 units squared) of a level in dBFS.
pub(crate) fn mean_square_of_dbfs(dbfs: f64) -> f64 {
    let amplitude = 10f64.powf(dbfs / 20.0) * 32768.0;
    amplitude * amplitude
}

/// Accumulates samples into windows.
#[derive(Debug, Clone)]
pub(crate) struct Vad {
    window_samples: u32,
    count: u32,
    sum_sq: u64,
    threshold_ms: f64,
    threshold_db: f64,
}

/// One finished window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub speech: bool,
    /// A rough speech probability (0–1) from the level relative to the threshold.
    pub probability: f64,
}

impl Vad {
    pub(crate) fn new(sample_rate: u32, vad_threshold: f64) -> Self {
        let mut vad = Vad {
            window_samples: (sample_rate * WINDOW_MS / 1000).max(1),
            count: 0,
            sum_sq: 0,
            threshold_ms: 0.0,
            threshold_db: 0.0,
        };
        vad.set_threshold(vad_threshold);
        vad
    }

    pub(crate) fn set_threshold(&mut self, vad_threshold: f64) {
        self.threshold_db = threshold_dbfs(vad_threshold);
        self.threshold_ms = mean_square_of_dbfs(self.threshold_db);
    }

    /// Adds one sample; returns the window it completes, if any.
    #[inline]
    pub(crate) fn push(&mut self, sample: i16) -> Option<Window> {
        let s = i64::from(sample);
        self.sum_sq += (s * s) as u64;
        self.count += 1;
        if self.count < self.window_samples {
            return None;
        }
        let mean_sq = self.sum_sq as f64 / f64::from(self.count);
        self.count = 0;
        self.sum_sq = 0;
        let speech = mean_sq > self.threshold_ms;
        let probability = if mean_sq <= 0.0 {
            0.0
        } else {
            let db = 10.0 * (mean_sq / (32768.0 * 32768.0)).log10();
            ((db - self.threshold_db + 10.0) / 20.0).clamp(0.0, 1.0)
        };
        Some(Window {
            speech,
            probability,
        })
    }
}

/// G.711 μ-law to linear 16-bit.
#[inline]
pub(crate) fn mulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_tone_are_told_apart() {
        let mut vad = Vad::new(16_000, 0.4);
        let mut windows = Vec::new();
        for i in 0..640 {
            if let Some(w) = vad.push(0) {
                windows.push(w);
            }
            let _ = i;
        }
        for i in 0..640 {
            let s = ((i as f64 * 0.2).sin() * 3000.0) as i16;
            if let Some(w) = vad.push(s) {
                windows.push(w);
            }
        }
        assert_eq!(windows.len(), 4);
        assert!(!windows[0].speech && !windows[1].speech);
        assert!(windows[2].speech && windows[3].speech);
        assert!(windows[3].probability > 0.9);
    }

    #[test]
    fn mulaw_decodes_known_values() {
        assert_eq!(mulaw_to_linear(0xFF), 0);
        assert_eq!(mulaw_to_linear(0x7F), 0);
        assert_eq!(mulaw_to_linear(0x80), 32124);
        assert_eq!(mulaw_to_linear(0x00), -32124);
    }
}
