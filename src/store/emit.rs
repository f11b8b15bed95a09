//! Messages out of a step, in its transaction: a NOTIFY each and an outbox row per broadcaster (main thread).

use std::collections::HashMap;
use std::ffi::{CStr, CString};

use pgrx::prelude::pg_sys;
use pgrx::spi::{SpiClient, SpiResult};

use crate::config::NodeConfig;
use crate::discard::discard;
use crate::message::{Batch, Outgoing};
use crate::states::MessageType;

/// Sends messages out, in the caller's transaction: a NOTIFY each, and an
/// outbox row for every broadcaster that takes their type. Both happen at
/// commit, or not at all.
pub(super) fn emit(client: &mut SpiClient<'_>, ty: MessageType, batch: Batch) -> SpiResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    if outbox_readers(client)? {
        // Borrowed: the arrays are built from the messages' own strings,
        // not from copies of them.
        fn column<'a>(
            messages: &'a [Outgoing],
            f: impl Fn(&'a Outgoing) -> Option<&'a str>,
        ) -> Vec<Option<&'a str>> {
            messages.iter().map(f).collect()
        }
        let messages = &batch.messages;
        let targets: Vec<Option<String>> = messages
            .iter()
            .map(|m| {
                m.targets
                    .as_ref()
                    .map(|t| serde_json::to_string(t).expect("names serialize"))
            })
            .collect();
        client.update(
            "WITH added AS (
                 INSERT INTO eventeum.outbox (message_id, type, broadcaster, destination, key, payload)
                 SELECT m.message_id, $1, b.name, d.destination, m.key, m.payload
                   FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                        WITH ORDINALITY AS m(message_id, key, route, targets, payload, seq)
                  CROSS JOIN eventeum.broadcasters b
                  CROSS JOIN LATERAL (SELECT eventeum.destination(b.kind, b.options, $1, m.route) AS destination) d
                  WHERE d.destination IS NOT NULL
                    AND (m.targets IS NULL OR m.targets::jsonb ? b.name)
                  ORDER BY b.name, m.seq
                 ON CONFLICT (broadcaster, message_id, destination) DO NOTHING
                 RETURNING broadcaster, id, created_at)
             INSERT INTO eventeum.outbox_pending (broadcaster, id, created_at)
             SELECT broadcaster, id, created_at FROM added",
            None,
            &[
                ty.as_str().into(),
                column(messages, |m| Some(&m.message_id)).into(),
                column(messages, |m| Some(&m.key)).into(),
                column(messages, |m| Some(&m.route)).into(),
                targets.into(),
                column(messages, |m| Some(&m.payload)).into(),
            ],
        )?;
    }
    if let Some(channel) = ty.notify_channel() {
        notify(channel, &batch);
    }
    discard(batch);
    Ok(())
}

/// Whether any broadcaster or consumer group reads the outbox.
pub(super) fn outbox_readers(client: &SpiClient<'_>) -> SpiResult<bool> {
    Ok(client
        .select(
            "SELECT EXISTS (SELECT 1 FROM eventeum.broadcasters)",
            None,
            &[],
        )?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false))
}

/// Restricts contract-event messages to the broadcasters their filter names.
pub(super) fn with_filter_targets(mut messages: Batch, node: &NodeConfig) -> Batch {
    let named: HashMap<&str, &Vec<String>> = node
        .filters
        .iter()
        .filter_map(|f| Some((f.id.as_str(), f.definition.broadcasters.as_ref()?)))
        .collect();
    if named.is_empty() {
        return messages; // every message goes to every broadcaster
    }
    for message in &mut messages.messages {
        // A contract event's route is its filter id.
        message.targets = named
            .get(message.route.as_str())
            .map(|names| (*names).clone());
    }
    messages
}

/// Queues the NOTIFYs; Postgres delivers them when, and only if, the transaction commits.
///
/// Calls what `pg_notify` calls, without a query per batch: for a backfill
/// piece the SQL detour (an array of every payload, unnested) cost as much as
/// queueing the notifications themselves.
pub(super) fn notify(channel: &str, batch: &Batch) {
    let channel = CString::new(channel).expect("channel names have no NUL");
    for notice in batch.notices() {
        queue_notify(&channel, notice);
    }
}

/// Queues one NOTIFY on `channel`, delivered at commit.
pub(super) fn notify_one(channel: &str, payload: &str) {
    let channel = CString::new(channel).expect("channel names have no NUL");
    // JSON escapes every control character: no NUL inside.
    let payload = CString::new(payload).expect("JSON has no NUL");
    queue_notify(&channel, &payload);
}

fn queue_notify(channel: &CStr, payload: &CStr) {
    // SAFETY: main thread, inside the step's transaction; both strings
    // outlive the call, which copies them into transaction memory.
    // A Postgres ERROR in it comes back as a Rust panic, as from SPI.
    unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| Async_Notify(channel.as_ptr(), payload.as_ptr()))
    };
}

unsafe extern "C-unwind" {
    /// From `commands/async.h`, which pgrx does not bind.
    fn Async_Notify(channel: *const std::ffi::c_char, payload: *const std::ffi::c_char);
}
