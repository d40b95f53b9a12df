//! The data-plane listener and the client calls other nodes make to it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::debug;

use super::handshake::{framed, handshake, recv, send, Conn, HandshakeError, LocalInfo};
use super::message::{Message, Seeds};
use crate::metrics::Metrics;

/// Most data-plane connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// A connection with no message for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers requests that need the node's state.
pub trait Responder: Send + Sync + 'static {
    /// Seeds of `region` and of the bridge cluster; an error (e.g. not joined yet) is sent
    /// back as [`Message::Error`] so the asking node retries.
    fn seeds(&self, region: &str) -> Result<Seeds, String>;
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
                Ok(info) => {
                    debug!(%peer, node_id = %info.node_id, "data-plane peer connected");
                    serve_conn(conn, responder).await;
                }
                Err(e) => {
                    metrics.handshake_failures.inc();
                    debug!(%peer, error = %e, "data-plane handshake failed");
                }
            }
        });
    }
}

async fn serve_conn(mut conn: Conn, responder: Arc<dyn Responder>) {
    loop {
        let msg = match tokio::time::timeout(IDLE_TIMEOUT, recv(&mut conn)).await {
            Ok(Ok(Some(msg))) => msg,
            _ => return,
        };
        let reply = match msg {
            Message::GetSeeds { region } => match responder.seeds(&region) {
                Ok(seeds) => Message::Seeds(seeds),
                Err(reason) => Message::Error { reason },
            },
            _ => Message::Error {
                reason: "unexpected message".into(),
            },
        };
        if send(&mut conn, &reply).await.is_err() {
            return;
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

/// Connects to `addr` (host:port) and runs the handshake.
pub async fn connect(addr: &str, local: &LocalInfo) -> Result<Conn, CallError> {
    let stream = tokio::time::timeout(CALL_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| CallError::Connect {
            addr: addr.into(),
            reason: "timed out".into(),
        })?
        .map_err(|e| CallError::Connect {
            addr: addr.into(),
            reason: e.to_string().to_lowercase(),
        })?;
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
