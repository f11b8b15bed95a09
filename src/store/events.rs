//! Contract-event rows: **where a decoded log becomes a row** (COPY on a first pass, an upsert on a replay), confirmations, and logs that did not decode (main thread).

use std::collections::BTreeSet;

use alloy::primitives::hex;
use pgrx::spi::{SpiClient, SpiResult};
use serde_json::{json, Value};

use super::copy::copy_in;
use super::counters::count_events;
use super::records_of;
use crate::config::BackfillOf;
use crate::discard::discard;
use crate::message::{Batch, ContractEventRecord, Outgoing};
use crate::protocol::{ChainStep, StepKind};
use crate::rows::{PreparedEvents, EVENT_COLUMNS};
use crate::states::EventStatus;

/// Inserts the step's events; returns the messages of the rows that are new
/// (or valid again after a fork). The follower built the rows, their
/// messages and their COPY data; a first pass hands the data to COPY, a
/// replay resolves conflicts row by row.
/// Returns how many rows were written, and their messages (none when the
/// step was built for nobody).
pub(super) fn insert_events(
    client: &mut SpiClient<'_>,
    step: &mut ChainStep,
) -> SpiResult<(usize, Batch)> {
    let PreparedEvents {
        records,
        messages,
        copy,
    } = std::mem::take(&mut step.prepared);
    if records.is_empty() {
        return Ok((0, Batch::default()));
    }
    // A replay meets rows it wrote before and must resolve conflicts; a first
    // pass does not, and goes through COPY, at about twice the speed.
    let (records, messages) = if !has_stored_events(client, step, &records)? {
        copy_in(c"contract_events", &EVENT_COLUMNS, copy);
        (records, messages)
    } else {
        discard(copy);
        upsert_events(client, step, records, messages)?
    };
    for status in [EventStatus::Unconfirmed, EventStatus::Confirmed] {
        let written = records.iter().filter(|r| r.status == status).count();
        count_events(client, &step.node, status, written)?;
    }
    let written = records.len();
    discard(records);
    Ok((written, messages))
}

/// Writes events some of which may be stored already (a replay): only rows
/// that are new, or whose block is canonical again, are written; returns
/// those, with their messages.
pub(super) fn upsert_events(
    client: &mut SpiClient<'_>,
    step: &ChainStep,
    records: Vec<ContractEventRecord>,
    messages: Batch,
) -> SpiResult<(Vec<ContractEventRecord>, Batch)> {
    fn column<T>(records: &[ContractEventRecord], f: impl Fn(&ContractEventRecord) -> T) -> Vec<T> {
        records.iter().map(f).collect()
    }
    let written = client.update(
        "INSERT INTO eventeum.contract_events AS e
                (id, filter_id, node, name, address, block_number, block_hash, transaction_hash,
                 log_index, indexed_parameters, non_indexed_parameters,
                 event_specification_signature, correlation_id, status, block_timestamp)
         SELECT r.id, r.filter_id, $1, r.name, r.address, r.block_number, r.block_hash,
                r.transaction_hash, r.log_index, r.indexed::jsonb, r.non_indexed::jsonb,
                r.signature, r.correlation_id, r.status::eventeum.event_status, r.block_timestamp
           FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[],
                       $8::text[], $9::int[], $10::text[], $11::text[], $12::text[], $13::text[],
                       $14::text[], $15::bigint[])
             AS r(id, filter_id, name, address, block_number, block_hash, transaction_hash, log_index,
                  indexed, non_indexed, signature, correlation_id, status, block_timestamp)
         ON CONFLICT (filter_id, node, block_hash, transaction_hash, log_index) DO UPDATE
            SET status = EXCLUDED.status, updated_at = now()
          WHERE e.status = 'INVALIDATED'  -- its block is canonical again
         RETURNING e.filter_id, e.id",
        None,
        &[
            step.node.as_str().into(),
            column(&records, |r| r.id.clone()).into(),
            column(&records, |r| r.filter_id.clone()).into(),
            column(&records, |r| r.name.clone()).into(),
            column(&records, |r| r.address.clone()).into(),
            column(&records, |r| r.block_number).into(),
            column(&records, |r| r.block_hash.clone()).into(),
            column(&records, |r| r.transaction_hash.clone()).into(),
            column(&records, |r| r.log_index).into(),
            column(&records, |r| r.indexed_parameters.get().to_string()).into(),
            column(&records, |r| r.non_indexed_parameters.get().to_string()).into(),
            column(&records, |r| r.event_specification_signature.clone()).into(),
            column(&records, |r| r.correlation_id.clone()).into(),
            column(&records, |r| r.status.as_str()).into(),
            column(&records, |r| r.block_timestamp).into(),
        ],
    )?;
    if written.len() == records.len() {
        return Ok((records, messages));
    }
    let notify_each = messages.has_notices();
    // Only the rows written now are new.
    let mut fresh = std::collections::HashSet::with_capacity(written.len());
    for row in written {
        let filter_id: String = row.get(1)?.unwrap_or_default();
        let id: String = row.get(2)?.unwrap_or_default();
        fresh.insert((filter_id, id));
    }
    let is_fresh = |r: &ContractEventRecord| fresh.contains(&(r.filter_id.clone(), r.id.clone()));
    if messages.is_empty() {
        // Built for nobody: only the rows to count.
        let records = records.into_iter().filter(is_fresh).collect();
        return Ok((records, messages));
    }
    let (records, messages): (Vec<_>, Vec<_>) = records
        .into_iter()
        .zip(messages.messages)
        .filter(|(r, _)| is_fresh(r))
        .unzip();
    let messages = if notify_each {
        messages.into()
    } else {
        Batch::without_notices(messages)
    };
    Ok((records, messages))
}

/// Whether the node has rows where the step's events could land: in the
/// step's blocks, for the backfilled filter, or for any filter when live.
pub(super) fn has_stored_events(
    client: &mut SpiClient<'_>,
    step: &ChainStep,
    rows: &[ContractEventRecord],
) -> SpiResult<bool> {
    let found = match &step.kind {
        StepKind::Backfill {
            of: BackfillOf::Filter(filter_id),
            ..
        } => {
            // During a backfill the statistics still say the table is nearly
            // empty, and the planner would scan the filter's rows instead of
            // probing the key: a cost that grew with every piece. Make it
            // probe, hash by hash, and put the settings back after.
            client.select(
                "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true)",
                None,
                &[],
            )?;
            let hashes: BTreeSet<&str> = rows.iter().map(|r| r.block_hash.as_str()).collect();
            let found = client
                .select(
                "SELECT EXISTS (SELECT 1 FROM unnest($3::text[]) AS h(hash)
                                 CROSS JOIN LATERAL (
                                       SELECT 1 FROM eventeum.contract_events e
                                        WHERE e.filter_id = $1 AND e.node = $2 AND e.block_hash = h.hash
                                        LIMIT 1) found)",
                None,
                &[
                    filter_id.as_str().into(),
                    step.node.as_str().into(),
                    hashes.into_iter().collect::<Vec<_>>().into(),
                ],
            )?
            .first()
            .get_one::<bool>()?;
            client.select(
                "SELECT set_config('enable_seqscan', 'on', true), set_config('enable_bitmapscan', 'on', true)",
                None,
                &[],
            )?;
            found
        }
        // Live, or a member's backfill: for any filter.
        StepKind::Live { .. } | StepKind::Backfill { .. } => {
            let (first, last) = rows
                .iter()
                .map(|r| r.block_number)
                .fold((i64::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
            client
                .select(
                    "SELECT EXISTS (SELECT 1 FROM eventeum.contract_events
                                 WHERE node = $1 AND block_number BETWEEN $2 AND $3)",
                    None,
                    &[step.node.as_str().into(), first.into(), last.into()],
                )?
                .first()
                .get_one::<bool>()?
        }
    };
    Ok(found.unwrap_or(true))
}

/// Promotes the node's events that are `wait` blocks deep to CONFIRMED.
pub(super) fn confirm_events(
    client: &mut SpiClient<'_>,
    node: &str,
    processed: u64,
    wait: u64,
) -> SpiResult<Vec<Outgoing>> {
    let Some(depth) = processed.checked_sub(wait) else {
        return Ok(vec![]);
    };
    let updated = client.update(
        "UPDATE eventeum.contract_events e
            SET status = 'CONFIRMED', updated_at = now()
          WHERE node = $1 AND status = 'UNCONFIRMED' AND block_number <= $2
         RETURNING to_jsonb(e)::text",
        None,
        &[node.into(), (depth as i64).into()],
    )?;
    let mut rows = records_of::<ContractEventRecord>(updated)?;
    rows.sort_by_key(|r| (r.block_number, r.log_index));
    count_events(client, node, EventStatus::Confirmed, rows.len())?;
    Ok(rows.iter().map(ContractEventRecord::outgoing).collect())
}

/// Keeps logs that matched a filter but did not decode, so that none is lost silently.
pub(super) fn insert_undecodable(client: &mut SpiClient<'_>, step: &ChainStep) -> SpiResult<()> {
    if step.failures.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = step
        .failures
        .iter()
        .map(|f| {
            let p = &f.position;
            json!({
                "filter_id": f.filter_id,
                "node": step.node,
                "address": p.address,
                "block_number": p.block_number,
                "block_hash": p.block_hash,
                "transaction_hash": p.transaction_hash,
                "log_index": p.log_index,
                "topics": f.topics.iter().map(hex::encode_prefixed).collect::<Vec<_>>(),
                "data": hex::encode_prefixed(&f.data),
                "reason": f.reason,
            })
        })
        .collect();
    let inserted = client.update(
        "INSERT INTO eventeum.undecodable_logs AS u
                (filter_id, node, address, block_number, block_hash, transaction_hash, log_index,
                 topics, data, reason)
         SELECT r.filter_id, r.node, r.address, r.block_number, r.block_hash, r.transaction_hash,
                r.log_index, r.topics, r.data, r.reason
           FROM jsonb_to_recordset($1::text::jsonb) AS r(
                filter_id text, node text, address text, block_number bigint, block_hash text,
                transaction_hash text, log_index integer, topics text[], data text, reason text)
         ON CONFLICT DO NOTHING
         RETURNING filter_id, transaction_hash, log_index, reason",
        None,
        &[Value::Array(rows).to_string().into()],
    )?;
    for row in inserted {
        let filter: String = row.get(1)?.unwrap_or_default();
        let tx: String = row.get(2)?.unwrap_or_default();
        let index: i32 = row.get(3)?.unwrap_or_default();
        let reason: String = row.get(4)?.unwrap_or_default();
        pgrx::warning!(
            "eventeum: log {tx}:{index} matched filter \"{filter}\" but does not decode: {reason}; kept in eventeum.undecodable_logs"
        );
    }
    Ok(())
}
