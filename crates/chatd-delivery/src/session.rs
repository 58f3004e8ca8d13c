//! One connected device's view of its inbox: what to send next, what it
//! acknowledged, and where to resume next time. Protocol adapters (the JSON
//! WebSocket, msync) drive it and only translate frames.

use crate::{Delivery, InboxKey};
use chatd_core::{EntryKind, InboxEntry};
use chatd_storage::{StorageError, Store};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::watch;

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
        *self.notifications.borrow() > self.sent
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
            let entries = self
                .store
                .inbox_after(self.key.app, &self.key.user, self.sent, room)
                .await?;
            if entries.is_empty() {
                return Ok(Vec::new());
            }
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
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
}
