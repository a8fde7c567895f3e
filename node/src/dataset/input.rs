//! The byte pipeline under the CSV parser: the input file, hashed and counted as it is
//! read, then decoded to UTF-8 in a streaming fashion.
//!
//! Invariant: the decoder's output is valid UTF-8 except for one `0xFF` byte (never
//! valid in UTF-8) in place of each malformed input sequence, so the CSV layer can
//! report the row that holds it.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::rc::Rc;

use encoding_rs::{Decoder, DecoderResult, Encoding, GB18030, UTF_8};
use sha2::{Digest, Sha256};

use super::InputEncoding;

/// Marks a malformed input sequence in the decoded stream.
pub(crate) const MALFORMED_MARKER: u8 = 0xFF;

const IN_BUFFER: usize = 64 * 1024;
const OUT_BUFFER: usize = 64 * 1024;

/// What has been read from the raw file so far.
#[derive(Default)]
pub(crate) struct RawProgress {
    digest: Sha256,
    bytes: u64,
}

impl RawProgress {
    /// Bytes read so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Hex SHA-256 of the bytes read so far.
    pub(crate) fn sha256_hex(&self) -> String {
        hex::encode(self.digest.clone().finalize())
    }
}

/// Hex SHA-256 of a whole file, computed the way an import computes `input_sha256`.
pub fn file_sha256_hex(path: &std::path::Path) -> io::Result<String> {
    let progress = Rc::new(RefCell::new(RawProgress::default()));
    let mut reader = HashingReader::new(File::open(path)?, Rc::clone(&progress));
    io::copy(&mut reader, &mut io::sink())?;
    let hex = progress.borrow().sha256_hex();
    Ok(hex)
}

/// Reads a file, feeding every byte to a shared [`RawProgress`].
pub(crate) struct HashingReader {
    file: File,
    progress: Rc<RefCell<RawProgress>>,
}

impl HashingReader {
    pub(crate) fn new(file: File, progress: Rc<RefCell<RawProgress>>) -> Self {
        Self { file, progress }
    }
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        let mut progress = self.progress.borrow_mut();
        progress.digest.update(&buf[..n]);
        progress.bytes += n as u64;
        Ok(n)
    }
}

/// Decodes a byte stream to UTF-8 with `encoding_rs`, one buffer at a time.
///
/// A byte-order mark (UTF-8, UTF-16LE, UTF-16BE) is removed and overrides the chosen
/// encoding, as browsers do: a BOM is unambiguous, a guess is not.
///
/// Line ends are normalised so the CSV parser counts lines exactly: CRLF becomes LF
/// (also inside quoted cells, which matters to no identifier), and a final line
/// break is added if the input lacks one.
pub(crate) struct DecodingReader<R> {
    inner: R,
    decoder: Decoder,
    input: Box<[u8]>,
    input_start: usize,
    input_end: usize,
    input_done: bool,
    output: Vec<u8>,
    output_start: usize,
    /// A CR ended the previous chunk; it is dropped if the next byte is LF.
    carried_cr: bool,
    last_byte: Option<u8>,
    finished: bool,
}

impl<R: Read> DecodingReader<R> {
    pub(crate) fn new(inner: R, encoding: InputEncoding) -> Self {
        let encoding: &'static Encoding = match encoding {
            InputEncoding::Utf8 => UTF_8,
            InputEncoding::Gb18030 => GB18030,
        };
        Self {
            inner,
            decoder: encoding.new_decoder(),
            input: vec![0; IN_BUFFER].into_boxed_slice(),
            input_start: 0,
            input_end: 0,
            input_done: false,
            output: Vec::with_capacity(OUT_BUFFER + 2),
            output_start: 0,
            carried_cr: false,
            last_byte: None,
            finished: false,
        }
    }

    /// Decodes the next chunk into `self.output[self.output_start..]`; leaves it empty
    /// only at the end.
    fn fill(&mut self) -> io::Result<()> {
        self.output.clear();
        self.output_start = 0;
        while self.output_start == self.output.len() && !self.finished {
            if self.input_start == self.input_end && !self.input_done {
                let n = read_retrying(&mut self.inner, &mut self.input)?;
                self.input_start = 0;
                self.input_end = n;
                self.input_done = n == 0;
            }
            // Byte 0 is kept for a carried CR, the last byte for a malformed marker.
            self.output.resize(OUT_BUFFER, 0);
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.input_start..self.input_end],
                &mut self.output[1..OUT_BUFFER - 1],
                self.input_done,
            );
            self.input_start += read;
            let mut start = 1;
            if self.carried_cr && written > 0 {
                self.carried_cr = false;
                if self.output[1] != b'\n' {
                    self.output[0] = b'\r';
                    start = 0;
                }
            }
            let len = drop_cr_before_lf(&mut self.output[start..1 + written]);
            self.output.truncate(start + len);
            self.output_start = start;
            let finished = matches!(result, DecoderResult::InputEmpty) && self.input_done;
            if !finished && self.output.len() > start && self.output.last() == Some(&b'\r') {
                self.output.pop();
                self.carried_cr = true;
            }
            if let DecoderResult::Malformed(_, _) = result {
                if std::mem::take(&mut self.carried_cr) {
                    self.output.push(b'\r');
                }
                self.output.push(MALFORMED_MARKER);
            }
            if self.output.len() > start {
                self.last_byte = self.output.last().copied();
            }
            if finished {
                self.finished = true;
                if std::mem::take(&mut self.carried_cr) {
                    self.output.push(b'\r');
                    self.last_byte = Some(b'\r');
                }
                if self.last_byte.is_some_and(|byte| byte != b'\n') {
                    self.output.push(b'\n');
                    self.last_byte = Some(b'\n');
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for DecodingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.output_start == self.output.len() {
            self.fill()?;
        }
        let available = &self.output[self.output_start..];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.output_start += n;
        Ok(n)
    }
}

/// Removes every CR directly followed by LF, in place; returns the new length.
fn drop_cr_before_lf(bytes: &mut [u8]) -> usize {
    let mut write = 0;
    for read in 0..bytes.len() {
        let byte = bytes[read];
        if byte == b'\r' && bytes.get(read + 1) == Some(&b'\n') {
            continue;
        }
        bytes[write] = byte;
        write += 1;
    }
    write
}

fn read_retrying(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8], encoding: InputEncoding) -> Vec<u8> {
        let mut out = Vec::new();
        DecodingReader::new(bytes, encoding)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn utf8_bom_is_removed() {
        assert_eq!(
            decode(b"\xEF\xBB\xBFid,email\n", InputEncoding::Utf8),
            b"id,email\n"
        );
        assert_eq!(decode(b"\xEF\xBB\xBF", InputEncoding::Utf8), b"");
        assert_eq!(decode(b"", InputEncoding::Utf8), b"");
    }

    #[test]
    fn malformed_utf8_becomes_a_marker() {
        assert_eq!(decode(b"a\xC4b\n", InputEncoding::Utf8), b"a\xFFb\n");
        // A truncated sequence at the very end is malformed too.
        assert_eq!(decode(b"ab\xE5\xBC", InputEncoding::Utf8), b"ab\xFF\n");
        assert_eq!(decode(b"a\r\xFF\r\n", InputEncoding::Utf8), b"a\r\xFF\n");
    }

    #[test]
    fn line_ends_become_lf_with_a_final_one() {
        assert_eq!(decode(b"a\r\nb\r\n", InputEncoding::Utf8), b"a\nb\n");
        assert_eq!(decode(b"a\r\nb", InputEncoding::Utf8), b"a\nb\n");
        assert_eq!(decode(b"a\rb\r", InputEncoding::Utf8), b"a\rb\r\n");
        assert_eq!(decode(b"\r\n\r\n", InputEncoding::Utf8), b"\n\n");
        // A CRLF split across chunk boundaries, at several offsets.
        for pad in 0..8 {
            let mut input = vec![b'x'; OUT_BUFFER - 4 + pad];
            input.extend_from_slice(b"\r\ny\r\r\n");
            let mut expected = vec![b'x'; OUT_BUFFER - 4 + pad];
            expected.extend_from_slice(b"\ny\r\n");
            assert_eq!(decode(&input, InputEncoding::Utf8), expected, "pad {pad}");
        }
    }

    #[test]
    fn gb18030_decodes_across_buffer_boundaries() {
        let text: String = "张三,华为技术有限公司\r\n".repeat(10_000);
        let (encoded, _, unmappable) = GB18030.encode(&text);
        assert!(!unmappable);
        assert!(encoded.len() > 2 * IN_BUFFER);
        let expected = text.replace("\r\n", "\n");
        assert_eq!(
            decode(&encoded, InputEncoding::Gb18030),
            expected.as_bytes()
        );
    }

    #[test]
    fn utf16_bom_overrides_the_encoding() {
        let mut bytes = vec![0xFF, 0xFE];
        for unit in "id,邮箱\n".encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(decode(&bytes, InputEncoding::Utf8), "id,邮箱\n".as_bytes());
    }

    #[test]
    fn hashing_reader_hashes_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, b"hello").unwrap();
        let progress = Rc::new(RefCell::new(RawProgress::default()));
        let mut reader = HashingReader::new(File::open(&path).unwrap(), progress.clone());
        io::copy(&mut reader, &mut io::sink()).unwrap();
        assert_eq!(progress.borrow().bytes(), 5);
        assert_eq!(
            progress.borrow().sha256_hex(),
            hex::encode(Sha256::digest(b"hello"))
        );
    }
}
