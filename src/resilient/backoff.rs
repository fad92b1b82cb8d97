//! Reconnect backoff: exponential with jitter (a small private policy, to be replaced by the
//! crate's `RetryPolicy` once there is one).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Backoff before try `attempt` (1-based), jittered to 50–100 %.
pub(super) fn backoff(
    attempt: u32,
    initial: Duration,
    max: Duration,
    rng: &mut Jitter,
) -> Duration {
    let exp = initial.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let d = exp.min(max);
    d / 2 + d.mul_f64(rng.next_unit() / 2.0)
}

/// A small xorshift generator for backoff jitter (not for anything secret).
#[derive(Debug)]
pub(super) struct Jitter(u64);

impl Jitter {
    pub(super) fn seeded() -> Self {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Jitter(t | 1)
    }

    pub(super) fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut rng = Jitter(42);
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for (attempt, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            for _ in 0..50 {
                let d = backoff(attempt, initial, max, &mut rng);
                let full = Duration::from_millis(full);
                assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
            }
        }
    }
}
