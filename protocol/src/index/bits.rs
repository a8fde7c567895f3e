//! Bit-level writing and reading of Golomb-Rice codes, most significant bit first.
//!
//! The reader is bounded by a bit range: a code that would run past it is an error
//! (`None`), never a read outside the slice, so a hostile index cannot make a lookup
//! panic or loop.

/// Appends bits to a byte buffer, most significant bit of each byte first.
#[derive(Default)]
pub(super) struct BitWriter {
    bytes: Vec<u8>,
    /// Bits not yet in `bytes`, in the low `pending` bits of `acc`.
    acc: u64,
    pending: u32,
    total: u64,
}

impl BitWriter {
    /// Bits written so far.
    pub(super) fn position(&self) -> u64 {
        self.total
    }

    /// Appends the low `count` bits of `value` (`count` ≤ 128).
    pub(super) fn put(&mut self, value: u128, count: u32) {
        let mut left = count;
        while left > 0 {
            let take = left.min(32);
            left -= take;
            let chunk = ((value >> left) as u64) & ((1u64 << take) - 1);
            self.push(chunk, take);
        }
    }

    /// Appends `count` one-bits.
    pub(super) fn ones(&mut self, mut count: u64) {
        while count > 0 {
            let take = count.min(32) as u32;
            count -= u64::from(take);
            self.push((1u64 << take) - 1, take);
        }
    }

    /// Appends one Golomb-Rice code of `gap` with parameter `rice`.
    pub(super) fn rice(&mut self, gap: u128, rice: u8) {
        let quotient = gap.checked_shr(u32::from(rice)).unwrap_or(0);
        // Quotients stay small for sorted tags (see `coding_params`); a u64 is plenty.
        self.ones(u64::try_from(quotient).unwrap_or(u64::MAX));
        self.push(0, 1);
        let low = if rice == 0 {
            0
        } else {
            gap & (u128::MAX >> (128 - u32::from(rice)))
        };
        self.put(low, u32::from(rice));
    }

    /// Moves the completed bytes out.
    pub(super) fn drain_bytes(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.bytes);
    }

    /// Pads the last byte with zero bits and returns the remaining bytes.
    pub(super) fn finish(mut self) -> Vec<u8> {
        if self.pending > 0 {
            let byte = (self.acc << (8 - self.pending)) as u8;
            self.bytes.push(byte);
        }
        self.bytes
    }

    /// `count` ≤ 32 bits of `chunk`.
    fn push(&mut self, chunk: u64, count: u32) {
        self.acc = (self.acc << count) | chunk;
        self.pending += count;
        self.total += u64::from(count);
        while self.pending >= 8 {
            self.pending -= 8;
            self.bytes.push((self.acc >> self.pending) as u8);
        }
        self.acc &= (1u64 << self.pending) - 1;
    }
}

/// Reads bits `[pos, end)` of a byte slice, most significant bit of each byte first.
pub(super) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: u64,
    end: u64,
}

impl<'a> BitReader<'a> {
    /// A reader of bits `[start, end)` of `bytes`; `None` if the range does not fit.
    pub(super) fn new(bytes: &'a [u8], start: u64, end: u64) -> Option<Self> {
        if start > end || end > (bytes.len() as u64).saturating_mul(8) {
            return None;
        }
        Some(Self {
            bytes,
            pos: start,
            end,
        })
    }

    /// A reader of nothing (ends a decoder after an error).
    pub(super) fn empty() -> Self {
        Self {
            bytes: &[],
            pos: 0,
            end: 0,
        }
    }

    /// Whether every bit of the range was read.
    pub(super) fn at_end(&self) -> bool {
        self.pos == self.end
    }

    /// Reads `count` ≤ 128 bits as an integer.
    pub(super) fn get(&mut self, count: u32) -> Option<u128> {
        if self.end - self.pos < u64::from(count) {
            return None;
        }
        if count == 0 {
            return Some(0);
        }
        let offset = (self.pos % 8) as u32;
        if offset + count <= 128 {
            // One 16-byte window holds every bit wanted.
            let value = (self.window() << offset) >> (128 - count);
            self.pos += u64::from(count);
            return Some(value);
        }
        let high = self.get(count - 64)?;
        let low = self.get(64)?;
        Some((high << 64) | low)
    }

    /// Reads one-bits up to and including the next zero-bit; returns how many ones.
    pub(super) fn unary(&mut self) -> Option<u64> {
        let mut ones = 0u64;
        loop {
            if self.pos >= self.end {
                return None;
            }
            let offset = (self.pos % 8) as u32;
            let bits = self.window() << offset;
            // Bits of the window from `pos` on, at most up to the range end.
            let usable = u64::from(128 - offset).min(self.end - self.pos);
            let run = u64::from(bits.leading_ones()).min(usable);
            ones += run;
            self.pos += run;
            if run < usable {
                // The zero-bit that ends the code.
                self.pos += 1;
                return Some(ones);
            }
        }
    }

    /// The 16 bytes from the one holding `pos`, big-endian (zero past the slice).
    fn window(&self) -> u128 {
        let start = (self.pos / 8) as usize;
        let mut window = [0u8; 16];
        let available = &self.bytes[start..self.bytes.len().min(start + 16)];
        window[..available.len()].copy_from_slice(available);
        u128::from_be_bytes(window)
    }

    /// Reads one Golomb-Rice code with parameter `rice`.
    pub(super) fn rice(&mut self, rice: u8) -> Option<u128> {
        let quotient = u128::from(self.unary()?);
        let low = self.get(u32::from(rice))?;
        if rice >= 128 {
            return (quotient == 0).then_some(low);
        }
        let high = quotient << rice;
        // A quotient that overflows the shift is not a code any builder wrote.
        if rice > 0 && (high >> rice) != quotient {
            return None;
        }
        Some(high | low)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rice_codes_round_trip() {
        let gaps: [(u128, u8); 7] = [
            (0, 0),
            (5, 0),
            (0, 3),
            (77, 3),
            (u128::from(u64::MAX), 60),
            ((1u128 << 70) + 12345, 68),
            (3, 1),
        ];
        let mut w = BitWriter::default();
        for (gap, rice) in gaps {
            w.rice(gap, rice);
        }
        let bits = w.position();
        let bytes = w.finish();
        assert_eq!(bytes.len() as u64, bits.div_ceil(8));
        let mut r = BitReader::new(&bytes, 0, bits).unwrap();
        for (gap, rice) in gaps {
            assert_eq!(r.rice(rice), Some(gap));
        }
        assert!(r.at_end());
    }

    #[test]
    fn wide_fields_at_every_offset_round_trip() {
        for offset in 0..8u32 {
            let mut w = BitWriter::default();
            w.put(0, offset);
            w.put(u128::MAX - 12345, 128);
            w.put(0b101, 3);
            w.ones(200);
            w.put(0, 1);
            let bits = w.position();
            let bytes = w.finish();
            let mut r = BitReader::new(&bytes, u64::from(offset), bits).unwrap();
            assert_eq!(r.get(128), Some(u128::MAX - 12345));
            assert_eq!(r.get(3), Some(0b101));
            assert_eq!(r.unary(), Some(200));
            assert!(r.at_end());
        }
    }

    #[test]
    fn reads_stop_at_the_range_end() {
        let bytes = [0xFFu8; 4];
        let mut r = BitReader::new(&bytes, 3, 20).unwrap();
        assert_eq!(r.unary(), None, "ones to the end are no code");
        assert!(BitReader::new(&bytes, 0, 33).is_none());
        let mut r = BitReader::new(&bytes, 0, 10).unwrap();
        assert_eq!(r.get(11), None);
        assert_eq!(r.get(10), Some(0x3FF));
    }
}
