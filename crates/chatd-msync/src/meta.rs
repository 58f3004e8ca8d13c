//! Metas: inbox entries and receipts going down, the client's metas coming
//! up.

use crate::content::{body_to_content, content_to_body, ext_to_key_values, key_values_to_ext};
use crate::jid;
use crate::pb::message_body::Type as BodyType;
use crate::pb::meta::{NameSpace, RouteType};
use crate::pb::status::ErrorCode;
use crate::pb::{Jid, MessageBody, Meta};
use base64::Engine;
use chatd_core::{InboxEntry, MessageType};
use prost::Message;
use serde_json::{Map, Value};

fn name_only(name: &str) -> Jid {
    Jid {
        name: Some(name.to_string()),
        ..Default::default()
    }
}

/// An inbox entry as the `CHAT` meta the SDK reads: `Meta.id` is the
/// message id (the same the REST answer and the JSON WebSocket give), and
/// the SDK takes `from` / `to` from `MessageBody`.
pub fn entry_meta(e: &InboxEntry, app_key: &str) -> Meta {
    let body: Map<String, Value> = serde_json::from_str(&e.body).unwrap_or_default();
    let ext: Map<String, Value> = e
        .ext
        .as_deref()
        .and_then(|x| serde_json::from_str(x).ok())
        .unwrap_or_default();
    let mb = MessageBody {
        r#type: Some(BodyType::Chat as i32),
        from: Some(name_only(&e.from)),
        to: Some(name_only(&e.to)),
        contents: vec![body_to_content(e.msg_type, &body)],
        ext: ext_to_key_values(&ext),
        ..Default::default()
    };
    Meta {
        id: Some(e.msg_id),
        from: Some(jid(app_key, &e.from)),
        to: Some(jid(app_key, &e.to)),
        timestamp: Some(e.timestamp_ms.max(0) as u64),
        ns: Some(NameSpace::Chat as i32),
        payload: Some(mb.encode_to_vec()),
        ..Default::default()
    }
}

/// An entry as a history record: its meta, protobuf, then base64.
pub fn history_record(e: &InboxEntry, app_key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(entry_meta(e, app_key).encode_to_vec())
}

/// The acknowledgements a client sends about messages it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckKind {
    /// `DELIVER_ACK`: the message reached the device.
    Delivered,
    /// `READ_ACK`: the user read the message.
    Read,
    /// `CHANNEL_ACK`: the user read the whole conversation.
    Channel,
}

impl AckKind {
    fn body_type(self) -> BodyType {
        match self {
            AckKind::Delivered => BodyType::DeliverAck,
            AckKind::Read => BodyType::ReadAck,
            AckKind::Channel => BodyType::ChannelAck,
        }
    }
}

/// A receipt meta for the original sender: `reader` acknowledged `msg_id`
/// (the SDK fires `onDeliveredMessage` / `onReadMessage` /
/// `onChannelMessage`).
pub fn receipt_meta(
    kind: AckKind,
    id: u64,
    reader: &str,
    sender: &str,
    msg_id: Option<u64>,
    timestamp_ms: i64,
    app_key: &str,
) -> Meta {
    let mb = MessageBody {
        r#type: Some(kind.body_type() as i32),
        from: Some(name_only(reader)),
        to: Some(name_only(sender)),
        ack_message_id: msg_id,
        ..Default::default()
    };
    Meta {
        id: Some(id),
        from: Some(jid(app_key, reader)),
        to: Some(jid(app_key, sender)),
        timestamp: Some(timestamp_ms.max(0) as u64),
        ns: Some(NameSpace::Chat as i32),
        payload: Some(mb.encode_to_vec()),
        ..Default::default()
    }
}

/// A one-to-one message from an SDK, in the REST API's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub to: String,
    pub msg_type: MessageType,
    pub body: Map<String, Value>,
    pub ext: Map<String, Value>,
    pub route_online: bool,
}

impl Outgoing {
    /// The send request object (`from` is set by the caller: always the
    /// connected user).
    pub fn to_request(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "to".into(),
            Value::Array(vec![Value::String(self.to.clone())]),
        );
        m.insert("type".into(), Value::String(self.msg_type.as_str().into()));
        m.insert("body".into(), Value::Object(self.body.clone()));
        if !self.ext.is_empty() {
            m.insert("ext".into(), Value::Object(self.ext.clone()));
        }
        if self.route_online {
            m.insert("routetype".into(), Value::String("ROUTE_ONLINE".into()));
        }
        m
    }
}

/// What an uplink meta asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Uplink {
    /// A client report (`STATISTIC`): answered, nothing else.
    Statistic,
    /// A one-to-one message to send.
    Message(Box<Outgoing>),
    /// An acknowledgement of `msg_id` (none for `CHANNEL_ACK`) to relay to
    /// `to`, the original sender.
    Ack {
        kind: AckKind,
        to: String,
        msg_id: Option<u64>,
    },
    /// Something this server does not do; answered with this status so
    /// that the SDK's promise settles with a meaningful error.
    Refused {
        code: ErrorCode,
        reason: &'static str,
    },
}

/// Reads one uplink meta.
pub fn parse_uplink(meta: &Meta) -> Uplink {
    let refused = |code, reason| Uplink::Refused { code, reason };
    match NameSpace::try_from(meta.ns.unwrap_or(0)) {
        Ok(NameSpace::Statistic) => return Uplink::Statistic,
        Ok(NameSpace::Chat) => {}
        _ => return refused(ErrorCode::Fail, "not supported by this server"),
    }
    let Ok(body) = MessageBody::decode(meta.payload.as_deref().unwrap_or_default()) else {
        return refused(ErrorCode::PbParserError, "the message body cannot be read");
    };
    let to = meta
        .to
        .as_ref()
        .and_then(|j| j.name.clone())
        .or_else(|| body.to.as_ref().and_then(|j| j.name.clone()))
        .unwrap_or_default();
    if to.is_empty() {
        return refused(ErrorCode::MissingParameter, "the message has no recipient");
    }
    let ack = |kind| Uplink::Ack {
        kind,
        to: to.clone(),
        msg_id: body.ack_message_id,
    };
    match BodyType::try_from(body.r#type.unwrap_or(0)) {
        Ok(BodyType::Chat) => {}
        Ok(BodyType::DeliverAck) => return ack(AckKind::Delivered),
        Ok(BodyType::ReadAck) => return ack(AckKind::Read),
        Ok(BodyType::ChannelAck) => {
            return Uplink::Ack {
                kind: AckKind::Channel,
                to,
                msg_id: None,
            }
        }
        // The SDK maps these reasons to its own error types.
        Ok(BodyType::Groupchat) => return refused(ErrorCode::Fail, "group not found"),
        Ok(BodyType::Chatroom) => return refused(ErrorCode::Fail, "not in group or chatroom"),
        Ok(BodyType::Recall) => return refused(ErrorCode::Fail, "message recall disabled"),
        Ok(BodyType::Edit) => return refused(ErrorCode::Fail, "Sorry, edit is not available"),
        Ok(BodyType::Normal) | Err(_) => {
            return refused(ErrorCode::WrongParameter, "unknown message type")
        }
    }
    let Some(content) = body.contents.first() else {
        return refused(ErrorCode::MissingParameter, "the message has no content");
    };
    match content_to_body(content) {
        Ok((msg_type, b)) => Uplink::Message(Box::new(Outgoing {
            to,
            msg_type,
            body: b,
            ext: key_values_to_ext(&body.ext),
            route_online: meta.routetype == Some(RouteType::RouteOnline as i32),
        })),
        Err(e) => refused(ErrorCode::Fail, e.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatd_core::{EntryKind, SendOptions};
    use serde_json::json;

    fn entry(t: MessageType, body: Value, ext: Option<Value>) -> InboxEntry {
        InboxEntry {
            seq: 4,
            msg_id: 1_707_790_329_568_034_816,
            owner: "bob".into(),
            from: "alice".into(),
            to: "bob".into(),
            kind: EntryKind::Incoming,
            msg_type: t,
            body: body.to_string(),
            ext: ext.map(|e| e.to_string()),
            timestamp_ms: 1_700_000_000_000,
            options: SendOptions::default(),
        }
    }

    #[test]
    fn an_entry_becomes_a_chat_meta_with_a_u64_id() {
        let e = entry(
            MessageType::Txt,
            json!({"msg": "hi"}),
            Some(json!({"k": 1})),
        );
        let m = entry_meta(&e, "org#app");
        assert_eq!(m.id, Some(1_707_790_329_568_034_816));
        assert_eq!(m.ns, Some(NameSpace::Chat as i32));
        assert_eq!(m.from.as_ref().unwrap().app_key.as_deref(), Some("org#app"));
        let b = MessageBody::decode(m.payload.as_deref().unwrap()).unwrap();
        assert_eq!(b.r#type(), BodyType::Chat);
        assert_eq!(b.from.unwrap().name.as_deref(), Some("alice"));
        assert_eq!(b.contents[0].text.as_deref(), Some("hi"));
        assert_eq!(Value::Object(key_values_to_ext(&b.ext)), json!({"k": 1}));
        let rec = history_record(&e, "org#app");
        let back = Meta::decode(
            &base64::engine::general_purpose::STANDARD
                .decode(rec)
                .unwrap()[..],
        )
        .unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn an_sdk_message_becomes_a_send_request() {
        let e = entry(
            MessageType::Custom,
            json!({"customEvent": "e", "customExts": {"a": "b"}}),
            Some(json!({"x": true})),
        );
        let mut meta = entry_meta(&e, "o#a");
        meta.routetype = Some(RouteType::RouteOnline as i32);
        let Uplink::Message(o) = parse_uplink(&meta) else {
            panic!()
        };
        assert_eq!(
            Value::Object(o.to_request()),
            json!({"to": ["bob"], "type": "custom", "body": {"customEvent": "e", "customExts": {"a": "b"}},
                   "ext": {"x": true}, "routetype": "ROUTE_ONLINE"})
        );
    }

    #[test]
    fn acks_and_unsupported_bodies() {
        let r = receipt_meta(AckKind::Read, 9, "bob", "alice", Some(7), 1, "o#a");
        assert_eq!(
            parse_uplink(&r),
            Uplink::Ack {
                kind: AckKind::Read,
                to: "alice".into(),
                msg_id: Some(7)
            }
        );
        let mut g = r.clone();
        g.payload = Some(
            MessageBody {
                r#type: Some(BodyType::Groupchat as i32),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        assert!(matches!(parse_uplink(&g), Uplink::Refused { .. }));
        let stat = Meta {
            id: Some(1),
            ns: Some(NameSpace::Statistic as i32),
            ..Default::default()
        };
        assert_eq!(parse_uplink(&stat), Uplink::Statistic);
    }
}
