//! The peer manager: keeps one outbound data-plane connection to every peer of the routing
//! links, pushes new blocks and transactions along them (never back to the sender), answers
//! peers' chain messages, and bans peers that send invalid blocks for a short while.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, info};

use super::chain::{ImportError, Relay, Source};
use super::seeds::ViewResponder;
use super::NodeShared;
use crate::chain::block::Block;
use crate::chain::tx::SignedTransfer;
use crate::chain::Hash;
use crate::identity::NodeId;
use crate::net::handshake::send;
use crate::net::server::{connect, Responder};
use crate::net::{LocalInfo, Message, PeerInfo, Seeds};

/// How long a peer that sent an invalid block is refused.
pub const BAN_MS: u64 = 30_000;
/// Messages queued per outbound peer before pushes to it are dropped (pull repairs).
const OUTBOX: usize = 1_024;
/// Most pending transactions pushed to a peer when a link to it opens (below its burst limit).
const PENDING_ON_LINK: usize = 1_000;
/// Recently seen block and transaction hashes kept for duplicate suppression.
const SEEN_CAPACITY: usize = 16_384;
/// How often links are re-checked and missing connections opened.
const MAINTAIN_EVERY: Duration = Duration::from_millis(500);

/// A bounded set of recently seen hashes; the oldest is forgotten first.
#[derive(Debug, Default)]
pub struct SeenSet {
    set: HashSet<Hash>,
    order: VecDeque<Hash>,
    capacity: usize,
}

impl SeenSet {
    /// An empty set holding at most `capacity` hashes.
    pub fn new(capacity: usize) -> Self {
        SeenSet {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Records `hash`; false when it was already recorded.
    pub fn insert(&mut self, hash: Hash) -> bool {
        if !self.set.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

/// Whether `peer` is banned at `now_ms`; expired bans are dropped.
pub fn is_banned(bans: &mut HashMap<NodeId, u64>, peer: &NodeId, now_ms: u64) -> bool {
    bans.retain(|_, until| *until > now_ms);
    bans.contains_key(peer)
}

enum Session {
    Connecting,
    Open(mpsc::Sender<Message>),
}

/// Outbound connections, bans and the handling of peers' chain messages.
pub struct PeerManager {
    shared: Arc<NodeShared>,
    local: LocalInfo,
    seeds: ViewResponder,
    sessions: Mutex<HashMap<NodeId, Session>>,
    bans: Mutex<HashMap<NodeId, u64>>,
    seen: Mutex<SeenSet>,
    sync_hints: mpsc::Sender<(NodeId, u64)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PeerManager {
    /// A manager for `shared`; `sync_hints` receives (peer, height) of orphan blocks.
    pub fn new(
        shared: Arc<NodeShared>,
        local: LocalInfo,
        sync_hints: mpsc::Sender<(NodeId, u64)>,
    ) -> Self {
        PeerManager {
            seeds: ViewResponder::new(shared.clone()),
            shared,
            local,
            sessions: Mutex::new(HashMap::new()),
            bans: Mutex::new(HashMap::new()),
            seen: Mutex::new(SeenSet::new(SEEN_CAPACITY)),
            sync_hints,
        }
    }

    /// Bans `peer` for [`BAN_MS`] and drops our connection to it.
    pub fn penalise(&self, peer: &NodeId, reason: &str) {
        let until = self.shared.clock.now_ms().saturating_add(BAN_MS);
        lock(&self.bans).insert(peer.clone(), until);
        let mut sessions = lock(&self.sessions);
        sessions.remove(peer);
        self.publish_open(&sessions);
        drop(sessions);
        info!(node_id = %peer, %reason, "peer penalised: disconnected and banned");
    }

    fn banned(&self, peer: &NodeId) -> bool {
        is_banned(&mut lock(&self.bans), peer, self.shared.clock.now_ms())
    }

    /// Pushes new blocks and transactions along the links until `stop`.
    pub async fn run(
        self: Arc<Self>,
        mut relay: broadcast::Receiver<Relay>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(MAINTAIN_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => self.maintain(),
                r = relay.recv() => match r {
                    Ok(item) => self.push(item),
                    Err(broadcast::error::RecvError::Lagged(n)) => debug!(skipped = n, "relay queue lagged"),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = stop.changed() => return,
            }
        }
    }

    fn push(&self, item: Relay) {
        let (msg, from) = match item {
            Relay::Block { bytes, from } => {
                lock(&self.seen).insert(*blake3::hash(&bytes).as_bytes());
                (Message::Block(bytes.as_ref().clone()), from)
            }
            Relay::Tx { bytes, from } => {
                lock(&self.seen).insert(*blake3::hash(&bytes).as_bytes());
                (Message::Tx(bytes.as_ref().clone()), from)
            }
        };
        for (peer, session) in lock(&self.sessions).iter() {
            if Some(peer) == from.as_ref() {
                continue;
            }
            if let Session::Open(tx) = session {
                let _ = tx.try_send(msg.clone());
            }
        }
    }

    /// Opens connections to link peers that have none, closes those no longer linked.
    fn maintain(self: &Arc<Self>) {
        let links: Vec<NodeId> = self
            .shared
            .routing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .links
            .list()
            .into_iter()
            .map(|l| l.peer)
            .collect();
        let view = self.shared.view.borrow().clone();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|peer, s| match s {
            Session::Open(tx) => links.contains(peer) && !tx.is_closed(),
            Session::Connecting => true,
        });
        for peer in links {
            if sessions.contains_key(&peer) || self.banned(&peer) {
                continue;
            }
            let Some(addr) = view.p2p_addr_of(&peer) else {
                continue;
            };
            sessions.insert(peer.clone(), Session::Connecting);
            let me = self.clone();
            tokio::spawn(async move { me.open(peer, addr.to_string()).await });
        }
        self.publish_open(&sessions);
    }

    /// Tells the API which links are open: the peers with an open, unclosed session.
    fn publish_open(&self, sessions: &HashMap<NodeId, Session>) {
        let open = sessions
            .iter()
            .filter(|(_, s)| matches!(s, Session::Open(tx) if !tx.is_closed()))
            .map(|(peer, _)| peer.clone())
            .collect();
        *self
            .shared
            .open_links
            .write()
            .unwrap_or_else(|e| e.into_inner()) = open;
    }

    async fn open(self: Arc<Self>, peer: NodeId, addr: String) {
        let mut conn = match connect(&addr, &self.local).await {
            Ok(c) => c,
            Err(e) => {
                debug!(node_id = %peer, error = %e, "cannot open link");
                let mut sessions = lock(&self.sessions);
                sessions.remove(&peer);
                self.publish_open(&sessions);
                return;
            }
        };
        let (tx, mut rx) = mpsc::channel::<Message>(OUTBOX);
        {
            let mut sessions = lock(&self.sessions);
            sessions.insert(peer.clone(), Session::Open(tx));
            self.publish_open(&sessions);
        }
        debug!(node_id = %peer, %addr, "link open");
        // a transaction admitted while this link was down reached nobody through it: hand the
        // peer what is pending (it ignores what it has already seen)
        for bytes in self.shared.chain.pending_txs(PENDING_ON_LINK) {
            if send(&mut conn, &Message::Tx(bytes)).await.is_err() {
                break;
            }
        }
        while let Some(msg) = rx.recv().await {
            if send(&mut conn, &msg).await.is_err() {
                break;
            }
        }
        let mut sessions = lock(&self.sessions);
        if matches!(sessions.get(&peer), Some(Session::Open(tx)) if tx.is_closed()) {
            sessions.remove(&peer);
        }
        self.publish_open(&sessions);
    }

    fn on_block(&self, peer: &PeerInfo, bytes: Vec<u8>) -> Result<Option<Message>, String> {
        if !lock(&self.seen).insert(*blake3::hash(&bytes).as_bytes()) {
            return Ok(None);
        }
        let block = match Block::decode(&bytes) {
            Ok(b) => b,
            Err(e) => {
                self.penalise(&peer.node_id, "undecodable block");
                return Err(format!("undecodable block: {e}"));
            }
        };
        let height = block.header.height;
        let chain = self.shared.chain.clone();
        match chain.import_block(block, Source::Pushed(peer.node_id.clone())) {
            Ok(_) => Ok(None),
            Err(ImportError::Orphan) => {
                let _ = self.sync_hints.try_send((peer.node_id.clone(), height));
                Ok(None)
            }
            Err(e) if e.penalise() => {
                self.penalise(&peer.node_id, &e.to_string());
                Err(e.to_string())
            }
            Err(e) => {
                debug!(error = %e, "pushed block not imported");
                Ok(None)
            }
        }
    }

    fn on_tx(&self, peer: &PeerInfo, bytes: Vec<u8>) -> Result<Option<Message>, String> {
        if !lock(&self.seen).insert(*blake3::hash(&bytes).as_bytes()) {
            return Ok(None);
        }
        match SignedTransfer::decode(&bytes) {
            Ok(tx) => {
                let _ = self.shared.chain.submit_tx(tx, Some(peer.node_id.clone()));
                Ok(None)
            }
            Err(e) => {
                self.shared.chain.count_rejected_tx("malformed");
                Err(format!("undecodable transaction: {e}"))
            }
        }
    }
}

impl Responder for PeerManager {
    fn seeds(&self, region: &str) -> Result<Seeds, String> {
        self.seeds.seeds(region)
    }

    fn admit(&self, peer: &PeerInfo) -> bool {
        !self.banned(&peer.node_id)
    }

    fn chain_message(&self, peer: &PeerInfo, msg: Message) -> Result<Option<Message>, String> {
        match msg {
            Message::Block(bytes) => self.on_block(peer, bytes),
            Message::Tx(bytes) => self.on_tx(peer, bytes),
            Message::GetBlocks { from, limit } => {
                Ok(Some(self.shared.chain.blocks_reply(from, limit)))
            }
            _ => Ok(Some(Message::Error {
                reason: "unexpected message".into(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_set_forgets_the_oldest() {
        let mut s = SeenSet::new(2);
        assert!(s.insert([1; 32]));
        assert!(!s.insert([1; 32]));
        assert!(s.insert([2; 32]));
        assert!(s.insert([3; 32]));
        // [1] was evicted, [2] and [3] are remembered
        assert!(!s.insert([3; 32]));
        assert!(!s.insert([2; 32]));
        assert!(s.insert([1; 32]));
    }

    #[test]
    fn bans_expire() {
        let id = crate::identity::Identity::generate().node_id().clone();
        let mut bans = HashMap::new();
        bans.insert(id.clone(), 1_000);
        assert!(is_banned(&mut bans, &id, 999));
        assert!(!is_banned(&mut bans, &id, 1_000));
        assert!(bans.is_empty());
    }
}
