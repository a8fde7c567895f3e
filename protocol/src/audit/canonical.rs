//! The canonical JSON encoding that record hashes are computed over.
//!
//! # Specification (format version 1)
//!
//! A record's hash is `SHA-256(HASH_LABEL || C)`, where [`HASH_LABEL`] is the 20 ASCII
//! bytes `blindmatch-audit-v1` followed by one line feed (0x0A), and `C` is the canonical
//! JSON encoding of the object
//!
//! ```text
//! {"fields":F,"prev":P,"seq":S,"ts":T,"type":Y}
//! ```
//!
//! with `S` the sequence number, `T` the timestamp string, `P` the previous record's hash
//! (64 lowercase hex digits, all zero for `seq` 0), `Y` the record type and `F` the fields
//! object. Canonical JSON here means:
//!
//! * no whitespace anywhere outside strings;
//! * object members sorted by key, comparing the keys' UTF-8 bytes; keys (at any depth)
//!   must match `[a-z0-9_]+`, so this order is also RFC 8785's UTF-16 order;
//! * numbers are integers in `-(2^53-1) ..= 2^53-1`, written in plain decimal (no sign for
//!   non-negative values, no leading zeros, no fraction or exponent); floats are rejected;
//! * strings are UTF-8 written as-is, except `"` → `\"`, `\` → `\\`, and the control
//!   characters U+0000..U+001F: `\b`, `\t`, `\n`, `\f`, `\r` for 8, 9, 10, 12, 13 and
//!   `\u00xx` (lowercase hex) for the others; nothing else is escaped (not `/`, not
//!   U+007F, not non-ASCII);
//! * `true`, `false`, `null`, and arrays in their given order.
//!
//! Under these restrictions the encoding is byte-for-byte what RFC 8785 (JSON
//! Canonicalization Scheme) produces, so a third-party tool may use any JCS library, or
//! reimplement the few rules above.
//!
//! The record *line* in the log file uses the same value encoding with a fixed member order
//! instead of a sorted one; see [`super::record`].

use std::fmt::Write as _;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::record::RecordHash;

/// Domain-separation prefix of every record hash input (format version 1).
pub const HASH_LABEL: &[u8] = b"blindmatch-audit-v1\n";

/// Largest integer magnitude allowed in a record (2^53 - 1), so that every JSON
/// implementation, including those that read numbers as IEEE doubles, agrees on it.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A value that has no canonical encoding.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// A number with a fraction or exponent, or one that does not fit an integer.
    #[error("number {0} is not an integer; records hold integers only")]
    NotAnInteger(String),
    /// An integer outside `-(2^53-1) ..= 2^53-1`.
    #[error("integer {0} is outside the interoperable range ±(2^53-1)")]
    IntegerOutOfRange(String),
    /// An object key with characters other than `[a-z0-9_]`, or an empty one.
    #[error("field name {0:?} is not made of [a-z0-9_]")]
    InvalidKey(String),
}

/// Computes a record hash from its parts (see the module documentation).
pub fn record_hash(
    seq: u64,
    ts: &str,
    prev: &RecordHash,
    record_type: &str,
    fields: &Map<String, Value>,
) -> Result<RecordHash, CanonicalError> {
    let mut out = String::with_capacity(256);
    out.push_str("{\"fields\":");
    write_object(&mut out, fields)?;
    out.push_str(",\"prev\":");
    write_string(&mut out, &prev.to_hex());
    out.push_str(",\"seq\":");
    write_u64(&mut out, seq)?;
    out.push_str(",\"ts\":");
    write_string(&mut out, ts);
    out.push_str(",\"type\":");
    write_string(&mut out, record_type);
    out.push('}');
    let mut hasher = Sha256::new();
    hasher.update(HASH_LABEL);
    hasher.update(out.as_bytes());
    Ok(RecordHash(hasher.finalize().into()))
}

/// Whether `key` is a valid field name: non-empty, only `[a-z0-9_]`.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Appends the canonical encoding of a JSON value.
pub(crate) fn write_value(out: &mut String, value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                write_u64(out, u)?;
            } else if let Some(i) = n.as_i64() {
                if i.unsigned_abs() > MAX_SAFE_INTEGER {
                    return Err(CanonicalError::IntegerOutOfRange(i.to_string()));
                }
                // Writing to a String cannot fail.
                let _ = write!(out, "{i}");
            } else {
                return Err(CanonicalError::NotAnInteger(n.to_string()));
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

/// Appends the canonical encoding of an object: members sorted by key bytes.
pub(crate) fn write_object(
    out: &mut String,
    map: &Map<String, Value>,
) -> Result<(), CanonicalError> {
    // Sort explicitly: serde_json's map is only sorted without its `preserve_order`
    // feature, which another crate in the build could switch on.
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push('{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if !is_valid_key(key) {
            return Err(CanonicalError::InvalidKey(key.clone()));
        }
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, value)?;
    }
    out.push('}');
    Ok(())
}

/// Appends a non-negative integer, checking the interoperable range.
pub(crate) fn write_u64(out: &mut String, n: u64) -> Result<(), CanonicalError> {
    if n > MAX_SAFE_INTEGER {
        return Err(CanonicalError::IntegerOutOfRange(n.to_string()));
    }
    // Writing to a String cannot fail.
    let _ = write!(out, "{n}");
    Ok(())
}

/// Appends a JSON string with the minimal escaping of RFC 8785.
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            0x08 => Some("\\b"),
            0x09 => Some("\\t"),
            0x0A => Some("\\n"),
            0x0C => Some("\\f"),
            0x0D => Some("\\r"),
            0x00..=0x1F => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            // Writing to a String cannot fail.
            None => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn canon(v: &Value) -> Result<String, CanonicalError> {
        let mut out = String::new();
        write_value(&mut out, v)?;
        Ok(out)
    }

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v: Value =
            serde_json::from_str(r#"{ "b": 1, "a": [true, null, "x"], "a_b": {"z":0,"y":-5} }"#)
                .unwrap();
        assert_eq!(
            canon(&v).unwrap(),
            r#"{"a":[true,null,"x"],"a_b":{"y":-5,"z":0},"b":1}"#
        );
    }

    #[test]
    fn escapes_minimally() {
        let v = Value::String("q\"b\\/\u{1}\u{8}\t\n\u{c}\r\u{1f}\u{7f}é€😀".into());
        assert_eq!(
            canon(&v).unwrap(),
            "\"q\\\"b\\\\/\\u0001\\b\\t\\n\\f\\r\\u001f\u{7f}é€😀\""
        );
    }

    #[test]
    fn escaping_round_trips_through_serde_json() {
        let all: String = (0u32..0x80).filter_map(char::from_u32).collect();
        let encoded = canon(&Value::String(all.clone())).unwrap();
        assert_eq!(serde_json::from_str::<String>(&encoded).unwrap(), all);
    }

    #[test]
    fn rejects_floats_big_integers_and_bad_keys() {
        assert!(matches!(
            canon(&serde_json::json!(1.5)),
            Err(CanonicalError::NotAnInteger(_))
        ));
        assert!(matches!(
            canon(&serde_json::json!(MAX_SAFE_INTEGER + 1)),
            Err(CanonicalError::IntegerOutOfRange(_))
        ));
        assert!(matches!(
            canon(&serde_json::json!(-(MAX_SAFE_INTEGER as i64) - 1)),
            Err(CanonicalError::IntegerOutOfRange(_))
        ));
        assert!(canon(&serde_json::json!(MAX_SAFE_INTEGER)).is_ok());
        assert!(matches!(
            canon(&serde_json::json!({"Name": 1})),
            Err(CanonicalError::InvalidKey(_))
        ));
        assert!(matches!(
            canon(&serde_json::json!({"": 1})),
            Err(CanonicalError::InvalidKey(_))
        ));
    }

    /// A golden vector for third-party reimplementations. The format is versioned by
    /// [`HASH_LABEL`]; this vector never changes for `blindmatch-audit-v1`.
    #[test]
    fn golden_record_hash() {
        let fields =
            serde_json::json!({"name": "vendor-a", "fingerprint": "ab01", "audit_key": "cd"});
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        let hash = record_hash(
            0,
            "2025-01-02T03:04:05.678Z",
            &RecordHash::ZERO,
            "node_initialised",
            &fields,
        )
        .unwrap();
        let mut input = HASH_LABEL.to_vec();
        input.extend_from_slice(
            br#"{"fields":{"audit_key":"cd","fingerprint":"ab01","name":"vendor-a"},"prev":"0000000000000000000000000000000000000000000000000000000000000000","seq":0,"ts":"2025-01-02T03:04:05.678Z","type":"node_initialised"}"#,
        );
        assert_eq!(hash.0, <[u8; 32]>::from(Sha256::digest(&input)));
        // Also computed independently (Python's hashlib over the bytes above).
        assert_eq!(
            hash.to_hex(),
            "b3be020187df3c39122d9e071c1e722d6298be1460569973bf361ece6d7298ba"
        );
    }
}
