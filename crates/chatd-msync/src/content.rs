//! Message contents: the REST API's `type` + `body` ⇄ one
//! `MessageBody.Content`, and JSON `ext` ⇄ typed `KeyValue`s.
//!
//! Both directions keep every field the two forms share, so that a message
//! sent by REST, by the JSON WebSocket or by an SDK reads the same to all:
//!
//! | REST `body` | `Content` |
//! |---|---|
//! | `msg` | `text` |
//! | `url`, `filename`, `secret` | `remote_path`, `display_name`, `secret_key` |
//! | `file_length` | `file_length` |
//! | `length` (s) | `duration` |
//! | `size {width, height}` | `size` |
//! | `thumb`, `thumb_secret` | `thumbnail_remote_path`, `thumbnail_secret_key` |
//! | `lat`, `lng`, `addr`, `buildingName` | `latitude`, `longitude`, `address`, `building_name` |
//! | `action` | `action` |
//! | `customEvent`, `customExts` | `custom_event`, `custom_exts` |

use crate::pb::key_value::{Value as KvValue, ValueType};
use crate::pb::message_body::content::{Size, SubType, Type as ContentType};
use crate::pb::message_body::Content;
use crate::pb::KeyValue;
use chatd_core::MessageType;
use serde_json::{Map, Number, Value};

/// A content this server does not carry (combined messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub &'static str);

fn text(body: &Map<String, Value>, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_string)
}

/// A number given as a JSON number or a numeric string.
fn number(body: &Map<String, Value>, key: &str) -> Option<f64> {
    match body.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An `int32` field (lengths, durations), saturated.
fn int32(body: &Map<String, Value>, key: &str) -> Option<i32> {
    number(body, key).map(|f| f.round().clamp(i32::MIN as f64, i32::MAX as f64) as i32)
}

fn size(v: Option<&Value>) -> Option<Size> {
    let m = v?.as_object()?;
    Some(Size {
        width: number(m, "width"),
        height: number(m, "height"),
    })
}

/// The `Content` of a REST message body.
pub fn body_to_content(t: MessageType, body: &Map<String, Value>) -> Content {
    let mut c = Content::default();
    let attachment = |c: &mut Content| {
        c.remote_path = text(body, "url");
        c.display_name = text(body, "filename");
        c.secret_key = text(body, "secret");
        c.file_length = int32(body, "file_length");
    };
    // Images and videos: their size and thumbnail.
    let picture = |c: &mut Content| {
        c.size = size(body.get("size"));
        c.thumbnail_remote_path = text(body, "thumb");
        c.thumbnail_secret_key = text(body, "thumb_secret");
    };
    match t {
        MessageType::Txt => {
            c.set_type(ContentType::Text);
            c.text = Some(text(body, "msg").unwrap_or_default());
        }
        MessageType::Img => {
            c.set_type(ContentType::Image);
            attachment(&mut c);
            picture(&mut c);
        }
        MessageType::Audio => {
            c.set_type(ContentType::Voice);
            attachment(&mut c);
            c.duration = int32(body, "length");
        }
        MessageType::Video => {
            c.set_type(ContentType::Video);
            attachment(&mut c);
            c.duration = int32(body, "length");
            picture(&mut c);
        }
        MessageType::File => {
            c.set_type(ContentType::File);
            attachment(&mut c);
        }
        MessageType::Loc => {
            c.set_type(ContentType::Location);
            c.latitude = number(body, "lat");
            c.longitude = number(body, "lng");
            c.address = text(body, "addr");
            c.building_name = text(body, "buildingName");
        }
        MessageType::Cmd => {
            c.set_type(ContentType::Command);
            c.action = text(body, "action");
            if let Some(Value::Object(p)) = body.get("params") {
                c.params = ext_to_key_values(p);
            }
        }
        MessageType::Custom => {
            c.set_type(ContentType::Custom);
            c.custom_event = text(body, "customEvent");
            if let Some(Value::Object(exts)) = body.get("customExts") {
                c.custom_exts = ext_to_key_values(exts);
            }
            if let Some(Value::Object(p)) = body.get("params") {
                c.params = ext_to_key_values(p);
            }
        }
    }
    c
}

fn put_text(m: &mut Map<String, Value>, key: &str, v: &Option<String>) {
    if let Some(s) = v {
        m.insert(key.into(), Value::String(s.clone()));
    }
}

fn put_int(m: &mut Map<String, Value>, key: &str, v: Option<i32>) {
    if let Some(n) = v {
        m.insert(key.into(), Value::from(n));
    }
}

fn float(f: f64) -> Value {
    // Whole numbers stay integers, as a JSON client would have written them.
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// The REST `type` and `body` of an SDK's content.
pub fn content_to_body(c: &Content) -> Result<(MessageType, Map<String, Value>), Unsupported> {
    let mut m = Map::new();
    let attachment = |m: &mut Map<String, Value>| {
        m.insert(
            "url".into(),
            Value::String(c.remote_path.clone().unwrap_or_default()),
        );
        put_text(m, "filename", &c.display_name);
        put_text(m, "secret", &c.secret_key);
        put_int(m, "file_length", c.file_length);
    };
    // Images and videos: their size and thumbnail.
    let picture = |m: &mut Map<String, Value>| {
        put_text(m, "thumb", &c.thumbnail_remote_path);
        put_text(m, "thumb_secret", &c.thumbnail_secret_key);
        if let Some(s) = &c.size {
            let mut o = Map::new();
            if let Some(w) = s.width {
                o.insert("width".into(), float(w));
            }
            if let Some(h) = s.height {
                o.insert("height".into(), float(h));
            }
            m.insert("size".into(), Value::Object(o));
        }
    };
    let t = match c.r#type() {
        ContentType::Text if c.sub_type == Some(SubType::SubCombine as i32) => {
            return Err(Unsupported("combined messages are not supported"))
        }
        ContentType::Text => {
            m.insert(
                "msg".into(),
                Value::String(c.text.clone().unwrap_or_default()),
            );
            MessageType::Txt
        }
        ContentType::Image => {
            attachment(&mut m);
            picture(&mut m);
            MessageType::Img
        }
        ContentType::Voice => {
            attachment(&mut m);
            put_int(&mut m, "length", c.duration);
            MessageType::Audio
        }
        ContentType::Video => {
            attachment(&mut m);
            put_int(&mut m, "length", c.duration);
            picture(&mut m);
            MessageType::Video
        }
        ContentType::File => {
            attachment(&mut m);
            MessageType::File
        }
        ContentType::Location => {
            m.insert("lat".into(), float(c.latitude.unwrap_or(0.0)));
            m.insert("lng".into(), float(c.longitude.unwrap_or(0.0)));
            m.insert(
                "addr".into(),
                Value::String(c.address.clone().unwrap_or_default()),
            );
            put_text(&mut m, "buildingName", &c.building_name);
            MessageType::Loc
        }
        ContentType::Command => {
            m.insert(
                "action".into(),
                Value::String(c.action.clone().unwrap_or_default()),
            );
            if !c.params.is_empty() {
                m.insert("params".into(), Value::Object(key_values_to_ext(&c.params)));
            }
            MessageType::Cmd
        }
        ContentType::Custom => {
            put_text(&mut m, "customEvent", &c.custom_event);
            // The REST API's customExts is a map of strings: typed values
            // from the SDK keep their text.
            let exts: Map<String, Value> = key_values_to_ext(&c.custom_exts)
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => (k, Value::String(s)),
                    other => (k, Value::String(other.to_string())),
                })
                .collect();
            m.insert("customExts".into(), Value::Object(exts));
            if !c.params.is_empty() {
                m.insert("params".into(), Value::Object(key_values_to_ext(&c.params)));
            }
            MessageType::Custom
        }
        ContentType::Combine => return Err(Unsupported("combined messages are not supported")),
    };
    Ok((t, m))
}

/// A JSON object as typed `KeyValue`s, the way the SDK types its own:
/// strings, booleans, integers (`INT`), other numbers (`DOUBLE`), and
/// anything else as `JSON_STRING`.
pub fn ext_to_key_values(ext: &Map<String, Value>) -> Vec<KeyValue> {
    ext.iter()
        .map(|(k, v)| {
            let (t, value) = match v {
                Value::Bool(b) => (ValueType::Bool, KvValue::VarintValue(i64::from(*b))),
                Value::String(s) => (ValueType::String, KvValue::StringValue(s.clone())),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => (ValueType::Int, KvValue::VarintValue(i)),
                    // Past i64 (or fractional): what a JavaScript reader
                    // would make of it anyway.
                    None => (
                        ValueType::Double,
                        KvValue::DoubleValue(n.as_f64().unwrap_or(0.0)),
                    ),
                },
                Value::Null | Value::Array(_) | Value::Object(_) => {
                    (ValueType::JsonString, KvValue::StringValue(v.to_string()))
                }
            };
            KeyValue {
                key: Some(k.clone()),
                r#type: Some(t as i32),
                value: Some(value),
            }
        })
        .collect()
}

/// Typed `KeyValue`s as a JSON object (the inverse of
/// [`ext_to_key_values`]; other clients' types are read as the SDK reads
/// them).
pub fn key_values_to_ext(kvs: &[KeyValue]) -> Map<String, Value> {
    let mut out = Map::new();
    for kv in kvs {
        let Some(key) = kv.key.clone() else { continue };
        let value = match (
            kv.r#type.and_then(|t| ValueType::try_from(t).ok()),
            &kv.value,
        ) {
            (_, None) => Value::Null,
            (Some(ValueType::Bool), Some(KvValue::VarintValue(i))) => Value::Bool(*i != 0),
            (Some(ValueType::Uint), Some(KvValue::VarintValue(i))) => Value::from(*i as u64),
            (_, Some(KvValue::VarintValue(i))) => Value::from(*i),
            (_, Some(KvValue::FloatValue(f))) => {
                Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number)
            }
            (_, Some(KvValue::DoubleValue(f))) => {
                Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
            (Some(ValueType::JsonString), Some(KvValue::StringValue(s))) => {
                serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
            }
            (_, Some(KvValue::StringValue(s))) => Value::String(s.clone()),
        };
        out.insert(key, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    /// REST body → Content → REST body keeps every mapped field.
    #[test]
    fn the_eight_types_round_trip() {
        let cases = [
            (MessageType::Txt, json!({"msg": "hi 中"})),
            (
                MessageType::Img,
                json!({"url": "https://h/o/a/chatfiles/1", "filename": "a.jpg", "secret": "s1",
                       "size": {"width": 480, "height": 720.5}, "file_length": 1234}),
            ),
            (
                MessageType::Audio,
                json!({"url": "https://h/2", "filename": "a.amr", "length": 10, "secret": "s2", "file_length": 99}),
            ),
            (
                MessageType::Video,
                json!({"url": "https://h/3", "filename": "v.mp4", "thumb": "https://h/4", "length": 7,
                       "secret": "s3", "file_length": 58103, "thumb_secret": "s4"}),
            ),
            (
                MessageType::File,
                json!({"url": "https://h/5", "filename": "f.txt", "secret": "s5"}),
            ),
            (
                MessageType::Loc,
                json!({"lat": 39.9, "lng": 116.4, "addr": "Beijing", "buildingName": "B"}),
            ),
            (MessageType::Cmd, json!({"action": "refresh"})),
            (
                MessageType::Custom,
                json!({"customEvent": "gift", "customExts": {"k": "v", "n": "1"}}),
            ),
        ];
        for (t, body) in cases {
            let c = body_to_content(t, &obj(body.clone()));
            let (t2, back) = content_to_body(&c).unwrap();
            assert_eq!(t2, t);
            assert_eq!(Value::Object(back), body, "{t}");
        }
    }

    #[test]
    fn string_coordinates_become_numbers() {
        let c = body_to_content(
            MessageType::Loc,
            &obj(json!({"lat": "39.9", "lng": "116.4", "addr": "x"})),
        );
        assert_eq!(c.latitude, Some(39.9));
        assert_eq!(c.longitude, Some(116.4));
    }

    #[test]
    fn ext_values_keep_their_types() {
        let ext = json!({"s": "x", "b": true, "i": -3, "big": 9007199254740993i64, "f": 1.5,
                         "o": {"a": [1, 2]}, "n": null});
        let kvs = ext_to_key_values(&obj(ext.clone()));
        let t = |k: &str| {
            kvs.iter()
                .find(|kv| kv.key.as_deref() == Some(k))
                .unwrap()
                .r#type()
        };
        assert_eq!(t("s"), ValueType::String);
        assert_eq!(t("b"), ValueType::Bool);
        assert_eq!(t("i"), ValueType::Int);
        assert_eq!(t("f"), ValueType::Double);
        assert_eq!(t("o"), ValueType::JsonString);
        assert_eq!(Value::Object(key_values_to_ext(&kvs)), ext);
    }

    #[test]
    fn combined_messages_are_refused() {
        let c = Content {
            r#type: Some(ContentType::Text as i32),
            sub_type: Some(SubType::SubCombine as i32),
            ..Default::default()
        };
        assert!(content_to_body(&c).is_err());
    }

    #[test]
    fn typed_custom_exts_become_strings() {
        let c = Content {
            r#type: Some(ContentType::Custom as i32),
            custom_exts: ext_to_key_values(&obj(json!({"n": 2, "b": false}))),
            ..Default::default()
        };
        let (_, b) = content_to_body(&c).unwrap();
        assert_eq!(
            Value::Object(b),
            json!({"customExts": {"n": "2", "b": "false"}})
        );
    }
}
