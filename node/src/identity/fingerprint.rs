//! Certificate fingerprints: the SHA-256 of a certificate's DER encoding.
//!
//! A fingerprint is how peers are pinned: `node.toml` lists one per peer and the
//! transport accepts exactly those certificates. It is public information, safe to log,
//! print and exchange out of band.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::IdentityError;

/// SHA-256 of a certificate's DER encoding.
///
/// Displayed as 64 lowercase hex digits. Parsing accepts upper or lower case, an
/// optional `sha256:` prefix and optional `:` separators between byte pairs (the form
/// `openssl x509 -fingerprint -sha256` prints).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_cert_der(cert_der: &[u8]) -> Self {
        Self(Sha256::digest(cert_der).into())
    }

    /// Compares in constant time; use when one side is an attacker-chosen value.
    pub fn ct_eq(&self, other: &Fingerprint) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint(sha256:{self})")
    }
}

impl FromStr for Fingerprint {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
            .map(Self)
            .map_err(|problem| IdentityError::InvalidFingerprint {
                input: shorten(s),
                problem,
            })
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn parse(input: &str) -> Result<[u8; 32], &'static str> {
    let trimmed = input.trim();
    let hex_part = match trimmed.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256:") => &trimmed[7..],
        _ => trimmed,
    };
    let digits: String = if hex_part.contains(':') {
        let groups: Vec<&str> = hex_part.split(':').collect();
        if groups.len() != 32 || groups.iter().any(|group| group.len() != 2) {
            return Err("with `:` separators it must be 32 groups of 2 hex digits");
        }
        groups.concat()
    } else {
        hex_part.to_owned()
    };
    if digits.len() != 64 {
        return Err("expected 64 hex digits (32 bytes)");
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(&digits, &mut out)
        .map_err(|_| "contains a character that is not a hex digit")?;
    Ok(out)
}

/// Keeps error messages readable when someone pastes a whole file into the field.
fn shorten(input: &str) -> String {
    const MAX: usize = 120;
    if input.chars().count() <= MAX {
        input.to_owned()
    } else {
        let head: String = input.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn display_is_lowercase_hex_and_round_trips() {
        let fp: Fingerprint = HEX.parse().unwrap();
        assert_eq!(fp.to_string(), HEX);
        assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(format!("{fp:?}"), format!("Fingerprint(sha256:{HEX})"));
    }

    #[test]
    fn accepts_prefix_separators_and_upper_case() {
        let fp: Fingerprint = HEX.parse().unwrap();
        let upper = HEX.to_uppercase();
        let colons = upper
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        for text in [
            upper.clone(),
            format!("sha256:{HEX}"),
            format!("SHA256:{upper}"),
            colons.clone(),
            format!("sha256:{colons}"),
            format!("  {HEX}\n"),
        ] {
            assert_eq!(text.parse::<Fingerprint>().unwrap(), fp, "{text}");
        }
    }

    #[test]
    fn rejects_malformed_input_with_a_reason() {
        for bad in [
            "",
            "sha256:",
            &HEX[..62],
            &format!("{HEX}00"),
            &HEX.replace('a', "g"),
            "00:11",
            &format!("0:{}", &HEX[1..]),
            "sha1:00112233445566778899aabbccddeeff00112233",
        ] {
            let err = bad.parse::<Fingerprint>().unwrap_err();
            let message = err.to_string();
            assert!(message.contains("not a SHA-256 fingerprint"), "{message}");
        }
    }

    #[test]
    fn serde_uses_the_hex_string() {
        #[derive(Serialize, Deserialize)]
        struct Holder {
            fp: Fingerprint,
        }
        let text = format!("fp = \"sha256:{HEX}\"\n");
        let holder: Holder = toml::from_str(&text).unwrap();
        assert_eq!(holder.fp.to_string(), HEX);
        assert_eq!(
            toml::to_string(&holder).unwrap(),
            format!("fp = \"{HEX}\"\n")
        );
        assert!(toml::from_str::<Holder>("fp = \"abc\"").is_err());
    }

    #[test]
    fn of_cert_der_is_sha256() {
        // SHA-256 of the empty string.
        assert_eq!(
            Fingerprint::of_cert_der(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let a = Fingerprint([1; 32]);
        assert!(a.ct_eq(&Fingerprint([1; 32])));
        assert!(!a.ct_eq(&Fingerprint([2; 32])));
    }
}
