//! Latency percentiles and the rounding of reported figures.

use std::time::Duration;

/// The `p`-th percentile (0–100) of `sorted` by the nearest-rank method:
/// the smallest sample such that at least `p` % of the samples are less
/// than or equal to it. `None` for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p.clamp(0.0, 100.0) / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Microseconds as milliseconds with three decimals.
pub fn ms_from_us(us: u64) -> f64 {
    round(us as f64 / 1000.0, 3)
}

/// A duration in milliseconds with one decimal.
pub fn ms(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0, 1)
}

/// Operations per second over `elapsed`, with one decimal.
pub fn per_sec(ops: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    round(ops as f64 / secs, 1)
}

/// Bytes as MiB with one decimal.
pub fn mib(bytes: u64) -> f64 {
    round(bytes as f64 / (1024.0 * 1024.0), 1)
}

/// `x` rounded to `digits` decimals.
pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let hundred: Vec<u64> = (1..=100).collect();
        let cases: &[(&[u64], f64, Option<u64>)] = &[
            (&[], 50.0, None),
            (&[7], 0.0, Some(7)),
            (&[7], 50.0, Some(7)),
            (&[7], 99.0, Some(7)),
            (&[1, 2], 50.0, Some(1)),
            (&[1, 2], 51.0, Some(2)),
            (&[1, 2, 3, 4], 99.0, Some(4)),
            (&hundred, 50.0, Some(50)),
            (&hundred, 99.0, Some(99)),
            (&hundred, 99.5, Some(100)),
            (&hundred, 100.0, Some(100)),
            (&hundred, 0.0, Some(1)),
            (&hundred, 150.0, Some(100)),
        ];
        for (samples, p, expected) in cases {
            assert_eq!(percentile(samples, *p), *expected, "p{p} of {samples:?}");
        }
    }

    #[test]
    fn p99_of_a_thousand_ignores_the_ten_slowest() {
        let mut samples: Vec<u64> = vec![1_000; 990];
        samples.extend([500_000; 10]);
        assert_eq!(percentile(&samples, 99.0), Some(1_000));
        samples.push(500_000);
        assert_eq!(percentile(&samples, 99.0), Some(500_000));
    }

    #[test]
    fn units_and_rounding() {
        assert_eq!(ms_from_us(1_234), 1.234);
        assert_eq!(ms_from_us(0), 0.0);
        assert_eq!(ms(Duration::from_micros(1_234_567)), 1234.6);
        assert_eq!(per_sec(1_000, Duration::from_secs(4)), 250.0);
        assert_eq!(per_sec(1_000, Duration::ZERO), 0.0);
        assert_eq!(mib(3 * 1024 * 1024 / 2), 1.5);
        assert_eq!(round(2.0 / 3.0, 3), 0.667);
    }
}
