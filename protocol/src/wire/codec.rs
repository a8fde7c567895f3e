//! The byte-level codec every message uses: a bounded reader that fails on truncation
//! and leftovers, length-prefixed texts and fixed-size batches. Limits are checked
//! before anything is allocated.

use super::MAX_TEXT_LEN;
use crate::error::{Error, InvalidMessage};

/// Appends `text` with a `u16` length prefix, at most [`MAX_TEXT_LEN`] bytes.
///
/// Callers validate lengths with [`check_text`]; a longer text is cut at the last
/// character boundary that fits, so the codec never emits invalid UTF-8, which the
/// peer would reject.
pub(crate) fn put_text(out: &mut Vec<u8>, text: &str) {
    let mut end = text.len().min(MAX_TEXT_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let bytes = &text.as_bytes()[..end];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A peer's free text made safe to show: control characters and bidirectional
/// overrides (which could clear a terminal, forge a line of output or reorder what is
/// shown) become visible `\u{..}` escapes.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks that a text field fits the wire limit.
pub fn check_text(field: &'static str, text: &str) -> Result<(), Error> {
    if text.len() > MAX_TEXT_LEN {
        return Err(Error::InvalidArgument(field));
    }
    Ok(())
}

/// Appends a `u32` count and the items.
pub(crate) fn encode_batch<const N: usize>(out: &mut Vec<u8>, items: &[[u8; N]]) {
    out.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for item in items {
        out.extend_from_slice(item);
    }
}

/// Reads a `u32` count in `1..=max` and that many items.
pub(crate) fn decode_batch<const N: usize>(
    r: &mut Reader<'_>,
    max: usize,
) -> Result<Vec<[u8; N]>, InvalidMessage> {
    let len = r.u32()? as usize;
    if len == 0 || len > max {
        return Err(InvalidMessage::BadBatchLength {
            len: len as u64,
            max: max as u64,
        });
    }
    let bytes = r.take(len * N)?;
    Ok(bytes
        .chunks_exact(N)
        .map(|c| {
            let mut item = [0u8; N];
            item.copy_from_slice(c);
            item
        })
        .collect())
}

/// A bounded reader over one message body.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], InvalidMessage> {
        if self.buf.len() < n {
            return Err(InvalidMessage::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], InvalidMessage> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, InvalidMessage> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, InvalidMessage> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, InvalidMessage> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, InvalidMessage> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// An optional `u64`: a flag byte (0 absent, 1 present) and the value.
    pub(crate) fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, InvalidMessage> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            _ => Err(InvalidMessage::OutOfRange(field)),
        }
    }

    pub(crate) fn text(&mut self) -> Result<String, InvalidMessage> {
        let len = self.u16()? as usize;
        if len > MAX_TEXT_LEN {
            return Err(InvalidMessage::TextTooLong {
                len,
                max: MAX_TEXT_LEN,
            });
        }
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| InvalidMessage::InvalidUtf8)?;
        Ok(text.to_owned())
    }

    pub(crate) fn finish(&self) -> Result<(), InvalidMessage> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(InvalidMessage::TrailingBytes(self.buf.len()))
        }
    }
}

/// Appends an optional `u64` as [`Reader::opt_u64`] reads it.
pub(crate) fn put_opt_u64(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        None => out.push(0),
        Some(n) => {
            out.push(1);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}
