//! Checks a send request against the send API's rules, field by field.
//!
//! The request is parsed into a `serde_json::Value` first, because the API
//! tells apart "malformed or wrongly typed" (`invalid_request_body`) from
//! "present but empty" (`message_send_error`), which a derived deserializer
//! cannot.

use crate::error::SendError;
use chatd_core::user::normalize_username;
use chatd_core::{AppLimits, MessageType, SendOptions};
use regex::Regex;
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// A send request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct SendRequest {
    /// Lowercase sender; `admin` when the request has no `from`.
    pub from: String,
    /// Recipients as written in the request (first spelling of each user),
    /// paired with their canonical inbox name.
    pub to: Vec<(String, String)>,
    pub msg_type: MessageType,
    /// Compact JSON of `body`.
    pub body: String,
    /// Compact JSON of `ext`.
    pub ext: Option<String>,
    pub options: SendOptions,
}

/// Most entries of a custom message's `customExts`.
pub const MAX_CUSTOM_EXTS: usize = 16;

fn invalid(why: impl Into<String>) -> SendError {
    SendError::InvalidBody(why.into())
}

/// Parses and checks the raw JSON of a send request.
pub fn parse_send_request(raw: &[u8], limits: &AppLimits) -> Result<SendRequest, SendError> {
    let value: Value =
        serde_json::from_slice(raw).map_err(|e| invalid(format!("malformed JSON: {e}")))?;
    let Value::Object(mut req) = value else {
        return Err(invalid("the request must be a JSON object"));
    };
    check_send_object(&mut req, limits)
}

/// Checks an already-parsed request object (the WebSocket path parses its
/// frames itself).
pub fn check_send_object(
    req: &mut Map<String, Value>,
    limits: &AppLimits,
) -> Result<SendRequest, SendError> {
    let from = match req.get("from") {
        None => "admin".to_string(),
        Some(Value::String(s)) if s.is_empty() => return Err(SendError::EmptyFrom),
        Some(Value::String(s)) => {
            normalize_username(s).map_err(|_| invalid(format!("param from {s} is not legal")))?
        }
        Some(_) => return Err(invalid("param from must be a string")),
    };

    let to = match req.get("to") {
        None | Some(Value::Null) => return Err(SendError::EmptyTo),
        Some(Value::Array(a)) if a.is_empty() => return Err(SendError::EmptyTo),
        Some(Value::Array(a)) => {
            if a.len() > limits.max_recipients as usize {
                return Err(SendError::TooManyRecipients(limits.max_recipients));
            }
            let mut out: Vec<(String, String)> = Vec::with_capacity(a.len());
            for v in a {
                let Value::String(name) = v else {
                    return Err(invalid("param to must be an array of strings"));
                };
                if name.is_empty() {
                    return Err(SendError::EmptyTo);
                }
                let canonical = normalize_username(name)
                    .map_err(|_| invalid(format!("param to holds an illegal username {name}")))?;
                // One inbox entry per user, whatever the spelling.
                if !out.iter().any(|(_, c)| *c == canonical) {
                    out.push((name.clone(), canonical));
                }
            }
            out
        }
        Some(_) => return Err(invalid("param to must be an array")),
    };

    let msg_type = match req.get("type") {
        None | Some(Value::Null) => return Err(SendError::EmptyType),
        Some(Value::String(s)) if s.is_empty() => return Err(SendError::EmptyType),
        Some(Value::String(s)) => s
            .parse::<MessageType>()
            .map_err(|_| SendError::UnknownType(s.clone()))?,
        Some(_) => return Err(invalid("param type must be a string")),
    };

    let body = match req.get("body") {
        None | Some(Value::Null) => return Err(SendError::EmptyBody),
        Some(Value::Object(m)) if m.is_empty() => return Err(SendError::EmptyBody),
        Some(Value::Object(m)) => {
            check_body(msg_type, m)?;
            serde_json::to_string(m).map_err(|e| invalid(e.to_string()))?
        }
        Some(_) => return Err(invalid("param body must be a JSON object")),
    };

    let mut options = SendOptions::default();
    let ext = match req.get("ext") {
        None => None,
        Some(Value::Object(m)) => {
            options.ignore_notification =
                matches!(m.get("em_ignore_notification"), Some(Value::Bool(true)));
            Some(serde_json::to_string(m).map_err(|e| invalid(e.to_string()))?)
        }
        Some(_) => return Err(SendError::ExtNotObject),
    };

    options.sync_device = match req.get("sync_device") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("param sync_device must be a boolean")),
    };
    options.route_online = match req.get("routetype") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "ROUTE_ONLINE" => true,
        Some(_) => return Err(invalid("param routetype must be ROUTE_ONLINE")),
    };
    options.roam_ignore_users = match req.get("roam_ignore_users") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            let mut users = Vec::with_capacity(a.len());
            for v in a {
                let Value::String(s) = v else {
                    return Err(invalid(
                        "param roam_ignore_users must be an array of strings",
                    ));
                };
                users.push(s.to_ascii_lowercase());
            }
            users
        }
        Some(_) => return Err(invalid("param roam_ignore_users must be an array")),
    };

    let size = body.len() + ext.as_ref().map_or(0, String::len);
    if size > limits.max_message_bytes as usize {
        return Err(SendError::TooLarge);
    }

    Ok(SendRequest {
        from,
        to,
        msg_type,
        body,
        ext,
        options,
    })
}

#[derive(Clone, Copy)]
enum Kind {
    String,
    Number,
    StringOrNumber,
}

fn field(
    body: &Map<String, Value>,
    name: &str,
    kind: Kind,
    required: bool,
) -> Result<(), SendError> {
    match body.get(name) {
        None | Some(Value::Null) if required => Err(invalid(format!("body.{name} is required"))),
        None | Some(Value::Null) => Ok(()),
        Some(v) => {
            let ok = match kind {
                Kind::String => v.is_string(),
                Kind::Number => v.is_number(),
                Kind::StringOrNumber => v.is_string() || v.is_number(),
            };
            if ok {
                Ok(())
            } else {
                Err(invalid(format!("body.{name} has the wrong type")))
            }
        }
    }
}

fn custom_event_pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[a-zA-Z0-9\-_/.]{1,32}$").expect("valid pattern"))
}

/// Checks the `body` fields of one message type.
fn check_body(t: MessageType, b: &Map<String, Value>) -> Result<(), SendError> {
    use Kind::*;
    match t {
        MessageType::Txt => field(b, "msg", String, true),
        MessageType::Img => {
            field(b, "url", String, true)?;
            field(b, "filename", String, false)?;
            field(b, "secret", String, false)?;
            match b.get("size") {
                None | Some(Value::Null) => Ok(()),
                Some(Value::Object(size)) => {
                    field(size, "width", Number, false)?;
                    field(size, "height", Number, false)
                }
                Some(_) => Err(invalid("body.size must be an object")),
            }
        }
        MessageType::Audio => {
            field(b, "url", String, true)?;
            field(b, "filename", String, false)?;
            field(b, "secret", String, false)?;
            field(b, "length", Number, false)
        }
        MessageType::Video => {
            field(b, "url", String, true)?;
            field(b, "filename", String, false)?;
            field(b, "thumb", String, false)?;
            field(b, "secret", String, false)?;
            field(b, "thumb_secret", String, false)?;
            field(b, "length", Number, false)?;
            field(b, "file_length", Number, false)
        }
        MessageType::File => {
            field(b, "url", String, true)?;
            field(b, "filename", String, false)?;
            field(b, "secret", String, false)
        }
        MessageType::Loc => {
            // The reference types lat/lng as strings, but its SDKs send
            // numbers: both are accepted and stored as given.
            field(b, "lat", StringOrNumber, true)?;
            field(b, "lng", StringOrNumber, true)?;
            field(b, "addr", String, true)
        }
        MessageType::Cmd => field(b, "action", String, true),
        MessageType::Custom => {
            match b.get("customEvent") {
                None | Some(Value::Null) => {}
                Some(Value::String(e)) if custom_event_pattern().is_match(e) => {}
                Some(_) => {
                    return Err(invalid(
                        "body.customEvent must match [a-zA-Z0-9-_/\\.]{1,32}",
                    ))
                }
            }
            match b.get("customExts") {
                None | Some(Value::Null) => Ok(()),
                Some(Value::Object(m)) if m.len() > MAX_CUSTOM_EXTS => Err(invalid(format!(
                    "body.customExts holds more than {MAX_CUSTOM_EXTS} entries"
                ))),
                Some(Value::Object(m)) if m.values().all(Value::is_string) => Ok(()),
                Some(_) => Err(invalid("body.customExts must be a map of strings")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: Value) -> Result<SendRequest, SendError> {
        parse_send_request(v.to_string().as_bytes(), &AppLimits::default())
    }

    fn base(t: &str, body: Value) -> Value {
        json!({"from": "user1", "to": ["user2"], "type": t, "body": body})
    }

    #[test]
    fn the_seed_examples_pass() {
        let cases = [
            base("txt", json!({"msg": "testmessages"})),
            base(
                "img",
                json!({"filename":"testimg.jpg","secret":"VfXXXXNb_","url":"https://x/chatfiles/1","size":{"width":480,"height":720}}),
            ),
            base(
                "audio",
                json!({"url":"https://x/chatfiles/1","filename":"testaudio.amr","length":10,"secret":"HfXXXXCjM"}),
            ),
            base(
                "video",
                json!({"filename":"test.avi","thumb":"https://x/1","length":0,"secret":"V","file_length":58103,"thumb_secret":"Z","url":"https://x/2"}),
            ),
            base(
                "file",
                json!({"filename":"test.txt","secret":"1-g0XXXXua","url":"https://x/3"}),
            ),
            base(
                "loc",
                json!({"lat":"39.966","lng":"116.322","addr":"中国北京市海淀区中关村"}),
            ),
            base("cmd", json!({"action":"action1"})),
            base(
                "custom",
                json!({"customEvent":"custom_event","customExts":{"ext_key1":"ext_value1"}}),
            ),
        ];
        for c in cases {
            check(c.clone()).unwrap_or_else(|e| panic!("{c}: {e}"));
        }
    }

    #[test]
    fn common_fields_are_checked_in_order() {
        let ok = |v: Value| check(v).unwrap();
        let r = ok(
            json!({"to":["User2","user2","u3"],"type":"txt","body":{"msg":"x"},
            "ext":{"em_ignore_notification":true},"routetype":"ROUTE_ONLINE","sync_device":true,
            "roam_ignore_users":["U3"]}),
        );
        assert_eq!(r.from, "admin");
        assert_eq!(
            r.to,
            vec![("User2".into(), "user2".into()), ("u3".into(), "u3".into())]
        );
        assert!(r.options.ignore_notification && r.options.route_online && r.options.sync_device);
        assert_eq!(r.options.roam_ignore_users, vec!["u3"]);

        let err = |v: Value| check(v).unwrap_err().to_string();
        assert_eq!(
            err(json!({"from":"","to":["a"],"type":"txt","body":{"msg":"x"}})),
            "param from can't be empty"
        );
        assert_eq!(
            err(json!({"to":[],"type":"txt","body":{"msg":"x"}})),
            "param to can't be empty"
        );
        assert_eq!(
            err(json!({"to":["a"],"type":"","body":{"msg":"x"}})),
            "param type can't be empty"
        );
        assert_eq!(
            err(json!({"to":["a"],"type":"txt","body":{}})),
            "param body can't be empty"
        );
        assert_eq!(
            err(json!({"to":["a"],"type":"txt","body":{"msg":"x"},"ext":null})),
            "param ext must be JSONObject"
        );
        assert_eq!(
            err(json!({"to":["a"],"type":"txt","body":{"msg":"x"},"ext":"s"})),
            "param ext must be JSONObject"
        );
        let many: Vec<String> = (0..601).map(|i| format!("u{i}")).collect();
        assert_eq!(
            err(json!({"to":many,"type":"txt","body":{"msg":"x"}})),
            "params to's size can't exceed limit 600"
        );
        let ok600: Vec<String> = (0..600).map(|i| format!("u{i}")).collect();
        assert_eq!(
            ok(json!({"to":ok600,"type":"txt","body":{"msg":"x"}}))
                .to
                .len(),
            600
        );
        assert!(matches!(
            check(json!({"to":["a"],"type":"text","body":{"msg":"x"}})),
            Err(SendError::UnknownType(_))
        ));
    }

    #[test]
    fn wrong_types_are_invalid_bodies() {
        let bad = [
            json!({"from":5,"to":["a"],"type":"txt","body":{"msg":"x"}}),
            json!({"to":"a","type":"txt","body":{"msg":"x"}}),
            json!({"to":[1],"type":"txt","body":{"msg":"x"}}),
            json!({"to":["a"],"type":7,"body":{"msg":"x"}}),
            json!({"to":["a"],"type":"txt","body":"x"}),
            json!({"to":["a"],"type":"txt","body":{"msg":1}}),
            json!({"to":["a"],"type":"txt","body":{"other":"x"}}),
            json!({"to":["a"],"type":"txt","body":{"msg":"x"},"sync_device":"yes"}),
            json!({"to":["a"],"type":"txt","body":{"msg":"x"},"routetype":"ROUTE_ALL"}),
            json!({"to":["a"],"type":"txt","body":{"msg":"x"},"roam_ignore_users":"a"}),
            json!({"to":["a"],"type":"img","body":{"filename":"f"}}),
            json!({"to":["a"],"type":"img","body":{"url":"u","size":{"width":"480"}}}),
            json!({"to":["a"],"type":"audio","body":{"url":"u","length":"10"}}),
            json!({"to":["a"],"type":"video","body":{"url":"u","file_length":"1"}}),
            json!({"to":["a"],"type":"file","body":{"url":5}}),
            json!({"to":["a"],"type":"loc","body":{"lat":"1","lng":"2"}}),
            json!({"to":["a"],"type":"cmd","body":{"act":"x"}}),
            json!({"to":["a"],"type":"custom","body":{"customEvent":"has space"}}),
            json!({"to":["a"],"type":"custom","body":{"customEvent":"a".repeat(33)}}),
            json!({"to":["a"],"type":"custom","body":{"customExts":{"k":1}}}),
            json!([1, 2]),
        ];
        for b in bad {
            assert!(
                matches!(check(b.clone()), Err(SendError::InvalidBody(_))),
                "{b} should be an invalid body"
            );
        }
        assert!(matches!(
            parse_send_request(b"{not json", &AppLimits::default()),
            Err(SendError::InvalidBody(_))
        ));
    }

    #[test]
    fn custom_exts_hold_at_most_sixteen_entries() {
        let exts = |n: usize| -> Value {
            Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect())
        };
        assert!(check(base("custom", json!({"customExts": exts(16)}))).is_ok());
        assert!(check(base("custom", json!({"customExts": exts(17)}))).is_err());
        assert!(check(base("custom", json!({"customEvent": "a-b_c/d.e"}))).is_ok());
    }

    #[test]
    fn size_counts_compact_body_plus_ext() {
        // {"msg":"…"} is 10 bytes of framing.
        let at_limit = "x".repeat(5120 - 10);
        assert!(check(base("txt", json!({"msg": at_limit}))).is_ok());
        let over = "x".repeat(5120 - 9);
        assert!(matches!(
            check(base("txt", json!({"msg": over}))),
            Err(SendError::TooLarge)
        ));
        // {"k":"…"} is 8 bytes of framing.
        let mut v = base("txt", json!({"msg": "x".repeat(5000)}));
        v["ext"] = json!({"k": "y".repeat(5120 - 8 - 5010 + 1)});
        assert!(matches!(check(v), Err(SendError::TooLarge)));
    }
}
