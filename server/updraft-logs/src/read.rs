//! Reading a log in chunks addressed by byte offsets, the same way for a local file and for its
//! remote copy: at most [`CHUNK`] bytes from an offset, cut after the last newline when the try
//! may still write (or the chunk is full), so a reader never sees half a line twice.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Most bytes one read returns; the next read continues from [`LogChunk::end`].
pub const CHUNK: u64 = 4 * 1024 * 1024;

/// Where a chunk was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Local,
    Remote,
    /// Neither copy exists (yet): the chunk is empty.
    Nowhere,
}

/// Part of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub bytes: Vec<u8>,
    /// The offset after these bytes: where the next read starts.
    pub end: u64,
    /// Whether `end` is the end of the log as it is now.
    pub at_end: bool,
    pub origin: Origin,
}

impl LogChunk {
    /// The chunk as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// The chunk of `bytes` (read from offset `start` of a log `len` bytes long), cut after its
/// last newline when the try may still write or the chunk is not the end.
pub(crate) fn cut(mut bytes: Vec<u8>, start: u64, len: u64, live: bool, origin: Origin) -> LogChunk {
    let full_chunk = bytes.len() as u64 == CHUNK && start + CHUNK < len;
    if (live || full_chunk) && !bytes.ends_with(b"\n") {
        let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(keep);
    }
    let end = start + bytes.len() as u64;
    LogChunk { bytes, end, at_end: end >= len, origin }
}

/// A chunk of a local log file from `start`; `None` when the file does not exist.
pub(crate) fn read_local(path: &Path, start: u64, live: bool) -> std::io::Result<Option<LogChunk>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = start.min(len);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(CHUNK).read_to_end(&mut bytes)?;
    Ok(Some(cut(bytes, start, len, live, Origin::Local)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_logs_hold_back_the_unfinished_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("attempt=1.log");
        std::fs::write(&path, "one\ntwo\nthr").expect("write");
        let chunk = read_local(&path, 0, true).expect("read").expect("exists");
        assert_eq!((chunk.text().as_str(), chunk.end, chunk.at_end), ("one\ntwo\n", 8, false));
        let chunk = read_local(&path, chunk.end, false).expect("read").expect("exists");
        assert_eq!((chunk.text().as_str(), chunk.end, chunk.at_end), ("thr", 11, true));
        assert_eq!(read_local(&dir.path().join("missing"), 0, true).expect("read"), None);
        // An offset past the end reads nothing, at the end.
        let chunk = read_local(&path, 99, false).expect("read").expect("exists");
        assert_eq!((chunk.bytes.len(), chunk.end, chunk.at_end), (0, 11, true));
    }
}
