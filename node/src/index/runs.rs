//! Sorted runs of 128-bit tag prefixes for a build whose tags do not fit in memory at
//! once: each chunk is sorted and deduplicated, written to a temporary file in the build
//! directory (16 big-endian bytes per prefix), and the runs are merged in one pass with a
//! heap. One run stays in memory, so an index of up to one chunk never touches the disk.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::IndexError;

/// Prefixes per run: 8 MiB of prefixes (plus the chunk's OPRF outputs while it is
/// evaluated, 32 MiB): memory stays flat whatever the dataset size.
pub(super) const RUN_LEN: usize = 1 << 19;

/// The runs of one build.
pub(super) struct Runs {
    dir: PathBuf,
    files: Vec<PathBuf>,
    last: Option<Vec<u128>>,
    /// Prefixes over all runs after each run's own deduplication: an upper bound of the
    /// distinct count.
    total: u64,
}

impl Runs {
    /// Runs kept in `dir` (which the caller deletes when the build ends).
    pub(super) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            last: None,
            total: 0,
        }
    }

    /// Adds a chunk of prefixes.
    pub(super) fn push(&mut self, mut prefixes: Vec<u128>) -> Result<(), IndexError> {
        prefixes.sort_unstable();
        prefixes.dedup();
        self.total += prefixes.len() as u64;
        if let Some(previous) = self.last.replace(prefixes) {
            self.spill(&previous)?;
        }
        Ok(())
    }

    /// Upper bound of the distinct prefixes.
    pub(super) fn total(&self) -> u64 {
        self.total
    }

    /// Every prefix once, in increasing order.
    pub(super) fn merged(self) -> Result<Merged, IndexError> {
        let mut sources = Vec::with_capacity(self.files.len() + 1);
        for path in &self.files {
            let file = File::open(path).map_err(io("reading", path))?;
            sources.push(Source::File {
                reader: BufReader::with_capacity(1 << 16, file),
                path: path.clone(),
            });
        }
        if let Some(last) = self.last {
            sources.push(Source::Memory(last.into_iter()));
        }
        let mut merged = Merged {
            sources,
            heap: BinaryHeap::new(),
            previous: None,
        };
        for i in 0..merged.sources.len() {
            if let Some(prefix) = merged.sources[i].next()? {
                merged.heap.push(Reverse((prefix, i)));
            }
        }
        Ok(merged)
    }

    fn spill(&mut self, prefixes: &[u128]) -> Result<(), IndexError> {
        let path = self.dir.join(format!("run-{}", self.files.len()));
        let file = crate::files::private_file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io("writing", &path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        for prefix in prefixes {
            out.write_all(&prefix.to_be_bytes())
                .map_err(io("writing", &path))?;
        }
        out.flush().map_err(io("writing", &path))?;
        self.files.push(path);
        Ok(())
    }
}

/// The merge of every run: each prefix once, in increasing order.
pub(super) struct Merged {
    sources: Vec<Source>,
    heap: BinaryHeap<Reverse<(u128, usize)>>,
    previous: Option<u128>,
}

enum Source {
    File {
        reader: BufReader<File>,
        path: PathBuf,
    },
    Memory(std::vec::IntoIter<u128>),
}

impl Source {
    fn next(&mut self) -> Result<Option<u128>, IndexError> {
        match self {
            Source::Memory(iter) => Ok(iter.next()),
            Source::File { reader, path } => {
                let mut bytes = [0u8; 16];
                match reader.read_exact(&mut bytes) {
                    Ok(()) => Ok(Some(u128::from_be_bytes(bytes))),
                    Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                    Err(source) => Err(IndexError::Io {
                        action: "reading",
                        path: path.clone(),
                        source,
                    }),
                }
            }
        }
    }
}

impl Merged {
    /// The next distinct prefix.
    pub(super) fn next_prefix(&mut self) -> Result<Option<u128>, IndexError> {
        while let Some(Reverse((prefix, i))) = self.heap.pop() {
            if let Some(next) = self.sources[i].next()? {
                self.heap.push(Reverse((next, i)));
            }
            if self.previous != Some(prefix) {
                self.previous = Some(prefix);
                return Ok(Some(prefix));
            }
        }
        Ok(None)
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IndexError {
    let path = path.to_path_buf();
    move |source| IndexError::Io {
        action,
        path,
        source,
    }
}
