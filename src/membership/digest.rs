//! Member ids named by a received chitchat digest, checked for shape. Every member of our
//! clusters has a node id derived from its key (16 lowercase hex); a digest naming any other
//! id does not come from our software and is refused whole.

use chitchat::ChitchatId;

use crate::identity::NodeId;

/// A digest named an id that is not one of our node ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed node id in digest entry {entry}")]
pub struct MalformedId {
    /// Position of the entry in the digest.
    pub entry: usize,
}

/// The ids a digest names (`Digest::node_ids` of the patched chitchat), if every one has
/// the shape of a node id.
pub fn checked_ids<'a>(
    ids: impl Iterator<Item = &'a ChitchatId>,
) -> Result<Vec<ChitchatId>, MalformedId> {
    ids.enumerate()
        .map(|(entry, id)| match NodeId::parse(&id.node_id) {
            Some(_) => Ok(id.clone()),
            None => Err(MalformedId { entry }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(node_id: &str) -> ChitchatId {
        ChitchatId::new(node_id, 1, "127.0.0.1:7000".parse().unwrap())
    }

    #[test]
    fn node_ids_pass_in_order() {
        let ids = [id("0123456789abcdef"), id("fedcba9876543210")];
        assert_eq!(checked_ids(ids.iter()), Ok(ids.to_vec()));
        assert_eq!(checked_ids([].iter()), Ok(vec![]));
    }

    #[test]
    fn any_other_id_refuses_the_digest() {
        for bad in [
            "0123456789ABCDEF",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789abcdeg",
            "node-1",
            "",
            "0123456789abcdef:0:127.0.0.1:1: NodeDigest",
        ] {
            let ids = [id("0123456789abcdef"), id(bad)];
            assert_eq!(
                checked_ids(ids.iter()),
                Err(MalformedId { entry: 1 }),
                "{bad}"
            );
        }
    }
}
