//! Binary Merkle tree over transaction hashes, committing a block header to its transactions.
//!
//! Leaves are `blake3(0x00 || tx_hash)`, inner nodes `blake3(0x01 || left || right)`: the
//! domain bytes keep a leaf from being passed off as an inner node (second-preimage attack).
//! An odd node at the end of a level is promoted unchanged to the next level rather than
//! paired with itself, so `[a, b, c]` and `[a, b, c, c]` have different roots (duplicating
//! would let two transaction lists share a root, the CVE-2012-2459 malleability).
//! The root of no transactions is [`ZERO_HASH`].

use super::{Hash, ZERO_HASH};

const LEAF_TAG: u8 = 0x00;
const NODE_TAG: u8 = 0x01;

fn leaf(tx_hash: &Hash) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[LEAF_TAG]);
    hasher.update(tx_hash);
    *hasher.finalize().as_bytes()
}

fn node(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[NODE_TAG]);
    hasher.update(left);
    hasher.update(right);
    *hasher.finalize().as_bytes()
}

fn next_level(level: &[Hash]) -> Vec<Hash> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [left, right] => node(left, right),
            [odd] => *odd,
            _ => ZERO_HASH,
        })
        .collect()
}

/// The Merkle root of transaction hashes in block order.
pub fn merkle_root(tx_hashes: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = tx_hashes.iter().map(leaf).collect();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level.first().copied().unwrap_or(ZERO_HASH)
}

/// One step of an inclusion proof: the sibling hash and whether it sits on the left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofStep {
    /// The sibling node.
    pub sibling: Hash,
    /// True when the sibling is the left child.
    pub sibling_is_left: bool,
}

/// The inclusion proof of the transaction at `index`, `None` if out of range.
pub fn proof(tx_hashes: &[Hash], index: usize) -> Option<Vec<ProofStep>> {
    if index >= tx_hashes.len() {
        return None;
    }
    let mut level: Vec<Hash> = tx_hashes.iter().map(leaf).collect();
    let mut position = index;
    let mut steps = Vec::new();
    while level.len() > 1 {
        let sibling = position ^ 1;
        // A promoted odd node has no sibling at this level and adds no step.
        if let Some(hash) = level.get(sibling) {
            steps.push(ProofStep {
                sibling: *hash,
                sibling_is_left: sibling < position,
            });
        }
        level = next_level(&level);
        position /= 2;
    }
    Some(steps)
}

/// Whether `proof` links `tx_hash` to `root`.
pub fn verify_proof(root: &Hash, tx_hash: &Hash, proof: &[ProofStep]) -> bool {
    let computed = proof.iter().fold(leaf(tx_hash), |acc, step| {
        if step.sibling_is_left {
            node(&step.sibling, &acc)
        } else {
            node(&acc, &step.sibling)
        }
    });
    computed == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(n: u8) -> Vec<Hash> {
        (0..n).map(|i| [i; 32]).collect()
    }

    #[test]
    fn empty_root_is_zero() {
        assert_eq!(merkle_root(&[]), ZERO_HASH);
    }

    #[test]
    fn single_leaf_root_is_the_tagged_leaf_not_the_hash() {
        let h = [7u8; 32];
        assert_eq!(merkle_root(&[h]), leaf(&h));
        assert_ne!(merkle_root(&[h]), h);
    }

    #[test]
    fn two_and_three_leaves_match_hand_computation() {
        let [a, b, c] = [[1u8; 32], [2u8; 32], [3u8; 32]];
        let ab = node(&leaf(&a), &leaf(&b));
        assert_eq!(merkle_root(&[a, b]), ab);
        // The odd leaf c is promoted, then paired with ab.
        assert_eq!(merkle_root(&[a, b, c]), node(&ab, &leaf(&c)));
    }

    #[test]
    fn odd_node_is_not_duplicated() {
        let h = hashes(3);
        let mut dup = h.clone();
        dup.push(h[2]);
        assert_ne!(merkle_root(&h), merkle_root(&dup));
    }

    #[test]
    fn order_and_content_change_the_root() {
        let h = hashes(4);
        let mut swapped = h.clone();
        swapped.swap(0, 1);
        assert_ne!(merkle_root(&h), merkle_root(&swapped));
        let mut changed = h.clone();
        changed[3][0] ^= 1;
        assert_ne!(merkle_root(&h), merkle_root(&changed));
    }

    #[test]
    fn leaf_cannot_pose_as_inner_node() {
        let h = hashes(2);
        let inner = node(&leaf(&h[0]), &leaf(&h[1]));
        assert_ne!(merkle_root(&[inner]), merkle_root(&h));
    }

    #[test]
    fn proofs_verify_for_every_index_and_size() {
        for n in 1..=9u8 {
            let h = hashes(n);
            let root = merkle_root(&h);
            for (i, tx) in h.iter().enumerate() {
                let p = proof(&h, i).unwrap();
                assert!(verify_proof(&root, tx, &p), "n={n} i={i}");
                assert!(!verify_proof(&root, &[0xff; 32], &p), "n={n} i={i}");
            }
            assert!(proof(&h, h.len()).is_none());
        }
    }
}
