//! Users in SQLite: the `users` table of the `sqlite` engine's database, and
//! of the app registry beside the journal (users are few writes, each its
//! own transaction, and a relational table serves them well).

use crate::model::UserInsert;
use crate::Result;
use chatd_core::{NewUser, UserRecord};
use rusqlite::{params, Connection, OptionalExtension};

pub(crate) const USERS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS users (
    app INTEGER NOT NULL,
    username TEXT NOT NULL,
    uuid TEXT NOT NULL,
    password_hash TEXT,
    nickname TEXT,
    created_ms INTEGER NOT NULL,
    modified_ms INTEGER NOT NULL,
    activated INTEGER NOT NULL,
    PRIMARY KEY (app, username)
) WITHOUT ROWID;
"#;

/// Creates users one by one; a taken name fails alone.
pub(crate) fn create_users(
    c: &Connection,
    app: i64,
    users: Vec<NewUser>,
) -> Result<Vec<UserInsert>> {
    let now = chatd_core::clock::now_ms();
    let mut out = Vec::with_capacity(users.len());
    for u in users {
        let rec = UserRecord {
            uuid: chatd_core::ids::uuid_v4_string(),
            username: u.username,
            password_hash: u.password_hash,
            nickname: u.nickname,
            created_ms: now,
            modified_ms: now,
            activated: true,
        };
        let inserted = c
            .prepare_cached(
                "INSERT INTO users (app, username, uuid, password_hash, nickname, created_ms, \
                 modified_ms, activated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1) \
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                app,
                rec.username,
                rec.uuid,
                rec.password_hash,
                rec.nickname,
                rec.created_ms,
                rec.modified_ms
            ])?;
        out.push(if inserted == 1 {
            UserInsert::Created(rec)
        } else {
            UserInsert::Exists(rec.username)
        });
    }
    Ok(out)
}

pub(crate) fn read_user(c: &Connection, app: i64, username: &str) -> Result<Option<UserRecord>> {
    Ok(c.prepare_cached(
        "SELECT uuid, username, password_hash, nickname, created_ms, modified_ms, activated \
         FROM users WHERE app = ?1 AND username = ?2",
    )?
    .query_row(params![app, username], |r| {
        Ok(UserRecord {
            uuid: r.get(0)?,
            username: r.get(1)?,
            password_hash: r.get(2)?,
            nickname: r.get(3)?,
            created_ms: r.get(4)?,
            modified_ms: r.get(5)?,
            activated: r.get(6)?,
        })
    })
    .optional()?)
}

/// Deletes a user and returns what it was.
pub(crate) fn delete_user(c: &Connection, app: i64, username: &str) -> Result<Option<UserRecord>> {
    let existing = read_user(c, app, username)?;
    if existing.is_some() {
        c.prepare_cached("DELETE FROM users WHERE app = ?1 AND username = ?2")?
            .execute(params![app, username])?;
    }
    Ok(existing)
}
