//! Who is connected: devices per user, the device limit, kicks, and live
//! receipts.

use crate::InboxKey;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Why the server ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// The same device connected again.
    Replaced,
    /// A newer device took the slot (the user is over the device limit).
    TooManyDevices,
    /// An administrator forced the user or device offline.
    Disconnected,
}

/// One connected device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub device: String,
    pub conn_id: u64,
    pub connected_at_ms: i64,
    /// Which client protocol it speaks (`json`, `msync`).
    pub protocol: &'static str,
}

/// What a receipt acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    /// The message reached a device of its recipient.
    Delivered,
    /// The recipient read the message.
    Read,
    /// The recipient read the whole conversation.
    ConversationRead,
}

/// A recipient's acknowledgement, relayed live to the sender's connected
/// devices that asked for receipts. Receipts are not stored: a sender with
/// no such device connected at that moment does not get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub kind: ReceiptKind,
    /// The recipient, who acknowledged.
    pub reader: String,
    /// The acknowledged message (`None` for a whole conversation).
    pub msg_id: Option<u64>,
    /// The receipt's own id.
    pub id: u64,
    pub timestamp_ms: i64,
}

/// Receipts buffered per connection; past this, new ones are dropped.
const RECEIPT_BUFFER: usize = 256;

struct Slot {
    info: DeviceInfo,
    kick: Option<oneshot::Sender<Kick>>,
    /// Resolves when this connection's registration is dropped, i.e. after
    /// it saved its acknowledged position.
    released: Option<oneshot::Receiver<()>>,
    receipts: Option<mpsc::Sender<Receipt>>,
}

/// The devices connected to this process.
#[derive(Default)]
pub struct Connections {
    users: Mutex<HashMap<InboxKey, Vec<Slot>>>,
    next_id: AtomicU64,
}

/// A live connection's place in the registry; dropping it unregisters.
pub struct Registration {
    registry: Arc<Connections>,
    pub key: InboxKey,
    pub info: DeviceInfo,
    /// Fires when the server wants this connection closed.
    pub kicked: oneshot::Receiver<Kick>,
    /// Receipts for this user's messages, for connections registered with
    /// [`Connections::register_with_receipts`].
    pub receipts: Option<mpsc::Receiver<Receipt>>,
    /// The release of the connection of the same device this one replaced.
    replaced: Option<oneshot::Receiver<()>>,
    /// Dropped with the registration: tells a replacing connection that this
    /// one is gone.
    _release: oneshot::Sender<()>,
}

impl Registration {
    /// Waits (at most `limit`) until the connection this one replaced has
    /// finished: it saves its acknowledged position before it lets go, so a
    /// device that reconnects at once resumes after its last ack instead of
    /// being sent an acknowledged message again.
    pub async fn wait_for_replaced(&mut self, limit: std::time::Duration) {
        if let Some(rx) = self.replaced.take() {
            let _ = tokio::time::timeout(limit, rx).await;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.remove(&self.key, self.info.conn_id);
    }
}

impl Connections {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a device. The same device connected elsewhere is replaced;
    /// past `max_devices`, the longest-connected device is kicked.
    pub fn register(
        self: &Arc<Self>,
        key: &InboxKey,
        device: &str,
        protocol: &'static str,
        max_devices: usize,
    ) -> Registration {
        self.register_device(key, device, protocol, max_devices, false)
    }

    /// [`Connections::register`], for a connection that also takes the
    /// receipts of its user's messages ([`Connections::send_receipt`]).
    pub fn register_with_receipts(
        self: &Arc<Self>,
        key: &InboxKey,
        device: &str,
        protocol: &'static str,
        max_devices: usize,
    ) -> Registration {
        self.register_device(key, device, protocol, max_devices, true)
    }

    fn register_device(
        self: &Arc<Self>,
        key: &InboxKey,
        device: &str,
        protocol: &'static str,
        max_devices: usize,
        receipts: bool,
    ) -> Registration {
        let (tx, rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        let mut replaced = None;
        let (receipts_tx, receipts_rx) = if receipts {
            let (t, r) = mpsc::channel(RECEIPT_BUFFER);
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let info = DeviceInfo {
            device: device.to_string(),
            conn_id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            connected_at_ms: chatd_core::clock::now_ms(),
            protocol,
        };
        {
            let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
            let slots = users.entry(key.clone()).or_default();
            slots.retain_mut(|s| {
                if s.info.device == device {
                    kick(s, Kick::Replaced);
                    replaced = s.released.take();
                    false
                } else {
                    true
                }
            });
            while !slots.is_empty() && slots.len() >= max_devices.max(1) {
                let mut oldest = slots.remove(0);
                kick(&mut oldest, Kick::TooManyDevices);
            }
            slots.push(Slot {
                info: info.clone(),
                kick: Some(tx),
                released: Some(release_rx),
                receipts: receipts_tx,
            });
        }
        metrics::gauge!("chatd_connections").increment(1.0);
        Registration {
            registry: self.clone(),
            key: key.clone(),
            info,
            kicked: rx,
            receipts: receipts_rx,
            replaced,
            _release: release_tx,
        }
    }

    /// Hands a receipt to every connected device of `key` (the message's
    /// sender) that takes receipts; returns how many got it.
    pub fn send_receipt(&self, key: &InboxKey, receipt: &Receipt) -> usize {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.get(key).map_or(0, |slots| {
            slots
                .iter()
                .filter_map(|s| s.receipts.as_ref())
                .filter(|tx| tx.try_send(receipt.clone()).is_ok())
                .count()
        })
    }

    fn remove(&self, key: &InboxKey, conn_id: u64) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slots) = users.get_mut(key) {
            slots.retain(|s| s.info.conn_id != conn_id);
            if slots.is_empty() {
                users.remove(key);
            }
        }
        metrics::gauge!("chatd_connections").decrement(1.0);
    }

    /// Connected devices of every user.
    pub fn total(&self) -> usize {
        self.users
            .lock()
            .map(|u| u.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    pub fn is_online(&self, key: &InboxKey) -> bool {
        self.users
            .lock()
            .map(|u| u.get(key).is_some_and(|s| !s.is_empty()))
            .unwrap_or(false)
    }

    pub fn devices(&self, key: &InboxKey) -> Vec<DeviceInfo> {
        self.users
            .lock()
            .map(|u| {
                u.get(key)
                    .map(|s| s.iter().map(|s| s.info.clone()).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    }

    /// Kicks every device of a user; returns how many.
    pub fn disconnect_user(&self, key: &InboxKey) -> usize {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.get_mut(key).map_or(0, |slots| {
            slots
                .iter_mut()
                .map(|s| kick(s, Kick::Disconnected))
                .filter(|kicked| *kicked)
                .count()
        })
    }

    /// Kicks one device; false if it is not connected.
    pub fn disconnect_device(&self, key: &InboxKey, device: &str) -> bool {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let mut kicked = false;
        if let Some(slots) = users.get_mut(key) {
            for s in slots.iter_mut().filter(|s| s.info.device == device) {
                kicked |= kick(s, Kick::Disconnected);
            }
        }
        kicked
    }
}

fn kick(slot: &mut Slot, why: Kick) -> bool {
    slot.kick.take().is_some_and(|tx| tx.send(why).is_ok())
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

    #[test]
    fn device_limit_kicks_the_oldest_and_same_device_replaces() {
        let c = Connections::new();
        let mut a = c.register(&key("u"), "a", "json", 2);
        let mut b = c.register(&key("u"), "b", "json", 2);
        assert_eq!(c.devices(&key("u")).len(), 2);
        let _c3 = c.register(&key("u"), "c", "json", 2);
        assert_eq!(a.kicked.try_recv(), Ok(Kick::TooManyDevices));
        let _b2 = c.register(&key("u"), "b", "json", 2);
        assert_eq!(b.kicked.try_recv(), Ok(Kick::Replaced));
        let names: Vec<String> = c.devices(&key("u")).into_iter().map(|d| d.device).collect();
        assert_eq!(names, vec!["c", "b"]);
        drop(a);
        drop(b);
        assert_eq!(
            c.devices(&key("u")).len(),
            2,
            "kicked slots were already removed"
        );
    }

    #[test]
    fn receipts_reach_the_devices_that_take_them() {
        let c = Connections::new();
        let mut sdk = c.register_with_receipts(&key("u"), "a", "msync", 4);
        let json = c.register(&key("u"), "b", "json", 4);
        assert!(json.receipts.is_none());
        let r = Receipt {
            kind: ReceiptKind::Read,
            reader: "v".into(),
            msg_id: Some(7),
            id: 8,
            timestamp_ms: 9,
        };
        assert_eq!(c.send_receipt(&key("u"), &r), 1);
        assert_eq!(sdk.receipts.as_mut().unwrap().try_recv(), Ok(r.clone()));
        assert_eq!(c.send_receipt(&key("nobody"), &r), 0);
    }

    #[tokio::test]
    async fn a_replacing_connection_waits_for_the_replaced_one() {
        let c = Connections::new();
        let old = c.register(&key("u"), "a", "json", 4);
        let mut new = c.register(&key("u"), "a", "json", 4);
        let waited = tokio::spawn(async move {
            new.wait_for_replaced(std::time::Duration::from_secs(5))
                .await;
            std::time::Instant::now()
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let dropped_at = std::time::Instant::now();
        drop(old);
        assert!(waited.await.unwrap() >= dropped_at);
        let mut fresh = c.register(&key("u"), "b", "json", 4);
        tokio::time::timeout(
            std::time::Duration::from_millis(100),
            fresh.wait_for_replaced(std::time::Duration::from_secs(5)),
        )
        .await
        .expect("nothing to wait for");
    }

    #[test]
    fn presence_and_disconnects() {
        let c = Connections::new();
        assert!(!c.is_online(&key("u")));
        let mut r1 = c.register(&key("u"), "a", "json", 4);
        let mut r2 = c.register(&key("u"), "b", "json", 4);
        assert!(c.is_online(&key("u")));
        assert!(c.disconnect_device(&key("u"), "b"));
        assert_eq!(r2.kicked.try_recv(), Ok(Kick::Disconnected));
        assert!(r1.kicked.try_recv().is_err());
        assert_eq!(c.disconnect_user(&key("u")), 1);
        assert_eq!(r1.kicked.try_recv(), Ok(Kick::Disconnected));
        drop(r1);
        drop(r2);
        assert!(!c.is_online(&key("u")));
        assert!(!c.disconnect_device(&key("u"), "a"));
    }
}
