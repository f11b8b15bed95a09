//! Broadcasters and dead letters: `add_broadcaster`, `remove_broadcaster`, `list_broadcasters`, `replay_dead_letters` (backends).

use pgrx::prelude::{default, pg_extern, SetOfIterator, Spi};
use pgrx::JsonB;
use serde_json::Value;

use super::{
    exists, network_policy, or_raise, raise, require_served_database, wake_worker_at_commit,
};
use crate::broadcast::{normalize_options, BroadcasterKind};
use crate::error::ApiError;
use crate::redact::redact_options;

/// Adds a broadcaster: `kind` kafka, rabbitmq or http, with its options
/// (see docs/REFERENCE.md). Messages written from then on go to it. Returns the name.
#[pg_extern(volatile)]
fn add_broadcaster(name: &str, kind: &str, options: default!(JsonB, "'{}'")) -> String {
    require_served_database();
    if name.trim().is_empty() {
        raise(ApiError::invalid("broadcaster name must not be empty"));
    }
    let kind = or_raise(BroadcasterKind::parse(kind));
    let options = or_raise(normalize_options(kind, &options.0, &network_policy()));
    if exists(
        "SELECT EXISTS (SELECT 1 FROM eventeum.broadcasters WHERE name = $1)",
        name,
    ) {
        raise(ApiError::Duplicate {
            kind: "broadcaster",
            name: name.to_string(),
        });
    }
    Spi::run_with_args(
        "INSERT INTO eventeum.broadcasters (name, kind, options) VALUES ($1, $2, $3)",
        &[name.into(), kind.as_str().into(), JsonB(options).into()],
    )
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot add broadcaster: {e}"));
    wake_worker_at_commit();
    name.to_string()
}

/// Removes a broadcaster (or consumer group) and its undelivered messages.
#[pg_extern(volatile)]
fn remove_broadcaster(name: &str) {
    let deleted = Spi::connect_mut(|client| {
        // Wait for the worker's writes to the outbox to end, and hold off its
        // next ones until this commits: it marks rows delivered by id while
        // this deletes them in scan order, and the two could deadlock. Every
        // writer locks the outbox before its queue.
        client.update(
            "LOCK TABLE eventeum.outbox, eventeum.outbox_pending IN SHARE ROW EXCLUSIVE MODE",
            None,
            &[],
        )?;
        client.update(
            "WITH dequeued AS (DELETE FROM eventeum.outbox_pending WHERE broadcaster = $1 RETURNING id)
             DELETE FROM eventeum.outbox WHERE id IN (SELECT id FROM dequeued)",
            None,
            &[name.into()],
        )?;
        let deleted = client
            .update(
                "DELETE FROM eventeum.broadcasters WHERE name = $1",
                None,
                &[name.into()],
            )?
            .len();
        Ok::<_, pgrx::spi::SpiError>(deleted)
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot remove broadcaster: {e}"));
    if deleted == 0 {
        raise(ApiError::not_found("broadcaster", name));
    }
    wake_worker_at_commit();
}

/// Every broadcaster and consumer group, with passwords and URL credentials hidden.
#[pg_extern(stable)]
fn list_broadcasters() -> SetOfIterator<'static, JsonB> {
    let rows: Vec<JsonB> = Spi::connect(|client| {
        client
            .select("SELECT name, kind, options::text FROM eventeum.broadcasters ORDER BY name", None, &[])?
            .map(|row| {
                let name: String = row.get(1)?.unwrap_or_default();
                let kind: String = row.get(2)?.unwrap_or_default();
                let options: Value = serde_json::from_str(&row.get::<String>(3)?.unwrap_or_default()).unwrap_or_default();
                Ok(JsonB(serde_json::json!({"name": name, "kind": kind, "options": redact_options(&options)})))
            })
            .collect::<Result<Vec<_>, pgrx::spi::SpiError>>()
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot list broadcasters: {e}"));
    SetOfIterator::new(rows)
}

/// Puts dead letters (of one broadcaster, or all) back in the outbox for
/// another attempt. Returns how many.
#[pg_extern(volatile)]
fn replay_dead_letters(broadcaster: default!(Option<&str>, "NULL")) -> i64 {
    require_served_database();
    let replayed = Spi::connect_mut(|client| {
        let moved = client.update(
            "WITH dead AS (
                DELETE FROM eventeum.dead_letters WHERE $1::text IS NULL OR broadcaster = $1 RETURNING *
             ), added AS (
                INSERT INTO eventeum.outbox (id, message_id, type, broadcaster, destination, key, payload, created_at, attempts)
                SELECT id, message_id, type, broadcaster, destination, key, payload, created_at, 0 FROM dead
                ON CONFLICT DO NOTHING
                RETURNING broadcaster, id, created_at)
             INSERT INTO eventeum.outbox_pending (broadcaster, id, created_at)
             SELECT broadcaster, id, created_at FROM added",
            None,
            &[broadcaster.into()],
        )?;
        Ok::<_, pgrx::spi::SpiError>(moved.len() as i64)
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot replay dead letters: {e}"));
    if replayed > 0 {
        wake_worker_at_commit();
    }
    replayed
}
