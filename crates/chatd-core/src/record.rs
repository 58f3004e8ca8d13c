//! The service's message record format, one shape for real-time delivery,
//! history and push payloads:
//! `{msg_id, timestamp, direction, from, to, chat_type, payload: {bodies, ext, from, to}}`.

use crate::message::{InboxEntry, MessageType};
use serde_json::{json, Map, Value};

/// The parsed parts of a record: the body (with its `type`) and `ext`
/// (an empty object when there is none). Writers of the record that do not
/// go through [`message_record`] (the WebSocket frame) start from these.
pub fn record_parts(e: &InboxEntry) -> (Map<String, Value>, Value) {
    let mut body: Map<String, Value> = serde_json::from_str(&e.body).unwrap_or_default();
    body.insert("type".into(), json!(e.msg_type.as_str()));
    if e.msg_type == MessageType::Custom {
        // Newer clients read the map under `v2:customExts`.
        if let Some(exts) = body.get("customExts").cloned() {
            body.insert("v2:customExts".into(), exts);
        }
    }
    let ext: Value = e
        .ext
        .as_deref()
        .and_then(|x| serde_json::from_str(x).ok())
        .unwrap_or_else(|| json!({}));
    (body, ext)
}

/// The record of an inbox entry. `msg_id` is a decimal string (64-bit ids
/// do not survive JavaScript numbers).
pub fn message_record(e: &InboxEntry) -> Value {
    let (body, ext) = record_parts(e);
    json!({
        "msg_id": e.msg_id.to_string(),
        "timestamp": e.timestamp_ms,
        "direction": "outgoing",
        "from": e.from,
        "to": e.to,
        "chat_type": "chat",
        "payload": {
            "bodies": [Value::Object(body)],
            "ext": ext,
            "from": e.from,
            "to": e.to,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{EntryKind, SendOptions};

    #[test]
    fn records_carry_type_in_bodies_and_ids_as_strings() {
        let e = InboxEntry {
            seq: 1,
            msg_id: 1_707_790_329_568_034_816,
            owner: "u2".into(),
            from: "u1".into(),
            to: "u2".into(),
            kind: EntryKind::Incoming,
            msg_type: MessageType::Custom,
            body: r#"{"customEvent":"e","customExts":{"k":"v"}}"#.into(),
            ext: Some(r#"{"a":1}"#.into()),
            timestamp_ms: 5,
            options: SendOptions::default(),
        };
        let r = message_record(&e);
        assert_eq!(r["msg_id"], "1707790329568034816");
        assert_eq!(r["chat_type"], "chat");
        assert_eq!(r["payload"]["bodies"][0]["type"], "custom");
        assert_eq!(r["payload"]["bodies"][0]["v2:customExts"]["k"], "v");
        assert_eq!(r["payload"]["ext"]["a"], 1);
        assert_eq!(r["payload"]["to"], "u2");
    }
}
