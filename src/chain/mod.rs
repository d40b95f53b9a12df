//! The microblock chain: transactions, blocks, the chain spec, account state, validation,
//! fork choice, the mempool and the sled-backed chain store.
//!
//! Everything here except [`store`] is pure logic: time comes in as `now_ms`, state comes in
//! through the [`account::AccountView`] trait.

pub mod account;
pub mod block;
pub mod fork_choice;
pub mod mempool;
pub mod merkle;
pub mod signatures;
pub mod spec;
pub mod state;
pub mod store;
pub mod tx;
pub mod validate;

/// A 32-byte blake3 hash (block, transaction, Merkle node).
pub type Hash = [u8; 32];

/// The all-zero hash: the root of an empty Merkle tree.
pub const ZERO_HASH: Hash = [0u8; 32];

/// Checks an ed25519 signature given as raw bytes; malformed keys or signatures fail.
fn verify_ed25519(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(message, &signature).is_ok()
}
