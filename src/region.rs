//! Region names: short lowercase labels that group nodes (`eu`, `na`, `asia`, ...).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest accepted region name, in bytes.
pub const MAX_REGION_LEN: usize = 32;

/// A validated region name matching `[a-z0-9-]{1,32}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

/// Why a string is not a region name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid region {given:?}: expected 1 to 32 characters of a-z, 0-9 or '-' (e.g. eu, na, asia)"
)]
pub struct InvalidRegion {
    /// The rejected input, truncated for display.
    pub given: String,
}

impl Region {
    /// Parses and validates a region name.
    pub fn new(name: &str) -> Result<Self, InvalidRegion> {
        let valid = !name.is_empty()
            && name.len() <= MAX_REGION_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Region(name.to_string()))
        } else {
            Err(InvalidRegion {
                given: name.chars().take(40).collect(),
            })
        }
    }

    /// The region name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Region {
    type Err = InvalidRegion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::new(s)
    }
}

impl TryFrom<String> for Region {
    type Error = InvalidRegion;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Region::new(&s)
    }
}

impl From<Region> for String {
    fn from(r: Region) -> String {
        r.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_documented_names() {
        for name in [
            "eu",
            "na",
            "asia",
            "sa",
            "africa",
            "oceania",
            "us-east-1",
            "a",
        ] {
            assert_eq!(Region::new(name).unwrap().as_str(), name);
        }
        assert!(Region::new(&"x".repeat(32)).is_ok());
    }

    #[test]
    fn rejects_bad_names() {
        for name in ["", "EU", "e u", "eu!", "é", &"x".repeat(33)] {
            assert!(Region::new(name).is_err(), "{name:?} accepted");
        }
    }
}
