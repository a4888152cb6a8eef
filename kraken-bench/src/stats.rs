//! Latency samples and percentiles (nearest rank on a sorted copy: exact,
//! and cheap enough for the sample counts a run collects).

use std::time::Duration;

/// Durations collected by a workload.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// No samples yet.
    pub fn new() -> Samples {
        Samples(Vec::new())
    }

    /// Add one duration.
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// Add another set.
    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Percentiles in milliseconds, `None` when there are no samples.
    pub fn percentiles_ms(&self, ps: &[f64]) -> Option<Vec<f64>> {
        if self.0.is_empty() {
            return None;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        Some(
            ps.iter()
                .map(|p| ms(sorted[rank(sorted.len(), *p)]))
                .collect(),
        )
    }

    /// p50 and p99 in milliseconds.
    pub fn p50_p99_ms(&self) -> Option<(f64, f64)> {
        self.percentiles_ms(&[50.0, 99.0]).map(|v| (v[0], v[1]))
    }
}

/// Index of the `p`-th percentile among `n` sorted values (nearest rank).
fn rank(n: usize, p: f64) -> usize {
    let r = ((p / 100.0) * n as f64).ceil() as usize;
    r.clamp(1, n) - 1
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A count per second over a duration (0 when the duration is zero).
pub fn per_sec(count: f64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { count / s } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::new();
        assert_eq!(s.p50_p99_ms(), None);
        for i in (1..=100).rev() {
            s.push(Duration::from_millis(i));
        }
        assert_eq!(s.p50_p99_ms(), Some((50.0, 99.0)));
        let mut one = Samples::new();
        one.push(Duration::from_micros(1500));
        assert_eq!(one.p50_p99_ms(), Some((1.5, 1.5)));
        assert_eq!(rank(3, 99.0), 2);
        assert_eq!(rank(3, 0.0), 0);
    }

    #[test]
    fn rates() {
        assert_eq!(per_sec(10.0, Duration::from_secs(2)), 5.0);
        assert_eq!(per_sec(10.0, Duration::ZERO), 0.0);
    }
}
