//! The handshake messages: `Hello`, `Accept`, `Reject`, and the dataset reference both
//! sides name themselves with.

use super::codec::{Reader, put_text};
use super::{MAX_BATCH_POINTS, MAX_SET_SIZE, OutputMode, POINT_LEN, PROTOCOL_VERSION, PointBytes};
use crate::error::{Error, InvalidMessage, PeerIncompatible};
use crate::ident::{KindSet, NORMALISATION_VERSION};

/// Most identifier slots of one record bundle in `cardinality` mode (see
/// [`Hello::bundle_width`]).
pub const MAX_BUNDLE_WIDTH: u8 = 16;

/// A dataset as a side names it to its peer: the operator's name and a version tag that
/// changes with every write of the dataset (random, so it identifies a version without
/// saying anything about its records).
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct DatasetRef {
    /// The dataset's name on its node.
    pub name: String,
    /// Its version tag; all zero when the caller has none.
    pub version: [u8; 16],
}

impl DatasetRef {
    /// A reference to version `version` of dataset `name`.
    pub fn new(name: &str, version: [u8; 16]) -> Self {
        Self {
            name: name.to_owned(),
            version,
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_text(out, &self.name);
        out.extend_from_slice(&self.version);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        Ok(Self {
            name: r.text()?,
            version: r.array()?,
        })
    }
}

/// Opens a session. The first field on the wire is the version, so a peer of another
/// version is recognised before anything else is parsed.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Hello {
    /// Protocol version ([`PROTOCOL_VERSION`]).
    pub version: u16,
    /// Identifier normalisation version ([`NORMALISATION_VERSION`]).
    pub normalisation_version: u16,
    /// Fresh random session id, never reused.
    pub session_id: [u8; 16],
    /// Which of the responder's datasets to match against (empty: the one it offers).
    pub dataset: String,
    /// Declared purpose of the match.
    pub purpose: String,
    /// Declared legal basis (PIPL art. 13), may be empty.
    pub legal_basis: String,
    /// Identifier kinds present in the initiator's set.
    pub kinds: KindSet,
    /// What each side learns.
    pub mode: OutputMode,
    /// Number of elements the initiator will send: distinct identifiers, or in
    /// `cardinality` mode record bundles times [`Hello::bundle_width`].
    pub set_size: u64,
    /// Most elements per round for either set ([`MAX_BUNDLE_WIDTH`]..=
    /// [`MAX_BATCH_POINTS`]): both sides derive the same round schedule from it and the
    /// two set sizes (see `session`).
    pub round_size: u32,
    /// Slots per record bundle: 1, except in `cardinality` mode, where each record's
    /// identifiers travel together, padded to this width.
    pub bundle_width: u8,
    /// `a·G`: the initiator's commitment to its session key, against which its re-blinding
    /// proofs are checked.
    pub key_commitment: PointBytes,
    /// The initiator's own dataset.
    pub own_dataset: DatasetRef,
}

impl Hello {
    /// A `Hello` of this protocol version with empty texts and datasets, one slot per
    /// element and the default round size; callers set the rest.
    pub fn new(
        session_id: [u8; 16],
        mode: OutputMode,
        set_size: u64,
        key_commitment: PointBytes,
    ) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            normalisation_version: NORMALISATION_VERSION,
            session_id,
            dataset: String::new(),
            purpose: String::new(),
            legal_basis: String::new(),
            kinds: KindSet::empty(),
            mode,
            set_size,
            round_size: crate::session::DEFAULT_BATCH_SIZE as u32,
            bundle_width: 1,
            key_commitment,
            own_dataset: DatasetRef::default(),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.normalisation_version.to_be_bytes());
        out.extend_from_slice(&self.session_id);
        put_text(out, &self.dataset);
        put_text(out, &self.purpose);
        put_text(out, &self.legal_basis);
        out.push(self.kinds.bits());
        out.push(self.mode.code());
        out.extend_from_slice(&self.set_size.to_be_bytes());
        out.extend_from_slice(&self.round_size.to_be_bytes());
        out.push(self.bundle_width);
        out.extend_from_slice(&self.key_commitment);
        self.own_dataset.encode(out);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let version = r.u16()?;
        if version != PROTOCOL_VERSION {
            return Err(PeerIncompatible::UnsupportedVersion {
                got: version,
                ours: PROTOCOL_VERSION,
            }
            .into());
        }
        let normalisation_version = r.u16()?;
        if normalisation_version != NORMALISATION_VERSION {
            return Err(PeerIncompatible::NormalisationVersion {
                got: normalisation_version,
                ours: NORMALISATION_VERSION,
            }
            .into());
        }
        let session_id = r.array()?;
        let dataset = r.text()?;
        let purpose = r.text()?;
        let legal_basis = r.text()?;
        let kinds = kinds(r.u8()?)?;
        let mode_code = r.u8()?;
        let mode =
            OutputMode::from_code(mode_code).ok_or(InvalidMessage::UnknownOutputMode(mode_code))?;
        let set_size = set_size(r.u64()?)?;
        let round_size = r.u32()?;
        if round_size < u32::from(MAX_BUNDLE_WIDTH) || round_size as usize > MAX_BATCH_POINTS {
            return Err(InvalidMessage::OutOfRange("Hello.round_size").into());
        }
        let bundle_width = bundle_width(r.u8()?, mode, set_size)?;
        let key_commitment = r.array()?;
        let own_dataset = DatasetRef::decode(r)?;
        Ok(Hello {
            version,
            normalisation_version,
            session_id,
            dataset,
            purpose,
            legal_basis,
            kinds,
            mode,
            set_size,
            round_size,
            bundle_width,
            key_commitment,
            own_dataset,
        })
    }
}

/// The responder agrees to the session.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Accept {
    /// Number of elements the responder will send (see [`Hello::set_size`]).
    pub set_size: u64,
    /// Identifier kinds present in the responder's set.
    pub kinds: KindSet,
    /// Slots per record bundle (see [`Hello::bundle_width`]).
    pub bundle_width: u8,
    /// `b·G`: the responder's commitment to its session key.
    pub key_commitment: PointBytes,
    /// The responder's dataset matched in this session.
    pub dataset: DatasetRef,
}

impl Accept {
    /// An `Accept` with one slot per element, kinds and dataset left empty.
    pub fn new(set_size: u64, key_commitment: PointBytes) -> Self {
        Self {
            set_size,
            kinds: KindSet::empty(),
            bundle_width: 1,
            key_commitment,
            dataset: DatasetRef::default(),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.set_size.to_be_bytes());
        out.push(self.kinds.bits());
        out.push(self.bundle_width);
        out.extend_from_slice(&self.key_commitment);
        self.dataset.encode(out);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let set_size = set_size(r.u64()?)?;
        let kinds = kinds(r.u8()?)?;
        // The mode is the Hello's; the session checks the width against it.
        let bundle_width = r.u8()?;
        if bundle_width == 0 || bundle_width > MAX_BUNDLE_WIDTH {
            return Err(InvalidMessage::OutOfRange("Accept.bundle_width"));
        }
        if !set_size.is_multiple_of(u64::from(bundle_width)) {
            return Err(InvalidMessage::OutOfRange(
                "Accept.set_size is not a whole number of bundles",
            ));
        }
        Ok(Self {
            set_size,
            kinds,
            bundle_width,
            key_commitment: r.array()?,
            dataset: DatasetRef::decode(r)?,
        })
    }
}

/// Why a responder refused a session. An integer newtype: unknown codes are
/// representable and shown as such; a code point is never reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RejectReason(pub u16);

impl RejectReason {
    /// The peer is not configured on this node.
    pub const UNKNOWN_PEER: Self = Self(1);
    /// The dataset does not exist or is not offered to this peer.
    pub const DATASET_NOT_OFFERED: Self = Self(2);
    /// The output mode is not allowed for this peer.
    pub const MODE_NOT_ALLOWED: Self = Self(3);
    /// The purpose is not allowed for this peer.
    pub const PURPOSE_NOT_ALLOWED: Self = Self(4);
    /// A legal basis is required and was missing or not allowed.
    pub const LEGAL_BASIS_NOT_ALLOWED: Self = Self(5);
    /// The declared set is larger than the policy allows.
    pub const SET_TOO_LARGE: Self = Self(6);
    /// The declared set is too large relative to the offered set.
    pub const RATIO_TOO_HIGH: Self = Self(7);
    /// The peer's daily or total budget of evaluations is used up.
    pub const BUDGET_EXHAUSTED: Self = Self(8);
    /// Too many sessions recently.
    pub const RATE_LIMITED: Self = Self(9);
    /// Too many concurrent sessions; try later.
    pub const BUSY: Self = Self(10);
    /// A session id was seen before.
    pub const REPLAYED_SESSION: Self = Self(11);
    /// The two sets have no identifier kind in common.
    pub const NO_COMMON_KINDS: Self = Self(12);
    /// The responder is shutting down.
    pub const SHUTTING_DOWN: Self = Self(13);
    /// Internal error on the responder.
    pub const INTERNAL: Self = Self(14);
    /// The `Hello` names a protocol or normalisation version this node does not speak.
    /// The text names both versions; `Reject` is encoded alike in every version, so an
    /// older peer can show it.
    pub const UNSUPPORTED_VERSION: Self = Self(15);
    /// The dataset has no current index on this node (never built, or stale since the
    /// dataset or its policy changed): index sessions wait for `dataset index`.
    pub const INDEX_UNAVAILABLE: Self = Self(16);

    /// A short stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::UNKNOWN_PEER => "unknown-peer",
            Self::DATASET_NOT_OFFERED => "dataset-not-offered",
            Self::MODE_NOT_ALLOWED => "mode-not-allowed",
            Self::PURPOSE_NOT_ALLOWED => "purpose-not-allowed",
            Self::LEGAL_BASIS_NOT_ALLOWED => "legal-basis-not-allowed",
            Self::SET_TOO_LARGE => "set-too-large",
            Self::RATIO_TOO_HIGH => "ratio-too-high",
            Self::BUDGET_EXHAUSTED => "budget-exhausted",
            Self::RATE_LIMITED => "rate-limited",
            Self::BUSY => "busy",
            Self::REPLAYED_SESSION => "replayed-session",
            Self::NO_COMMON_KINDS => "no-common-kinds",
            Self::SHUTTING_DOWN => "shutting-down",
            Self::INTERNAL => "internal-error",
            Self::UNSUPPORTED_VERSION => "unsupported-version",
            Self::INDEX_UNAVAILABLE => "index-unavailable",
            _ => "unknown-reason",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// The responder refuses the session. Encoded alike in every protocol version.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Reject {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Explanation the initiator's user can act on.
    pub text: String,
}

impl Reject {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.reason.0.to_be_bytes());
        put_text(out, &self.text);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        Ok(Self {
            reason: RejectReason(r.u16()?),
            text: r.text()?,
        })
    }
}

/// Longest encoded `Hello` (every text at its limit), in bytes: type, versions, session
/// id, three texts, kinds, mode, set size, round size, bundle width, key commitment and
/// the initiator's dataset reference.
pub const MAX_HELLO_LEN: usize = 1
    + 2
    + 2
    + 16
    + 3 * (2 + super::MAX_TEXT_LEN)
    + 1
    + 1
    + 8
    + 4
    + 1
    + POINT_LEN
    + (2 + super::MAX_TEXT_LEN + 16);

fn kinds(bits: u8) -> Result<KindSet, InvalidMessage> {
    KindSet::from_bits(bits).ok_or(InvalidMessage::InvalidKinds(bits))
}

fn set_size(n: u64) -> Result<u64, InvalidMessage> {
    if n > MAX_SET_SIZE {
        return Err(InvalidMessage::OutOfRange("set size above 2^32-1"));
    }
    Ok(n)
}

/// A `Hello`'s bundle width: 1 outside `cardinality`, 1..=[`MAX_BUNDLE_WIDTH`] in it,
/// and a whole number of bundles.
fn bundle_width(width: u8, mode: OutputMode, set_size: u64) -> Result<u8, InvalidMessage> {
    let allowed = if mode == OutputMode::Cardinality {
        1..=MAX_BUNDLE_WIDTH
    } else {
        1..=1
    };
    if !allowed.contains(&width) {
        return Err(InvalidMessage::OutOfRange("Hello.bundle_width"));
    }
    if !set_size.is_multiple_of(u64::from(width)) {
        return Err(InvalidMessage::OutOfRange(
            "Hello.set_size is not a whole number of bundles",
        ));
    }
    Ok(width)
}
