//! Whether a rebuild only added identifiers: the new tag prefixes, merged in order,
//! against every segment of the current index, read a bucket at a time. The prefixes
//! the index lacks become the delta segment; one indexed tag missing from the new ones
//! means identifiers were removed or changed, and a new epoch is needed.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use blindmatch_protocol::index::{SegmentLayout, VerifiedIndex, Verifier, tag_of};

use super::IndexError;
use super::runs::{Merged, RUN_LEN, Runs};

/// Merges the new prefixes against the index's tags: the prefixes not in the index,
/// as runs in `dir`, or `None` when some indexed tag is no longer among them.
pub(super) fn compare(
    existing: &VerifiedIndex,
    path: &Path,
    merged: &mut Merged,
    dir: &Path,
) -> Result<Option<Runs>, IndexError> {
    let mut file = File::open(path).map_err(io("reading", path))?;
    let mut cursors: Vec<Cursor<'_>> = existing
        .segments()
        .iter()
        .map(|segment| Cursor {
            segment,
            bucket: 0,
            tags: Vec::new(),
            at: 0,
        })
        .collect();
    let mut added = Runs::new(dir);
    let mut chunk = Vec::new();
    while let Some(prefix) = merged.next_prefix()? {
        let mut known = false;
        for cursor in &mut cursors {
            let tag = tag_of(prefix, cursor.segment.header().tag_bits);
            match cursor.peek(&mut file)? {
                Some(old) if old < tag => return Ok(None),
                Some(old) if old == tag => {
                    cursor.at += 1;
                    known = true;
                }
                _ => {}
            }
        }
        if !known {
            chunk.push(prefix);
            if chunk.len() == RUN_LEN {
                added.push(std::mem::take(&mut chunk))?;
            }
        }
    }
    for cursor in &mut cursors {
        if cursor.peek(&mut file)?.is_some() {
            return Ok(None);
        }
    }
    added.push(chunk)?;
    Ok(Some(added))
}

/// Walks one segment's tags in order, a bucket at a time.
struct Cursor<'a> {
    segment: &'a SegmentLayout,
    bucket: u64,
    tags: Vec<u128>,
    at: usize,
}

impl Cursor<'_> {
    fn peek(&mut self, file: &mut File) -> Result<Option<u128>, IndexError> {
        while self.at == self.tags.len() {
            if self.bucket == self.segment.buckets() {
                return Ok(None);
            }
            let (start, end) = self.segment.bucket_bytes(self.bucket);
            let mut bytes = vec![0u8; (end - start) as usize];
            if end > start {
                file.seek(SeekFrom::Start(start))
                    .and_then(|_| file.read_exact(&mut bytes))
                    .map_err(|source| IndexError::Io {
                        action: "reading",
                        path: "the index file".into(),
                        source,
                    })?;
            }
            self.tags = self.segment.bucket_tags(self.bucket, &bytes)?;
            self.at = 0;
            self.bucket += 1;
        }
        Ok(Some(self.tags[self.at]))
    }
}

/// Checks our own index file before a delta is appended to it.
pub(super) fn verify_own(path: &Path) -> Result<VerifiedIndex, IndexError> {
    let mut file = File::open(path).map_err(io("reading", path))?;
    let mut verifier = Verifier::new(None);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(io("reading", path))?;
        if read == 0 {
            break;
        }
        verifier.update(&buffer[..read])?;
    }
    Ok(verifier.finish()?)
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IndexError {
    let path = path.to_path_buf();
    move |source| IndexError::Io {
        action,
        path,
        source,
    }
}
