//! Head pace: how often a node's chain head is written to gossip.
//!
//! With a block every 1 s slot, announcing every new head made the `head` key a new gossip
//! value every second on every node, and every member of a cell received every member's
//! value: at 10,000 nodes in cells of about 139 members that was 7.3 KB/s of a non-bridge
//! node's 22.6 KB/s (docs/adr/0007). Gossiped heads only tell sync which peer to pull from
//! (blocks travel over the data plane, and a pushed orphan triggers a pull at once), so a
//! head that simply extends the announced one waits until [`HEAD_EVERY_MS`] after the last
//! announcement; the newest one then goes out at the next membership round. A head no
//! higher than the announced one (a switch to another branch) goes out at once, so peers
//! see forks without delay.

use super::keys::Head;

/// Least time between two announcements of heads that only climb. 5 s cut the heads' gossip
/// by three quarters but, when a node's pushes stopped during a rolling restart, delayed
/// its pull by as much: drill 4's longest head stall, 3.1–3.9 slots in 2 runs without the
/// pace, was 3.9–5.0 in 3 runs at 5 s (limit 5), 3.7–3.9 in 5 runs at 2 s.
pub const HEAD_EVERY_MS: u64 = 2_000;

/// The last announced head, and the newest one held back.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeadPace {
    announced: Option<(Head, u64)>,
    pending: Option<Head>,
}

impl HeadPace {
    /// Offers the node's new head at `now_ms`: `Some` when it is to be written now,
    /// `None` when it is held back until [`HeadPace::due`] releases it.
    pub fn offer(&mut self, head: Head, now_ms: u64) -> Option<Head> {
        let now = match self.announced {
            None => true,
            Some((last, _)) if last == head => {
                self.pending = None;
                return None;
            }
            Some((last, at)) => {
                head.height <= last.height || now_ms >= at.saturating_add(HEAD_EVERY_MS)
            }
        };
        if now {
            self.announce(head, now_ms)
        } else {
            self.pending = Some(head);
            None
        }
    }

    /// The held-back head, once [`HEAD_EVERY_MS`] have passed since the last announcement.
    pub fn due(&mut self, now_ms: u64) -> Option<Head> {
        let at = self.announced.map_or(0, |(_, at)| at);
        match self.pending {
            Some(head) if now_ms >= at.saturating_add(HEAD_EVERY_MS) => self.announce(head, now_ms),
            _ => None,
        }
    }

    fn announce(&mut self, head: Head, now_ms: u64) -> Option<Head> {
        self.announced = Some((head, now_ms));
        self.pending = None;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(height: u64, tag: u8) -> Head {
        Head {
            height,
            hash: [tag; 32],
        }
    }

    #[test]
    fn the_first_head_goes_out_at_once() {
        let mut p = HeadPace::default();
        assert_eq!(p.offer(head(7, 1), 1_000), Some(head(7, 1)));
        assert_eq!(p.due(1_000), None);
    }

    #[test]
    fn climbing_heads_wait_for_the_pace_and_the_newest_goes_out() {
        let mut p = HeadPace::default();
        p.offer(head(1, 1), 0);
        assert_eq!(p.offer(head(2, 2), HEAD_EVERY_MS / 4), None);
        assert_eq!(p.offer(head(3, 3), HEAD_EVERY_MS / 2), None);
        assert_eq!(p.due(HEAD_EVERY_MS - 1), None, "edge: 1 ms early");
        assert_eq!(
            p.due(HEAD_EVERY_MS),
            Some(head(3, 3)),
            "edge: exactly on time"
        );
        assert_eq!(p.due(HEAD_EVERY_MS + 1), None, "released once");
    }

    #[test]
    fn a_climbing_head_offered_after_the_pace_goes_out_at_once() {
        let mut p = HeadPace::default();
        p.offer(head(1, 1), 0);
        assert_eq!(p.offer(head(2, 2), HEAD_EVERY_MS - 1), None);
        assert_eq!(p.offer(head(3, 3), HEAD_EVERY_MS), Some(head(3, 3)));
        assert_eq!(p.due(2 * HEAD_EVERY_MS), None, "nothing left pending");
    }

    #[test]
    fn a_head_no_higher_than_the_announced_one_goes_out_at_once() {
        let mut p = HeadPace::default();
        p.offer(head(5, 1), 0);
        assert_eq!(
            p.offer(head(5, 2), 10),
            Some(head(5, 2)),
            "same height, other branch"
        );
        assert_eq!(p.offer(head(4, 3), 20), Some(head(4, 3)), "lower: a reorg");
        assert_eq!(p.offer(head(6, 4), 30), None, "climbing again waits");
    }

    #[test]
    fn going_back_to_the_announced_head_drops_the_pending_one() {
        let mut p = HeadPace::default();
        p.offer(head(5, 1), 0);
        p.offer(head(6, 2), 10);
        assert_eq!(p.offer(head(5, 1), 20), None, "already announced");
        assert_eq!(p.due(HEAD_EVERY_MS), None);
    }
}
