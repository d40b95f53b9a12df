//! Latency matrix: realistic one-way delays between and inside six continental regions, with
//! jitter; the delay model of the simulated network and of the block propagation model.

use rand::Rng;

/// Region names of the matrix, in order.
pub const REGION_NAMES: [&str; 6] = ["eu", "na", "asia", "sa", "africa", "oceania"];

/// One-way delays in milliseconds (about half the public-cloud round trip between typical
/// datacentres: Frankfurt, Virginia, Singapore, São Paulo, Johannesburg, Sydney).
const ONE_WAY_MS: [[u32; 6]; 6] = [
    // eu  na  asia  sa  africa oceania
    [10, 40, 80, 95, 80, 145],    // eu
    [40, 10, 90, 60, 115, 100],   // na
    [80, 90, 10, 165, 125, 48],   // asia
    [95, 60, 165, 10, 170, 155],  // sa
    [80, 115, 125, 170, 10, 135], // africa
    [145, 100, 48, 155, 135, 10], // oceania
];

/// One-way delays between regions (indices into [`REGION_NAMES`]) and jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyMatrix {
    one_way_ms: Vec<Vec<u32>>,
    /// Jitter as a fraction of the base delay (uniform in `0..=jitter * base`).
    pub jitter: f64,
}

impl LatencyMatrix {
    /// The built-in matrix for the first `regions` regions (at most six; more wrap around).
    pub fn continental(regions: usize, jitter: f64) -> Self {
        let n = ONE_WAY_MS.len();
        let one_way_ms = (0..regions)
            .map(|a| (0..regions).map(|b| ONE_WAY_MS[a % n][b % n]).collect())
            .collect();
        LatencyMatrix { one_way_ms, jitter }
    }

    /// Number of regions.
    pub fn regions(&self) -> usize {
        self.one_way_ms.len()
    }

    /// Base one-way delay from region `a` to region `b` in ms (0 for an unknown region).
    pub fn base_ms(&self, a: usize, b: usize) -> u32 {
        self.one_way_ms
            .get(a)
            .and_then(|row| row.get(b))
            .copied()
            .unwrap_or(0)
    }

    /// A delay sample in ms: base plus uniform jitter.
    pub fn sample_ms(&self, a: usize, b: usize, rng: &mut impl Rng) -> f64 {
        let base = f64::from(self.base_ms(a, b));
        base + base * self.jitter * rng.gen::<f64>()
    }

    /// The lowest time any scheme needs to reach every region from region `origin`: the
    /// largest shortest-path delay (base, no jitter) to another region.
    pub fn floor_from_ms(&self, origin: usize) -> u32 {
        let n = self.regions();
        let mut dist: Vec<u32> = (0..n).map(|b| self.base_ms(origin, b)).collect();
        dist[origin.min(n.saturating_sub(1))] = 0;
        for _ in 0..n {
            for a in 0..n {
                for b in 0..n {
                    let via = dist[a].saturating_add(self.base_ms(a, b));
                    if via < dist[b] {
                        dist[b] = via;
                    }
                }
            }
        }
        dist.into_iter().max().unwrap_or(0)
    }

    /// The floor over all origin regions (the worst producer placement).
    pub fn floor_ms(&self) -> u32 {
        (0..self.regions())
            .map(|o| self.floor_from_ms(o))
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn matrix_is_symmetric() {
        let m = LatencyMatrix::continental(6, 0.0);
        for a in 0..6 {
            for b in 0..6 {
                assert_eq!(m.base_ms(a, b), m.base_ms(b, a), "{a} {b}");
            }
        }
        assert_eq!(m.base_ms(9, 0), 0, "unknown region");
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let m = LatencyMatrix::continental(6, 0.1);
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            let d = m.sample_ms(0, 1, &mut rng);
            assert!((40.0..=44.0).contains(&d), "{d}");
        }
        let exact = LatencyMatrix::continental(6, 0.0);
        assert_eq!(exact.sample_ms(0, 5, &mut rng), 145.0);
    }

    #[test]
    fn floor_uses_shortest_paths() {
        let m = LatencyMatrix::continental(6, 0.0);
        // From sa: asia via na (60 + 90 = 150) beats the direct 165, oceania direct 155
        // beats via na (160), africa direct 170 beats via eu (175): the farthest is africa.
        let sa = 3;
        assert_eq!(m.floor_from_ms(sa), 170);
        assert_eq!(m.floor_from_ms(0), 128, "eu -> oceania via asia: 80 + 48");
        assert!(m.floor_ms() >= m.floor_from_ms(0));
        assert_eq!(LatencyMatrix::continental(1, 0.0).floor_ms(), 0);
    }
}
