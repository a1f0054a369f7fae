//! The latency histogram the RR workload fills and the report reads.

use std::time::Duration;

/// A latency histogram: 64 linear buckets per power of two of nanoseconds (under 1.6% error),
/// mergeable, fixed size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB: u32 = 64;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (64 * SUB) as usize],
            total: 0,
        }
    }
}

impl Histogram {
    fn bucket(ns: u64) -> usize {
        if ns < u64::from(SUB) {
            return ns as usize;
        }
        let exp = 63 - ns.leading_zeros(); // >= 6
        let mantissa = (ns >> (exp - 6)) as u32 & (SUB - 1);
        ((exp - 5) * SUB + mantissa) as usize
    }

    /// The smallest value that falls into bucket `b` (the values are reported at the bucket's
    /// middle).
    fn value(b: usize) -> f64 {
        let b = b as u32;
        if b < SUB {
            return f64::from(b);
        }
        let exp = b / SUB + 5;
        let mantissa = u64::from(b % SUB);
        let lo = (u64::from(SUB) + mantissa) << (exp - 6);
        let width = 1u64 << (exp - 6);
        lo as f64 + width as f64 / 2.0
    }

    /// Adds one latency.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(ns)] += 1;
        self.total += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q`-quantile (0..=1) in microseconds; `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::value(b) / 1000.0);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let mut h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile_us(0.5).unwrap();
        let p99 = h.quantile_us(0.99).unwrap();
        assert!((p50 - 500.0).abs() / 500.0 < 0.02, "{p50}");
        assert!((p99 - 990.0).abs() / 990.0 < 0.02, "{p99}");
        assert_eq!(h.count(), 1000);
        assert_eq!(Histogram::default().quantile_us(0.5), None);
        let mut small = Histogram::default();
        small.record(Duration::from_nanos(17));
        assert_eq!(small.quantile_us(1.0), Some(0.017));
    }
}
