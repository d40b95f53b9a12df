//! Data-plane handshake: both sides send [`Hello`], check protocol, chain id and genesis,
//! then prove their key by signing the other side's random challenge.

use std::time::Duration;

use ed25519_dalek::{Signature, VerifyingKey};
use futures::{SinkExt, StreamExt};
use rand::RngCore;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::message::{Hello, Message, MAX_FRAME_BYTES, PROTOCOL_VERSION};
use crate::identity::{verify, Identity, NodeId};

/// Largest frame accepted before the peer is authenticated: a `Hello` or a `Proof` is small,
/// so an unauthenticated peer cannot make the node buffer [`MAX_FRAME_BYTES`] frames.
pub const HANDSHAKE_MAX_FRAME_BYTES: usize = 64 * 1024;

/// How long a handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A framed data-plane connection.
pub type Conn = Framed<TcpStream, LengthDelimitedCodec>;

/// What a node proves about itself in a handshake.
#[derive(Clone)]
pub struct LocalInfo {
    /// The node's identity.
    pub identity: Identity,
    /// Chain id.
    pub chain_id: String,
    /// Genesis hash.
    pub genesis: [u8; 32],
    /// The chain spec JSON, given to nodes that ask before their handshake.
    pub spec_json: String,
}

/// The authenticated peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Peer public key.
    pub public_key: [u8; 32],
    /// Peer node id.
    pub node_id: NodeId,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Network error or closed connection.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// No answer in time.
    #[error("handshake timed out")]
    Timeout,
    /// The peer sent something other than the expected message.
    #[error("unexpected message during handshake")]
    Unexpected,
    /// Different protocol version.
    #[error("protocol version {0} is not supported")]
    Protocol(u16),
    /// Different chain.
    #[error("peer follows chain {0:?}, we follow another")]
    WrongChain(String),
    /// The peer's proof does not verify.
    #[error("peer key proof does not verify")]
    BadProof,
    /// The peer asked for the chain spec instead of a handshake.
    #[error("peer asked for the chain spec")]
    SpecRequested,
}

/// The frame codec: a 4-byte big-endian length, then the frame, at most [`MAX_FRAME_BYTES`].
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// Wraps a stream in the frame codec with the size limit.
pub fn framed(stream: TcpStream) -> Conn {
    Framed::new(stream, codec())
}

/// The bytes a node signs to answer a challenge.
pub fn proof_payload(
    nonce: &[u8; 32],
    signer: &[u8; 32],
    verifier: &[u8; 32],
    chain_id: &str,
    genesis: &[u8; 32],
) -> Vec<u8> {
    let mut p = b"qnet-handshake-v1".to_vec();
    p.extend_from_slice(nonce);
    p.extend_from_slice(signer);
    p.extend_from_slice(verifier);
    p.extend_from_slice(genesis);
    p.extend_from_slice(chain_id.as_bytes());
    p
}

/// Sends one message.
pub async fn send(conn: &mut Conn, msg: &Message) -> Result<(), std::io::Error> {
    conn.send(bytes::Bytes::from(msg.encode())).await
}

/// Receives one message; `None` when the peer closed the connection.
pub async fn recv(conn: &mut Conn) -> Result<Option<Message>, std::io::Error> {
    match conn.next().await {
        None => Ok(None),
        Some(frame) => {
            let frame = frame?;
            Message::decode(&frame).map(Some).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad frame: {e}"))
            })
        }
    }
}

/// Runs the handshake on a fresh connection (same steps on both sides).
pub async fn handshake(conn: &mut Conn, local: &LocalInfo) -> Result<PeerInfo, HandshakeError> {
    conn.codec_mut()
        .set_max_frame_length(HANDSHAKE_MAX_FRAME_BYTES);
    let peer = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake_inner(conn, local))
        .await
        .map_err(|_| HandshakeError::Timeout)??;
    conn.codec_mut().set_max_frame_length(MAX_FRAME_BYTES);
    Ok(peer)
}

async fn handshake_inner(conn: &mut Conn, local: &LocalInfo) -> Result<PeerInfo, HandshakeError> {
    let mut nonce = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let my_key = local.identity.public_key().to_bytes();
    send(
        conn,
        &Message::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            public_key: my_key,
            chain_id: local.chain_id.clone(),
            genesis: local.genesis,
            nonce,
        }),
    )
    .await?;
    let theirs = match recv(conn).await? {
        Some(Message::Hello(theirs)) => theirs,
        Some(Message::GetChainSpec) => return Err(HandshakeError::SpecRequested),
        _ => return Err(HandshakeError::Unexpected),
    };
    check_hello(&theirs, &local.chain_id, &local.genesis)?;
    let payload = proof_payload(
        &theirs.nonce,
        &my_key,
        &theirs.public_key,
        &local.chain_id,
        &local.genesis,
    );
    send(
        conn,
        &Message::Proof(local.identity.sign(&payload).to_bytes()),
    )
    .await?;
    let Some(Message::Proof(sig)) = recv(conn).await? else {
        return Err(HandshakeError::Unexpected);
    };
    check_proof(
        &Challenge {
            nonce: &nonce,
            my_key: &my_key,
            chain_id: &local.chain_id,
            genesis: &local.genesis,
        },
        &theirs.public_key,
        &sig,
    )
}

/// Checks the peer's [`Hello`] against our chain: protocol version, chain id and genesis.
pub fn check_hello(
    theirs: &Hello,
    chain_id: &str,
    genesis: &[u8; 32],
) -> Result<(), HandshakeError> {
    if theirs.protocol != PROTOCOL_VERSION {
        return Err(HandshakeError::Protocol(theirs.protocol));
    }
    if theirs.chain_id != chain_id || &theirs.genesis != genesis {
        return Err(HandshakeError::WrongChain(
            theirs.chain_id.chars().take(64).collect(),
        ));
    }
    Ok(())
}

/// What our side of a handshake asked the peer to sign.
#[derive(Debug, Clone, Copy)]
pub struct Challenge<'a> {
    /// Our random challenge.
    pub nonce: &'a [u8; 32],
    /// Our public key.
    pub my_key: &'a [u8; 32],
    /// Our chain id.
    pub chain_id: &'a str,
    /// Our genesis hash.
    pub genesis: &'a [u8; 32],
}

/// Checks the peer's proof that it holds `their_key`; the authenticated peer on success.
pub fn check_proof(
    challenge: &Challenge<'_>,
    their_key: &[u8; 32],
    sig: &[u8; 64],
) -> Result<PeerInfo, HandshakeError> {
    let key = VerifyingKey::from_bytes(their_key).map_err(|_| HandshakeError::BadProof)?;
    let expected = proof_payload(
        challenge.nonce,
        their_key,
        challenge.my_key,
        challenge.chain_id,
        challenge.genesis,
    );
    if !verify(&key, &expected, &Signature::from_bytes(sig)) {
        return Err(HandshakeError::BadProof);
    }
    Ok(PeerInfo {
        public_key: *their_key,
        node_id: NodeId::from_public_key(&key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(protocol: u16, chain_id: &str, genesis: [u8; 32]) -> Hello {
        Hello {
            protocol,
            public_key: [1; 32],
            chain_id: chain_id.into(),
            genesis,
            nonce: [2; 32],
        }
    }

    #[test]
    fn hello_must_match_protocol_chain_and_genesis() {
        assert!(check_hello(&hello(PROTOCOL_VERSION, "c", [3; 32]), "c", &[3; 32]).is_ok());
        assert!(matches!(
            check_hello(&hello(PROTOCOL_VERSION + 1, "c", [3; 32]), "c", &[3; 32]),
            Err(HandshakeError::Protocol(v)) if v == PROTOCOL_VERSION + 1
        ));
        assert!(matches!(
            check_hello(&hello(PROTOCOL_VERSION, "other", [3; 32]), "c", &[3; 32]),
            Err(HandshakeError::WrongChain(id)) if id == "other"
        ));
        assert!(matches!(
            check_hello(&hello(PROTOCOL_VERSION, "c", [4; 32]), "c", &[3; 32]),
            Err(HandshakeError::WrongChain(_))
        ));
        // a huge foreign chain id is cut in the error
        let long = "x".repeat(10_000);
        match check_hello(&hello(PROTOCOL_VERSION, &long, [3; 32]), "c", &[3; 32]) {
            Err(HandshakeError::WrongChain(id)) => assert_eq!(id.len(), 64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn proof_verifies_only_the_signed_challenge() {
        let peer = Identity::generate();
        let me = Identity::generate();
        let their_key = peer.public_key().to_bytes();
        let my_key = me.public_key().to_bytes();
        let challenge = Challenge {
            nonce: &[9; 32],
            my_key: &my_key,
            chain_id: "c",
            genesis: &[3; 32],
        };
        let payload = proof_payload(&[9; 32], &their_key, &my_key, "c", &[3; 32]);
        let sig = peer.sign(&payload).to_bytes();
        let info = check_proof(&challenge, &their_key, &sig).unwrap();
        assert_eq!(&info.node_id, peer.node_id());
        // another nonce, another key, a flipped bit, a key that is not a curve point
        let other_nonce = Challenge {
            nonce: &[8; 32],
            ..challenge
        };
        assert!(matches!(
            check_proof(&other_nonce, &their_key, &sig),
            Err(HandshakeError::BadProof)
        ));
        let thief = Identity::generate().public_key().to_bytes();
        assert!(check_proof(&challenge, &thief, &sig).is_err());
        let mut flipped = sig;
        flipped[0] ^= 1;
        assert!(check_proof(&challenge, &their_key, &flipped).is_err());
        assert!(check_proof(&challenge, &[0xff; 32], &sig).is_err());
    }
}
