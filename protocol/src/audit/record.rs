//! One audit record: its parts, its line in the log file, and strict parsing of a line.
//!
//! # Line format
//!
//! A log is UTF-8 text, one record per line, each line ended by a line feed (0x0A). A line
//! is exactly
//!
//! ```text
//! {"seq":S,"ts":T,"prev":P,"type":Y,"fields":F,"hash":H,"sig":G}
//! ```
//!
//! in this member order, with no whitespace, values encoded as in [`super::canonical`]
//! (`F` with sorted keys). `H` is the record hash (64 lowercase hex digits) and `G` the
//! Ed25519 signature over the 32 raw bytes of the hash (128 lowercase hex digits).
//!
//! Parsing is strict: a line must be byte-for-byte the encoding of the record it parses to.
//! So any change to a line, even one a JSON reader would consider meaningless (a space,
//! an escaped character, key order, an uppercase hex digit), is rejected, and every
//! single-byte change of a log is detectable.

use std::fmt;

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::canonical::{self, CanonicalError};
use super::event::AuditEvent;

/// Longest record type name, in bytes.
pub const MAX_TYPE_LEN: usize = 64;

/// A SHA-256 record hash (or the all-zero `prev` of the first record).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordHash(pub [u8; 32]);

impl RecordHash {
    /// The `prev` of the first record.
    pub const ZERO: RecordHash = RecordHash([0; 32]);

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 lowercase hex digits.
    pub fn from_hex(s: &str) -> Option<RecordHash> {
        strict_hex::<32>(s).map(RecordHash)
    }
}

impl fmt::Debug for RecordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordHash({})", self.to_hex())
    }
}

impl fmt::Display for RecordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for RecordHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for RecordHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RecordHash::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom("expected 64 lowercase hex digits"))
    }
}

/// An RFC 3339 UTC timestamp, `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (1 to 9 fraction digits).
///
/// The protocol crate never reads a clock: the node formats the time and passes it in.
///
/// Ordered by the instant it denotes (`…:05Z` < `…:05.5Z`), not by its text.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Timestamp(String);

impl Timestamp {
    /// Validates the shape and the ranges of each part (leap second 60 allowed).
    pub fn parse(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 || b.len() > 30 || b[b.len() - 1] != b'Z' {
            return None;
        }
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = b.get(r)?;
            part.iter().all(u8::is_ascii_digit).then(|| {
                part.iter()
                    .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
            })
        };
        let sep_ok =
            b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':';
        let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
        let fraction_ok = match b.len() {
            20 => true,
            n => b[19] == b'.' && n >= 22 && digits(20..n - 1).is_some(),
        };
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let month_days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let day_ok = (1..=12).contains(&month) && day >= 1 && day <= month_days[month as usize - 1];
        (sep_ok && fraction_ok && day_ok && hour < 24 && minute < 60 && second <= 60)
            .then(|| Timestamp(s.to_owned()))
    }

    /// The timestamp text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Timestamp {
    /// The seconds part (`YYYY-MM-DDTHH:MM:SS`) and the fraction in nanoseconds.
    fn instant(&self) -> (&str, u32) {
        let (seconds, rest) = self.0.split_at(19.min(self.0.len()));
        let digits = rest.trim_start_matches('.').trim_end_matches('Z');
        let nanos = digits
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(9)
            .fold(0u32, |acc, d| {
                acc * 10 + u32::from(d.wrapping_sub(b'0') % 10)
            });
        (seconds, nanos)
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.instant()
            .cmp(&other.instant())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A signed record, as read from or written to a log line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Record {
    /// Position in the log, from 0.
    pub seq: u64,
    /// When the node wrote it.
    pub ts: Timestamp,
    /// The previous record's hash ([`RecordHash::ZERO`] for `seq` 0).
    pub prev: RecordHash,
    /// The record type, e.g. `session_completed` ([`AuditEvent::type_name`]).
    pub record_type: String,
    /// The type's fields.
    pub fields: Map<String, Value>,
    /// The hash over the canonical encoding of the five parts above.
    pub hash: RecordHash,
    /// Ed25519 signature over the 32 bytes of `hash`.
    pub sig: [u8; 64],
}

/// Why a line is not a record.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line is not UTF-8.
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// The line is not one JSON value.
    #[error("line is not valid JSON ({0})")]
    NotJson(String),
    /// A member is missing, extra, or of the wrong type or shape.
    #[error("{0}")]
    BadMember(String),
    /// The record holds a value with no canonical encoding.
    #[error("{0}")]
    Canonical(#[from] CanonicalError),
    /// The line parses but is not byte-for-byte the canonical encoding of its record.
    #[error(
        "line is not in canonical form (whitespace, member order, escaping or number format differ from what the node writes)"
    )]
    NonCanonical,
}

impl LineError {
    /// Whether the line is unreadable as a record at all (not UTF-8 or not JSON), as a
    /// line torn by a crash is.
    pub fn is_unreadable(&self) -> bool {
        matches!(self, LineError::NotUtf8 | LineError::NotJson(_))
    }
}

impl Record {
    /// Recomputes the hash from the record's parts.
    pub fn compute_hash(&self) -> Result<RecordHash, CanonicalError> {
        canonical::record_hash(
            self.seq,
            self.ts.as_str(),
            &self.prev,
            &self.record_type,
            &self.fields,
        )
    }

    /// Checks the signature over `hash` with `key` (strict Ed25519 verification).
    pub fn signature_valid(&self, key: &VerifyingKey) -> bool {
        key.verify_strict(&self.hash.0, &Signature::from_bytes(&self.sig))
            .is_ok()
    }

    /// The typed event, or `None` for a type this version does not know.
    pub fn event(&self) -> Result<Option<AuditEvent>, serde_json::Error> {
        AuditEvent::from_parts(&self.record_type, &self.fields)
    }

    /// The record's line, without the trailing line feed.
    pub fn to_line(&self) -> Result<String, CanonicalError> {
        let mut out = String::with_capacity(512);
        out.push_str("{\"seq\":");
        canonical::write_u64(&mut out, self.seq)?;
        out.push_str(",\"ts\":");
        canonical::write_string(&mut out, self.ts.as_str());
        out.push_str(",\"prev\":\"");
        out.push_str(&self.prev.to_hex());
        out.push_str("\",\"type\":");
        canonical::write_string(&mut out, &self.record_type);
        out.push_str(",\"fields\":");
        canonical::write_object(&mut out, &self.fields)?;
        out.push_str(",\"hash\":\"");
        out.push_str(&self.hash.to_hex());
        out.push_str("\",\"sig\":\"");
        out.push_str(&hex::encode(self.sig));
        out.push_str("\"}");
        Ok(out)
    }

    /// Parses one line (without its line feed) strictly; see the module documentation.
    ///
    /// This checks form only: it does not recompute the hash or check the signature.
    pub fn parse_line(line: &[u8]) -> Result<Record, LineError> {
        let text = std::str::from_utf8(line).map_err(|_| LineError::NotUtf8)?;
        let value: Value =
            serde_json::from_str(text).map_err(|e| LineError::NotJson(e.to_string()))?;
        let Value::Object(mut obj) = value else {
            return Err(LineError::BadMember("line is not a JSON object".into()));
        };
        if obj.len() != 7 {
            return Err(LineError::BadMember(format!(
                "record has {} members; expected exactly seq, ts, prev, type, fields, hash, sig",
                obj.len()
            )));
        }
        let mut take = |name: &str| {
            obj.remove(name)
                .ok_or_else(|| LineError::BadMember(format!("member {name:?} is missing")))
        };
        let seq = match take("seq")? {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| bad("seq", "a non-negative integer"))?;
        let ts = as_str(take("ts")?)
            .and_then(|s| Timestamp::parse(&s))
            .ok_or_else(|| {
                bad(
                    "ts",
                    "an RFC 3339 UTC timestamp like 2025-01-02T03:04:05.678Z",
                )
            })?;
        let prev = as_str(take("prev")?)
            .and_then(|s| RecordHash::from_hex(&s))
            .ok_or_else(|| bad("prev", "64 lowercase hex digits"))?;
        let record_type = as_str(take("type")?)
            .filter(|t| t.len() <= MAX_TYPE_LEN && canonical::is_valid_key(t))
            .ok_or_else(|| bad("type", "a name made of [a-z0-9_]"))?;
        let Value::Object(fields) = take("fields")? else {
            return Err(bad("fields", "an object"));
        };
        let hash = as_str(take("hash")?)
            .and_then(|s| RecordHash::from_hex(&s))
            .ok_or_else(|| bad("hash", "64 lowercase hex digits"))?;
        let sig = as_str(take("sig")?)
            .and_then(|s| strict_hex::<64>(&s))
            .ok_or_else(|| bad("sig", "128 lowercase hex digits"))?;
        let record = Record {
            seq,
            ts,
            prev,
            record_type,
            fields,
            hash,
            sig,
        };
        if record.to_line()?.as_bytes() != line {
            return Err(LineError::NonCanonical);
        }
        Ok(record)
    }
}

fn bad(member: &str, expected: &str) -> LineError {
    LineError::BadMember(format!("member {member:?} must be {expected}"))
}

fn as_str(v: Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// Decodes exactly `2 * N` lowercase hex digits.
pub(crate) fn strict_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}
