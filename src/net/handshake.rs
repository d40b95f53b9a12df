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

/// Wraps a stream in the frame codec with the size limit.
pub fn framed(stream: TcpStream) -> Conn {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec();
    Framed::new(stream, codec)
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
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake_inner(conn, local))
        .await
        .map_err(|_| HandshakeError::Timeout)?
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
    if theirs.protocol != PROTOCOL_VERSION {
        return Err(HandshakeError::Protocol(theirs.protocol));
    }
    if theirs.chain_id != local.chain_id || theirs.genesis != local.genesis {
        return Err(HandshakeError::WrongChain(
            theirs.chain_id.chars().take(64).collect(),
        ));
    }
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
    let key = VerifyingKey::from_bytes(&theirs.public_key).map_err(|_| HandshakeError::BadProof)?;
    let expected = proof_payload(
        &nonce,
        &theirs.public_key,
        &my_key,
        &local.chain_id,
        &local.genesis,
    );
    if !verify(&key, &expected, &Signature::from_bytes(&sig)) {
        return Err(HandshakeError::BadProof);
    }
    Ok(PeerInfo {
        public_key: theirs.public_key,
        node_id: NodeId::from_public_key(&key),
    })
}
