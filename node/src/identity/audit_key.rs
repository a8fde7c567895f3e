//! A node's audit public key (Ed25519), as peers pin it: its session receipts must
//! verify under it. Public information, safe to log, print and exchange out of band.

use std::fmt;
use std::str::FromStr;

/// An Ed25519 audit public key: 64 hex digits, a valid curve point.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuditKey(pub [u8; 32]);

impl fmt::Display for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditKey({self})")
    }
}

impl FromStr for AuditKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(trimmed, &mut bytes).map_err(|_| {
            "not an audit key: expected 64 hex digits, as `blindmatch id` prints after `audit key`"
                .to_owned()
        })?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| {
            "not an audit key: 64 hex digits, but not an Ed25519 public key".to_owned()
        })?;
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_prints_and_refuses_the_rest() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let text = hex::encode(key.as_bytes());
        let parsed: AuditKey = text.parse().expect("a key");
        assert_eq!(parsed.to_string(), text);
        assert!("xyz".parse::<AuditKey>().is_err());
        assert!("00".repeat(31).parse::<AuditKey>().is_err());
    }
}
