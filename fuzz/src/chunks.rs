//! Splitting one fuzz input into a sequence of frames, and back.
//!
//! A chunk is a big-endian `u16` length and that many bytes. A last chunk shorter than
//! its length is delivered as it is (a truncated frame), so every byte string is a valid
//! input and every sequence of frames up to 64 KiB each has an encoding.

/// The frames of `data`, in order.
pub fn split(data: &[u8]) -> Chunks<'_> {
    Chunks { rest: data }
}

/// The input whose [`split`] gives `frames` back.
///
/// # Panics
///
/// If a frame is longer than `u16::MAX` bytes (seeds are small by construction).
pub fn join<F: AsRef<[u8]>>(frames: &[F]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        let frame = frame.as_ref();
        let len = u16::try_from(frame.len()).expect("seed frame longer than 64 KiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(frame);
    }
    out
}

/// Iterator returned by [`split`].
pub struct Chunks<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.len() < 2 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([self.rest[0], self.rest[1]]));
        let body = &self.rest[2..];
        let (frame, rest) = body.split_at(len.min(body.len()));
        self.rest = rest;
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_then_split_round_trips() {
        let frames: Vec<Vec<u8>> = vec![vec![], vec![1, 2, 3], vec![7; 300]];
        let joined = join(&frames);
        assert_eq!(split(&joined).collect::<Vec<_>>(), frames);
        assert_eq!(
            split(&[0, 5, 1, 2]).collect::<Vec<_>>(),
            vec![&[1u8, 2][..]]
        );
    }
}
