//! The outbox seen from the relay: due batches out, deliveries in, retention (main thread).

use pgrx::prelude::Spi;
use pgrx::spi::{SpiClient, SpiResult};
use serde_json::json;

use super::counters::{add_latencies, add_to_counter};
use crate::config::BroadcasterConfig;
use crate::message::with_retries;
use crate::protocol::{Delivery, OutboxMessage, Publish};
use crate::states::MessageType;

/// The next batch of each broadcaster that has one due, in outbox order: its
/// oldest pending rows, or, when a batch of it is in flight, the rows after
/// that batch's last id. A batch is due when its first row is (a failed row
/// holds back the rows behind it).
pub fn due_batches(
    broadcasters: &[(&BroadcasterConfig, Option<i64>)],
    limit: i64,
) -> SpiResult<Vec<Publish>> {
    Spi::connect(|client| {
        // Walk the queue's index in id order, stop after `limit` rows, and look
        // each up in the outbox by id. Right after a burst the statistics still
        // say the queue is nearly empty, and the planner would bitmap-scan and
        // sort every pending row, or hash the outbox, instead: 1.2 s instead of
        // 50 ms for a batch out of 100,000. The settings end with this transaction.
        client.select(
            "SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true),
                    set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)",
            None,
            &[],
        )?;
        let mut batches = Vec::new();
        for &(broadcaster, after) in broadcasters {
            batches.extend(due_batch(client, broadcaster, after, limit)?);
        }
        Ok(batches)
    })
}

pub(super) fn due_batch(
    client: &SpiClient<'_>,
    broadcaster: &BroadcasterConfig,
    after: Option<i64>,
    limit: i64,
) -> SpiResult<Option<Publish>> {
    let rows = client.select(
        "SELECT o.id, o.message_id, o.type, o.destination, o.key, o.payload,
                    o.next_attempt_at <= now(), o.attempts
               FROM (SELECT q.id FROM eventeum.outbox_pending q
                      WHERE q.broadcaster = $1 AND q.id > $3
                      ORDER BY q.id
                      LIMIT $2) q
               JOIN eventeum.outbox o ON o.id = q.id
              ORDER BY q.id",
        None,
        &[
            broadcaster.name.as_str().into(),
            limit.into(),
            after.unwrap_or(0).into(),
        ],
    )?;
    let mut messages = Vec::new();
    for (n, row) in rows.enumerate() {
        let due: bool = row.get(7)?.unwrap_or(false);
        if n == 0 && !due {
            return Ok(None);
        }
        let message_type: String = row.get(3)?.unwrap_or_default();
        let payload: String = row.get(6)?.unwrap_or_default();
        // Stored with retries 0: only a retried chain message needs its count set.
        let payload = match MessageType::parse(&message_type) {
            Some(t) if t.eventeum_class().is_some() => {
                let attempts: i32 = row.get(8)?.unwrap_or(0);
                with_retries(&payload, attempts).into_owned()
            }
            _ => payload,
        };
        messages.push(OutboxMessage {
            id: row.get(1)?.unwrap_or_default(),
            message_id: row.get(2)?.unwrap_or_default(),
            message_type,
            destination: row.get(4)?.unwrap_or_default(),
            key: row.get(5)?,
            payload,
        });
    }
    Ok((!messages.is_empty()).then(|| Publish {
        broadcaster: broadcaster.name.clone(),
        kind: broadcaster.kind,
        options: broadcaster.options.clone(),
        messages,
        behind_another: after.is_some(),
    }))
}

/// Records what a broker acknowledged: delivered rows are marked, a transient
/// failure is retried with capped exponential backoff, forever; a permanent
/// one moves to `dead_letters` with its reason. The broadcaster's counters,
/// latency histogram and health state change in the same transaction.
pub fn record_delivery(delivery: &Delivery) -> SpiResult<()> {
    Spi::connect_mut(|client| {
        let broadcaster = delivery.broadcaster.as_str();
        if !delivery.delivered.is_empty() {
            // Marked in place, a HOT update as no index of the outbox names
            // delivered_at, and out of the queue. The outbox is locked first
            // (the CTE comes first), as everywhere, so that remove_broadcaster
            // cannot deadlock with us.
            let done = client.update(
                "WITH marked AS (
                     UPDATE eventeum.outbox SET delivered_at = now()
                      WHERE id = ANY ($2) AND delivered_at IS NULL)
                 DELETE FROM eventeum.outbox_pending WHERE broadcaster = $1 AND id = ANY ($2)
                 RETURNING extract(epoch FROM clock_timestamp() - created_at)::float8",
                None,
                &[broadcaster.into(), delivery.delivered.clone().into()],
            )?;
            let mut seconds = Vec::with_capacity(done.len());
            for row in done {
                seconds.push(row.get::<f64>(1)?.unwrap_or_default());
            }
            add_latencies(client, broadcaster, &seconds)?;
            client.update(
                "INSERT INTO eventeum.broadcaster_state AS s (broadcaster, last_delivered_at)
                 SELECT name, clock_timestamp() FROM eventeum.broadcasters WHERE name = $1
                 ON CONFLICT (broadcaster) DO UPDATE SET last_delivered_at = EXCLUDED.last_delivered_at",
                None,
                &[broadcaster.into()],
            )?;
        }
        let Some(failure) = &delivery.failure else {
            return Ok(());
        };
        if failure.error.is_permanent() {
            client.update(
                "WITH dead AS (DELETE FROM eventeum.outbox WHERE id = $1 RETURNING *),
                      dequeued AS (DELETE FROM eventeum.outbox_pending WHERE broadcaster = $3 AND id = $1)
                 INSERT INTO eventeum.dead_letters
                        (id, message_id, type, broadcaster, destination, key, payload, created_at, attempts, reason)
                 SELECT id, message_id, type, broadcaster, destination, key, payload, created_at, attempts + 1, $2
                   FROM dead",
                None,
                &[failure.id.into(), failure.error.to_string().into(), broadcaster.into()],
            )?;
            add_to_counter(
                client,
                "dead_lettered",
                json!({"broadcaster": broadcaster}),
                1.0,
            )?;
            pgrx::warning!(
                "eventeum: broadcaster \"{}\" rejected outbox row {} for good; moved to dead_letters: {}",
                broadcaster,
                failure.id,
                failure.error
            );
        } else {
            client.update(
                "UPDATE eventeum.outbox
                    SET attempts = attempts + 1, last_error = $2,
                        next_attempt_at = now() + least(interval '30 seconds',
                                                        interval '250 milliseconds' * power(2, least(attempts, 10)))
                  WHERE id = $1",
                None,
                &[failure.id.into(), failure.error.to_string().into()],
            )?;
        }
        add_to_counter(client, "failed", json!({"broadcaster": broadcaster}), 1.0)?;
        client.update(
            "INSERT INTO eventeum.broadcaster_state AS s (broadcaster, last_failed_at, last_error)
             SELECT name, clock_timestamp(), $2 FROM eventeum.broadcasters WHERE name = $1
             ON CONFLICT (broadcaster) DO UPDATE SET last_failed_at = EXCLUDED.last_failed_at, last_error = $2",
            None,
            &[broadcaster.into(), failure.error.to_string().into()],
        )?;
        Ok(())
    })
}

/// Deletes delivered outbox rows older than the retention period, and queue
/// rows whose outbox row is gone (deleted by hand).
pub fn prune_outbox(retention_seconds: i32) -> SpiResult<()> {
    Spi::connect_mut(|client| {
        client.update(
            "DELETE FROM eventeum.outbox WHERE delivered_at < now() - make_interval(secs => $1)",
            None,
            &[retention_seconds.into()],
        )?;
        client.update(
            "DELETE FROM eventeum.outbox_pending q
              WHERE NOT EXISTS (SELECT 1 FROM eventeum.outbox o WHERE o.id = q.id)",
            None,
            &[],
        )?;
        Ok(())
    })
}
