//! The data-plane listener and the client calls other nodes make to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::debug;

use super::handshake::{framed, handshake, recv, send, Conn, HandshakeError, LocalInfo, PeerInfo};
use super::message::{Message, Seeds, MAX_FRAME_BYTES};
use super::rate::TokenBucket;
use crate::metrics::Metrics;

/// Most data-plane connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// A connection with no message for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages per second one peer connection may send (sustained).
pub const PEER_MSGS_PER_S: u64 = 2_000;
/// Messages one peer connection may send in a burst.
pub const PEER_MSGS_BURST: u64 = 4_000;

/// Answers requests that need the node's state.
pub trait Responder: Send + Sync + 'static {
    /// Seeds of `region` and of the bridge cluster; an error (e.g. not joined yet) is sent
    /// back as [`Message::Error`] so the asking node retries.
    fn seeds(&self, region: &str) -> Result<Seeds, String>;

    /// Whether an authenticated peer may stay connected (false while it is banned).
    fn admit(&self, peer: &PeerInfo) -> bool;

    /// Handles a chain message (block, transaction, block request) and returns the reply,
    /// if any; `Err` names how the peer misbehaved, and the connection is closed.
    fn chain_message(&self, peer: &PeerInfo, msg: Message) -> Result<Option<Message>, String>;
}

/// Accepts connections until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    local: LocalInfo,
    responder: Arc<dyn Responder>,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            debug!(%peer, "data-plane connection limit reached");
            continue;
        };
        let local = local.clone();
        let responder = responder.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut conn = framed(stream);
            match handshake(&mut conn, &local).await {
                Ok(info) if responder.admit(&info) => {
                    debug!(%peer, node_id = %info.node_id, "data-plane peer connected");
                    if let Some(reason) = serve_conn(conn, &info, responder).await {
                        metrics.peer_disconnects.with_label_values(&[reason]).inc();
                    }
                }
                Ok(info) => {
                    metrics
                        .peer_disconnects
                        .with_label_values(&["banned"])
                        .inc();
                    debug!(%peer, node_id = %info.node_id, "banned peer refused");
                }
                Err(HandshakeError::SpecRequested) => {
                    // the handshake's small frame limit also bounds what we send
                    conn.codec_mut().set_max_frame_length(MAX_FRAME_BYTES);
                    let _ = send(&mut conn, &Message::ChainSpec(local.spec_json.clone())).await;
                }
                Err(e) => {
                    metrics.handshake_failures.inc();
                    debug!(%peer, error = %e, "data-plane handshake failed");
                }
            }
        });
    }
}

/// Serves an authenticated peer until it leaves; the reason when it was cut off.
async fn serve_conn(
    mut conn: Conn,
    peer: &PeerInfo,
    responder: Arc<dyn Responder>,
) -> Option<&'static str> {
    let started = std::time::Instant::now();
    let elapsed_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut bucket = TokenBucket::new(PEER_MSGS_PER_S, PEER_MSGS_BURST, 0);
    loop {
        let msg = match tokio::time::timeout(IDLE_TIMEOUT, recv(&mut conn)).await {
            Ok(Ok(Some(msg))) => msg,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Some("bad_message")
            }
            _ => return None,
        };
        if !bucket.take(elapsed_ms()) {
            debug!(node_id = %peer.node_id, "peer exceeded its message rate; disconnecting");
            return Some("rate_limit");
        }
        let reply = match msg {
            Message::GetSeeds { region } => Some(match responder.seeds(&region) {
                Ok(seeds) => Message::Seeds(seeds),
                Err(reason) => Message::Error { reason },
            }),
            msg @ (Message::Block(_) | Message::Tx(_) | Message::GetBlocks { .. }) => {
                match responder.chain_message(peer, msg) {
                    Ok(reply) => reply,
                    Err(reason) => {
                        debug!(node_id = %peer.node_id, %reason, "peer misbehaved; disconnecting");
                        return Some("bad_message");
                    }
                }
            }
            _ => Some(Message::Error {
                reason: "unexpected message".into(),
            }),
        };
        if let Some(reply) = reply {
            if send(&mut conn, &reply).await.is_err() {
                return None;
            }
        }
    }
}

/// Errors of a client call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Could not connect.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// Peer.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Handshake refused.
    #[error("handshake with {addr} failed: {source}")]
    Handshake {
        /// Peer.
        addr: String,
        /// Why.
        source: HandshakeError,
    },
    /// Bad or missing answer.
    #[error("{addr} gave no valid answer")]
    Answer {
        /// Peer.
        addr: String,
    },
    /// The peer refused the request.
    #[error("{addr} refused: {reason}")]
    Refused {
        /// Peer.
        addr: String,
        /// Its reason.
        reason: String,
    },
}

/// Opens a TCP connection to `addr` (host:port) within [`CALL_TIMEOUT`].
async fn dial(addr: &str) -> Result<TcpStream, CallError> {
    tokio::time::timeout(CALL_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| CallError::Connect {
            addr: addr.into(),
            reason: "timed out".into(),
        })?
        .map_err(|e| CallError::Connect {
            addr: addr.into(),
            reason: e.to_string().to_lowercase(),
        })
}

/// Connects to `addr` (host:port) and runs the handshake.
pub async fn connect(addr: &str, local: &LocalInfo) -> Result<Conn, CallError> {
    let stream = dial(addr).await?;
    let mut conn = framed(stream);
    handshake(&mut conn, local)
        .await
        .map_err(|source| CallError::Handshake {
            addr: addr.into(),
            source,
        })?;
    Ok(conn)
}

/// Asks a peer for seeds of `region` and of the bridge cluster.
pub async fn fetch_seeds(
    addr: &str,
    local: &LocalInfo,
    region: &str,
) -> Result<(Vec<SocketAddr>, Vec<SocketAddr>), CallError> {
    let mut conn = connect(addr, local).await?;
    let bad = || CallError::Answer { addr: addr.into() };
    send(
        &mut conn,
        &Message::GetSeeds {
            region: region.into(),
        },
    )
    .await
    .map_err(|_| bad())?;
    let answer = tokio::time::timeout(CALL_TIMEOUT, recv(&mut conn))
        .await
        .map_err(|_| bad())?
        .map_err(|_| bad())?;
    let seeds = match answer {
        Some(Message::Seeds(seeds)) => seeds,
        Some(Message::Error { reason }) => {
            return Err(CallError::Refused {
                addr: addr.into(),
                reason: reason.chars().take(200).collect(),
            })
        }
        _ => return Err(bad()),
    };
    let parse = |v: &[String]| -> Vec<SocketAddr> {
        v.iter()
            .take(super::message::MAX_SEEDS)
            .filter_map(|s| s.parse().ok())
            .collect()
    };
    Ok((parse(&seeds.region_seeds), parse(&seeds.bridge_seeds)))
}

/// Asks a peer for its chain spec JSON, before (instead of) a handshake.
pub async fn fetch_chain_spec(addr: &str) -> Result<String, CallError> {
    let stream = dial(addr).await?;
    let mut conn = framed(stream);
    let bad = || CallError::Answer { addr: addr.into() };
    send(&mut conn, &Message::GetChainSpec)
        .await
        .map_err(|_| bad())?;
    let answer = async {
        // The peer opens with its own Hello before it reads our request.
        loop {
            match recv(&mut conn).await {
                Ok(Some(Message::Hello(_))) => continue,
                Ok(Some(Message::ChainSpec(json))) => return Some(json),
                _ => return None,
            }
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, answer)
        .await
        .map_err(|_| bad())?
        .ok_or_else(bad)
}

/// Asks a connected peer for up to `limit` canonical blocks from height `from`.
pub async fn fetch_blocks(conn: &mut Conn, from: u64, limit: u32) -> Result<Vec<Vec<u8>>, String> {
    send(conn, &Message::GetBlocks { from, limit })
        .await
        .map_err(|e| format!("send: {e}"))?;
    loop {
        match tokio::time::timeout(CALL_TIMEOUT, recv(conn)).await {
            Ok(Ok(Some(Message::Blocks(blocks)))) => return Ok(blocks),
            // pushes that cross our request are ignored here; the peer's links deliver them
            Ok(Ok(Some(Message::Block(_) | Message::Tx(_)))) => continue,
            Ok(Ok(Some(Message::Error { reason }))) => {
                return Err(format!(
                    "refused: {}",
                    reason.chars().take(200).collect::<String>()
                ))
            }
            Ok(Ok(Some(_))) => return Err("unexpected answer".into()),
            Ok(Ok(None)) => return Err("connection closed".into()),
            Ok(Err(e)) => return Err(format!("receive: {e}")),
            Err(_) => return Err("timed out".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    struct Nobody;

    impl Responder for Nobody {
        fn seeds(&self, _region: &str) -> Result<Seeds, String> {
            Err("not joined".into())
        }

        fn admit(&self, _peer: &PeerInfo) -> bool {
            true
        }

        fn chain_message(
            &self,
            _peer: &PeerInfo,
            _msg: Message,
        ) -> Result<Option<Message>, String> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn a_chain_spec_larger_than_the_handshake_frame_limit_is_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let spec_json = format!("{{\"pad\":\"{}\"}}", "x".repeat(200 * 1024));
        let local = LocalInfo {
            identity: Identity::generate(),
            chain_id: "c".into(),
            genesis: [1; 32],
            spec_json: spec_json.clone(),
        };
        let metrics = Metrics::new().unwrap();
        let (_stop_tx, stop) = watch::channel(false);
        tokio::spawn(serve(listener, local, Arc::new(Nobody), metrics, stop));
        assert_eq!(fetch_chain_spec(&addr).await.unwrap(), spec_json);
    }
}
