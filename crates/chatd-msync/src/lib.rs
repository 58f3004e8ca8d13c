//! msync, the binary protocol of the official client SDKs
//! (`easemob-websdk`, `agora-chat` and their native siblings), for chatd.
//!
//! This crate holds no I/O, so that it can be tested frame by frame:
//!
//! - [`pb`]: the protobuf messages, generated at build time from
//!   `proto/msync.proto` (chatd's own file, written from the schema the SDK
//!   embeds) by `protox` + `prost-build`, which needs no system `protoc`.
//! - [`frame`]: decoding client frames (`PROVISION`, `UNREAD`, `SYNC`,
//!   `LOGOUT`) and encoding the server's answers.
//! - [`content`]: the eight REST message types ⇄ `MessageBody.contents`,
//!   and JSON `ext` ⇄ typed `KeyValue`s.
//! - [`meta`]: an inbox entry as a downlink `Meta`, receipts, and uplink
//!   metas as send requests or acknowledgements.
//! - [`queues`]: one connection's per-peer queues over the device's single
//!   inbox cursor, and how queue keys become inbox acknowledgements.
//!
//! The WebSocket transport that drives these is in `chatd-api`
//! (`routes/msync.rs`), on top of the same delivery core as the JSON
//! WebSocket.

pub mod content;
pub mod frame;
pub mod meta;
pub mod queues;

/// The generated protobuf messages of `proto/msync.proto`.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/msync.rs"));
}

/// The domain every JID carries (the SDK checks it to tell one-to-one
/// queues from group ones).
pub const DOMAIN: &str = "easemob.com";

/// A JID for `name` in the app `app_key` (`org#app`).
pub fn jid(app_key: &str, name: &str) -> pb::Jid {
    pb::Jid {
        app_key: Some(app_key.to_string()),
        name: Some(name.to_string()),
        domain: Some(DOMAIN.to_string()),
        client_resource: None,
    }
}
