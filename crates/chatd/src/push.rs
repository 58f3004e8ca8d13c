//! Connects the pipeline's offline messages to the push dispatcher.

use chatd_core::record::message_record;
use chatd_core::{AppRecord, InboxEntry};
use chatd_pipeline::OfflineSink;
use chatd_push::{PushDispatcher, PushFields, PushNotification};

pub struct PushSink {
    pub dispatcher: PushDispatcher,
}

impl OfflineSink for PushSink {
    fn offline_message(&self, app: &AppRecord, entry: &InboxEntry) {
        let ext: Option<serde_json::Map<String, serde_json::Value>> = entry
            .ext
            .as_deref()
            .and_then(|e| serde_json::from_str(e).ok());
        self.dispatcher.submit(PushNotification {
            app_id: app.app_id.clone(),
            org_name: app.org_name.clone(),
            app_name: app.app_name.clone(),
            to: entry.to.clone(),
            from: entry.from.clone(),
            msg_id: entry.msg_id.to_string(),
            timestamp: entry.timestamp_ms,
            message: message_record(entry),
            push: PushFields::from_ext(ext.as_ref()),
        });
    }
}
