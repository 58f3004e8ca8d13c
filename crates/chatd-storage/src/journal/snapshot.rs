//! Snapshots of the state: the state as of a log offset, so that opening the
//! store replays only the records after it instead of the whole log.
//!
//! File `snapshot`: magic, format version, CRC-32C of the payload, payload
//! (the [`State`] in postcard encoding). Written to `snapshot.new`, synced,
//! then renamed over the previous one, so a crash leaves either the old
//! snapshot or the new one, whole. A damaged or missing snapshot only costs
//! time: the state is then rebuilt from the start of the log.

use super::segments::sync_dir;
use super::state::State;
use crate::{Result, StorageError};
use chatd_diskio::Paced;
use std::io::{self, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"chatdsnp";
const VERSION: u32 = 1;
const NAME: &str = "snapshot";
const TEMP_NAME: &str = "snapshot.new";

/// A writer that checksums what passes through it.
struct Checksummed<W> {
    inner: W,
    crc: u32,
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `state` as the snapshot of `dir`, durably.
pub(crate) fn save(dir: &Path, state: &State) -> Result<()> {
    let temp = dir.join(TEMP_NAME);
    let mut file = std::fs::File::create(&temp)?;
    // Header with a placeholder checksum, filled in once the payload is out.
    file.write_all(MAGIC)?;
    file.write_all(&VERSION.to_le_bytes())?;
    file.write_all(&0u32.to_le_bytes())?;
    let mut out = Checksummed {
        inner: io::BufWriter::with_capacity(1 << 20, Paced::new(&file, 16)),
        crc: 0,
    };
    postcard::to_io(state, &mut out)
        .map_err(|e| StorageError::Corrupt(format!("journal snapshot: {e}")))?;
    out.flush()?;
    let crc = out.crc;
    drop(out);
    use std::os::unix::fs::FileExt;
    file.write_all_at(&crc.to_le_bytes(), 12)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, dir.join(NAME))?;
    sync_dir(dir)?;
    Ok(())
}

/// The snapshot of `dir`, if there is a whole one.
pub(crate) fn load(dir: &Path) -> Result<Option<State>> {
    let mut raw = Vec::new();
    match std::fs::File::open(dir.join(NAME)) {
        Ok(mut f) => f.read_to_end(&mut raw)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let damaged = |why: &str| {
        tracing::warn!("journal snapshot ignored ({why}): the log is replayed from its start");
        Ok(None)
    };
    if raw.len() < 16 || &raw[..8] != MAGIC {
        return damaged("not a snapshot");
    }
    if u32::from_le_bytes(raw[8..12].try_into().expect("4 bytes")) != VERSION {
        return damaged("another format version");
    }
    let crc = u32::from_le_bytes(raw[12..16].try_into().expect("4 bytes"));
    if crc32c::crc32c(&raw[16..]) != crc {
        return damaged("checksum mismatch");
    }
    match postcard::from_bytes(&raw[16..]) {
        Ok(state) => Ok(Some(state)),
        Err(_) => damaged("undecodable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::{CursorRecord, Record};
    use std::borrow::Cow;

    #[test]
    fn a_snapshot_comes_back_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let mut s = State::default();
        let rec = Record::Cursor(CursorRecord {
            app: 1,
            owner: Cow::Borrowed("u"),
            device: Cow::Borrowed("d"),
            seq: 7,
            at_ms: 3,
        });
        s.apply(&rec, 0, 40).unwrap();
        save(dir.path(), &s).unwrap();
        let back = load(dir.path()).unwrap().unwrap();
        assert_eq!(back.applied_to, 40);
        assert_eq!(back.device_cursor(1, "u", "d"), Some(7));
        assert!(!dir.path().join(TEMP_NAME).exists());

        let path = dir.path().join(NAME);
        let mut raw = std::fs::read(&path).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0x55;
        std::fs::write(&path, &raw).unwrap();
        assert!(load(dir.path()).unwrap().is_none(), "damaged: ignored");
    }
}
