//! Whether this node acts as a bridge: the deterministic election of DESIGN §3 with a short
//! settle on joining. A node that has just started (or just joined a region) sees few live
//! members and would elect itself for a round or two; joining the bridge cluster for that
//! moment leaves a dead member in every bridge's digest for half the grace period (measured
//! in the simulator: at cold start every node bridged once, and the bridge cluster's digest
//! carried the whole network). So a node joins only after it was elected in
//! [`BRIDGE_SETTLE_ROUNDS`] membership rounds in a row; it leaves at once when not elected.

/// Consecutive membership rounds a node must be elected before it joins the bridge cluster.
pub const BRIDGE_SETTLE_ROUNDS: u32 = 4;

/// The bridge role with its settle counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeRole {
    elected_rounds: u32,
    active: bool,
}

impl BridgeRole {
    /// Feeds one round's election result; returns whether the node acts as a bridge now.
    pub fn update(&mut self, elected: bool, settle_rounds: u32) -> bool {
        if !elected {
            *self = BridgeRole::default();
            return false;
        }
        self.elected_rounds = self.elected_rounds.saturating_add(1);
        if self.elected_rounds >= settle_rounds {
            self.active = true;
        }
        self.active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_after_settle_rounds_in_a_row() {
        let mut role = BridgeRole::default();
        assert!(!role.update(true, 3));
        assert!(!role.update(true, 3));
        assert!(role.update(true, 3), "third round in a row");
        assert!(role.update(true, 3));
    }

    #[test]
    fn a_gap_restarts_the_settle() {
        let mut role = BridgeRole::default();
        assert!(!role.update(true, 3));
        assert!(!role.update(true, 3));
        assert!(!role.update(false, 3));
        assert!(!role.update(true, 3));
        assert!(!role.update(true, 3));
        assert!(role.update(true, 3));
    }

    #[test]
    fn leaves_at_once() {
        let mut role = BridgeRole::default();
        for _ in 0..3 {
            role.update(true, 3);
        }
        assert!(!role.update(false, 3));
        assert!(!role.update(true, 3), "settles again after leaving");
    }

    #[test]
    fn settle_of_one_or_zero_joins_at_once() {
        assert!(BridgeRole::default().update(true, 1));
        assert!(BridgeRole::default().update(true, 0));
    }
}
