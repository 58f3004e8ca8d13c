//! Integration tests of the REST API against the real server.

#[path = "../common/mod.rs"]
mod common;

mod connections;
mod durability;
mod errors;
mod limits;
mod send;
mod tokens;
mod users;
