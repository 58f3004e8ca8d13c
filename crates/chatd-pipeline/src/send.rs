//! The send path: limit, assign ids, store, notify.

use crate::error::SendError;
use crate::rate::RateLimiters;
use crate::validate::SendRequest;
use chatd_core::{
    AppRecord, EntryKind, InboxEntry, MessageIdGenerator, NewMessage, Origin, Recipient,
};
use chatd_delivery::{Delivery, InboxKey};
use chatd_storage::Store;
use std::sync::Arc;

/// What a recipient got: the name as the request spelled it, and the id of
/// its copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub to: String,
    pub msg_id: u64,
}

/// Where a send request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The REST API (an app server): limits count per app.
    Rest,
    /// A connected device of the sender: limits count per user, and the
    /// sender's other online devices get a copy.
    Device(String),
}

/// Receives the messages that wait for a recipient with no online device,
/// so that a push provider can notify them. Must not block.
pub trait OfflineSink: Send + Sync + 'static {
    fn offline_message(&self, app: &AppRecord, entry: &InboxEntry);
}

pub struct Pipeline {
    store: Arc<dyn Store>,
    delivery: Arc<dyn Delivery>,
    ids: MessageIdGenerator,
    limits: RateLimiters,
    offline: Option<Arc<dyn OfflineSink>>,
}

impl Pipeline {
    pub fn new(
        store: Arc<dyn Store>,
        delivery: Arc<dyn Delivery>,
        ids: MessageIdGenerator,
    ) -> Self {
        Self {
            store,
            delivery,
            ids,
            limits: RateLimiters::new(),
            offline: None,
        }
    }

    /// Hands messages for offline recipients to `sink` (push).
    pub fn with_offline_sink(mut self, sink: Arc<dyn OfflineSink>) -> Self {
        self.offline = Some(sink);
        self
    }

    pub fn rate_limits(&self) -> &RateLimiters {
        &self.limits
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn delivery(&self) -> &Arc<dyn Delivery> {
        &self.delivery
    }

    fn online(&self, app: i64, user: &str) -> bool {
        self.delivery.is_online(&InboxKey {
            app,
            user: user.to_string(),
        })
    }

    /// Sends one validated request. On `Ok`, every copy is durably stored.
    pub async fn send(
        &self,
        app: &AppRecord,
        mut req: SendRequest,
        source: Source,
    ) -> Result<Vec<Accepted>, SendError> {
        let n = req.to.len() as u32;
        let allowed = match &source {
            Source::Rest => self.limits.check_messages(app.key, &app.settings.limits, n),
            Source::Device(_) => {
                self.limits
                    .check_user_messages(app.key, &req.from, &app.settings.limits, n)
            }
        };
        if !allowed {
            metrics::counter!("chatd_messages_refused_total", "reason" => "rate")
                .increment(u64::from(n));
            return Err(SendError::RateLimited);
        }

        let (sync, conversations) = match &source {
            Source::Rest => {
                req.options.origin = Origin::Rest;
                (
                    req.options.sync_device && req.from != "admin",
                    app.settings.rest_messages_in_conversations,
                )
            }
            Source::Device(device) => {
                req.options.origin = Origin::Client;
                req.options.origin_device = Some(device.clone());
                (true, true)
            }
        };
        // Presence is read before the timestamp is taken, so that every
        // device counted as online here connected before the message's time.
        let sync = sync && self.online(app.key, &req.from);
        let mut accepted = Vec::with_capacity(req.to.len());
        let mut recipients = Vec::with_capacity(req.to.len() * if sync { 2 } else { 1 });
        for (written, canonical) in &req.to {
            let msg_id = self.ids.next_id();
            accepted.push(Accepted {
                to: written.clone(),
                msg_id,
            });
            // ROUTE_ONLINE to a user with no online device is kept nowhere.
            if req.options.route_online && !self.online(app.key, canonical) {
                continue;
            }
            recipients.push(Recipient::incoming(
                canonical,
                &req.from,
                msg_id,
                req.options.route_online,
            ));
            if sync {
                recipients.push(Recipient::sync_copy(&req.from, canonical, msg_id));
            }
        }
        let timestamp_ms = chatd_core::clock::now_ms();
        // What the notifications need once the message is stored: the
        // recipients, and the content only if a push may be built from it or
        // a connected device of a recipient can take the entry from memory.
        let recipients_after = recipients.clone();
        let may_push = self.offline.is_some() && !req.options.ignore_notification;
        let followed = recipients.iter().any(|r| {
            self.delivery.wants_entries(&InboxKey {
                app: app.key,
                user: r.owner.clone(),
            })
        });
        let content = (may_push || followed).then(|| {
            (
                req.from.clone(),
                req.body.clone(),
                req.ext.clone(),
                req.options.clone(),
            )
        });
        let msg_type = req.msg_type;
        let msg = NewMessage {
            app: app.key,
            from: req.from,
            recipients,
            msg_type,
            body: req.body,
            ext: req.ext,
            timestamp_ms,
            options: req.options,
            conversations,
        };
        let stored = self.store.append_message(msg).await?;
        accepted_counter().increment(u64::from(n));

        for (r, s) in recipients_after.into_iter().zip(&stored) {
            let key = InboxKey {
                app: app.key,
                user: r.owner.clone(),
            };
            let Some((from, body, ext, options)) = &content else {
                self.delivery.notify(&key, s.seq);
                continue;
            };
            // The entry exactly as storage would give it back.
            let entry = InboxEntry {
                seq: s.seq,
                msg_id: r.msg_id,
                owner: r.owner,
                from: from.clone(),
                to: r.to,
                kind: r.kind,
                msg_type,
                body: body.clone(),
                ext: ext.clone(),
                timestamp_ms,
                options: options.clone(),
            };
            let push = match &self.offline {
                Some(sink) if may_push && r.kind == EntryKind::Incoming => {
                    (!self.delivery.is_online(&key)).then_some(sink)
                }
                _ => None,
            };
            match push {
                Some(sink) => {
                    self.delivery.notify(&key, s.seq);
                    sink.offline_message(app, &entry);
                }
                // A plain notification when nobody here follows the inbox.
                None => self.delivery.deliver(&key, entry),
            }
        }
        Ok(accepted)
    }
}

/// The handle of `chatd_messages_accepted_total`, looked up once (after
/// the server installed its recorder) rather than at every send.
fn accepted_counter() -> &'static metrics::Counter {
    static COUNTER: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
    COUNTER.get_or_init(|| metrics::counter!("chatd_messages_accepted_total"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_send_request;
    use chatd_core::AppLimits;
    use chatd_delivery::InProcessDelivery;
    use chatd_storage::{SqliteOptions, SqliteStore};

    /// A pipeline over a fresh store in `dir`, and app 1.
    fn pipeline(
        dir: &std::path::Path,
    ) -> (Arc<dyn Store>, Arc<InProcessDelivery>, Pipeline, AppRecord) {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(SqliteOptions::in_dir(dir)).unwrap());
        let delivery = Arc::new(InProcessDelivery::new());
        let p = Pipeline::new(
            store.clone(),
            delivery.clone(),
            MessageIdGenerator::new(0, 0),
        );
        let mut app = AppRecord::generate("o", "a", 0);
        app.key = 1;
        (store, delivery, p, app)
    }

    #[tokio::test]
    async fn send_stores_then_notifies_and_refusals_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, delivery, p, mut app) = pipeline(dir.path());
        app.settings.limits.msgs_per_min = 3;
        let mut watch = delivery.subscribe(&InboxKey {
            app: 1,
            user: "u2".into(),
        });

        let req = |to: &str| {
            let raw = format!(r#"{{"to":{to},"type":"txt","body":{{"msg":"hi"}}}}"#);
            parse_send_request(raw.as_bytes(), &AppLimits::default()).unwrap()
        };
        let sent = p
            .send(&app, req(r#"["U2","u3"]"#), Source::Rest)
            .await
            .unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].to, "U2");
        assert!(sent[0].msg_id < sent[1].msg_id);
        watch.changed().await.unwrap();
        assert_eq!(*watch.borrow(), 1);

        assert!(matches!(
            p.send(&app, req(r#"["u2","u3"]"#), Source::Rest).await,
            Err(SendError::RateLimited)
        ));
        assert_eq!(store.offline_count(1, "u2").await.unwrap(), 1);
        assert_eq!(store.offline_count(1, "u3").await.unwrap(), 1);
        store.close().await;
    }

    #[tokio::test]
    async fn a_followed_inbox_gets_the_entry_exactly_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (store, delivery, p, app) = pipeline(dir.path());
        let followed = InboxKey {
            app: 1,
            user: "u2".into(),
        };
        let _watch = delivery.subscribe(&followed);
        let raw = br#"{"from":"Boss","to":["U2","u3"],"type":"loc","body":{"lat":"1.5","lng":"2","addr":"x"},
            "ext":{"k":[1,{"z":null}]},"sync_device":true,"roam_ignore_users":["u9"]}"#;
        let req = parse_send_request(raw, &AppLimits::default()).unwrap();
        p.send(&app, req, Source::Device("phone".into()))
            .await
            .unwrap();
        let stored = store.inbox_after(1, "u2", 0, 10).await.unwrap();
        let held = delivery.recent(&followed).unwrap().between(0, 1).unwrap();
        assert_eq!(held, stored);
        let other = InboxKey {
            app: 1,
            user: "u3".into(),
        };
        assert!(delivery.recent(&other).is_none(), "nobody follows u3");
        store.close().await;
    }
}
