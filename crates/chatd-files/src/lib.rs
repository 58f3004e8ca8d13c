//! Chat files: the bytes behind image, voice, video and file messages.
//!
//! A file is uploaded once (`POST …/chatfiles`) and then fetched by the
//! message's recipients (`GET …/chatfiles/{uuid}`). This crate keeps the
//! bytes, their metadata and the thumbnails of images behind the
//! [`FileStore`] trait, so that the HTTP layer never touches a path and a
//! store backed by an S3-compatible object store can follow the local one.
//!
//! The contract every store keeps:
//! - uploads stream: a [`FileWriter`] takes chunks as they arrive and never
//!   holds the whole file in memory;
//! - a file becomes visible only when [`FileWriter::commit`] returns: a
//!   writer dropped before that (client gone, size limit passed, crash)
//!   leaves nothing a reader could see;
//! - files are keyed by app: a lookup names the app, and one app never sees
//!   another's files;
//! - files expire `retention` after their upload; an expired file answers
//!   [`Lookup::Expired`] at once, and [`FileStore::sweep`] removes its bytes.

pub mod local;
mod thumbnail;

pub use local::{LocalFileStore, LocalOptions};

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The bytes of a file (or part of it), as they are read.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("file storage i/o: {0}")]
    Io(#[from] io::Error),
    #[error("file metadata: {0}")]
    Metadata(String),
    /// The bytes of a file that was found are no longer there (the sweep
    /// removed them between the lookup and the read).
    #[error("the file's bytes are gone")]
    Gone,
}

/// Width and height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimensions {
    pub width: u32,
    pub height: u32,
}

/// A thumbnail stored beside its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub content_type: String,
    pub size: u64,
    pub dimensions: Dimensions,
}

/// A stored file's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Storage key of the app that owns it.
    pub app_key: i64,
    /// Canonical (lowercase, hyphenated) UUID.
    pub uuid: String,
    /// The name the upload gave, without any directory part; may be empty.
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    /// Returned on upload; required to download when `restricted`.
    pub share_secret: String,
    pub restricted: bool,
    pub created_ms: i64,
    /// Dimensions of an image that could be decoded (after its EXIF
    /// orientation is applied).
    pub image: Option<Dimensions>,
    /// A separate thumbnail; `None` when the file is no image or is already
    /// no larger than the thumbnail asked for, and the original serves.
    pub thumbnail: Option<Thumbnail>,
}

/// Which bytes of a file to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Original,
    Thumbnail,
}

impl StoredFile {
    /// The variant that answers a request for the thumbnail (`true`) or the
    /// file, with its length and content type: a file without a thumbnail
    /// of its own answers with the original.
    pub fn variant(&self, thumbnail: bool) -> (Variant, u64, &str) {
        match (&self.thumbnail, thumbnail) {
            (Some(t), true) => (Variant::Thumbnail, t.size, &t.content_type),
            _ => (Variant::Original, self.size, &self.content_type),
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(StoredFile),
    /// Uploaded, but older than the retention: its bytes are or will be
    /// removed.
    Expired,
    NotFound,
}

/// The upload's own information, known once the multipart field is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewFile {
    pub filename: String,
    /// The content type the upload declared, if any; the store falls back
    /// to the image type it recognises, else `application/octet-stream`.
    pub content_type: Option<String>,
    pub restricted: bool,
    /// The thumbnail box asked for; each missing side is the store's
    /// default size.
    pub thumbnail_width: Option<u32>,
    pub thumbnail_height: Option<u32>,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired files whose bytes were removed.
    pub expired: u64,
    /// Expired files forgotten altogether (after [`TOMBSTONE`]).
    pub forgotten: u64,
}

/// How long an expired file is still known as expired (rather than
/// unknown) after its bytes are removed.
pub const TOMBSTONE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Storage for chat files.
#[async_trait]
pub trait FileStore: Send + Sync {
    /// Starts a new file of app `app_key`. Nothing is visible until the
    /// writer is committed; dropping it discards what it holds.
    async fn begin(&self, app_key: i64) -> Result<Box<dyn FileWriter>, FileError>;

    /// Finds file `uuid` of app `app_key`. `uuid` must already be canonical
    /// (see [`canonical_uuid`]).
    async fn lookup(&self, app_key: i64, uuid: &str) -> Result<Lookup, FileError>;

    /// Reads `range` (the whole variant when `None`) of a file found by
    /// [`FileStore::lookup`]. The range must lie inside the variant.
    async fn read(
        &self,
        file: &StoredFile,
        variant: Variant,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, FileError>;

    /// Removes the bytes of expired files, and forgets files expired for
    /// longer than [`TOMBSTONE`].
    async fn sweep(&self) -> Result<SweepReport, FileError>;

    /// How long files are kept after their upload.
    fn retention(&self) -> Duration;
}

/// One upload in progress.
#[async_trait]
pub trait FileWriter: Send {
    /// Appends a chunk.
    async fn write(&mut self, chunk: Bytes) -> Result<(), FileError>;

    /// Bytes written so far.
    fn len(&self) -> u64;

    /// Whether nothing was written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes the file durable and visible, with its thumbnail if it is an
    /// image, and returns its metadata.
    async fn commit(self: Box<Self>, file: NewFile) -> Result<StoredFile, FileError>;
}

/// `s` as a canonical UUID (lowercase, hyphenated, 36 characters), or
/// `None` for anything else: the only names ever turned into storage keys.
pub fn canonical_uuid(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let ok = b.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    });
    ok.then(|| s.to_ascii_lowercase())
}

/// How often the background sweep runs for a given retention: a tenth of
/// it, between one second and ten minutes.
pub fn sweep_interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

/// Runs [`FileStore::sweep`] every [`sweep_interval`], starting now, until
/// the task is dropped.
pub async fn run_sweeper(store: Arc<dyn FileStore>) {
    let mut every = tokio::time::interval(sweep_interval(store.retention()));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match store.sweep().await {
            Ok(r) if r.expired > 0 || r.forgotten > 0 => {
                tracing::info!(
                    expired = r.expired,
                    forgotten = r.forgotten,
                    "chat files swept"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping chat files failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_uuids_pass() {
        let u = "5fd74830-57a1-11e9-822a-81ea50bb049d";
        assert_eq!(canonical_uuid(u).as_deref(), Some(u));
        assert_eq!(
            canonical_uuid(&u.to_ascii_uppercase()).as_deref(),
            Some(u),
            "UUIDs are case-insensitive"
        );
        for bad in [
            "",
            "..",
            "../../files.db",
            "5fd7483057a111e9822a81ea50bb049d",
            "{5fd74830-57a1-11e9-822a-81ea50bb049d}",
            "5fd74830-57a1-11e9-822a-81ea50bb049/",
            "5fd74830-57a1-11e9-822a-81ea50bb04.d",
            "5fd74830/57a1-11e9-822a-81ea50bb049d",
            "5fd74830-57a1-11e9-822a-81ea50bb049dd",
            "5fd74830-57a1-11e9-822a-81ea50bb049\u{e9}",
        ] {
            assert_eq!(canonical_uuid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sweep_interval_is_bounded() {
        assert_eq!(
            sweep_interval(Duration::from_secs(7 * 86400)),
            Duration::from_secs(600)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            sweep_interval(Duration::from_secs(100)),
            Duration::from_secs(10)
        );
    }
}
