//! Deaths in the bridge cluster that the observer cannot tell from its own deafness.
//!
//! A region counts as lost at a bridge when all the region's bridges die in that bridge's
//! failure detector. Under heavy loss a bridge sometimes receives nothing in the bridge
//! cluster for a second or more (every exchange of a few rounds lost): then every member's
//! heartbeat stops rising at once, the members with the shortest detector windows die
//! together, and their regions looked lost to the bridge and, through its copies, to its
//! whole cell (docs/adr/0011).
//!
//! What tells a lost region from a deaf observer is the rest of the cluster: when a region is
//! cut off, the other regions' heartbeats keep rising at the observer while the region's
//! stay still; when the observer is deaf, all of them stay still. So a death the failure
//! detector (and the revival filter) reports is confirmed only when the member has been
//! silent for [`Hearing::margin`] longer than the freshest member of another region, or for
//! [`Hearing::limit`] in all. Until then the member still counts as live. Only deaths are
//! held back, of members that counted as live: a member not yet live stays dead, and a
//! confirmed death stands until the detector and filter report the member live again, so
//! the filter's protection against a late heartbeat is kept.
//!
//! The same comparison also works the other way ([`Hearing::region_cap`]): a region every
//! one of whose members has been silent that much longer than the freshest member of
//! another region is counted lost even while young detector windows still hold some of its
//! members live. A detector's timeout is phi times its window's mean interval, and right
//! after a cold start the windows still hold the long intervals of the cluster converging:
//! at 10,000 nodes the longest timeout an observer held for a cut region's 32 bridges was
//! 2.5 s at p50 and up to 3.1 s, while a settled window allows about 1.5 s (docs/adr/0013).
//! The cap is on the region as a whole, so a member alone slow to be heard never dies by it,
//! and a region's cells keep dying one by one by the detector.
//!
//! Pure: the silences (time since each member's heartbeat last rose) come from chitchat's
//! failure detector, read by the caller.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chitchat::ChitchatId;

/// One member of the bridge cluster as the observer sees it now.
#[derive(Debug, Clone)]
pub struct Sighting<'a> {
    /// The member.
    pub id: &'a ChitchatId,
    /// Its region: members of the same region are cut off together, so they are no
    /// evidence of the observer hearing.
    pub region: &'a str,
    /// The failure detector's and revival filter's verdict.
    pub live: bool,
    /// Time since its heartbeat last rose at the observer, if it ever did.
    pub silence: Option<Duration>,
}

/// The verdicts of one round.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdicts {
    /// Per sighting, in order: whether the member counts as live.
    pub live: Vec<bool>,
    /// When the first death held back now would be confirmed if nothing changes; the caller
    /// runs a round then.
    pub recheck_in: Option<Duration>,
}

/// Confirms bridge-cluster deaths against the observer's hearing of other regions.
#[derive(Debug, Clone)]
pub struct Hearing {
    /// How much longer than the freshest member of another region a member must have been
    /// silent for its death to count.
    pub margin: Duration,
    /// Silence after which a death counts whatever the observer hears (an observer alone in
    /// the cluster, or one that hears nobody at all for this long).
    pub limit: Duration,
    /// How much longer than the freshest member of another region every member of a region
    /// must have been silent for the region's members all to count dead, whatever their
    /// detector windows say.
    pub region_cap: Duration,
    /// The members whose last verdict was live: only their deaths need confirming (a member
    /// not yet live, or already dead, stays as the detector says).
    live: HashSet<ChitchatId>,
}

/// [`Hearing::margin`] in bridge gossip intervals. A region really cut off has been silent
/// for the bridge detector's timeout (about 3 intervals settled, 4 young) while the other
/// regions were heard within the last interval or so, so 2 intervals rarely delays a
/// detection; a deaf bridge's members fall silent within a fraction of an interval of one
/// another (all the heartbeats one message brings arrive together).
pub const MARGIN_INTERVALS: u32 = 2;
/// [`Hearing::limit`] in bridge gossip intervals: 5 s at the default 0.5 s, several times the
/// longest deafness seen at 20 % loss (1.4 s). It is also how long a bridge waits when no
/// other region's member is there to compare with: a network of two regions whose observer
/// is its region's only bridge sees the other region lost after 5 s of silence, not after
/// the detector's 1.5–3 s (with two or more bridges per region, the region's other bridges
/// are the comparison; with three or more regions, the third).
pub const LIMIT_INTERVALS: u32 = 10;
/// [`Hearing::region_cap`] in bridge gossip intervals: 2 s at the default 0.5 s. A settled
/// window declares a member dead after about 3 silent intervals (1.5 s), so the cap only
/// shortens the waits of windows whose mean the cold start or a heal left long; it is
/// twice the margin, so it never confirms what the margin holds back.
pub const REGION_CAP_INTERVALS: u32 = 4;

impl Hearing {
    /// The judge of a bridge cluster gossiping every `bridge_interval`.
    pub fn for_interval(bridge_interval: Duration) -> Self {
        Hearing::new(
            bridge_interval * MARGIN_INTERVALS,
            bridge_interval * LIMIT_INTERVALS,
            bridge_interval * REGION_CAP_INTERVALS,
        )
    }

    /// A judge with the given margin, limit and region cap.
    pub fn new(margin: Duration, limit: Duration, region_cap: Duration) -> Self {
        Hearing {
            margin,
            limit,
            region_cap,
            live: HashSet::new(),
        }
    }

    /// Forgets which members counted as live (the node left the bridge cluster).
    pub fn forget(&mut self) {
        self.live.clear();
    }

    /// Judges the members of one snapshot (the observer itself excluded by the caller).
    /// Members absent from the snapshot are forgotten.
    pub fn judge(&mut self, sightings: &[Sighting<'_>]) -> Verdicts {
        let quiet = Quiet::of(sightings);
        let mut recheck_in: Option<Duration> = None;
        let mut live: Vec<bool> = sightings
            .iter()
            .map(|s| {
                if s.live {
                    return true;
                }
                if !self.live.contains(s.id) {
                    return false;
                }
                match self.remaining(s, &quiet) {
                    None => false,
                    Some(left) => {
                        earliest(&mut recheck_in, left);
                        true
                    }
                }
            })
            .collect();
        self.cap_regions(sightings, &quiet, &mut live, &mut recheck_in);
        self.live = sightings
            .iter()
            .zip(&live)
            .filter(|(_, &l)| l)
            .map(|(s, _)| s.id.clone())
            .collect();
        Verdicts { live, recheck_in }
    }

    /// Counts dead every member of each region the region cap applies to; asks for a round
    /// when it would next apply to a region still counted live that is already silent for
    /// the margin longer than the others (no wake-ups for regions heard as usual).
    fn cap_regions(
        &self,
        sightings: &[Sighting<'_>],
        quiet: &Quiet<'_>,
        live: &mut [bool],
        recheck_in: &mut Option<Duration>,
    ) {
        for (&region, &q) in &quiet.0 {
            let Some(freshest) = quiet.freshest_besides(region) else {
                continue;
            };
            let members = || {
                sightings
                    .iter()
                    .enumerate()
                    .filter(move |(_, s)| s.region == region)
                    .map(|(i, _)| i)
            };
            if !members().any(|i| live[i]) {
                continue;
            }
            let due = freshest.saturating_add(self.region_cap);
            if q >= due {
                for i in members() {
                    live[i] = false;
                }
            } else if q >= freshest.saturating_add(self.margin) {
                earliest(recheck_in, due - q);
            }
        }
    }

    /// How long until the death of `s` would be confirmed; `None` when it is now.
    fn remaining(&self, s: &Sighting<'_>, quiet: &Quiet<'_>) -> Option<Duration> {
        // never heard: nothing to tell apart
        let silence = s.silence?;
        if silence >= self.limit {
            return None;
        }
        let needed = quiet.freshest_besides(s.region).map_or(self.limit, |f| {
            f.saturating_add(self.margin).min(self.limit)
        });
        needed.checked_sub(silence).filter(|left| !left.is_zero())
    }
}

/// Per region of a snapshot: how long since any of its members' heartbeats last rose.
struct Quiet<'a>(BTreeMap<&'a str, Duration>);

impl<'a> Quiet<'a> {
    fn of(sightings: &[Sighting<'a>]) -> Self {
        let mut quiet: BTreeMap<&'a str, Duration> = BTreeMap::new();
        for s in sightings {
            if let Some(silence) = s.silence {
                let q = quiet.entry(s.region).or_insert(silence);
                *q = (*q).min(silence);
            }
        }
        Quiet(quiet)
    }

    /// The silence of the freshest member of any region but `region`.
    fn freshest_besides(&self, region: &str) -> Option<Duration> {
        self.0
            .iter()
            .filter(|(&r, _)| r != region)
            .map(|(_, &q)| q)
            .min()
    }
}

/// Keeps the earlier of `recheck_in` and `left`.
fn earliest(recheck_in: &mut Option<Duration>, left: Duration) {
    *recheck_in = Some(recheck_in.map_or(left, |r| r.min(left)));
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn judge() -> Hearing {
        Hearing::new(MS * 1_000, MS * 5_000, MS * 2_000)
    }

    struct Member {
        id: ChitchatId,
        region: &'static str,
        live: bool,
        silence_ms: Option<u64>,
    }

    fn member(name: &str, region: &'static str, live: bool, silence_ms: u64) -> Member {
        Member {
            id: ChitchatId::new(name.to_string(), 1, "127.0.0.1:9000".parse().unwrap()),
            region,
            live,
            silence_ms: Some(silence_ms),
        }
    }

    fn run(h: &mut Hearing, members: &[Member]) -> Verdicts {
        let sightings: Vec<Sighting<'_>> = members
            .iter()
            .map(|m| Sighting {
                id: &m.id,
                region: m.region,
                live: m.live,
                silence: m.silence_ms.map(|ms| MS * ms as u32),
            })
            .collect();
        h.judge(&sightings)
    }

    /// A judge that has seen every one of `members` live (heard 100 ms ago), then judges
    /// `members` as given.
    fn after_settled(members: &[Member]) -> (Hearing, Verdicts) {
        let mut h = judge();
        let settled: Vec<Member> = members
            .iter()
            .map(|m| Member {
                id: m.id.clone(),
                live: true,
                silence_ms: Some(100),
                ..*m
            })
            .collect();
        assert!(run(&mut h, &settled).live.iter().all(|&l| l));
        let v = run(&mut h, members);
        (h, v)
    }

    #[test]
    fn a_region_silent_while_others_are_heard_is_dead() {
        let (_, v) = after_settled(&[
            member("na1", "na", false, 1_600),
            member("na2", "na", false, 1_500),
            member("eu1", "eu", true, 100),
            member("as1", "as", true, 300),
        ]);
        assert_eq!(v.live, vec![false, false, true, true]);
        assert_eq!(v.recheck_in, None);
    }

    #[test]
    fn everyone_silent_together_is_the_observer_deaf() {
        let (_, v) = after_settled(&[
            member("na1", "na", false, 1_600),
            member("eu1", "eu", false, 1_500),
            member("as1", "as", true, 1_400),
        ]);
        assert_eq!(v.live, vec![true, true, true], "deaths held back");
        // na1 would be confirmed when it is 1 s more silent than as1: 1.4 + 1 - 1.6 s
        assert_eq!(v.recheck_in, Some(MS * 800));
    }

    #[test]
    fn a_held_back_death_is_confirmed_once_others_are_heard_again() {
        let (mut h, deaf) = after_settled(&[
            member("na1", "na", false, 1_600),
            member("eu1", "eu", true, 1_500),
        ]);
        assert_eq!(deaf.live, vec![true, true]);
        // the observer hears eu again, na stays silent: na is really gone
        let heard = run(
            &mut h,
            &[
                member("na1", "na", false, 2_700),
                member("eu1", "eu", true, 50),
            ],
        );
        assert_eq!(heard.live, vec![false, true]);
    }

    #[test]
    fn members_of_the_same_region_are_no_evidence_of_hearing() {
        let (_, v) = after_settled(&[
            member("na1", "na", false, 1_600),
            member("na2", "na", true, 10),
            member("eu1", "eu", true, 1_500),
        ]);
        assert!(v.live[0], "na2 is as cut off as na1 would be");
    }

    #[test]
    fn a_recovered_observer_keeps_a_held_member_live_while_the_filter_catches_up() {
        let mut h = judge();
        run(
            &mut h,
            &[member("na1", "na", true, 0), member("eu1", "eu", true, 0)],
        );
        // deaf, then everything arrives at once; the revival filter still holds na1 back
        for silence in [1_600, 0, 200] {
            let v = run(
                &mut h,
                &[
                    member("na1", "na", false, silence),
                    member("eu1", "eu", true, silence),
                ],
            );
            assert!(v.live[0], "silence {silence} ms");
        }
    }

    #[test]
    fn a_confirmed_death_stands_until_the_detector_revives_the_member() {
        let members = |live, silence| {
            [
                member("na1", "na", live, silence),
                member("eu1", "eu", true, 0),
            ]
        };
        let (mut h, v) = after_settled(&members(false, 2_000));
        assert!(!v.live[0]);
        // a late heartbeat: silent for a moment only, the filter still says dead
        assert!(!run(&mut h, &members(false, 10)).live[0]);
        assert!(run(&mut h, &members(true, 10)).live[0]);
        // revived, then deaf: held back again
        let deaf = [
            member("na1", "na", false, 1_600),
            member("eu1", "eu", true, 1_550),
        ];
        assert!(run(&mut h, &deaf).live[0]);
    }

    #[test]
    fn a_member_not_yet_live_is_not_held() {
        let mut h = judge();
        // first heard a moment ago, too few heartbeats for the detector: dead as it says
        let v = run(
            &mut h,
            &[
                member("na1", "na", false, 10),
                member("eu1", "eu", true, 1_500),
            ],
        );
        assert_eq!(v.live, vec![false, true]);
        // eu, counted live, has been silent 1.5 s longer than na: the region cap comes due
        // 2 s after na was heard
        assert_eq!(v.recheck_in, Some(MS * 510));
    }

    #[test]
    fn a_region_silent_while_others_are_heard_is_dead_whatever_its_windows_say() {
        let (_, v) = after_settled(&[
            member("na1", "na", true, 2_100),
            member("na2", "na", true, 2_200),
            member("na3", "na", false, 2_900),
            member("eu1", "eu", true, 50),
            member("as1", "as", true, 400),
        ]);
        assert_eq!(v.live, vec![false, false, false, true, true]);
        assert_eq!(v.recheck_in, None);
    }

    #[test]
    fn a_member_alone_silent_is_not_capped_while_its_region_is_heard() {
        let (_, v) = after_settled(&[
            member("na1", "na", true, 4_000),
            member("na2", "na", true, 100),
            member("eu1", "eu", true, 50),
        ]);
        assert_eq!(v.live, vec![true, true, true]);
        assert_eq!(v.recheck_in, None);
    }

    #[test]
    fn a_region_silent_beyond_the_margin_asks_for_a_round_when_the_cap_comes_due() {
        let (_, v) = after_settled(&[
            member("na1", "na", true, 1_500),
            member("eu1", "eu", true, 100),
        ]);
        assert_eq!(v.live, vec![true, true]);
        assert_eq!(v.recheck_in, Some(MS * 600));
    }

    #[test]
    fn a_deaf_observer_caps_no_region() {
        let (_, v) = after_settled(&[
            member("na1", "na", true, 3_000),
            member("eu1", "eu", true, 2_900),
            member("as1", "as", true, 2_950),
        ]);
        assert_eq!(v.live, vec![true, true, true]);
        assert_eq!(v.recheck_in, None);
    }

    #[test]
    fn the_limit_confirms_a_death_whatever_is_heard() {
        let (_, v) = after_settled(&[
            member("na1", "na", false, 5_000),
            member("eu1", "eu", false, 4_900),
        ]);
        assert_eq!(v.live, vec![false, true]);
        assert_eq!(v.recheck_in, Some(MS * 100), "eu1 reaches the limit next");
    }

    #[test]
    fn an_observer_alone_with_one_region_waits_for_the_limit() {
        let (_, v) = after_settled(&[member("na1", "na", false, 2_000)]);
        assert_eq!(v.live, vec![true]);
        assert_eq!(v.recheck_in, Some(MS * 3_000));
    }

    #[test]
    fn a_member_never_heard_is_dead() {
        let (_, v) = after_settled(&[
            Member {
                silence_ms: None,
                ..member("na1", "na", false, 0)
            },
            member("eu1", "eu", true, 0),
        ]);
        assert_eq!(v.live, vec![false, true]);
    }

    #[test]
    fn a_member_gone_from_the_snapshot_is_forgotten() {
        let (mut h, _) =
            after_settled(&[member("na1", "na", true, 0), member("eu1", "eu", true, 0)]);
        run(&mut h, &[member("eu1", "eu", true, 0)]);
        // back (say, from a stale digest) and dead at once: not held as if it had been live
        let v = run(
            &mut h,
            &[
                member("na1", "na", false, 1_600),
                member("eu1", "eu", true, 1_550),
            ],
        );
        assert!(!v.live[0]);
    }
}
