//! Block propagation p50/p99 across a running devnet: sums every node's
//! `qnet_block_propagation_seconds` histogram (import time minus block timestamp, blocks
//! pushed by peers) and interpolates the quantiles inside the buckets, as Prometheus'
//! `histogram_quantile` does.
//!
//! ```text
//! cargo run --release -- devnet --base-port 19000 &    # let it run a few minutes
//! cargo run --release --example devnet_propagation -- --base-port 19000 --nodes 6
//! ```

use std::collections::BTreeMap;

const SERIES: &str = "qnet_block_propagation_seconds_bucket{le=\"";

fn arg(name: &str, default: u16) -> u16 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Cumulative bucket counts by upper bound (`+Inf` as infinity) from a metrics page.
fn buckets(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(SERIES)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The `q` quantile of cumulative buckets, interpolated linearly inside its bucket.
fn quantile(q: f64, cumulative: &[(f64, f64)]) -> Option<f64> {
    let total = cumulative.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in cumulative {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            let frac = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                0.0
            };
            return Some(lower.0 + (le - lower.0) * frac);
        }
        lower = (le, count);
    }
    None
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = arg("--base-port", 19_000);
    let nodes = arg("--nodes", 6);
    let mut sum: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for i in 0..nodes {
        let url = format!("http://127.0.0.1:{}/metrics", base + 3 * i + 2);
        let text = reqwest::get(&url).await?.text().await?;
        for (le, count) in buckets(&text) {
            // keyed by the bound's bits so +Inf sorts last and equal bounds add up
            let entry = sum.entry(le.to_bits()).or_insert((le, 0.0));
            entry.1 += count;
        }
    }
    let mut cumulative: Vec<(f64, f64)> = sum.into_values().collect();
    cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = cumulative.last().map(|b| b.1).unwrap_or(0.0);
    let p50 = quantile(0.5, &cumulative).ok_or_else(|| anyhow::anyhow!("no pushed blocks yet"))?;
    let p99 = quantile(0.99, &cumulative).unwrap_or(p50);
    println!(
        "block propagation over {nodes} nodes, {total} pushed-block imports: p50 {:.1} ms, p99 {:.1} ms",
        p50 * 1000.0,
        p99 * 1000.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let b = [
            (0.01, 0.0),
            (0.1, 50.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(quantile(0.5, &b), Some(0.1));
        assert!((quantile(0.75, &b).unwrap() - 0.55).abs() < 1e-9);
        assert_eq!(quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]), None);
        let text = "qnet_block_propagation_seconds_bucket{le=\"0.5\"} 3\nqnet_block_propagation_seconds_bucket{le=\"+Inf\"} 4\n";
        assert_eq!(buckets(text), vec![(0.5, 3.0), (f64::INFINITY, 4.0)]);
    }
}
