//! Revival hysteresis on top of chitchat's failure detector. A member that died can look
//! alive again for a whole detection period when a late heartbeat of it arrives through
//! another peer; counting that as a return would make regions flap. Once we have seen an
//! incarnation dead, it counts as live again only after its heartbeat moved well past the
//! value it had when it died (a real restart is a new incarnation and is not held back).

use std::collections::HashMap;

use chitchat::ChitchatId;

/// Heartbeats an incarnation seen dead must advance before it counts as live again.
pub const REVIVE_MARGIN: u64 = 10;
/// Most incarnations tracked; beyond it the map is cleared (a bounded, rare reset).
const MAX_TRACKED: usize = 50_000;

/// Remembers the heartbeat at which each incarnation was last seen dead.
#[derive(Debug, Default)]
pub struct LivenessFilter {
    dead_at: HashMap<ChitchatId, u64>,
}

impl LivenessFilter {
    /// Whether `id` counts as live, given chitchat's verdict and its current heartbeat.
    pub fn live(&mut self, id: &ChitchatId, chitchat_live: bool, heartbeat: u64) -> bool {
        if self.dead_at.len() > MAX_TRACKED {
            self.dead_at.clear();
        }
        if !chitchat_live {
            let at = self.dead_at.entry(id.clone()).or_insert(heartbeat);
            *at = (*at).max(heartbeat);
            return false;
        }
        match self.dead_at.get(id) {
            Some(at) if heartbeat < at.saturating_add(REVIVE_MARGIN) => false,
            Some(_) => {
                self.dead_at.remove(id);
                true
            }
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(generation: u64) -> ChitchatId {
        ChitchatId::new(
            "0011223344556677",
            generation,
            "127.0.0.1:9000".parse().unwrap(),
        )
    }

    #[test]
    fn new_members_are_live_at_once() {
        let mut f = LivenessFilter::default();
        assert!(f.live(&id(1), true, 3));
    }

    #[test]
    fn a_late_heartbeat_does_not_revive() {
        let mut f = LivenessFilter::default();
        assert!(f.live(&id(1), true, 100));
        assert!(!f.live(&id(1), false, 100));
        assert!(
            !f.live(&id(1), true, 102),
            "late gossip of an old heartbeat"
        );
        assert!(!f.live(&id(1), true, 100 + REVIVE_MARGIN - 1));
        assert!(
            f.live(&id(1), true, 100 + REVIVE_MARGIN),
            "heartbeat really moved on"
        );
        assert!(f.live(&id(1), true, 100 + REVIVE_MARGIN + 1));
    }

    #[test]
    fn a_new_incarnation_is_not_held_back() {
        let mut f = LivenessFilter::default();
        assert!(!f.live(&id(1), false, 50));
        assert!(f.live(&id(2), true, 1));
    }
}
