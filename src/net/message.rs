//! Data-plane messages: a canonical binary encoding (borsh) inside length-delimited frames.

use borsh::{BorshDeserialize, BorshSerialize};

/// Version of the data-plane protocol.
pub const PROTOCOL_VERSION: u16 = 1;
/// Largest frame accepted, in bytes.
pub const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;
/// Most addresses in one seeds answer.
pub const MAX_SEEDS: usize = 32;
/// Most blocks asked for or sent in one `GetBlocks` / `Blocks` exchange.
pub const MAX_BLOCKS_PER_REQUEST: u32 = 512;
/// Most encoded block bytes in one `Blocks` answer (well under [`MAX_FRAME_BYTES`]).
pub const MAX_BLOCKS_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// First message on a connection, in both directions.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Hello {
    /// Protocol version.
    pub protocol: u16,
    /// The sender's ed25519 public key.
    pub public_key: [u8; 32],
    /// Chain id the sender follows.
    pub chain_id: String,
    /// Genesis hash of that chain.
    pub genesis: [u8; 32],
    /// Random challenge the other side must sign.
    pub nonce: [u8; 32],
}

/// Seeds to join a region's cluster and the bridge cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Seeds {
    /// Regional gossip addresses (`ip:port`) of live members of the asked region.
    pub region_seeds: Vec<String>,
    /// Bridge-cluster gossip addresses of live bridges.
    pub bridge_seeds: Vec<String>,
}

/// Every data-plane message.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Message {
    /// Handshake opening.
    Hello(Hello),
    /// Signature over the peer's challenge (see `handshake`).
    Proof(#[borsh(serialize_with = "ser_sig", deserialize_with = "de_sig")] [u8; 64]),
    /// Ask for seeds of a region.
    GetSeeds {
        /// Region name.
        region: String,
    },
    /// Answer to `GetSeeds`.
    Seeds(Seeds),
    /// The peer refuses a request; the connection stays usable.
    Error {
        /// Why, lowercase.
        reason: String,
    },
    /// Ask for the chain spec; sent instead of `Hello` by a node that has no spec yet.
    GetChainSpec,
    /// The chain spec JSON, answer to `GetChainSpec`.
    ChainSpec(String),
    /// A new block (canonical block encoding), pushed along links.
    Block(Vec<u8>),
    /// A new transaction (canonical signed transfer encoding), pushed along links.
    Tx(Vec<u8>),
    /// Ask for canonical blocks from height `from` upwards.
    GetBlocks {
        /// First height.
        from: u64,
        /// Most blocks wanted (capped at [`MAX_BLOCKS_PER_REQUEST`]).
        limit: u32,
    },
    /// Answer to `GetBlocks`: encoded blocks in height order, possibly fewer than asked.
    Blocks(Vec<Vec<u8>>),
}

fn ser_sig<W: std::io::Write>(sig: &[u8; 64], writer: &mut W) -> std::io::Result<()> {
    writer.write_all(sig)
}

fn de_sig<R: std::io::Read>(reader: &mut R) -> std::io::Result<[u8; 64]> {
    let mut sig = [0u8; 64];
    reader.read_exact(&mut sig)?;
    Ok(sig)
}

impl Message {
    /// Canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Decodes a frame; trailing bytes are an error.
    pub fn decode(frame: &[u8]) -> Result<Self, std::io::Error> {
        borsh::from_slice(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let msgs = [
            Message::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                public_key: [1; 32],
                chain_id: "c".into(),
                genesis: [2; 32],
                nonce: [3; 32],
            }),
            Message::Proof([9; 64]),
            Message::GetSeeds {
                region: "eu".into(),
            },
            Message::Seeds(Seeds {
                region_seeds: vec!["127.0.0.1:1".into()],
                bridge_seeds: vec![],
            }),
            Message::GetChainSpec,
            Message::ChainSpec("{}".into()),
            Message::Block(vec![1, 2, 3]),
            Message::Tx(vec![4]),
            Message::GetBlocks { from: 7, limit: 9 },
            Message::Blocks(vec![vec![1], vec![]]),
        ];
        for m in msgs {
            assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
        assert!(Message::decode(&[200, 1, 2]).is_err());
        assert!(Message::decode(&[]).is_err());
        let mut extra = Message::GetSeeds {
            region: "eu".into(),
        }
        .encode();
        extra.push(0);
        assert!(Message::decode(&extra).is_err());
        // a length prefix far beyond the frame must not allocate or panic
        assert!(Message::decode(&[2, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
