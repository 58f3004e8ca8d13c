//! chatd delivery.
//!
//! The pipeline stores a message first and then tells [`Delivery`] that an
//! inbox grew. Delivery carries that notification: clients pull the
//! messages from their inbox, from their last acknowledged position, so a
//! lost notification delays a message but never loses it. In one process the
//! notification may also carry the stored entry itself ([`RecentEntries`]),
//! so that a connected device does not read back what was just committed.
//!
//! [`InProcessDelivery`] fans notifications out to subscribers in this
//! process; a broker-backed implementation (NATS) would carry the same
//! notifications between nodes.

pub mod recent;
pub mod registry;
pub mod save_timer;
pub mod session;

pub use recent::RecentEntries;
pub use registry::{Connections, DeviceInfo, Kick, Receipt, ReceiptKind, Registration};
pub use save_timer::SaveTimer;
pub use session::{DeviceSession, SAVE_INTERVAL};

use chatd_core::InboxEntry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// An inbox: one user of one app.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InboxKey {
    pub app: i64,
    pub user: String,
}

pub trait Delivery: Send + Sync + 'static {
    /// `key`'s inbox now holds entries up to `seq`.
    fn notify(&self, key: &InboxKey, seq: u64);
    /// `key`'s inbox now holds `entry` (stored): a notification that also
    /// hands the entry to followers that can use it.
    fn deliver(&self, key: &InboxKey, entry: InboxEntry) {
        self.notify(key, entry.seq);
    }
    /// Whether [`Delivery::deliver`] would use an entry for `key` (so that
    /// the sender builds one only then).
    fn wants_entries(&self, _key: &InboxKey) -> bool {
        false
    }
    /// The entries recently delivered to `key`, for a follower of it.
    fn recent(&self, _key: &InboxKey) -> Option<Arc<RecentEntries>> {
        None
    }
    /// Follows `key`'s inbox: the receiver always holds the highest sequence
    /// notified since subscribing (0 before any).
    fn subscribe(&self, key: &InboxKey) -> watch::Receiver<u64>;
    /// The connected devices (presence, device limit, kicks).
    fn connections(&self) -> &Arc<Connections>;
    /// Whether any device of the user is connected.
    fn is_online(&self, key: &InboxKey) -> bool {
        self.connections().is_online(key)
    }
}

/// Notifications within one process: a watch channel per followed inbox.
///
/// A watch channel keeps only the latest value, so a burst of messages to a
/// busy user costs one wake-up, and a slow subscriber can never make the
/// sender wait or memory grow.
#[derive(Default)]
pub struct InProcessDelivery {
    inboxes: Mutex<HashMap<InboxKey, Followed>>,
    connections: Arc<Connections>,
}

struct Followed {
    tx: watch::Sender<u64>,
    recent: Arc<RecentEntries>,
}

impl InProcessDelivery {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inboxes with at least one subscriber.
    pub fn followed(&self) -> usize {
        self.inboxes.lock().map(|m| m.len()).unwrap_or(0)
    }
}

impl Delivery for InProcessDelivery {
    fn notify(&self, key: &InboxKey, seq: u64) {
        self.announce(key, seq, None);
    }

    fn deliver(&self, key: &InboxKey, entry: InboxEntry) {
        self.announce(key, entry.seq, Some(entry));
    }

    fn wants_entries(&self, key: &InboxKey) -> bool {
        self.inboxes
            .lock()
            .map(|m| m.get(key).is_some_and(|f| f.tx.receiver_count() > 0))
            .unwrap_or(false)
    }

    fn recent(&self, key: &InboxKey) -> Option<Arc<RecentEntries>> {
        let map = self.inboxes.lock().ok()?;
        map.get(key).map(|f| f.recent.clone())
    }

    fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    fn subscribe(&self, key: &InboxKey) -> watch::Receiver<u64> {
        let mut map = self.inboxes.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some(f) => f.tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(0);
                let recent = Arc::new(RecentEntries::default());
                map.insert(key.clone(), Followed { tx, recent });
                rx
            }
        }
    }
}

impl InProcessDelivery {
    /// The entry (if any) is kept before the sequence is published, so that
    /// a follower woken by the sequence finds it.
    fn announce(&self, key: &InboxKey, seq: u64, entry: Option<InboxEntry>) {
        let Ok(mut map) = self.inboxes.lock() else {
            return;
        };
        if let Some(f) = map.get(key) {
            if f.tx.receiver_count() == 0 {
                map.remove(key);
            } else {
                if let Some(e) = entry {
                    f.recent.push(e);
                }
                f.tx.send_if_modified(|cur| {
                    let grew = seq > *cur;
                    if grew {
                        *cur = seq;
                    }
                    grew
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(u: &str) -> InboxKey {
        InboxKey {
            app: 1,
            user: u.into(),
        }
    }

    #[tokio::test]
    async fn subscribers_see_the_latest_sequence() {
        let d = InProcessDelivery::new();
        let mut a = d.subscribe(&key("a"));
        let mut a2 = d.subscribe(&key("a"));
        let b = d.subscribe(&key("b"));
        d.notify(&key("a"), 3);
        d.notify(&key("a"), 2); // late, out of order: ignored
        a.changed().await.unwrap();
        a2.changed().await.unwrap();
        assert_eq!(*a.borrow(), 3);
        assert_eq!(*a2.borrow(), 3);
        assert_eq!(*b.borrow(), 0);
    }

    #[test]
    fn inboxes_without_subscribers_are_forgotten() {
        let d = InProcessDelivery::new();
        drop(d.subscribe(&key("a")));
        assert_eq!(d.followed(), 1);
        d.notify(&key("a"), 1);
        assert_eq!(d.followed(), 0);
        d.notify(&key("nobody"), 1);
        assert_eq!(d.followed(), 0);
    }
}
