//! Member card: the signed, static part of a member's gossip state. It binds the node id
//! (derived from the public key) to its generation, gossip address, region and type, so a
//! forged datagram cannot make up members: entries without a valid card are never admitted.

use std::net::SocketAddr;

use chitchat::ChitchatId;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::identity::{from_hex, to_hex, verify, Identity, NodeId, NodeType};
use crate::region::Region;

/// Version tag at the start of every card value.
const CARD_VERSION: &str = "v1";

/// The verified content of a member card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberCard {
    /// Ed25519 public key of the member.
    pub public_key: [u8; 32],
    /// Region of the member.
    pub region: Region,
    /// Type of the member.
    pub node_type: NodeType,
}

fn signed_payload(id: &ChitchatId, region: &Region, node_type: NodeType) -> Vec<u8> {
    format!(
        "qnet-member-v1|{}|{}|{}|{}|{}",
        id.node_id, id.generation_id, id.gossip_advertise_addr, region, node_type
    )
    .into_bytes()
}

/// Builds the card value for this node in a cluster.
pub fn issue(identity: &Identity, id: &ChitchatId, region: &Region, node_type: NodeType) -> String {
    let sig = identity.sign(&signed_payload(id, region, node_type));
    format!(
        "{CARD_VERSION} {} {} {} {}",
        to_hex(identity.public_key().as_bytes()),
        region,
        node_type,
        to_hex(&sig.to_bytes())
    )
}

/// Parses and verifies a card value against the chitchat id it was gossiped under.
pub fn verify_card(id: &ChitchatId, value: &str) -> Option<MemberCard> {
    let mut parts = value.split(' ');
    if parts.next()? != CARD_VERSION {
        return None;
    }
    let public_key: [u8; 32] = from_hex(parts.next()?)?.try_into().ok()?;
    let region = Region::new(parts.next()?).ok()?;
    let node_type: NodeType = parts.next()?.parse().ok()?;
    let sig: [u8; 64] = from_hex(parts.next()?)?.try_into().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let key = VerifyingKey::from_bytes(&public_key).ok()?;
    if NodeId::from_public_key(&key).as_str() != &*id.node_id {
        return None;
    }
    let payload = signed_payload(id, &region, node_type);
    verify(&key, &payload, &Signature::from_bytes(&sig)).then_some(MemberCard {
        public_key,
        region,
        node_type,
    })
}

/// The chitchat id of a node: its node id, a generation and its gossip address.
pub fn chitchat_id(identity: &Identity, generation: u64, gossip_addr: SocketAddr) -> ChitchatId {
    ChitchatId::new(identity.node_id().as_str(), generation, gossip_addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eu() -> Region {
        Region::new("eu").unwrap()
    }

    #[test]
    fn a_card_verifies_only_under_its_own_id() {
        let me = Identity::generate();
        let id = chitchat_id(&me, 7, "127.0.0.1:9000".parse().unwrap());
        let card = issue(&me, &id, &eu(), NodeType::Super);
        let verified = verify_card(&id, &card).unwrap();
        assert_eq!(verified.region, eu());
        assert_eq!(verified.node_type, NodeType::Super);

        let other_gen = chitchat_id(&me, 8, id.gossip_advertise_addr);
        assert!(
            verify_card(&other_gen, &card).is_none(),
            "generation is bound"
        );
        let other_addr = chitchat_id(&me, 7, "127.0.0.1:9001".parse().unwrap());
        assert!(
            verify_card(&other_addr, &card).is_none(),
            "address is bound"
        );
        let thief = Identity::generate();
        let stolen = chitchat_id(&thief, 7, id.gossip_advertise_addr);
        assert!(
            verify_card(&stolen, &card).is_none(),
            "node id is bound to the key"
        );
    }

    #[test]
    fn tampered_or_garbage_cards_are_rejected() {
        let me = Identity::generate();
        let id = chitchat_id(&me, 1, "127.0.0.1:9000".parse().unwrap());
        let card = issue(&me, &id, &eu(), NodeType::Full);
        let tampered = card.replace(" eu ", " na ");
        assert!(verify_card(&id, &tampered).is_none());
        let promoted = card.replace(" full ", " super ");
        assert!(verify_card(&id, &promoted).is_none());
        for junk in [
            "",
            "v1",
            "v2 a b c d",
            "v1 zz eu full 00",
            &format!("{card} extra"),
        ] {
            assert!(verify_card(&id, junk).is_none(), "{junk:?} accepted");
        }
    }
}
