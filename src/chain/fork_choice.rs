//! Fork choice: of two heads, the greater height wins, then the earlier slot, then the
//! lower hash. Total and deterministic, so every node picks the same head from the same blocks.

use std::cmp::Ordering;

use super::block::BlockHeader;
use super::Hash;

/// What fork choice looks at in a chain head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Head {
    /// Block height.
    pub height: u64,
    /// Block slot.
    pub slot: u64,
    /// Block hash.
    pub hash: Hash,
}

impl Head {
    /// The head formed by a block header.
    pub fn of(header: &BlockHeader) -> Head {
        Head {
            height: header.height,
            slot: header.slot,
            hash: header.hash(),
        }
    }
}

/// `Greater` when `a` is the better head.
pub fn compare(a: &Head, b: &Head) -> Ordering {
    a.height
        .cmp(&b.height)
        .then_with(|| b.slot.cmp(&a.slot))
        .then_with(|| b.hash.cmp(&a.hash))
}

/// Whether `candidate` should replace `current` as the head.
pub fn is_better(candidate: &Head, current: &Head) -> bool {
    compare(candidate, current) == Ordering::Greater
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(height: u64, slot: u64, hash: u8) -> Head {
        Head {
            height,
            slot,
            hash: [hash; 32],
        }
    }

    #[test]
    fn greater_height_wins_over_slot_and_hash() {
        assert!(is_better(&head(5, 100, 9), &head(4, 1, 0)));
        assert!(!is_better(&head(4, 1, 0), &head(5, 100, 9)));
    }

    #[test]
    fn equal_height_earlier_slot_wins() {
        assert!(is_better(&head(5, 10, 9), &head(5, 11, 0)));
        assert!(!is_better(&head(5, 11, 0), &head(5, 10, 9)));
    }

    #[test]
    fn equal_height_and_slot_lower_hash_wins() {
        assert!(is_better(&head(5, 10, 1), &head(5, 10, 2)));
        assert!(!is_better(&head(5, 10, 2), &head(5, 10, 1)));
    }

    #[test]
    fn identical_heads_are_not_better() {
        assert_eq!(compare(&head(5, 10, 1), &head(5, 10, 1)), Ordering::Equal);
        assert!(!is_better(&head(5, 10, 1), &head(5, 10, 1)));
    }

    #[test]
    fn choice_is_independent_of_arrival_order() {
        let heads = [
            head(3, 5, 7),
            head(4, 9, 3),
            head(4, 8, 200),
            head(4, 8, 100),
        ];
        let pick = |order: &[usize]| {
            order
                .iter()
                .map(|&i| heads[i])
                .reduce(|best, h| if is_better(&h, &best) { h } else { best })
                .unwrap()
        };
        assert_eq!(pick(&[0, 1, 2, 3]), head(4, 8, 100));
        assert_eq!(pick(&[3, 2, 1, 0]), head(4, 8, 100));
        assert_eq!(pick(&[1, 3, 0, 2]), head(4, 8, 100));
    }
}
