//! Block propagation model: a block pushed from its producer over the planned links (from
//! `decision::DecisionLoop::links`), every hop delayed by the latency matrix plus a processing
//! time. A node forwards a block once, on first receipt, to every link but the sender;
//! later copies are counted as messages and suppressed. This models the data plane's push;
//! it does not run TCP or the chain code.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::Rng;

use crate::latency::LatencyMatrix;

/// Who links to whom: node `i` is in region `region[i]` and pushes to `links[i]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkGraph {
    /// Region index of each node.
    pub region: Vec<usize>,
    /// Outgoing links of each node (node indices).
    pub links: Vec<Vec<usize>>,
}

/// Where and when one block arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    /// Arrival time in ms after production, per node (`None`: never reached).
    pub arrival_ms: Vec<Option<f64>>,
    /// Block messages sent in total (duplicates included).
    pub messages: u64,
}

impl Spread {
    /// Time in ms until `fraction` of the nodes in `targets` have the block; `None` when
    /// fewer were ever reached.
    pub fn time_to(&self, fraction: f64, targets: &[usize]) -> Option<f64> {
        let mut times: Vec<f64> = targets
            .iter()
            .filter_map(|i| self.arrival_ms.get(*i).copied().flatten())
            .collect();
        times.sort_by(f64::total_cmp);
        let need = ((fraction * targets.len() as f64).ceil() as usize).max(1);
        times.get(need - 1).copied()
    }

    /// How many of `targets` were reached.
    pub fn reached(&self, targets: &[usize]) -> usize {
        targets
            .iter()
            .filter(|i| self.arrival_ms.get(**i).copied().flatten().is_some())
            .count()
    }
}

/// Pushes one block from `origin` over `graph`.
pub fn propagate(
    graph: &LinkGraph,
    origin: usize,
    latency: &LatencyMatrix,
    processing_ms: f64,
    rng: &mut impl Rng,
) -> Spread {
    let n = graph.links.len();
    let mut arrival_ms: Vec<Option<f64>> = vec![None; n];
    let mut messages = 0u64;
    // (time in µs, node, sender)
    let mut queue: BinaryHeap<Reverse<(u64, usize, usize)>> = BinaryHeap::new();
    if origin < n {
        queue.push(Reverse((0, origin, origin)));
    }
    while let Some(Reverse((at_us, node, from))) = queue.pop() {
        if arrival_ms.get(node).copied().flatten().is_some() {
            continue;
        }
        let at_ms = at_us as f64 / 1000.0;
        arrival_ms[node] = Some(at_ms);
        let src_region = graph.region.get(node).copied().unwrap_or(0);
        for &peer in graph.links.get(node).map(Vec::as_slice).unwrap_or(&[]) {
            if peer == from || peer >= n {
                continue;
            }
            messages += 1;
            if arrival_ms[peer].is_some() {
                continue;
            }
            let dst_region = graph.region.get(peer).copied().unwrap_or(0);
            let delay = latency.sample_ms(src_region, dst_region, rng) + processing_ms;
            queue.push(Reverse((
                (at_us as f64 + delay * 1000.0) as u64,
                peer,
                node,
            )));
        }
    }
    Spread {
        arrival_ms,
        messages,
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn line(regions: Vec<usize>) -> LinkGraph {
        let n = regions.len();
        let links = (0..n)
            .map(|i| {
                let mut l = Vec::new();
                if i > 0 {
                    l.push(i - 1);
                }
                if i + 1 < n {
                    l.push(i + 1);
                }
                l
            })
            .collect();
        LinkGraph {
            region: regions,
            links,
        }
    }

    #[test]
    fn a_line_is_reached_hop_by_hop() {
        let m = LatencyMatrix::continental(6, 0.0);
        let g = line(vec![0, 0, 1, 1]);
        let s = propagate(&g, 0, &m, 1.0, &mut StdRng::seed_from_u64(1));
        assert_eq!(
            s.arrival_ms,
            vec![Some(0.0), Some(11.0), Some(52.0), Some(63.0)]
        );
        assert_eq!(s.messages, 3, "nobody sends back to its sender");
        let all = [0, 1, 2, 3];
        assert_eq!(s.time_to(0.5, &all), Some(11.0));
        assert_eq!(s.time_to(1.0, &all), Some(63.0));
        assert_eq!(s.reached(&all), 4);
    }

    #[test]
    fn duplicates_count_as_messages_and_unreached_nodes_show() {
        let m = LatencyMatrix::continental(1, 0.0);
        let g = LinkGraph {
            region: vec![0; 4],
            links: vec![vec![1, 2], vec![2], vec![1], vec![]],
        };
        let s = propagate(&g, 0, &m, 0.0, &mut StdRng::seed_from_u64(1));
        assert_eq!(s.messages, 2 + 1 + 1);
        assert_eq!(s.arrival_ms[3], None);
        let all = [0, 1, 2, 3];
        assert_eq!(s.reached(&all), 3);
        assert_eq!(s.time_to(1.0, &all), None);
        assert_eq!(s.time_to(0.75, &all), Some(10.0));
    }
}
