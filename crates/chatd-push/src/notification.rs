//! What a provider is handed: one message, for one offline recipient, with
//! the push fields of its `ext` already picked out.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a push provider receives for one offline recipient.
///
/// This is also the webhook's request body, so its field names are a wire
/// contract: add fields, never rename them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PushNotification {
    /// App ID (32 hex characters).
    pub app_id: String,
    pub org_name: String,
    pub app_name: String,
    /// Recipient username.
    pub to: String,
    /// Sender username.
    pub from: String,
    /// The recipient's copy's message id, as a decimal string (ids pass
    /// 2^53, which JavaScript relays could not hold as numbers). Retries of
    /// one notification carry the same id, so a relay can drop duplicates
    /// on `(app_id, msg_id)`.
    pub msg_id: String,
    /// Send time, milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The message in the service's record format: `{msg_id, timestamp,
    /// direction, from, to, chat_type: "chat", payload: {bodies: [...],
    /// ext: {...}, from, to}}`, the same shape that delivery, history and
    /// callbacks use, so one parser serves them all. Keys of `ext` that
    /// [`PushFields`] does not lift (`em_push_template`, `em_at_list`,
    /// `em_push_filter`, `em_harmony_push_ext`, ...) are read from here.
    pub message: Value,
    /// Push fields lifted from `ext`.
    pub push: PushFields,
}

/// The push fields of a message's `ext`.
///
/// Title and content are resolved once here, so that a simple relay needs
/// only these two strings; the per-platform objects are passed through
/// untouched for relays that want them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PushFields {
    /// Notification title; see [`PushFields::from_ext`] for where it comes
    /// from.
    pub title: Option<String>,
    /// Notification text; same sources as `title`.
    pub content: Option<String>,
    /// `em_apns_ext`: APNs options (`em_push_sound`, `em_push_badge`,
    /// `em_push_category`, `em_push_mutable_content`, ...).
    pub apns_ext: Option<Value>,
    /// `em_android_push_ext`: options of FCM and the Android vendors'
    /// services (`fcm_channel_id`, `fcm_options`, `huawei_*`, ...).
    pub android_push_ext: Option<Value>,
    /// `em_push_ext`: options common to every platform (`title`, `content`,
    /// `custom`, ...).
    pub push_ext: Option<Value>,
    /// `em_force_notification`: notify even if the recipient has turned
    /// notifications off (do-not-disturb).
    pub force_notification: bool,
}

const TITLE: &str = "em_push_title";
const CONTENT: &str = "em_push_content";
const APNS_EXT: &str = "em_apns_ext";
const ANDROID_PUSH_EXT: &str = "em_android_push_ext";
const PUSH_EXT: &str = "em_push_ext";
const FORCE_NOTIFICATION: &str = "em_force_notification";

impl PushFields {
    /// Lifts the push fields out of a message's `ext` (`None` when the
    /// message has none).
    ///
    /// Clients put the title and text in three places, so each is taken
    /// from the first of these that holds a non-empty string:
    /// 1. `ext.em_push_title` / `ext.em_push_content` (top level);
    /// 2. `ext.em_push_ext.title` / `ext.em_push_ext.content` (the options
    ///    common to every platform);
    /// 3. `ext.em_apns_ext.em_push_title` / `ext.em_apns_ext.em_push_content`
    ///    (where iOS SDKs put them; used last because it is meant for one
    ///    platform).
    ///
    /// A value of the wrong JSON type is treated as absent rather than
    /// refused: the message was already accepted, and a malformed push hint
    /// must not cost the recipient the notification. The three `*_ext`
    /// fields are kept only when they are objects; `force_notification` is
    /// set only by the JSON boolean `true`.
    pub fn from_ext(ext: Option<&Map<String, Value>>) -> Self {
        let Some(ext) = ext else {
            return PushFields::default();
        };
        let object = |key: &str| ext.get(key).filter(|v| v.is_object()).cloned();
        let apns_ext = object(APNS_EXT);
        let push_ext = object(PUSH_EXT);
        let pick = |top: &str, in_push_ext: &str| {
            text(ext.get(top))
                .or_else(|| text(push_ext.as_ref().and_then(|o| o.get(in_push_ext))))
                .or_else(|| text(apns_ext.as_ref().and_then(|o| o.get(top))))
        };
        PushFields {
            title: pick(TITLE, "title"),
            content: pick(CONTENT, "content"),
            android_push_ext: object(ANDROID_PUSH_EXT),
            force_notification: matches!(ext.get(FORCE_NOTIFICATION), Some(Value::Bool(true))),
            apns_ext,
            push_ext,
        }
    }
}

/// A non-empty JSON string; anything else is absent.
fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(ext: Value) -> PushFields {
        PushFields::from_ext(ext.as_object())
    }

    #[test]
    fn reads_every_field() {
        let f = fields(json!({
            "em_push_title": "New message",
            "em_push_content": "u1: hi",
            "em_apns_ext": {"em_push_sound": "a.caf", "em_push_badge": 3},
            "em_android_push_ext": {"fcm_channel_id": "chat"},
            "em_push_ext": {"custom": {"k": 1}},
            "em_force_notification": true,
            "em_ignore_notification": false
        }));
        assert_eq!(
            f,
            PushFields {
                title: Some("New message".into()),
                content: Some("u1: hi".into()),
                apns_ext: Some(json!({"em_push_sound": "a.caf", "em_push_badge": 3})),
                android_push_ext: Some(json!({"fcm_channel_id": "chat"})),
                push_ext: Some(json!({"custom": {"k": 1}})),
                force_notification: true,
            }
        );
    }

    #[test]
    fn no_ext_and_empty_ext_give_defaults() {
        assert_eq!(PushFields::from_ext(None), PushFields::default());
        assert_eq!(fields(json!({})), PushFields::default());
    }

    #[test]
    fn title_and_content_fall_back_to_push_ext_then_apns_ext() {
        let apns = json!({"em_push_title": "apns t", "em_push_content": "apns c"});
        let f = fields(json!({"em_apns_ext": apns}));
        assert_eq!(f.title.as_deref(), Some("apns t"));
        assert_eq!(f.content.as_deref(), Some("apns c"));

        let f = fields(json!({
            "em_apns_ext": apns,
            "em_push_ext": {"title": "common t", "content": "common c"}
        }));
        assert_eq!(f.title.as_deref(), Some("common t"));
        assert_eq!(f.content.as_deref(), Some("common c"));

        let f = fields(json!({
            "em_push_title": "top t",
            "em_push_content": "",
            "em_apns_ext": apns,
            "em_push_ext": {"title": "common t"}
        }));
        assert_eq!(f.title.as_deref(), Some("top t"));
        // An empty string does not hide the next source.
        assert_eq!(f.content.as_deref(), Some("apns c"));
    }

    #[test]
    fn wrong_types_are_ignored() {
        let f = fields(json!({
            "em_push_title": 7,
            "em_push_content": ["x"],
            "em_apns_ext": "sound",
            "em_android_push_ext": [1],
            "em_push_ext": null,
            "em_force_notification": "true"
        }));
        assert_eq!(f, PushFields::default());
    }

    #[test]
    fn serde_round_trip_and_missing_fields_default() {
        let f = fields(json!({"em_push_title": "t", "em_force_notification": true}));
        let back: PushFields = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        let partial: PushFields = serde_json::from_value(json!({"title": "t"})).unwrap();
        assert_eq!(partial.title.as_deref(), Some("t"));
        assert!(!partial.force_notification);
    }
}
