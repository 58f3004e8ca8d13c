//! The send path: limit, assign ids, store, notify.

use crate::error::SendError;
use crate::rate::RateLimiters;
use crate::validate::SendRequest;
use chatd_core::{AppRecord, MessageIdGenerator, NewMessage, Recipient};
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

pub struct Pipeline {
    store: Arc<dyn Store>,
    delivery: Arc<dyn Delivery>,
    ids: MessageIdGenerator,
    limits: RateLimiters,
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
        }
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

    /// Sends one validated request. On `Ok`, every copy is durably stored.
    pub async fn send(
        &self,
        app: &AppRecord,
        req: SendRequest,
    ) -> Result<Vec<Accepted>, SendError> {
        let n = req.to.len() as u32;
        if !self.limits.check_messages(app.key, &app.settings.limits, n) {
            metrics::counter!("chatd_messages_refused_total", "reason" => "rate")
                .increment(u64::from(n));
            return Err(SendError::RateLimited);
        }
        let timestamp_ms = chatd_core::clock::now_ms();
        let recipients: Vec<Recipient> = req
            .to
            .iter()
            .map(|(_, canonical)| Recipient {
                username: canonical.clone(),
                msg_id: self.ids.next_id(),
            })
            .collect();
        let msg = NewMessage {
            app: app.key,
            from: req.from,
            recipients,
            msg_type: req.msg_type,
            body: req.body,
            ext: req.ext,
            timestamp_ms,
            options: req.options,
        };
        let owners: Vec<String> = msg.recipients.iter().map(|r| r.username.clone()).collect();
        let stored = self.store.append_message(msg).await?;
        metrics::counter!("chatd_messages_accepted_total").increment(u64::from(n));

        let mut out = Vec::with_capacity(stored.len());
        for ((written, _), (owner, s)) in req.to.into_iter().zip(owners.into_iter().zip(&stored)) {
            self.delivery.notify(
                &InboxKey {
                    app: app.key,
                    user: owner,
                },
                s.seq,
            );
            out.push(Accepted {
                to: written,
                msg_id: s.msg_id,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse_send_request;
    use chatd_core::AppLimits;
    use chatd_delivery::InProcessDelivery;
    use chatd_storage::{SqliteOptions, SqliteStore};

    #[tokio::test]
    async fn send_stores_then_notifies_and_refusals_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(SqliteOptions::in_dir(dir.path())).unwrap());
        let delivery = Arc::new(InProcessDelivery::new());
        let p = Pipeline::new(
            store.clone(),
            delivery.clone(),
            MessageIdGenerator::new(0, 0),
        );
        let mut app = AppRecord::generate("o", "a", 0);
        app.key = 1;
        app.settings.limits.msgs_per_min = 3;
        let mut watch = delivery.subscribe(&InboxKey {
            app: 1,
            user: "u2".into(),
        });

        let req = |to: &str| {
            let raw = format!(r#"{{"to":{to},"type":"txt","body":{{"msg":"hi"}}}}"#);
            parse_send_request(raw.as_bytes(), &AppLimits::default()).unwrap()
        };
        let sent = p.send(&app, req(r#"["U2","u3"]"#)).await.unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].to, "U2");
        assert!(sent[0].msg_id < sent[1].msg_id);
        watch.changed().await.unwrap();
        assert_eq!(*watch.borrow(), 1);

        assert!(matches!(
            p.send(&app, req(r#"["u2","u3"]"#)).await,
            Err(SendError::RateLimited)
        ));
        assert_eq!(store.inbox_count_after(1, "u2", 0).await.unwrap(), 1);
        assert_eq!(store.inbox_count_after(1, "u3", 0).await.unwrap(), 1);
        store.close().await;
    }
}
