//! Decodes every frame of the recorded SDK sessions in `tests/traces/`
//! (the official Web SDK 4.21.1 against a reference fake server, Node and
//! Chromium), both directions.
//!
//! Each record carries the frame's bytes (`hex`) and the SDK schema's own
//! decoding of it (protobufjs `toObject`: camelCase names, enum names,
//! 64-bit integers as strings, only the fields present on the wire). Every
//! frame is decoded here with chatd's `.proto`, rendered the same way and
//! compared field by field; then re-encoded and decoded again.

use chatd_msync::frame::{decode_request, Request};
use chatd_msync::meta::{parse_uplink, Uplink};
use chatd_msync::pb::{self, m_sync::Command};
use prost::Message;
use serde_json::{json, Map, Value};
use std::path::Path;

fn traces() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/traces");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "trace files in {}", dir.display());
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        for (n, line) in std::fs::read_to_string(&f).unwrap().lines().enumerate() {
            let v: Value = serde_json::from_str(line).unwrap();
            if v.get("hex").is_some() {
                out.push((format!("{name}:{}", n + 1), v));
            }
        }
    }
    out
}

// ---- rendering, as protobufjs toObject({longs: String, enums: String}) ----

#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn put(mut self, k: &str, v: Option<Value>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.into(), v);
        }
        self
    }
    fn list(mut self, k: &str, v: Vec<Value>) -> Self {
        if !v.is_empty() {
            self.0.insert(k.into(), Value::Array(v));
        }
        self
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn s(v: &Option<String>) -> Option<Value> {
    v.clone().map(Value::String)
}
fn long(v: Option<u64>) -> Option<Value> {
    v.map(|n| Value::String(n.to_string()))
}
fn num<T: Into<Value>>(v: Option<T>) -> Option<Value> {
    v.map(Into::into)
}
fn en<E: TryFrom<i32>>(v: Option<i32>, name: fn(&E) -> &'static str) -> Option<Value> {
    v.map(|i| match E::try_from(i) {
        Ok(e) => Value::String(name(&e).into()),
        Err(_) => Value::from(i),
    })
}

fn jid(j: &Option<pb::Jid>) -> Option<Value> {
    j.as_ref().map(|j| {
        Obj::default()
            .put("appKey", s(&j.app_key))
            .put("name", s(&j.name))
            .put("domain", s(&j.domain))
            .put("clientResource", s(&j.client_resource))
            .done()
    })
}

fn status(st: &Option<pb::Status>) -> Option<Value> {
    st.as_ref().map(|st| {
        Obj::default()
            .put(
                "errorCode",
                en(st.error_code, pb::status::ErrorCode::as_str_name),
            )
            .put("reason", s(&st.reason))
            .done()
    })
}

fn key_value(kv: &pb::KeyValue) -> Value {
    use pb::key_value::Value as V;
    let o = Obj::default()
        .put("key", s(&kv.key))
        .put("type", en(kv.r#type, pb::key_value::ValueType::as_str_name));
    match &kv.value {
        Some(V::VarintValue(i)) => o.put("varintValue", Some(Value::String(i.to_string()))),
        Some(V::FloatValue(f)) => o.put("floatValue", Some(json!(f))),
        Some(V::DoubleValue(f)) => o.put("doubleValue", Some(json!(f))),
        Some(V::StringValue(x)) => o.put("stringValue", Some(json!(x))),
        None => o,
    }
    .done()
}

fn size(sz: &Option<pb::message_body::content::Size>) -> Option<Value> {
    sz.as_ref().map(|sz| {
        Obj::default()
            .put("width", num(sz.width))
            .put("height", num(sz.height))
            .done()
    })
}

fn content(c: &pb::message_body::Content) -> Value {
    use pb::message_body::content::{SubType, Type};
    Obj::default()
        .put("type", en(c.r#type, Type::as_str_name))
        .put("text", s(&c.text))
        .put("latitude", num(c.latitude))
        .put("longitude", num(c.longitude))
        .put("address", s(&c.address))
        .put("displayName", s(&c.display_name))
        .put("remotePath", s(&c.remote_path))
        .put("secretKey", s(&c.secret_key))
        .put("fileLength", num(c.file_length))
        .put("action", s(&c.action))
        .list("params", c.params.iter().map(key_value).collect())
        .put("duration", num(c.duration))
        .put("size", size(&c.size))
        .put("thumbnailRemotePath", s(&c.thumbnail_remote_path))
        .put("thumbnailSecretKey", s(&c.thumbnail_secret_key))
        .put("thumbnailDisplayName", s(&c.thumbnail_display_name))
        .put("thumbnailFileLength", num(c.thumbnail_file_length))
        .put("thumbnailSize", size(&c.thumbnail_size))
        .put("customEvent", s(&c.custom_event))
        .list("customExts", c.custom_exts.iter().map(key_value).collect())
        .put("buildingName", s(&c.building_name))
        .put("subType", en(c.sub_type, SubType::as_str_name))
        .put("title", s(&c.title))
        .put("summary", s(&c.summary))
        .put("combineLevel", num(c.combine_level))
        .done()
}

fn message_body(b: &pb::MessageBody) -> Value {
    Obj::default()
        .put("type", en(b.r#type, pb::message_body::Type::as_str_name))
        .put("from", jid(&b.from))
        .put("to", jid(&b.to))
        .list("contents", b.contents.iter().map(content).collect())
        .list("ext", b.ext.iter().map(key_value).collect())
        .put("ackMessageId", long(b.ack_message_id))
        .put("ackContent", s(&b.ack_content))
        .put("meta", s(&b.meta))
        .put("editMessageId", long(b.edit_message_id))
        .done()
}

fn statistics(b: &pb::StatisticsBody) -> Value {
    Obj::default()
        .put(
            "operation",
            en(b.operation, pb::statistics_body::Operation::as_str_name),
        )
        .put("version", s(&b.version))
        .put("reason", s(&b.reason))
        .done()
}

/// A meta as the fake server logged it: `payload` replaced by its decoding.
fn meta(m: &pb::Meta) -> Value {
    use pb::meta::{NameSpace, RouteType};
    let payload = m.payload.as_deref().filter(|p| !p.is_empty());
    let decoded = payload.map(|p| match NameSpace::try_from(m.ns.unwrap_or(0)) {
        Ok(NameSpace::Chat) => {
            json!({"MessageBody": message_body(&pb::MessageBody::decode(p).unwrap())})
        }
        Ok(NameSpace::Statistic) => {
            json!({"StatisticsBody": statistics(&pb::StatisticsBody::decode(p).unwrap())})
        }
        _ => panic!("unexpected namespace {:?}", m.ns),
    });
    Obj::default()
        .put("id", long(m.id))
        .put("from", jid(&m.from))
        .put("to", jid(&m.to))
        .put("timestamp", long(m.timestamp))
        .put("ns", en(m.ns, NameSpace::as_str_name))
        .put("routetype", en(m.routetype, RouteType::as_str_name))
        .list("ext", m.ext.iter().map(key_value).collect())
        .list(
            "directedUsers",
            m.directed_users.iter().map(|u| json!(u)).collect(),
        )
        .put("payloadDecoded", Some(decoded.unwrap_or(Value::Null)))
        .done()
}

fn msync(f: &pb::MSync) -> Value {
    Obj::default()
        .put("version", en(f.version, pb::m_sync::Version::as_str_name))
        .put("guid", jid(&f.guid))
        .put("auth", s(&f.auth))
        .put("command", en(f.command, Command::as_str_name))
        .put("deviceId", num(f.device_id))
        .list(
            "encryptType",
            f.encrypt_type
                .iter()
                .map(|e| en(Some(*e), pb::EncryptType::as_str_name).unwrap())
                .collect(),
        )
        .put("traceId", long(f.trace_id))
        .done()
}

fn provision(p: &pb::Provision) -> Value {
    use pb::provision::{CompressType, OsType};
    let compress = |v: &Vec<i32>| {
        v.iter()
            .map(|e| en(Some(*e), CompressType::as_str_name).unwrap())
            .collect()
    };
    Obj::default()
        .put("osType", en(p.os_type, OsType::as_str_name))
        .put("version", s(&p.version))
        .list("compressType", compress(&p.compress_type))
        .list(
            "encryptType",
            p.encrypt_type
                .iter()
                .map(|e| en(Some(*e), pb::EncryptType::as_str_name).unwrap())
                .collect(),
        )
        .put("status", status(&p.status))
        .put("deviceUuid", s(&p.device_uuid))
        .put("deviceName", s(&p.device_name))
        .put("resource", s(&p.resource))
        .put("actionVersion", s(&p.action_version))
        .put("authToken", s(&p.auth_token))
        .put("sessionId", s(&p.session_id))
        .list("protocolCompressType", compress(&p.protocol_compress_type))
        .done()
}

/// Numbers compare by value (JSON renders 480.0 as 480); `payloadDecoded`
/// absent on one side and null on the other means no payload.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
            keys.into_iter().all(|k| {
                let (l, r) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                same(l, r)
            })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(l, r)| same(l, r))
        }
        _ => a == b,
    }
}

fn check(what: &str, ours: Value, theirs: &Value) {
    let mut theirs = theirs.clone();
    // The log renders metas of SYNC payloads with their payload decoded;
    // ours does too. `metaText` (Meta.meta as text) never occurs here.
    if let Some(o) = theirs.as_object_mut() {
        o.remove("metaText");
    }
    assert!(
        same(&ours, &theirs),
        "{what}\n ours:   {ours}\n theirs: {theirs}"
    );
}

fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(what: &str, m: &M) {
    let again = M::decode(&m.encode_to_vec()[..]).unwrap();
    assert_eq!(&again, m, "{what}: re-encoding changes the message");
}

#[test]
fn every_recorded_frame_decodes_to_what_the_sdk_schema_read() {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (at, rec) in traces() {
        let bytes = hex::decode(rec["hex"].as_str().unwrap()).unwrap();
        let dir = rec["dir"].as_str().unwrap();
        let cmd = rec["cmd"].as_str().unwrap();
        let what = format!("{at} {dir} {cmd}");
        let f = pb::MSync::decode(&bytes[..]).unwrap_or_else(|e| panic!("{what}: {e}"));
        round_trip(&what, &f);
        check(&what, msync(&f), &rec["msync"]);
        let payload = f.payload.clone().unwrap_or_default();
        assert_eq!(
            payload.len() as u64,
            rec["payloadLen"].as_u64().unwrap(),
            "{what}"
        );
        match (dir, Command::try_from(f.command.unwrap()).unwrap()) {
            ("C>S", _) => {
                // What the server acts on.
                let req = decode_request(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
                match req {
                    Request::Provision(login) => {
                        check(&what, provision(&login.provision), &rec["Provision"]);
                        round_trip(&what, &login.provision);
                        assert_eq!(login.app_key.as_deref(), Some("easemob-demo#chatd"));
                        assert_eq!(login.user.as_deref(), Some("user2"));
                        let auth = rec["msync"]["auth"].as_str().unwrap();
                        assert_eq!(login.token.as_deref(), auth.strip_prefix("$t$"), "{what}");
                        assert!(login.resource.unwrap().starts_with("webim_web_"));
                    }
                    Request::Unread => assert_eq!(cmd, "UNREAD"),
                    Request::Sync(ul) => {
                        round_trip(&what, &*ul);
                        let ours = Obj::default()
                            .put("meta", ul.meta.as_ref().map(meta))
                            .put("key", long(ul.key))
                            .put("queue", jid(&ul.queue))
                            .done();
                        check(&what, ours, &rec["CommSyncUL"]);
                        if let Some(m) = &ul.meta {
                            let kind = rec["CommSyncUL"]["meta"]["payloadDecoded"]["MessageBody"]
                                ["type"]
                                .as_str();
                            match (parse_uplink(m), kind) {
                                (Uplink::Statistic, None) => {}
                                (Uplink::Message(o), Some("CHAT")) => {
                                    assert_eq!(o.to, "user1");
                                    assert_eq!(o.msg_type.as_str(), "txt");
                                }
                                (Uplink::Ack { msg_id, .. }, Some("DELIVER_ACK" | "READ_ACK")) => {
                                    assert!(msg_id.unwrap() > 1 << 53, "{what}: u64 ack id");
                                }
                                (other, k) => panic!("{what}: {other:?} for {k:?}"),
                            }
                        }
                    }
                    Request::Logout(l) => {
                        round_trip(&what, &l);
                        let ours = Obj::default()
                            .put("sessionId", s(&l.session_id))
                            .put("reason", s(&l.reason))
                            .put("status", status(&l.status))
                            .done();
                        check(&what, ours, &rec["Logout"]);
                    }
                    Request::Unknown(c) => panic!("{what}: unknown command {c}"),
                }
            }
            ("S>C", Command::Provision) => {
                let p = pb::Provision::decode(&payload[..]).unwrap();
                round_trip(&what, &p);
                check(&what, provision(&p), &rec["Provision"]);
            }
            ("S>C", Command::Unread) => {
                let dl = pb::CommUnreadDl::decode(&payload[..]).unwrap();
                round_trip(&what, &dl);
                let ours = Obj::default()
                    .put("status", status(&dl.status))
                    .list(
                        "unread",
                        dl.unread
                            .iter()
                            .map(|q| {
                                Obj::default()
                                    .put("queue", jid(&q.queue))
                                    .put("n", num(q.n))
                                    .done()
                            })
                            .collect(),
                    )
                    .put("timestamp", long(dl.timestamp))
                    .done();
                check(&what, ours, &rec["CommUnreadDL"]);
            }
            ("S>C", Command::Notice) => {
                let n = pb::CommNotice::decode(&payload[..]).unwrap();
                round_trip(&what, &n);
                check(
                    &what,
                    Obj::default().put("queue", jid(&n.queue)).done(),
                    &rec["CommNotice"],
                );
            }
            ("S>C", Command::Sync) => {
                let dl = pb::CommSyncDl::decode(&payload[..]).unwrap();
                round_trip(&what, &dl);
                // Ids beyond 2^53 survive.
                for m in &dl.metas {
                    assert!(m.id.unwrap() > 1 << 53);
                }
                let ours = Obj::default()
                    .put("status", status(&dl.status))
                    .put("metaId", long(dl.meta_id))
                    .put("serverId", long(dl.server_id))
                    .list("metas", dl.metas.iter().map(meta).collect())
                    .put("nextKey", long(dl.next_key))
                    .put("queue", jid(&dl.queue))
                    .put("isLast", dl.is_last.map(Value::Bool))
                    .put("timestamp", long(dl.timestamp))
                    .done();
                check(&what, ours, &rec["CommSyncDL"]);
            }
            ("S>C", Command::Logout) => {
                let l = pb::Logout::decode(&payload[..]).unwrap();
                round_trip(&what, &l);
                check(
                    &what,
                    Obj::default().put("status", status(&l.status)).done(),
                    &rec["Logout"],
                );
            }
            (d, c) => panic!("{what}: unexpected {d} {c:?}"),
        }
        *counts.entry(format!("{dir} {cmd}")).or_default() += 1;
    }
    // Every command of the protocol was seen, both ways.
    for k in [
        "C>S PROVISION",
        "S>C PROVISION",
        "C>S UNREAD",
        "S>C UNREAD",
        "S>C NOTICE",
        "C>S SYNC",
        "S>C SYNC",
        "C>S LOGOUT",
        "S>C LOGOUT",
    ] {
        assert!(
            counts.get(k).copied().unwrap_or(0) > 0,
            "no {k} frame in the traces"
        );
    }
    assert!(counts.values().sum::<usize>() >= 95, "{counts:?}");
}

/// Inner messages are written in field order by both encoders, so chatd
/// re-encodes the SDK's own payloads byte for byte.
#[test]
fn payloads_re_encode_byte_for_byte() {
    for (at, rec) in traces() {
        let bytes = hex::decode(rec["hex"].as_str().unwrap()).unwrap();
        let f = pb::MSync::decode(&bytes[..]).unwrap();
        let Some(p) = f.payload.as_deref().filter(|p| !p.is_empty()) else {
            continue;
        };
        let dir = rec["dir"].as_str().unwrap();
        let again = match (dir, Command::try_from(f.command.unwrap()).unwrap()) {
            (_, Command::Provision) => pb::Provision::decode(p).unwrap().encode_to_vec(),
            ("C>S", Command::Sync) => pb::CommSyncUl::decode(p).unwrap().encode_to_vec(),
            ("S>C", Command::Sync) => pb::CommSyncDl::decode(p).unwrap().encode_to_vec(),
            (_, Command::Unread) => pb::CommUnreadDl::decode(p).unwrap().encode_to_vec(),
            (_, Command::Notice) => pb::CommNotice::decode(p).unwrap().encode_to_vec(),
            (_, Command::Logout) => pb::Logout::decode(p).unwrap().encode_to_vec(),
            (d, c) => panic!("{at}: unexpected {d} {c:?}"),
        };
        assert_eq!(hex::encode(again), hex::encode(p), "{at}");
    }
}

/// The SDK writes repeated enums unpacked; a packed encoding of the same
/// field decodes the same.
#[test]
fn packed_and_unpacked_repeated_fields_decode_alike() {
    let unpacked = pb::MSync {
        encrypt_type: vec![0, 1, 2],
        command: Some(Command::Unread as i32),
        ..Default::default()
    }
    .encode_to_vec();
    // Field 11, length-delimited, three varints.
    let mut packed = vec![0x40, 0x01]; // command = UNREAD
    packed.extend([0x5a, 0x03, 0x00, 0x01, 0x02]);
    let a = pb::MSync::decode(&unpacked[..]).unwrap();
    let b = pb::MSync::decode(&packed[..]).unwrap();
    assert_eq!(a, b);
    assert_eq!(b.encrypt_type, vec![0, 1, 2]);
    // And the server's own encoding stays unpacked, as the SDK writes it.
    assert!(hex::encode(&unpacked).contains("58005801"));
}
