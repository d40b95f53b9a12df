//! Node identity: the ed25519 key kept in the data dir, the short node id derived from it,
//! and the node type (`super`, `full`, `light`).

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// File name of the node key inside the data dir.
pub const KEY_FILE: &str = "node.key";

/// Bytes of the public key hash kept in a node id (16 hex characters).
const NODE_ID_BYTES: usize = 8;

/// What a node does in the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    /// Gossips, stores the chain, relays; preferred as region bridge.
    Super,
    /// Gossips, stores the chain, relays; bridge when its region has no live super node.
    Full,
    /// Follows the chain from a full node and serves reads; does not gossip.
    Light,
}

impl NodeType {
    /// The lowercase name used on the CLI, in gossip and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Super => "super",
            NodeType::Full => "full",
            NodeType::Light => "light",
        }
    }

    /// Whether nodes of this type join gossip clusters.
    pub fn gossips(self) -> bool {
        !matches!(self, NodeType::Light)
    }
}

impl fmt::Display for NodeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a node type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid node type {0:?}: expected super, full or light")]
pub struct InvalidNodeType(pub String);

impl FromStr for NodeType {
    type Err = InvalidNodeType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "super" => Ok(NodeType::Super),
            "full" => Ok(NodeType::Full),
            "light" => Ok(NodeType::Light),
            other => Err(InvalidNodeType(other.chars().take(40).collect())),
        }
    }
}

/// Short stable node id: hex of the first bytes of blake3(public key).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(String);

impl NodeId {
    /// The node id of a public key.
    pub fn from_public_key(key: &VerifyingKey) -> Self {
        let hash = blake3::hash(key.as_bytes());
        NodeId(to_hex(&hash.as_bytes()[..NODE_ID_BYTES]))
    }

    /// Accepts a node id read from outside (gossip, API) if it has the right shape.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() == NODE_ID_BYTES * 2
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| NodeId(s.to_string()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercase hex of bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// Bytes of lowercase or uppercase hex; `None` on any other input.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// Errors reading or creating a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file does not hold a 32-byte hex secret key.
    #[error("key file {0} is malformed: expected 64 hex characters")]
    Malformed(PathBuf),
}

/// A node's signing key and the id derived from it.
#[derive(Clone)]
pub struct Identity {
    signing: SigningKey,
    node_id: NodeId,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A fresh random identity.
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// The identity of a signing key.
    pub fn from_signing_key(signing: SigningKey) -> Self {
        let node_id = NodeId::from_public_key(&signing.verifying_key());
        Identity { signing, node_id }
    }

    /// Loads `path`, or creates it with a new key (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        match fs::read_to_string(path) {
            Ok(text) => Self::parse_key_file(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::generate();
                identity.write_key_file(path)?;
                Ok(identity)
            }
            Err(source) => Err(KeyError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Loads an existing key file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse_key_file(path, &text)
    }

    fn parse_key_file(path: &Path, text: &str) -> Result<Self, KeyError> {
        let bytes = from_hex(text.trim()).ok_or_else(|| KeyError::Malformed(path.into()))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::Malformed(path.into()))?;
        Ok(Self::from_signing_key(SigningKey::from_bytes(&seed)))
    }

    /// Writes the secret key as hex, readable by the owner only; refuses to overwrite.
    pub fn write_key_file(&self, path: &Path) -> Result<(), KeyError> {
        let io_err = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io_err)?;
        file.write_all(to_hex(self.signing.as_bytes()).as_bytes())
            .and_then(|_| file.write_all(b"\n"))
            .and_then(|_| file.sync_all())
            .map_err(io_err)
    }

    /// The short node id.
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The public key.
    pub fn public_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Signs a message.
    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }
}

/// Checks an ed25519 signature.
pub fn verify(key: &VerifyingKey, message: &[u8], signature: &Signature) -> bool {
    key.verify(message, signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let first = Identity::load_or_create(&path).unwrap();
        let second = Identity::load_or_create(&path).unwrap();
        assert_eq!(first.node_id(), second.node_id());
        assert_eq!(first.node_id().as_str().len(), 16);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn malformed_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        fs::write(&path, "not hex").unwrap();
        assert!(matches!(
            Identity::load_or_create(&path),
            Err(KeyError::Malformed(_))
        ));
    }

    #[test]
    fn node_id_parse_checks_shape() {
        let id = Identity::generate();
        assert_eq!(
            NodeId::parse(id.node_id().as_str()).as_ref(),
            Some(id.node_id())
        );
        assert!(NodeId::parse("xyz").is_none());
        assert!(NodeId::parse("0123456789ABCDEF").is_none());
    }

    #[test]
    fn hex_round_trip() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(from_hex(&to_hex(&bytes)).unwrap(), bytes);
        assert!(from_hex("abc").is_none());
        assert!(from_hex("zz").is_none());
    }
}
