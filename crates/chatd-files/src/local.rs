//! The local store: files on disk under the data directory, metadata in
//! their own SQLite database.
//!
//! Layout of `dir` (`<data_dir>/files`):
//! - `files.db`: one row per file (see [`SCHEMA`]);
//! - `tmp/<uuid>.part`, `tmp/<uuid>.thumb.part`: uploads in progress;
//! - `<app key>/<first two hex digits of the uuid>/<uuid>`: the bytes;
//! - `<app key>/<…>/<uuid>.thumb`: the thumbnail of an image, if it has one.
//!
//! An upload is written to `tmp/`, fsynced, renamed into place, and only
//! then gets its row: a file is visible exactly when its row exists, so a
//! crash at any point leaves at worst leftovers without a row. Opening the
//! store removes those (everything in `tmp/`, and any stored file without a
//! live row) before the server answers its first request.

use crate::thumbnail;
use crate::{
    ByteStream, Dimensions, FileError, FileStore, FileWriter, Lookup, NewFile, StoredFile,
    SweepReport, Thumbnail, Variant, TOMBSTONE,
};
use async_trait::async_trait;
use bytes::Bytes;
use chatd_diskio::Pace;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::HashMap;
use std::io::{self, ErrorKind, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio::sync::Semaphore;
use tokio_util::io::ReaderStream;

/// Images decoded for thumbnails at the same time (see
/// [`thumbnail::MAX_DECODE_BYTES`]).
pub const THUMBNAIL_WORKERS: usize = 2;

/// Buffer of uploads on their way to disk, and of downloads' reads.
const IO_BUFFER: usize = 64 * 1024;

/// Length of generated share secrets (URL-safe characters, 6 bits each).
const SECRET_LEN: usize = 48;

/// Bytes kept from the start of an upload to recognise images.
const HEAD_LEN: usize = 64;

/// Expired files handled per sweep transaction.
const SWEEP_BATCH: usize = 500;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS files (
    app_key       INTEGER NOT NULL,
    uuid          TEXT    NOT NULL,
    filename      TEXT    NOT NULL,
    content_type  TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    share_secret  TEXT    NOT NULL,
    restricted    INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL,
    image_width   INTEGER,
    image_height  INTEGER,
    thumb_type    TEXT,
    thumb_size    INTEGER,
    thumb_width   INTEGER,
    thumb_height  INTEGER,
    -- set when the sweep removed the bytes; the row then only says
    -- 'expired' until it is forgotten
    removed_ms    INTEGER,
    PRIMARY KEY (app_key, uuid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_created ON files (created_ms);
";

const COLUMNS: &str = "app_key, uuid, filename, content_type, size, share_secret, restricted, \
     created_ms, image_width, image_height, thumb_type, thumb_size, thumb_width, thumb_height, \
     removed_ms";

/// Where and how the local store keeps files.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The store's directory, normally `<data_dir>/files`.
    pub dir: PathBuf,
    /// How long files are kept; zero keeps them forever.
    pub retention: Duration,
    /// Default side of the thumbnail box, in pixels.
    pub thumbnail_size: u32,
}

struct Inner {
    dir: PathBuf,
    tmp: PathBuf,
    retention: Duration,
    thumbnail_size: u32,
    db: Mutex<Connection>,
    thumbnails: Semaphore,
}

/// Files on the local disk. See the module documentation for the layout.
#[derive(Clone)]
pub struct LocalFileStore {
    inner: Arc<Inner>,
}

fn db_err(e: rusqlite::Error) -> FileError {
    FileError::Metadata(e.to_string())
}

fn join_err(e: tokio::task::JoinError) -> FileError {
    FileError::Io(io::Error::other(e))
}

/// Removes `path`; a file already gone is fine.
fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

fn row_to_file(r: &Row<'_>) -> rusqlite::Result<(StoredFile, bool)> {
    let dims = |w: Option<u32>, h: Option<u32>| {
        w.zip(h).map(|(width, height)| Dimensions { width, height })
    };
    let thumbnail = match r.get::<_, Option<String>>(10)? {
        Some(content_type) => Some(Thumbnail {
            content_type,
            size: r.get(11)?,
            dimensions: dims(r.get(12)?, r.get(13)?).unwrap_or(Dimensions {
                width: 0,
                height: 0,
            }),
        }),
        None => None,
    };
    let file = StoredFile {
        app_key: r.get(0)?,
        uuid: r.get(1)?,
        filename: r.get(2)?,
        content_type: r.get(3)?,
        size: r.get(4)?,
        share_secret: r.get(5)?,
        restricted: r.get(6)?,
        created_ms: r.get(7)?,
        image: dims(r.get(8)?, r.get(9)?),
        thumbnail,
    };
    let removed = r.get::<_, Option<i64>>(14)?.is_some();
    Ok((file, removed))
}

impl Inner {
    fn shard(&self, app_key: i64, uuid: &str) -> PathBuf {
        self.dir.join(app_key.to_string()).join(&uuid[..2])
    }

    fn original_path(&self, app_key: i64, uuid: &str) -> PathBuf {
        self.shard(app_key, uuid).join(uuid)
    }

    fn thumbnail_path(&self, app_key: i64, uuid: &str) -> PathBuf {
        self.shard(app_key, uuid).join(format!("{uuid}.thumb"))
    }

    fn retention_ms(&self) -> i64 {
        i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX)
    }

    fn is_expired(&self, created_ms: i64, now_ms: i64) -> bool {
        !self.retention.is_zero() && created_ms.saturating_add(self.retention_ms()) <= now_ms
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Empties `tmp/`, and removes stored files without a live row (a crash
    /// between the rename and the insert, or between the sweep's update and
    /// its removals).
    fn recover(&self) -> Result<(usize, usize), FileError> {
        let mut partial = 0;
        for entry in std::fs::read_dir(&self.tmp)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                remove_if_exists(&entry.path())?;
                partial += 1;
            }
        }
        // (app key, uuid) -> whether a thumbnail of its own is expected.
        let live: HashMap<(i64, String), bool> = {
            let db = self.db();
            let mut stmt = db
                .prepare(
                    "SELECT app_key, uuid, thumb_type IS NOT NULL FROM files \
                     WHERE removed_ms IS NULL",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
                .map_err(db_err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db_err)?
        };
        let mut orphans = 0;
        for app_dir in std::fs::read_dir(&self.dir)? {
            let app_dir = app_dir?;
            let Some(app_key) = app_dir
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i64>().ok())
            else {
                continue;
            };
            if !app_dir.file_type()?.is_dir() {
                continue;
            }
            for shard in std::fs::read_dir(app_dir.path())? {
                let shard = shard?;
                if !shard.file_type()?.is_dir() {
                    continue;
                }
                for f in std::fs::read_dir(shard.path())? {
                    let f = f?;
                    let name = f.file_name();
                    let Some(name) = name.to_str() else { continue };
                    let (uuid, is_thumb) = match name.strip_suffix(".thumb") {
                        Some(u) => (u, true),
                        None => (name, false),
                    };
                    let keep = crate::canonical_uuid(uuid).is_some_and(|u| {
                        live.get(&(app_key, u))
                            .is_some_and(|has_thumb| !is_thumb || *has_thumb)
                    });
                    if !keep {
                        remove_if_exists(&f.path())?;
                        orphans += 1;
                    }
                }
            }
        }
        Ok((partial, orphans))
    }

    /// One batch of the sweep: marks up to [`SWEEP_BATCH`] expired files as
    /// removed, then removes their bytes. Returns how many it handled.
    fn sweep_batch(&self, now_ms: i64) -> Result<u64, FileError> {
        let cutoff = now_ms.saturating_sub(self.retention_ms());
        let batch: Vec<(i64, String)> = {
            let mut db = self.db();
            let tx = db.transaction().map_err(db_err)?;
            let batch = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT app_key, uuid FROM files \
                         WHERE removed_ms IS NULL AND created_ms <= ?1 LIMIT ?2",
                    )
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(params![cutoff, SWEEP_BATCH as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .map_err(db_err)?;
                rows.collect::<rusqlite::Result<Vec<(i64, String)>>>()
                    .map_err(db_err)?
            };
            for (app_key, uuid) in &batch {
                tx.execute(
                    "UPDATE files SET removed_ms = ?1 WHERE app_key = ?2 AND uuid = ?3",
                    params![now_ms, app_key, uuid],
                )
                .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            batch
        };
        for (app_key, uuid) in &batch {
            remove_if_exists(&self.original_path(*app_key, uuid))?;
            remove_if_exists(&self.thumbnail_path(*app_key, uuid))?;
        }
        Ok(batch.len() as u64)
    }

    fn sweep(&self, now_ms: i64) -> Result<SweepReport, FileError> {
        let mut report = SweepReport::default();
        if self.retention.is_zero() {
            return Ok(report);
        }
        loop {
            let n = self.sweep_batch(now_ms)?;
            report.expired += n;
            if n < SWEEP_BATCH as u64 {
                break;
            }
        }
        let forget_before = now_ms
            .saturating_sub(self.retention_ms())
            .saturating_sub(TOMBSTONE.as_millis() as i64);
        report.forgotten = self
            .db()
            .execute(
                "DELETE FROM files WHERE removed_ms IS NOT NULL AND created_ms <= ?1",
                params![forget_before],
            )
            .map_err(db_err)? as u64;
        Ok(report)
    }

    fn insert(&self, f: &StoredFile) -> Result<(), FileError> {
        let thumb = f.thumbnail.as_ref();
        self.db()
            .execute(
                &format!(
                    "INSERT INTO files ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, NULL)"
                ),
                params![
                    f.app_key,
                    f.uuid,
                    f.filename,
                    f.content_type,
                    f.size,
                    f.share_secret,
                    f.restricted,
                    f.created_ms,
                    f.image.map(|d| d.width),
                    f.image.map(|d| d.height),
                    thumb.map(|t| t.content_type.as_str()),
                    thumb.map(|t| t.size),
                    thumb.map(|t| t.dimensions.width),
                    thumb.map(|t| t.dimensions.height),
                ],
            )
            .map_err(db_err)?;
        Ok(())
    }
}

impl LocalFileStore {
    /// Opens (creating if needed) the store in `opts.dir` and cleans up
    /// after any crash. Blocking: call it before serving, or from
    /// `spawn_blocking`.
    pub fn open(opts: LocalOptions) -> Result<Self, FileError> {
        let tmp = opts.dir.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        let db = Connection::open(opts.dir.join("files.db")).map_err(db_err)?;
        db.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
        // FULL: an upload answered 200 survives a power cut.
        db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(db_err)?;
        db.execute_batch(SCHEMA).map_err(db_err)?;
        let inner = Inner {
            dir: opts.dir,
            tmp,
            retention: opts.retention,
            thumbnail_size: opts.thumbnail_size.max(1),
            db: Mutex::new(db),
            thumbnails: Semaphore::new(THUMBNAIL_WORKERS),
        };
        let (partial, orphans) = inner.recover()?;
        if partial > 0 || orphans > 0 {
            tracing::info!(
                partial,
                orphans,
                "removed chat files left by an interrupted upload or sweep"
            );
        }
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, FileError> + Send + 'static,
    ) -> Result<T, FileError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(join_err)?
    }
}

#[async_trait]
impl FileStore for LocalFileStore {
    async fn begin(&self, app_key: i64) -> Result<Box<dyn FileWriter>, FileError> {
        let uuid = chatd_core::ids::uuid_v4_string();
        let tmp = self.inner.tmp.join(format!("{uuid}.part"));
        let tmp_thumbnail = self.inner.tmp.join(format!("{uuid}.thumb.part"));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await?;
        // tokio copies each write into a buffer of its own (2 MiB at most by
        // default) that lives as long as the file: keep it to one chunk.
        file.set_max_buf_size(IO_BUFFER);
        // A second handle on the same file, for the write-backs that run on
        // the blocking pool while `file` stays with its buffer.
        let pushing = Arc::new(file.try_clone().await?.into_std().await);
        Ok(Box::new(LocalWriter {
            inner: self.inner.clone(),
            app_key,
            uuid,
            tmp,
            tmp_thumbnail,
            out: Some(BufWriter::with_capacity(IO_BUFFER, file)),
            pushing,
            pace: Pace::new(0),
            head: Vec::with_capacity(HEAD_LEN),
        }))
    }

    async fn lookup(&self, app_key: i64, uuid: &str) -> Result<Lookup, FileError> {
        let uuid = uuid.to_string();
        self.blocking(move |inner| {
            let found = inner
                .db()
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM files WHERE app_key = ?1 AND uuid = ?2"
                ))
                .map_err(db_err)?
                .query_row(params![app_key, uuid], row_to_file)
                .optional()
                .map_err(db_err)?;
            Ok(match found {
                None => Lookup::NotFound,
                Some((_, true)) => Lookup::Expired,
                Some((f, false)) if inner.is_expired(f.created_ms, chatd_core::clock::now_ms()) => {
                    Lookup::Expired
                }
                Some((f, false)) => Lookup::Found(f),
            })
        })
        .await
    }

    async fn read(
        &self,
        file: &StoredFile,
        variant: Variant,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, FileError> {
        let path = match (variant, &file.thumbnail) {
            (Variant::Thumbnail, Some(_)) => self.inner.thumbnail_path(file.app_key, &file.uuid),
            _ => self.inner.original_path(file.app_key, &file.uuid),
        };
        let mut f = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(FileError::Gone),
            Err(e) => return Err(e.into()),
        };
        Ok(match range {
            None => Box::pin(ReaderStream::with_capacity(f, IO_BUFFER)),
            Some(r) => {
                f.seek(SeekFrom::Start(r.start)).await?;
                let part = f.take(r.end.saturating_sub(r.start));
                Box::pin(ReaderStream::with_capacity(part, IO_BUFFER))
            }
        })
    }

    async fn sweep(&self) -> Result<SweepReport, FileError> {
        self.blocking(|inner| inner.sweep(chatd_core::clock::now_ms()))
            .await
    }

    fn retention(&self) -> Duration {
        self.inner.retention
    }
}

/// An upload on its way to `tmp/`.
struct LocalWriter {
    inner: Arc<Inner>,
    app_key: i64,
    uuid: String,
    tmp: PathBuf,
    tmp_thumbnail: PathBuf,
    out: Option<BufWriter<tokio::fs::File>>,
    /// The upload's bytes go to the device a MiB at a time as they arrive
    /// (`chatd_diskio`): synced only at the end, a 10 MiB upload reached the
    /// device queue at once and held the journal's commits behind it.
    pushing: Arc<std::fs::File>,
    /// Also the upload's length so far.
    pace: Pace,
    /// The first bytes, to recognise images by.
    head: Vec<u8>,
}

/// Whatever is still in `tmp/` goes: all of it unless the upload was
/// renamed into place. Unlinking is quick; an in-flight write lands in the
/// unlinked inode and is freed with it.
impl Drop for LocalWriter {
    fn drop(&mut self) {
        let _ = remove_if_exists(&self.tmp);
        let _ = remove_if_exists(&self.tmp_thumbnail);
    }
}

impl LocalWriter {
    /// Renames the upload (and its thumbnail) into place, durably.
    fn publish(&self, with_thumbnail: bool) -> io::Result<()> {
        let shard = self.inner.shard(self.app_key, &self.uuid);
        let new_shard = !shard.exists();
        std::fs::create_dir_all(&shard)?;
        if with_thumbnail {
            std::fs::rename(
                &self.tmp_thumbnail,
                self.inner.thumbnail_path(self.app_key, &self.uuid),
            )?;
        }
        std::fs::rename(
            &self.tmp,
            self.inner.original_path(self.app_key, &self.uuid),
        )?;
        sync_dir(&shard)?;
        if new_shard {
            if let Some(app_dir) = shard.parent() {
                sync_dir(app_dir)?;
            }
            sync_dir(&self.inner.dir)?;
        }
        Ok(())
    }

    fn unpublish(&self) {
        let _ = remove_if_exists(&self.inner.original_path(self.app_key, &self.uuid));
        let _ = remove_if_exists(&self.inner.thumbnail_path(self.app_key, &self.uuid));
    }
}

#[async_trait]
impl FileWriter for LocalWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), FileError> {
        if self.head.len() < HEAD_LEN {
            let n = (HEAD_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..n]);
        }
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| io::Error::other("write after commit"))?;
        out.write_all(&chunk).await?;
        if let Some((offset, len)) = self.pace.wrote(chunk.len() as u64) {
            // Out of the buffer and into the file first.
            out.flush().await?;
            let file = self.pushing.clone();
            tokio::task::spawn_blocking(move || chatd_diskio::write_back(&file, offset, len))
                .await
                .map_err(join_err)??;
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.pace.at()
    }

    async fn commit(mut self: Box<Self>, new: NewFile) -> Result<StoredFile, FileError> {
        let mut out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("committed twice"))?;
        out.flush().await?;
        let file = out.into_inner();
        file.sync_all().await?;
        drop(file);

        let format = thumbnail::sniff(&self.head);
        let mut image = None;
        let mut thumb = None;
        if let Some(format) = format {
            let _permit = self
                .inner
                .thumbnails
                .acquire()
                .await
                .map_err(io::Error::other)?;
            let size = self.inner.thumbnail_size;
            let (w, h) = (
                new.thumbnail_width.unwrap_or(size).max(1),
                new.thumbnail_height.unwrap_or(size).max(1),
            );
            let (src, dst) = (self.tmp.clone(), self.tmp_thumbnail.clone());
            match tokio::task::spawn_blocking(move || thumbnail::make(&src, format, w, h, &dst))
                .await
            {
                Ok(Ok(made)) => {
                    image = Some(made.image);
                    thumb = made.thumbnail;
                }
                Ok(Err(e)) => {
                    tracing::debug!(uuid = %self.uuid, error = %e, "no thumbnail for this image")
                }
                Err(e) => tracing::warn!(uuid = %self.uuid, error = %e, "thumbnail task failed"),
            }
        }
        let declared = new
            .content_type
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("application/octet-stream"));
        let content_type = declared.unwrap_or_else(|| {
            format
                .map(|f| f.to_mime_type())
                .unwrap_or("application/octet-stream")
                .to_string()
        });
        let stored = StoredFile {
            app_key: self.app_key,
            uuid: self.uuid.clone(),
            filename: new.filename,
            content_type,
            size: self.pace.at(),
            share_secret: chatd_core::ids::random_token(SECRET_LEN),
            restricted: new.restricted,
            created_ms: chatd_core::clock::now_ms(),
            image,
            thumbnail: thumb,
        };

        let this = *self;
        let row = stored.clone();
        tokio::task::spawn_blocking(move || {
            let published = this
                .publish(row.thumbnail.is_some())
                .map_err(FileError::from)
                .and_then(|()| this.inner.insert(&row));
            if published.is_err() {
                this.unpublish();
            }
            published
        })
        .await
        .map_err(join_err)??;
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn open(dir: &Path, retention: Duration) -> LocalFileStore {
        LocalFileStore::open(LocalOptions {
            dir: dir.to_path_buf(),
            retention,
            thumbnail_size: 170,
        })
        .unwrap()
    }

    async fn read_all(s: &LocalFileStore, f: &StoredFile, r: Option<Range<u64>>) -> Vec<u8> {
        let parts: Vec<Bytes> = s
            .read(f, Variant::Original, r)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        parts.concat()
    }

    /// Regular files under `dir`, except the database.
    fn stored_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if !p
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("files.db")
                {
                    out.push(p);
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn committed_files_read_back_and_ranges_work() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), Duration::from_secs(60));
        let mut w = s.begin(7).await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        assert_eq!(w.len(), 11);
        let f = w.commit(NewFile::default()).await.unwrap();
        assert_eq!(f.content_type, "application/octet-stream");
        assert_eq!(f.share_secret.len(), SECRET_LEN);
        assert_eq!(
            s.lookup(7, &f.uuid).await.unwrap(),
            Lookup::Found(f.clone())
        );
        assert_eq!(s.lookup(8, &f.uuid).await.unwrap(), Lookup::NotFound);
        assert_eq!(read_all(&s, &f, None).await, b"hello world");
        assert_eq!(read_all(&s, &f, Some(6..11)).await, b"world");
        assert!(dir
            .path()
            .join("7")
            .join(&f.uuid[..2])
            .join(&f.uuid)
            .is_file());
    }

    #[tokio::test]
    async fn uploads_reach_the_disk_as_they_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), Duration::from_secs(60));
        let mut w = s.begin(3).await.unwrap();
        let chunk = Bytes::from(vec![5u8; 64 << 10]);
        for _ in 0..8 * 16 {
            w.write(chunk.clone()).await.unwrap();
        }
        let part = std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "part"))
            .unwrap();
        let Some(unwritten) = chatd_diskio::unwritten_bytes(&std::fs::File::open(&part).unwrap())
        else {
            eprintln!("no cachestat on this kernel: the page counts are not checked");
            return;
        };
        // Without the pace all 8 MiB would wait for the final fsync (the
        // kernel writes back dirty pages after 30 s by default).
        assert!(
            unwritten <= chatd_diskio::PACE_BYTES,
            "{unwritten} bytes of an 8 MiB upload not yet written to the disk"
        );
        let f = w.commit(NewFile::default()).await.unwrap();
        assert_eq!(f.size, 8 << 20);
        let back = read_all(&s, &f, None).await;
        assert_eq!(back.len(), 8 << 20);
        assert!(back.iter().all(|b| *b == 5));
    }

    #[tokio::test]
    async fn dropped_writers_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), Duration::from_secs(60));
        let mut w = s.begin(1).await.unwrap();
        w.write(Bytes::from(vec![1u8; 100_000])).await.unwrap();
        drop(w);
        assert_eq!(stored_files(dir.path()), Vec::<PathBuf>::new());
    }

    #[tokio::test]
    async fn opening_removes_partial_uploads_and_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), Duration::from_secs(60));
        let w = s.begin(1).await.unwrap();
        let kept = w.commit(NewFile::default()).await.unwrap();
        // A crash mid-upload, and one between the rename and the insert.
        std::fs::write(dir.path().join("tmp/x.part"), b"partial").unwrap();
        let orphan = dir.path().join("1/ab/abcdef01-2345-4678-89ab-cdef01234567");
        std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
        std::fs::write(&orphan, b"orphan").unwrap();
        drop(s);
        let s = open(dir.path(), Duration::from_secs(60));
        assert_eq!(
            stored_files(dir.path()),
            vec![s.inner.original_path(1, &kept.uuid)]
        );
    }

    #[tokio::test]
    async fn expired_files_answer_expired_and_the_sweep_removes_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), Duration::from_millis(1));
        let mut w = s.begin(1).await.unwrap();
        w.write(Bytes::from_static(b"x")).await.unwrap();
        let f = w.commit(NewFile::default()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(s.lookup(1, &f.uuid).await.unwrap(), Lookup::Expired);
        assert_eq!(stored_files(dir.path()).len(), 1);
        let r = s.sweep().await.unwrap();
        assert_eq!(r.expired, 1);
        assert_eq!(stored_files(dir.path()), Vec::<PathBuf>::new());
        assert_eq!(s.lookup(1, &f.uuid).await.unwrap(), Lookup::Expired);
        assert!(matches!(
            s.read(&f, Variant::Original, None).await,
            Err(FileError::Gone)
        ));
    }

    #[tokio::test]
    async fn zero_retention_keeps_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), Duration::ZERO);
        let f = s
            .begin(1)
            .await
            .unwrap()
            .commit(NewFile::default())
            .await
            .unwrap();
        assert_eq!(s.sweep().await.unwrap(), SweepReport::default());
        assert!(matches!(
            s.lookup(1, &f.uuid).await.unwrap(),
            Lookup::Found(_)
        ));
    }
}
