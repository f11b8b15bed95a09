//! Contract-event rows: **where a decoded log becomes a row** (COPY on a first pass, an upsert on a replay), confirmations, and logs that did not decode (main thread).

use alloy::primitives::hex;
use pgrx::spi::{SpiClient, SpiResult};
use serde_json::{json, Value};

use super::copy::copy_in;
use super::counters::count_events;
use super::kinds::set_status;
use super::unconfirmed;
use crate::config::{BackfillOf, ConfigSnapshot};
use crate::discard::discard;
use crate::kind::STORE_SCHEMA;
use crate::message::{Batch, ContractEventRecord, Outgoing};
use crate::protocol::{ChainStep, StepKind};
use crate::rows::{KindCopy, PreparedEvents};
use crate::states::EventStatus;

/// Inserts the step's events; returns how many rows were written and the
/// messages of those that are new (or valid again after a fork). The
/// follower built the rows, their messages and their COPY data per kind
/// table; a kind table that has none of the rows yet gets the data by COPY,
/// one that may (a replay) through a staging table and an upsert.
pub(super) fn insert_events(
    client: &mut SpiClient<'_>,
    step: &mut ChainStep,
) -> SpiResult<(usize, Batch)> {
    let PreparedEvents {
        records,
        messages,
        copies,
    } = std::mem::take(&mut step.prepared);
    if records.is_empty() {
        return Ok((0, Batch::default()));
    }
    let mut written = vec![true; records.len()];
    let stored = have_stored_rows(client, step, &copies)?;
    for (copy, stored) in copies.into_iter().zip(stored) {
        let highest_unconfirmed = copy
            .rows
            .iter()
            .map(|&(i, _)| &records[i])
            .filter(|r| r.status == EventStatus::Unconfirmed)
            .map(|r| r.block_number)
            .max();
        if let Some(highest) = highest_unconfirmed {
            unconfirmed::note(&step.node, &copy.table, highest);
        }
        if !stored {
            copy_in(
                STORE_SCHEMA,
                &copy.table.name(),
                &copy.table.copy_columns(),
                copy.data,
            );
        } else {
            for (row, fresh) in upsert_rows(client, copy, &records)? {
                written[row] = fresh;
            }
        }
    }
    let (records, messages) = if written.iter().all(|w| *w) {
        (records, messages)
    } else {
        keep_written(records, messages, &written)
    };
    for status in [EventStatus::Unconfirmed, EventStatus::Confirmed] {
        let count = records.iter().filter(|r| r.status == status).count();
        count_events(client, &step.node, status, count)?;
    }
    let count = records.len();
    discard(records);
    Ok((count, messages))
}

/// The records (and their messages) that were written.
fn keep_written(
    records: Vec<ContractEventRecord>,
    messages: Batch,
    written: &[bool],
) -> (Vec<ContractEventRecord>, Batch) {
    if messages.is_empty() {
        // Built for nobody: only the rows to count.
        let records = records
            .into_iter()
            .zip(written)
            .filter_map(|(r, w)| w.then_some(r))
            .collect();
        return (records, messages);
    }
    let notify_each = messages.has_notices();
    let (records, messages): (Vec<_>, Vec<_>) = records
        .into_iter()
        .zip(messages.messages)
        .zip(written)
        .filter_map(|(pair, w)| w.then_some(pair))
        .unzip();
    let messages = if notify_each {
        messages.into()
    } else {
        Batch::without_notices(messages)
    };
    (records, messages)
}

/// Writes rows some of which may be stored already (a replay): through a
/// staging table of the kind's shape, then one `INSERT … ON CONFLICT` that
/// writes only rows that are new, or whose block is canonical again.
/// Returns, for each row of `copy`, its record and whether it was written.
fn upsert_rows(
    client: &mut SpiClient<'_>,
    copy: KindCopy,
    records: &[ContractEventRecord],
) -> SpiResult<Vec<(usize, bool)>> {
    let table = copy.table.name();
    let stage = format!("eventeum_stage_{table}");
    let missing = client
        .select(
            "SELECT to_regclass($1) IS NULL",
            None,
            &[format!("pg_temp.{stage}").into()],
        )?
        .first()
        .get_one::<bool>()?
        .unwrap_or(true);
    if missing {
        client.update(
            &format!(
                "CREATE TEMP TABLE {stage} (LIKE {STORE_SCHEMA}.{table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            ),
            None,
            &[],
        )?;
    }
    copy_in("pg_temp", &stage, &copy.table.copy_columns(), copy.data);
    let stored = client.update(
        &format!(
            "INSERT INTO {STORE_SCHEMA}.{table} AS e SELECT * FROM pg_temp.{stage}
             ON CONFLICT (node_key, block_number, log_index, block_hash, filter_key) DO UPDATE
                SET status = EXCLUDED.status, updated_at = now()
              WHERE e.status = 'INVALIDATED'  -- its block is canonical again
             RETURNING e.filter_key, e.block_hash::text, e.log_index"
        ),
        None,
        &[],
    )?;
    let mut fresh = std::collections::HashSet::with_capacity(stored.len());
    for row in stored {
        let filter_key: i32 = row.get(1)?.unwrap_or_default();
        let block_hash: String = row.get(2)?.unwrap_or_default();
        let log_index: i32 = row.get(3)?.unwrap_or_default();
        fresh.insert((filter_key, block_hash, log_index));
    }
    client.update(&format!("DELETE FROM pg_temp.{stage}"), None, &[])?;
    Ok(copy
        .rows
        .iter()
        .map(|&(i, filter_key)| {
            let r = &records[i];
            (
                i,
                fresh.contains(&(filter_key, r.block_hash.clone(), r.log_index)),
            )
        })
        .collect())
}

/// For each of `copies`, whether its kind table may hold some of its rows:
/// rows of its filters in the step's blocks.
fn have_stored_rows(
    client: &mut SpiClient<'_>,
    step: &ChainStep,
    copies: &[KindCopy],
) -> SpiResult<Vec<bool>> {
    // During a backfill the statistics still say the tables are nearly
    // empty, and the planner would scan the filter's rows instead of probing
    // the index: a cost that grew with every piece. Make it probe, and put
    // the settings back after.
    let backfill = matches!(
        &step.kind,
        StepKind::Backfill {
            of: BackfillOf::Filter(_),
            ..
        }
    );
    let scans = |client: &mut SpiClient<'_>, on: &str| {
        client
            .select(
                "SELECT set_config('enable_seqscan', $1, true), set_config('enable_bitmapscan', $1, true)",
                None,
                &[on.into()],
            )
            .map(|_| ())
    };
    if backfill {
        scans(client, "off")?;
    }
    let mut stored = Vec::with_capacity(copies.len());
    for copy in copies {
        let mut keys: Vec<i32> = copy.rows.iter().map(|(_, key)| *key).collect();
        keys.sort_unstable();
        keys.dedup();
        let found = client
            .select(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE node_key = $4 AND filter_key = ANY ($1)
                                      AND block_number BETWEEN $2 AND $3)",
                    copy.table.qualified_name()
                ),
                None,
                &[
                    keys.into(),
                    (step.from as i64).into(),
                    (step.to as i64).into(),
                    copy.node_key.into(),
                ],
            )?
            .first()
            .get_one::<bool>()?;
        stored.push(found.unwrap_or(true));
    }
    if backfill {
        scans(client, "on")?;
    }
    Ok(stored)
}

/// Promotes the node's events that are `wait` blocks deep to CONFIRMED, in
/// the kind tables that hold UNCONFIRMED rows of the node.
pub(super) fn confirm_events(
    client: &mut SpiClient<'_>,
    snapshot: &ConfigSnapshot,
    node: &str,
    processed: u64,
    wait: u64,
) -> SpiResult<Vec<Outgoing>> {
    let Some(depth) = processed.checked_sub(wait) else {
        return Ok(vec![]);
    };
    let tables = unconfirmed::tables_of(client, node, &snapshot.kind_tables)?;
    let rows = set_status(
        client,
        &tables,
        EventStatus::Confirmed,
        "e.status = 'UNCONFIRMED' AND e.block_number <= $2",
        || vec![node.into(), (depth as i64).into()],
    )?;
    unconfirmed::confirmed_up_to(node, depth as i64);
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
