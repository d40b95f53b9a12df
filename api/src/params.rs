//! Checks on user-supplied parameters shared by REST and JSON-RPC.

/// Length of a block or transaction hash in hex characters (32-byte blake3).
pub const HASH_HEX_LEN: usize = 64;

/// Accepts a 64-char hex hash, upper or lower case, and returns it lowercased.
pub fn parse_hash(hash: &str) -> Result<String, String> {
    if hash.len() != HASH_HEX_LEN || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("hash must be {HASH_HEX_LEN} hex characters"));
    }
    Ok(hash.to_ascii_lowercase())
}

/// Largest height accepted from clients (the OpenAPI `int64` range).
pub const MAX_HEIGHT: u64 = i64::MAX as u64;

/// Rejects heights outside the documented `int64` range.
pub fn check_height(height: u64) -> Result<(), String> {
    if height > MAX_HEIGHT {
        return Err(format!("height must be at most {MAX_HEIGHT}"));
    }
    Ok(())
}

/// Decodes a hex-encoded signed transaction (an optional `0x` prefix is allowed).
pub fn decode_tx_hex(tx: &str) -> Result<Vec<u8>, String> {
    let digits = tx.strip_prefix("0x").unwrap_or(tx);
    if digits.is_empty() {
        return Err("tx must not be empty".to_string());
    }
    hex::decode(digits).map_err(|e| format!("tx is not valid hex: {e}"))
}

/// Resolves a range limit: `default` when absent, an error outside `1..=max`.
pub fn resolve_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, String> {
    match limit {
        None => Ok(default.clamp(1, max.max(1))),
        Some(n) if n >= 1 && n <= max => Ok(n),
        Some(n) => Err(format!("limit {n} out of range 1..={max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_needs_exactly_64_hex_chars() {
        let ok = "AB".repeat(32);
        assert_eq!(parse_hash(&ok).unwrap(), "ab".repeat(32));
        assert!(parse_hash(&"ab".repeat(31)).is_err());
        assert!(parse_hash(&format!("{}a", "ab".repeat(32))).is_err());
        assert!(parse_hash(&format!("{}zz", "ab".repeat(31))).is_err());
        assert!(parse_hash("").is_err());
    }

    #[test]
    fn tx_hex_decodes_with_or_without_prefix() {
        assert_eq!(decode_tx_hex("0a0b").unwrap(), vec![10, 11]);
        assert_eq!(decode_tx_hex("0x0a0b").unwrap(), vec![10, 11]);
        assert!(decode_tx_hex("").is_err());
        assert!(decode_tx_hex("0x").is_err());
        assert!(decode_tx_hex("abc").is_err());
        assert!(decode_tx_hex("zz").is_err());
    }

    #[test]
    fn heights_stay_in_int64() {
        assert!(check_height(MAX_HEIGHT).is_ok());
        assert!(check_height(MAX_HEIGHT + 1).is_err());
    }

    #[test]
    fn limit_edges() {
        assert_eq!(resolve_limit(None, 20, 100), Ok(20));
        assert_eq!(resolve_limit(Some(1), 20, 100), Ok(1));
        assert_eq!(resolve_limit(Some(100), 20, 100), Ok(100));
        assert!(resolve_limit(Some(0), 20, 100).is_err());
        assert!(resolve_limit(Some(101), 20, 100).is_err());
        assert_eq!(resolve_limit(None, 500, 100), Ok(100));
    }
}
