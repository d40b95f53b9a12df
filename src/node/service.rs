//! TEMP
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use super::{NodeError, NodeShared};
pub fn spawn_api(_l: TcpListener, _s: Arc<NodeShared>, _stop: watch::Receiver<bool>) -> Result<JoinHandle<()>, NodeError> {
    Ok(tokio::spawn(async {}))
}
