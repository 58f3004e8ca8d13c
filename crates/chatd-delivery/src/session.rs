//! One connected device's view of its inbox: what to send next, what it
//! acknowledged, and where to resume next time. Protocol adapters (the JSON
//! WebSocket, msync) drive it and only translate frames.

use crate::{Delivery, InboxKey, RecentEntries};
use chatd_core::{EntryKind, InboxEntry};
use chatd_storage::{StorageError, Store};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Entries read ahead while a device drains a backlog: when a read fills
/// the window's room, the next this many entries are read in the
/// background while the protocol sends the batch, so that the next batch
/// does not wait for storage.
const PREFETCH: usize = 64;

/// While acknowledgements come in, a connection saves its device's position
/// at most this often (and when it closes). One write per device per
/// interval: with thousands of devices each receiving about a message a
/// second, saving every second doubled the storage writer's work. After a
/// crash a device may get its last few seconds of messages again (same
/// `msg_id`). Documented in docs/protocol.md.
pub const SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// Unsaved acknowledgements that make a connection save at once.
pub const SAVE_EVERY_ACKS: u64 = 64;

type Prefetch = JoinHandle<Result<Vec<InboxEntry>, StorageError>>;

pub struct DeviceSession {
    store: Arc<dyn Store>,
    key: InboxKey,
    device: String,
    connected_at_ms: i64,
    /// Everything up to here was acknowledged (or is not for this device).
    acked: u64,
    /// The last acknowledged position saved to storage.
    saved: u64,
    /// The last inbox position looked at.
    sent: u64,
    /// Positions sent and not yet acknowledged, oldest first.
    in_flight: VecDeque<u64>,
    window: usize,
    notifications: watch::Receiver<u64>,
    /// Entries the sender handed over with their notifications.
    recent: Option<Arc<RecentEntries>>,
    /// A read has reached the end of the inbox since the session opened.
    /// From then on only a notification can announce more (it follows the
    /// commit of anything newer), so without one there is nothing to read.
    caught_up: bool,
    /// The last inbox position read from storage (≥ `sent`).
    read_to: u64,
    /// Entries read (by a prefetch) and not yet given out, oldest first.
    ahead: VecDeque<InboxEntry>,
    /// A background read of the entries after `read_to`, and how many it
    /// asked for.
    prefetch: Option<(Prefetch, usize)>,
}

impl Drop for DeviceSession {
    fn drop(&mut self) {
        if let Some((p, _)) = self.prefetch.take() {
            p.abort();
        }
    }
}

impl DeviceSession {
    /// Opens the session of a device that connected at `connected_at_ms`.
    /// A device seen before resumes after its last acknowledgement; a new
    /// one starts after what the user's other devices already took.
    pub async fn open(
        store: Arc<dyn Store>,
        delivery: &dyn Delivery,
        key: InboxKey,
        device: &str,
        connected_at_ms: i64,
        window: usize,
    ) -> Result<Self, StorageError> {
        // Follow first, read after: a message stored in between is then
        // both notified and read, never neither.
        let notifications = delivery.subscribe(&key);
        let recent = delivery.recent(&key);
        let acked = match store.device_cursor(key.app, &key.user, device).await? {
            Some(c) => c,
            None => store.user_cursor(key.app, &key.user).await?,
        };
        Ok(Self {
            store,
            key,
            device: device.to_string(),
            connected_at_ms,
            acked,
            saved: acked,
            sent: acked,
            in_flight: VecDeque::new(),
            window: window.max(1),
            notifications,
            recent,
            caught_up: false,
            read_to: acked,
            ahead: VecDeque::new(),
            prefetch: None,
        })
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Whether the in-flight window has room for more.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < self.window
    }

    /// Whether the inbox may hold entries not looked at yet.
    pub fn maybe_behind(&self) -> bool {
        !self.ahead.is_empty() || *self.notifications.borrow() > self.sent
    }

    fn is_for_this_device(&self, e: &InboxEntry) -> bool {
        if e.kind.online_only() && e.timestamp_ms < self.connected_at_ms {
            return false;
        }
        !(e.kind == EntryKind::SyncCopy
            && e.options.origin_device.as_deref() == Some(self.device.as_str()))
    }

    /// The next entries to send, as many as the window allows; empty when
    /// caught up or when the window is full.
    pub async fn next_batch(&mut self) -> Result<Vec<InboxEntry>, StorageError> {
        loop {
            let room = self.window.saturating_sub(self.in_flight.len());
            if room == 0 {
                return Ok(Vec::new());
            }
            if self.ahead.is_empty() && !self.read(room).await? {
                return Ok(Vec::new());
            }
            let mut out = Vec::with_capacity(room.min(self.ahead.len()));
            while out.len() < room {
                let Some(e) = self.ahead.pop_front() else {
                    break;
                };
                self.sent = e.seq;
                if self.is_for_this_device(&e) {
                    self.in_flight.push_back(e.seq);
                    out.push(e);
                }
            }
            if self.in_flight.is_empty() {
                // Only skipped entries so far: nothing to wait for.
                self.acked = self.sent;
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Reads entries after `read_to` into `ahead`: the prefetched ones if a
    /// prefetch ran, else up to `room` from storage. False when there is
    /// nothing to read.
    async fn read(&mut self, room: usize) -> Result<bool, StorageError> {
        if let Some((prefetch, asked)) = self.prefetch.take() {
            // A failed task (cancelled, panicked) only means reading again.
            if let Ok(entries) = prefetch.await {
                if self.take_read(entries?, asked, true) {
                    return Ok(true);
                }
            }
        }
        // Once caught up, only notified entries can be new: without a
        // notification past what was read there is nothing to read (the
        // acknowledgements ask too), and with one, exactly the entries up to
        // it are (an inbox's positions follow each other).
        let head = *self.notifications.borrow();
        let (asked, bounded) = if self.caught_up {
            if head <= self.read_to {
                return Ok(false);
            }
            let notified = usize::try_from(head - self.read_to).unwrap_or(usize::MAX);
            let asked = room.min(notified);
            let upto = self.read_to + asked as u64;
            if let Some(entries) = self
                .recent
                .as_ref()
                .and_then(|r| r.between(self.read_to, upto))
            {
                metrics::counter!("chatd_delivery_entries_from_memory_total")
                    .increment(entries.len() as u64);
                return Ok(self.take_read(entries, asked, false));
            }
            (asked, true)
        } else {
            (room, false)
        };
        let entries = self
            .store
            .inbox_after(self.key.app, &self.key.user, self.read_to, asked)
            .await?;
        Ok(self.take_read(entries, asked, !bounded))
    }

    /// Keeps a read of at most `asked` entries after `read_to`; false if it
    /// found none. A full read starts a prefetch of what follows, if
    /// `may_prefetch`.
    fn take_read(&mut self, entries: Vec<InboxEntry>, asked: usize, may_prefetch: bool) -> bool {
        if entries.len() < asked {
            self.caught_up = true;
        }
        let Some(last) = entries.last() else {
            return false;
        };
        self.read_to = last.seq;
        let full = entries.len() >= asked;
        self.ahead.extend(entries);
        if full && may_prefetch {
            // Probably more behind: read it while this batch is sent.
            let store = self.store.clone();
            let (app, user, after) = (self.key.app, self.key.user.clone(), self.read_to);
            let n = PREFETCH.min(self.window);
            let task = tokio::spawn(async move { store.inbox_after(app, &user, after, n).await });
            self.prefetch = Some((task, n));
        }
        true
    }

    /// The device acknowledged everything up to `seq`. False if it
    /// acknowledges what it was never sent.
    pub fn ack(&mut self, seq: u64) -> bool {
        if seq > self.sent {
            return false;
        }
        while self.in_flight.front().is_some_and(|s| *s <= seq) {
            self.in_flight.pop_front();
        }
        self.acked = self.acked.max(seq);
        if self.in_flight.is_empty() {
            self.acked = self.sent;
        }
        true
    }

    /// Waits until the inbox grows past what was looked at.
    pub async fn wait_for_news(&mut self) {
        let sent = self.sent;
        if self
            .notifications
            .wait_for(|head| *head > sent)
            .await
            .is_err()
        {
            // The delivery side went away (shutdown): wait forever, the
            // connection's other branches end it.
            std::future::pending::<()>().await;
        }
    }

    /// Saves the acknowledged position if it moved. Acknowledgements are
    /// saved in batches: losing the last ones in a crash only means those
    /// messages are sent again, and clients drop repeats by `msg_id`.
    pub async fn save(&mut self) -> Result<(), StorageError> {
        if self.acked > self.saved {
            self.store
                .save_device_cursor(self.key.app, &self.key.user, &self.device, self.acked)
                .await?;
            self.saved = self.acked;
        }
        Ok(())
    }

    /// Whether there are acknowledgements not saved yet.
    pub fn unsaved(&self) -> u64 {
        self.acked - self.saved
    }

    /// [`save`](Self::save), logging a failure instead of returning it: a
    /// position not saved only means that the device may get those messages
    /// again, which is no reason to drop the connection.
    pub async fn save_or_warn(&mut self) {
        if let Err(e) = self.save().await {
            tracing::warn!(error = %e, "saving the acknowledged position failed");
        }
    }

    /// Saves at once when [`SAVE_EVERY_ACKS`] acknowledgements are unsaved
    /// (the periodic [`SAVE_INTERVAL`] save covers the rest).
    pub async fn save_if_many_unsaved(&mut self) {
        if self.unsaved() >= SAVE_EVERY_ACKS {
            self.save_or_warn().await;
        }
    }
}
