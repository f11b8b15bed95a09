//! The store: where a decoded log becomes a row. Every function here runs on
//! the worker's main thread, inside a transaction the caller opened.
//!
//! A step is applied in one transaction: event rows, status changes, their
//! NOTIFYs, undecodable logs and the node's checkpoint commit together, or
//! not at all. Inserts are idempotent on (filter, node, block hash, tx hash,
//! log index), so replaying a range after a crash changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::sync::Arc;

use alloy::primitives::hex;
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiResult};
use serde_json::{json, Value};

mod copy;

use self::copy::copy_in;
use crate::broadcast::BroadcasterKind;
use crate::discard::discard;
use crate::message::{
    Batch, BlockRecord, ContractEventRecord, Outgoing, TransactionRecord, BLOCK_EVENTS_CHANNEL,
    CONTRACT_EVENTS_CHANNEL, TRANSACTION_EVENTS_CHANNEL,
};
use crate::monitor::{MonitorTarget, TransactionMonitor, TransactionStatus};
use crate::node::NodeOptions;
use crate::protocol::{
    Backfill, BlockHeader, BroadcasterConfig, ChainStep, ConfigSnapshot, Delivery, FilterConfig,
    MatchedTransaction, MonitorConfig, NodeConfig, OutboxMessage, Publish, Rewind, StepAck,
    StepKind,
};
use crate::rows::{PreparedEvents, EVENT_COLUMNS};
use crate::spec::FilterDefinition;

/// The installed version of the extension, or None when it is not installed.
pub fn installed_version() -> SpiResult<Option<String>> {
    Spi::get_one(
        "SELECT (SELECT extversion::text FROM pg_catalog.pg_extension WHERE extname = 'eventeum')",
    )
}

/// The pages of the metrics endpoint, rendered by SQL.
pub fn render_pages() -> SpiResult<crate::metrics::Pages> {
    Spi::connect(|client| {
        let row = client
            .select(
                "SELECT eventeum.prometheus(), h::text, h ->> 'status' = 'UP'
                   FROM eventeum.health() h",
                Some(1),
                &[],
            )?
            .first();
        Ok(crate::metrics::Pages {
            metrics: row.get(1)?.unwrap_or_default(),
            health: row.get(2)?.unwrap_or_default(),
            healthy: row.get(3)?.unwrap_or(false),
        })
    })
}

/// `eventeum.config_version`, or None when the extension is not installed.
pub fn config_version() -> SpiResult<Option<i64>> {
    let installed =
        Spi::get_one::<bool>("SELECT to_regclass('eventeum.config_version') IS NOT NULL")?
            .unwrap_or(false);
    if !installed {
        return Ok(None);
    }
    Spi::get_one::<i64>("SELECT version FROM eventeum.config_version")
}

/// Reads nodes, checkpoints and filters into one snapshot.
pub fn load_snapshot(bytes_to_ascii: bool) -> SpiResult<ConfigSnapshot> {
    Spi::connect(|client| {
        let version = client
            .select("SELECT version FROM eventeum.config_version", None, &[])?
            .first()
            .get_one::<i64>()?
            .unwrap_or(0);
        let mut nodes = BTreeMap::new();
        let rows = client.select(
            "SELECT n.name, n.url, n.options::text, s.latest_block
               FROM eventeum.nodes n LEFT JOIN eventeum.node_state s ON s.node = n.name",
            None,
            &[],
        )?;
        for row in rows {
            let name: String = row.get(1)?.unwrap_or_default();
            let options_text: String = row.get(3)?.unwrap_or_default();
            let options = serde_json::from_str::<Value>(&options_text)
                .ok()
                .and_then(|v| NodeOptions::from_json(&v).ok());
            let Some(options) = options else {
                pgrx::warning!("eventeum: node \"{name}\" has invalid options; not following it");
                continue;
            };
            let node = NodeConfig {
                name: name.clone(),
                url: row.get(2)?.unwrap_or_default(),
                options,
                checkpoint: row.get::<i64>(4)?.and_then(|b| u64::try_from(b).ok()),
                recent_blocks: BTreeMap::new(),
                filters: vec![],
                monitors: vec![],
            };
            nodes.insert(name, node);
        }
        let rows = client.select(
            "SELECT node, number, hash FROM eventeum.recent_blocks",
            None,
            &[],
        )?;
        for row in rows {
            let node: String = row.get(1)?.unwrap_or_default();
            let number: i64 = row.get(2)?.unwrap_or_default();
            let hash: String = row.get(3)?.unwrap_or_default();
            if let (Some(node), Ok(hash)) = (nodes.get_mut(&node), hash.parse()) {
                node.recent_blocks.insert(number as u64, hash);
            }
        }
        let mut backfills = std::collections::HashMap::new();
        let rows = client.select(
            "SELECT filter_id, from_block, to_block, current_block FROM eventeum.filter_backfill",
            None,
            &[],
        )?;
        for row in rows {
            let id: String = row.get(1)?.unwrap_or_default();
            let [from, to, current] =
                [2, 3, 4].map(|i| row.get::<i64>(i).ok().flatten().unwrap_or(0) as u64);
            backfills.insert(id, Backfill { from, to, current });
        }
        for (id, added_at, definition) in definitions(
            client,
            "contract_event_filters",
            "filter",
            FilterDefinition::from_json,
        )? {
            if let Some(node) = nodes.get_mut(&definition.node) {
                let topic0 = definition.specification.topic0();
                let backfill = backfills.get(&id).copied();
                node.filters.push(Arc::new(FilterConfig {
                    id,
                    definition,
                    topic0,
                    added_at,
                    backfill,
                }));
            }
        }
        for (id, _, monitor) in definitions(
            client,
            "transaction_monitors",
            "transaction monitor",
            TransactionMonitor::from_json,
        )? {
            if let Some(node) = nodes.get_mut(&monitor.node) {
                node.monitors.push(Arc::new(MonitorConfig { id, monitor }));
            }
        }
        let mut broadcasters = Vec::new();
        let rows = client.select(
            "SELECT name, kind, options::text FROM eventeum.broadcasters WHERE kind <> 'group' ORDER BY name",
            None,
            &[],
        )?;
        for row in rows {
            let name: String = row.get(1)?.unwrap_or_default();
            let kind: String = row.get(2)?.unwrap_or_default();
            let options: Value = serde_json::from_str(&row.get::<String>(3)?.unwrap_or_default())
                .unwrap_or_default();
            if let Ok(kind) = BroadcasterKind::parse(&kind) {
                broadcasters.push(BroadcasterConfig {
                    name,
                    kind,
                    options,
                });
            }
        }
        Ok(ConfigSnapshot {
            version,
            bytes_to_ascii,
            nodes,
            broadcasters,
        })
    })
}

/// The `definition` column of a configuration table, parsed; a definition
/// that no longer parses is skipped with a WARNING rather than stopping the worker.
fn definitions<T>(
    client: &SpiClient<'_>,
    table: &str,
    what: &str,
    parse: fn(&Value) -> crate::error::ApiResult<T>,
) -> SpiResult<Vec<(String, i64, T)>> {
    let rows = client.select(
        &format!(
            "SELECT id, definition::text, (extract(epoch FROM created_at) * 1000000)::int8
               FROM eventeum.{table} ORDER BY created_at, id"
        ),
        None,
        &[],
    )?;
    let mut parsed = Vec::new();
    for row in rows {
        let id: String = row.get(1)?.unwrap_or_default();
        let text: String = row.get(2)?.unwrap_or_default();
        let added_at: i64 = row.get(3)?.unwrap_or_default();
        let definition = serde_json::from_str::<Value>(&text)
            .map_err(|e| e.to_string())
            .and_then(|v| parse(&v).map_err(|e| e.to_string()));
        match definition {
            Ok(definition) => parsed.push((id, added_at, definition)),
            Err(e) => pgrx::warning!("eventeum: {what} \"{id}\" is invalid and is skipped: {e}"),
        }
    }
    Ok(parsed)
}

/// Applies one follower step. Returns `Stale` without writing anything when
/// the configuration changed after the step was fetched.
pub fn apply_step(step: &mut ChainStep, snapshot: &ConfigSnapshot) -> SpiResult<StepAck> {
    let Some(node) = snapshot.nodes.get(&step.node) else {
        return Ok(StepAck::Stale);
    };
    Spi::connect_mut(|client| {
        let version = client
            .select("SELECT version FROM eventeum.config_version", None, &[])?
            .first()
            .get_one::<i64>()?;
        if version != Some(step.config_version) || snapshot.version != step.config_version {
            return Ok(StepAck::Stale);
        }
        if let StepKind::Backfill { filter_id, .. } = &step.kind {
            // Pieces of a backfill may be in flight together: each must extend
            // the committed backfill (or overlap it), never leave a gap.
            let extended = client.update(
                "UPDATE eventeum.filter_backfill
                    SET current_block = greatest(current_block, $3), updated_at = now()
                  WHERE filter_id = $1 AND current_block >= $2 - 1
                 RETURNING 1",
                None,
                &[
                    filter_id.as_str().into(),
                    (step.from as i64).into(),
                    (step.to as i64).into(),
                ],
            )?;
            if extended.is_empty() {
                return Ok(StepAck::Stale);
            }
        }
        if step.prepared.len() > 10_000 {
            // Keep the large step's arrays and sorts in memory instead of temp files.
            client.update("SET LOCAL work_mem = '256MB'", None, &[])?;
        }
        let wait = node.options.num_blocks_to_wait;
        let mut messages = insert_events(client, step)?;
        messages.append(confirm_events(client, &step.node, step.tip(), wait)?.into());
        emit(
            client,
            MessageType::ContractEvent,
            with_filter_targets(messages, node),
        )?;
        insert_undecodable(client, step)?;
        match &step.kind {
            StepKind::Live {
                headers,
                new_backfills,
                blocks,
                transactions,
            } => {
                let payloads = store_transactions(client, step, node, transactions)?;
                emit(client, MessageType::Transaction, payloads.into())?;
                let payloads = store_blocks(client, &step.node, blocks)?;
                emit(client, MessageType::Block, payloads.into())?;
                remember_blocks(
                    client,
                    &step.node,
                    headers,
                    step.to,
                    node.options.fork_window(),
                )?;
                start_backfills(client, &step.node, new_backfills)?;
                client.update(
                    "INSERT INTO eventeum.node_state AS s (node, latest_block, current_block, status, last_error, updated_at)
                     VALUES ($1, $2, $3, $4, NULL, now())
                     ON CONFLICT (node) DO UPDATE
                        SET latest_block = EXCLUDED.latest_block, current_block = EXCLUDED.current_block,
                            status = EXCLUDED.status, last_error = NULL, updated_at = now()",
                    None,
                    &[
                        step.node.as_str().into(),
                        (step.to as i64).into(),
                        (step.head as i64).into(),
                        if step.subscribed { "SUBSCRIBED" } else { "CONNECTED" }.into(),
                    ],
                )?;
            }
            StepKind::Backfill { .. } => {} // its checkpoint moved first
        }
        Ok(StepAck::Committed)
    })
}

/// Stores the transactions monitors matched, promotes those deep enough, and
/// ends the HASH monitors whose transaction is final (or missing). Returns
/// the NOTIFY payloads of the statuses the monitors asked for.
fn store_transactions(
    client: &mut SpiClient<'_>,
    step: &ChainStep,
    node: &NodeConfig,
    transactions: &[MatchedTransaction],
) -> SpiResult<Vec<Outgoing>> {
    let monitors: HashMap<&str, &TransactionMonitor> = node
        .monitors
        .iter()
        .map(|m| (m.id.as_str(), &m.monitor))
        .collect();
    let wait = node.options.num_blocks_to_wait;
    let mut ended: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for tx in transactions {
        let Some(monitor) = monitors.get(tx.monitor_id.as_str()) else {
            continue;
        };
        let status = if !tx.success {
            TransactionStatus::Failed
        } else if step.to.saturating_sub(tx.block_number) >= wait {
            TransactionStatus::Confirmed
        } else {
            TransactionStatus::Unconfirmed
        };
        let final_status = status != TransactionStatus::Unconfirmed;
        let tracked = if tx.success {
            monitor.tracks_successes()
        } else {
            monitor.wants(TransactionStatus::Failed)
        };
        if matches!(monitor.target, MonitorTarget::Hash(_)) && (final_status || !tracked) {
            ended.push(tx.monitor_id.clone());
        }
        if tracked {
            rows.push(json!({
                "monitor_id": tx.monitor_id,
                "node": step.node,
                "hash": hex::encode_prefixed(tx.hash),
                "from_address": tx.from.to_checksum(None),
                "to_address": tx.to.map(|a| a.to_checksum(None)),
                "contract_address": tx.contract_address.map(|a| a.to_checksum(None)),
                "value": tx.value.to_string(),
                "nonce": tx.nonce,
                "block_number": tx.block_number,
                "block_hash": hex::encode_prefixed(tx.block_hash),
                "transaction_index": tx.transaction_index,
                "status": status.as_str(),
                "revert_reason": tx.revert_reason,
                "reported": monitor.wants(status),
            }));
        }
    }
    let mut records = Vec::new();
    if !rows.is_empty() {
        let inserted = client.update(
            "INSERT INTO eventeum.transaction_states AS t
                    (monitor_id, node, hash, from_address, to_address, contract_address, value, nonce,
                     block_number, block_hash, transaction_index, status, revert_reason, reported)
             SELECT r.monitor_id, r.node, r.hash, r.from_address, r.to_address, r.contract_address, r.value,
                    r.nonce, r.block_number, r.block_hash, r.transaction_index,
                    r.status::eventeum.transaction_status, r.revert_reason, r.reported
               FROM jsonb_to_recordset($1::text::jsonb) AS r(
                    monitor_id text, node text, hash text, from_address text, to_address text,
                    contract_address text, value numeric, nonce bigint, block_number bigint, block_hash text,
                    transaction_index integer, status text, revert_reason text, reported boolean)
              ORDER BY r.block_number, r.transaction_index
             ON CONFLICT (monitor_id, hash, block_hash) DO UPDATE
                SET status = EXCLUDED.status, reported = t.reported OR EXCLUDED.reported,
                    invalidated_at_block = NULL, updated_at = now()
              WHERE t.status = 'INVALIDATED'  -- its block is canonical again
             RETURNING to_jsonb(t)::text",
            None,
            &[Value::Array(rows).to_string().into()],
        )?;
        records.extend(records_of::<TransactionRecord>(inserted)?);
    }
    if let Some(depth) = step.to.checked_sub(wait) {
        let confirmed = client.update(
            "UPDATE eventeum.transaction_states t
                SET status = 'CONFIRMED', reported = t.reported OR eventeum.monitor_wants(t.monitor_id, 'CONFIRMED'),
                    updated_at = now()
              WHERE node = $1 AND status = 'UNCONFIRMED' AND block_number <= $2
             RETURNING to_jsonb(t)::text",
            None,
            &[step.node.as_str().into(), (depth as i64).into()],
        )?;
        let confirmed = records_of::<TransactionRecord>(confirmed)?;
        ended.extend(confirmed.iter().map(|r| r.monitor_id.clone()));
        records.extend(confirmed);
    }
    end_hash_monitors(client, step, node, ended)?;
    Ok(transaction_payloads(&records, &monitors))
}

/// Removes the HASH monitors whose transaction is final, or missing for
/// numBlocksToWaitForMissingTx blocks after a fork took it away.
///
/// Only a DELETE that removes something may run: the table's statement
/// trigger bumps `config_version` even for none, and that would make every
/// step in flight stale and reload the configuration after each block.
fn end_hash_monitors(
    client: &mut SpiClient<'_>,
    step: &ChainStep,
    node: &NodeConfig,
    ended: Vec<String>,
) -> SpiResult<()> {
    let watches_hashes = node
        .monitors
        .iter()
        .any(|m| matches!(m.monitor.target, MonitorTarget::Hash(_)));
    if !watches_hashes {
        return Ok(());
    }
    let done: Vec<String> = client
        .select(
            "SELECT m.id FROM eventeum.transaction_monitors m
              WHERE m.node = $1 AND m.type = 'HASH'
                AND (m.id = ANY ($2::text[])
                     OR (SELECT bool_and(t.status = 'INVALIDATED') AND max(t.invalidated_at_block) + $3 <= $4
                           FROM eventeum.transaction_states t WHERE t.monitor_id = m.id))",
            None,
            &[
                step.node.as_str().into(),
                ended.into(),
                (node.options.num_blocks_to_wait_for_missing_tx as i64).into(),
                (step.to as i64).into(),
            ],
        )?
        .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
        .collect::<SpiResult<_>>()?;
    if !done.is_empty() {
        client.update(
            "DELETE FROM eventeum.transaction_monitors WHERE id = ANY ($1)",
            None,
            &[done.into()],
        )?;
    }
    Ok(())
}

/// Payloads for the statuses each row's monitor asked for.
fn transaction_payloads(
    records: &[TransactionRecord],
    monitors: &HashMap<&str, &TransactionMonitor>,
) -> Vec<Outgoing> {
    records
        .iter()
        .filter(|r| {
            let status =
                serde_json::from_value::<TransactionStatus>(Value::String(r.status.clone()));
            monitors
                .get(r.monitor_id.as_str())
                .zip(status.ok())
                .is_some_and(|(m, s)| m.wants(s))
        })
        .map(|r| {
            let mut outgoing = r.outgoing();
            outgoing.targets = monitors
                .get(r.monitor_id.as_str())
                .and_then(|m| m.broadcasters.clone());
            outgoing
        })
        .collect()
}

/// Restricts contract-event messages to the broadcasters their filter names.
fn with_filter_targets(mut messages: Batch, node: &NodeConfig) -> Batch {
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

/// Stores block events; returns the BLOCK payloads of the blocks that are new.
fn store_blocks(
    client: &mut SpiClient<'_>,
    node: &str,
    blocks: &[BlockHeader],
) -> SpiResult<Vec<Outgoing>> {
    if blocks.is_empty() {
        return Ok(vec![]);
    }
    let rows: Vec<Value> = blocks
        .iter()
        .map(|b| {
            json!({"hash": hex::encode_prefixed(b.hash), "number": b.number,
                   "parent_hash": hex::encode_prefixed(b.parent_hash), "timestamp": b.timestamp})
        })
        .collect();
    let inserted = client.update(
        "INSERT INTO eventeum.blocks AS b (node, hash, number, parent_hash, \"timestamp\")
         SELECT $1, r.hash, r.number, r.parent_hash, r.\"timestamp\"
           FROM jsonb_to_recordset($2::text::jsonb) AS r(hash text, number bigint, parent_hash text, \"timestamp\" bigint)
          ORDER BY r.number
         ON CONFLICT (node, hash) DO UPDATE SET status = 'CANONICAL' WHERE b.status = 'INVALIDATED'
         RETURNING to_jsonb(b)::text",
        None,
        &[node.into(), Value::Array(rows).to_string().into()],
    )?;
    let mut records = records_of::<BlockRecord>(inserted)?;
    records.sort_by_key(|b| b.number);
    Ok(records.iter().map(BlockRecord::outgoing).collect())
}

fn records_of<T: serde::de::DeserializeOwned>(
    table: pgrx::spi::SpiTupleTable<'_>,
) -> SpiResult<Vec<T>> {
    let mut records = Vec::with_capacity(table.len());
    for row in table {
        let text: String = row.get(1)?.unwrap_or_default();
        match serde_json::from_str::<T>(&text) {
            Ok(record) => records.push(record),
            Err(e) => pgrx::warning!("eventeum: cannot render a stored row: {e}"),
        }
    }
    Ok(records)
}

/// Applies a fork: events in the orphaned blocks above `ancestor` become
/// INVALIDATED (never those in blocks the new chain still has), their hashes
/// are forgotten and the checkpoint moves back to the ancestor.
pub fn apply_rewind(rewind: &Rewind, snapshot: &ConfigSnapshot) -> SpiResult<StepAck> {
    Spi::connect_mut(|client| {
        let canonical: Vec<String> = rewind.canonical.iter().map(hex::encode_prefixed).collect();
        let orphaned_transactions = client.update(
            "UPDATE eventeum.transaction_states t
                SET status = 'INVALIDATED', invalidated_at_block = $4, updated_at = now(),
                    reported = t.reported OR eventeum.monitor_wants(t.monitor_id, 'INVALIDATED')
              WHERE node = $1 AND block_number > $2 AND status <> 'INVALIDATED'
                AND block_hash <> ALL ($3::text[])
             RETURNING to_jsonb(t)::text",
            None,
            &[
                rewind.node.as_str().into(),
                (rewind.ancestor as i64).into(),
                canonical.clone().into(),
                (rewind.head as i64).into(),
            ],
        )?;
        let orphaned_transactions = records_of::<TransactionRecord>(orphaned_transactions)?;
        let monitors: HashMap<&str, &TransactionMonitor> = snapshot
            .nodes
            .get(&rewind.node)
            .map(|n| {
                n.monitors
                    .iter()
                    .map(|m| (m.id.as_str(), &m.monitor))
                    .collect()
            })
            .unwrap_or_default();
        emit(
            client,
            MessageType::Transaction,
            transaction_payloads(&orphaned_transactions, &monitors).into(),
        )?;
        client.update(
            "UPDATE eventeum.blocks SET status = 'INVALIDATED'
              WHERE node = $1 AND number > $2 AND status = 'CANONICAL' AND hash <> ALL ($3::text[])",
            None,
            &[rewind.node.as_str().into(), (rewind.ancestor as i64).into(), canonical.clone().into()],
        )?;
        let invalidated = client.update(
            "UPDATE eventeum.contract_events e
                SET status = 'INVALIDATED', updated_at = now()
              WHERE node = $1 AND block_number > $2 AND status <> 'INVALIDATED'
                AND block_hash <> ALL ($3::text[])
             RETURNING to_jsonb(e)::text",
            None,
            &[
                rewind.node.as_str().into(),
                (rewind.ancestor as i64).into(),
                canonical.into(),
            ],
        )?;
        let mut rows = records_of::<ContractEventRecord>(invalidated)?;
        rows.sort_by_key(|r| (r.block_number, r.log_index));
        let count = rows.len();
        count_events(client, &rewind.node, "INVALIDATED", count)?;
        let messages: Batch = rows.iter().map(ContractEventRecord::outgoing).collect();
        let messages = match snapshot.nodes.get(&rewind.node) {
            Some(node) => with_filter_targets(messages, node),
            None => messages,
        };
        emit(client, MessageType::ContractEvent, messages)?;
        client.update(
            "DELETE FROM eventeum.recent_blocks WHERE node = $1 AND number > $2",
            None,
            &[rewind.node.as_str().into(), (rewind.ancestor as i64).into()],
        )?;
        let mut report = format!(
            "fork above block {}: {count} event(s) invalidated",
            rewind.ancestor
        );
        if rewind.deeper_than_window {
            report.push_str(
                "; the reorg was deeper than the fork window, so older blocks were assumed final \
                 (raise numBlocksToReplay or numBlocksToWait to widen the window)",
            );
        }
        client.update(
            "UPDATE eventeum.node_state
                SET latest_block = $2, current_block = $3, last_reorg = $4, last_reorg_at = now(), updated_at = now()
              WHERE node = $1",
            None,
            &[
                rewind.node.as_str().into(),
                (rewind.ancestor as i64).into(),
                (rewind.head as i64).into(),
                report.as_str().into(),
            ],
        )?;
        add_to_counter(client, "reorgs", json!({"node": rewind.node}), 1.0)?;
        if rewind.deeper_than_window {
            pgrx::warning!("eventeum: node \"{}\": {report}", rewind.node);
        } else {
            pgrx::log!("eventeum: node \"{}\": {report}", rewind.node);
        }
        Ok(StepAck::Committed)
    })
}

/// Remembers the step's block hashes for fork checks, and forgets those that
/// fell out of the window.
fn remember_blocks(
    client: &mut SpiClient<'_>,
    node: &str,
    headers: &[BlockHeader],
    to: u64,
    window: u64,
) -> SpiResult<()> {
    if !headers.is_empty() {
        let rows: Vec<Value> = headers
            .iter()
            .map(|h| {
                json!({"number": h.number, "hash": hex::encode_prefixed(h.hash),
                       "parent_hash": hex::encode_prefixed(h.parent_hash)})
            })
            .collect();
        client.update(
            "INSERT INTO eventeum.recent_blocks (node, number, hash, parent_hash)
             SELECT $1, r.number, r.hash, r.parent_hash
               FROM jsonb_to_recordset($2::text::jsonb) AS r(number bigint, hash text, parent_hash text)
             ON CONFLICT (node, number) DO UPDATE SET hash = EXCLUDED.hash, parent_hash = EXCLUDED.parent_hash",
            None,
            &[node.into(), Value::Array(rows).to_string().into()],
        )?;
    }
    client.update(
        "DELETE FROM eventeum.recent_blocks WHERE node = $1 AND (number < $2 OR number > $3)",
        None,
        &[
            node.into(),
            (to.saturating_sub(window) as i64).into(),
            (to as i64).into(),
        ],
    )?;
    Ok(())
}

/// Records where the backfill of each filter live following took over ends.
fn start_backfills(
    client: &mut SpiClient<'_>,
    node: &str,
    backfills: &[(String, Backfill)],
) -> SpiResult<()> {
    for (filter_id, b) in backfills {
        client.update(
            "INSERT INTO eventeum.filter_backfill (filter_id, node, from_block, to_block, current_block)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (filter_id) DO NOTHING",
            None,
            &[
                filter_id.as_str().into(),
                node.into(),
                (b.from as i64).into(),
                (b.to as i64).into(),
                (b.current as i64).into(),
            ],
        )?;
    }
    Ok(())
}

/// Records that a node failed to answer; the checkpoint stays where it is.
pub fn record_node_error(node: &str, error: &str) -> SpiResult<()> {
    Spi::connect_mut(|client| {
        client.update(
            "INSERT INTO eventeum.node_state AS s (node, status, last_error, updated_at)
             SELECT name, 'DOWN', $2, now() FROM eventeum.nodes WHERE name = $1
             ON CONFLICT (node) DO UPDATE SET status = 'DOWN', last_error = $2, updated_at = now()",
            None,
            &[node.into(), error.into()],
        )?;
        Ok(())
    })
}

/// Inserts the step's events; returns the messages of the rows that are new
/// (or valid again after a fork). The follower built the rows, their
/// messages and their COPY data; a first pass hands the data to COPY, a
/// replay resolves conflicts row by row.
fn insert_events(client: &mut SpiClient<'_>, step: &mut ChainStep) -> SpiResult<Batch> {
    let PreparedEvents {
        records,
        messages,
        copy,
    } = std::mem::take(&mut step.prepared);
    if records.is_empty() {
        return Ok(Batch::default());
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
    for status in ["UNCONFIRMED", "CONFIRMED"] {
        let written = records.iter().filter(|r| r.status == status).count();
        count_events(client, &step.node, status, written)?;
    }
    discard(records);
    Ok(messages)
}

/// Writes events some of which may be stored already (a replay): only rows
/// that are new, or whose block is canonical again, are written; returns
/// those, with their messages.
fn upsert_events(
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
            column(&records, |r| r.log_index as i32).into(),
            column(&records, |r| r.indexed_parameters.get().to_string()).into(),
            column(&records, |r| r.non_indexed_parameters.get().to_string()).into(),
            column(&records, |r| r.event_specification_signature.clone()).into(),
            column(&records, |r| r.correlation_id.clone()).into(),
            column(&records, |r| r.status.clone()).into(),
            column(&records, |r| r.block_timestamp).into(),
        ],
    )?;
    if written.len() == records.len() {
        return Ok((records, messages));
    }
    // Only the rows written now are new.
    let mut fresh = std::collections::HashSet::with_capacity(written.len());
    for row in written {
        let filter_id: String = row.get(1)?.unwrap_or_default();
        let id: String = row.get(2)?.unwrap_or_default();
        fresh.insert((filter_id, id));
    }
    let (records, messages): (Vec<_>, Vec<_>) = records
        .into_iter()
        .zip(messages.messages)
        .filter(|(r, _)| fresh.contains(&(r.filter_id.clone(), r.id.clone())))
        .unzip();
    Ok((records, messages.into()))
}

/// Whether the node has rows where the step's events could land: in the
/// step's blocks, for the backfilled filter, or for any filter when live.
fn has_stored_events(
    client: &mut SpiClient<'_>,
    step: &ChainStep,
    rows: &[ContractEventRecord],
) -> SpiResult<bool> {
    let found = match &step.kind {
        StepKind::Backfill { filter_id, .. } => {
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
        StepKind::Live { .. } => {
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
fn confirm_events(
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
    count_events(client, node, "CONFIRMED", rows.len())?;
    Ok(rows.iter().map(ContractEventRecord::outgoing).collect())
}

/// The three kinds of chain message, with their NOTIFY channels.
#[derive(Debug, Clone, Copy)]
enum MessageType {
    ContractEvent,
    Transaction,
    Block,
}

impl MessageType {
    fn channel(self) -> &'static str {
        match self {
            MessageType::ContractEvent => CONTRACT_EVENTS_CHANNEL,
            MessageType::Transaction => TRANSACTION_EVENTS_CHANNEL,
            MessageType::Block => BLOCK_EVENTS_CHANNEL,
        }
    }

    fn name(self) -> &'static str {
        match self {
            MessageType::ContractEvent => "CONTRACT_EVENT",
            MessageType::Transaction => "TRANSACTION",
            MessageType::Block => "BLOCK",
        }
    }
}

/// Sends messages out, in the caller's transaction: a NOTIFY each, and an
/// outbox row for every broadcaster that takes their type. Both happen at
/// commit, or not at all.
fn emit(client: &mut SpiClient<'_>, ty: MessageType, batch: Batch) -> SpiResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let has_broadcasters = client
        .select(
            "SELECT EXISTS (SELECT 1 FROM eventeum.broadcasters)",
            None,
            &[],
        )?
        .first()
        .get_one::<bool>()?
        .unwrap_or(false);
    if has_broadcasters {
        fn column(
            messages: &[Outgoing],
            f: impl Fn(&Outgoing) -> Option<String>,
        ) -> Vec<Option<String>> {
            messages.iter().map(f).collect()
        }
        let messages = &batch.messages;
        client.update(
            "WITH added AS (
                 INSERT INTO eventeum.outbox (message_id, type, broadcaster, destination, key, payload)
                 SELECT m.message_id, $1, b.name, d.destination, m.key, m.payload::jsonb
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
                ty.name().into(),
                column(messages, |m| Some(m.message_id.clone())).into(),
                column(messages, |m| Some(m.key.clone())).into(),
                column(messages, |m| Some(m.route.clone())).into(),
                column(messages, |m| {
                    m.targets
                        .as_ref()
                        .map(|t| serde_json::to_string(t).expect("names serialize"))
                })
                .into(),
                column(messages, |m| Some(m.payload.clone())).into(),
            ],
        )?;
    }
    notify(ty.channel(), &batch);
    discard(batch);
    Ok(())
}

/// Queues the NOTIFYs; Postgres delivers them when, and only if, the transaction commits.
///
/// Calls what `pg_notify` calls, without a query per batch: for a backfill
/// piece the SQL detour (an array of every payload, unnested) cost as much as
/// queueing the notifications themselves.
fn notify(channel: &str, batch: &Batch) {
    let channel = CString::new(channel).expect("channel names have no NUL");
    for notice in batch.notices() {
        // SAFETY: main thread, inside the step's transaction; both strings
        // outlive the call, which copies them into transaction memory.
        // A Postgres ERROR in it comes back as a Rust panic, as from SPI.
        unsafe {
            pg_sys::ffi::pg_guard_ffi_boundary(|| Async_Notify(channel.as_ptr(), notice.as_ptr()))
        };
    }
}

unsafe extern "C-unwind" {
    /// From `commands/async.h`, which pgrx does not bind.
    fn Async_Notify(channel: *const std::ffi::c_char, payload: *const std::ffi::c_char);
}

/// Keeps logs that matched a filter but did not decode, so that none is lost silently.
fn insert_undecodable(client: &mut SpiClient<'_>, step: &ChainStep) -> SpiResult<()> {
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

fn due_batch(
    client: &SpiClient<'_>,
    broadcaster: &BroadcasterConfig,
    after: Option<i64>,
    limit: i64,
) -> SpiResult<Option<Publish>> {
    let rows = client.select(
        "SELECT o.id, o.message_id, o.type, o.destination, o.key,
                    -- Stored with retries 0: only a retried message needs its count set.
                    (CASE WHEN o.type = 'APP' OR o.attempts = 0 THEN o.payload
                          ELSE jsonb_set(o.payload, '{retries}', to_jsonb(o.attempts)) END)::text,
                    o.next_attempt_at <= now()
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
        messages.push(OutboxMessage {
            id: row.get(1)?.unwrap_or_default(),
            message_id: row.get(2)?.unwrap_or_default(),
            message_type: row.get(3)?.unwrap_or_default(),
            destination: row.get(4)?.unwrap_or_default(),
            key: row.get(5)?,
            payload: row.get(6)?.unwrap_or_default(),
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
        if failure.permanent {
            client.update(
                "WITH dead AS (DELETE FROM eventeum.outbox WHERE id = $1 RETURNING *),
                      dequeued AS (DELETE FROM eventeum.outbox_pending WHERE broadcaster = $3 AND id = $1)
                 INSERT INTO eventeum.dead_letters
                        (id, message_id, type, broadcaster, destination, key, payload, created_at, attempts, reason)
                 SELECT id, message_id, type, broadcaster, destination, key, payload, created_at, attempts + 1, $2
                   FROM dead",
                None,
                &[failure.id.into(), failure.error.as_str().into(), broadcaster.into()],
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
                &[failure.id.into(), failure.error.as_str().into()],
            )?;
        }
        add_to_counter(client, "failed", json!({"broadcaster": broadcaster}), 1.0)?;
        client.update(
            "INSERT INTO eventeum.broadcaster_state AS s (broadcaster, last_failed_at, last_error)
             SELECT name, clock_timestamp(), $2 FROM eventeum.broadcasters WHERE name = $1
             ON CONFLICT (broadcaster) DO UPDATE SET last_failed_at = EXCLUDED.last_failed_at, last_error = $2",
            None,
            &[broadcaster.into(), failure.error.as_str().into()],
        )?;
        Ok(())
    })
}

/// Upper bounds, in seconds, of the delivery latency histogram's buckets.
const LATENCY_BUCKETS: [&str; 14] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60",
    "+Inf",
];

/// Counts delivered messages into the broadcaster's counters and its
/// cumulative latency histogram, in one statement.
fn add_latencies(client: &mut SpiClient<'_>, broadcaster: &str, seconds: &[f64]) -> SpiResult<()> {
    if seconds.is_empty() {
        return Ok(());
    }
    let (mut metrics, mut labels, mut values) = (Vec::new(), Vec::new(), Vec::new());
    for le in LATENCY_BUCKETS {
        let bound: f64 = le.parse().unwrap_or(f64::INFINITY); // "+Inf"
        metrics.push("latency_bucket");
        labels.push(json!({"broadcaster": broadcaster, "le": le}).to_string());
        values.push(seconds.iter().filter(|&&s| s <= bound).count() as f64);
    }
    let count = seconds.len() as f64;
    for (metric, value) in [
        ("delivered", count),
        ("latency_count", count),
        ("latency_sum", seconds.iter().sum()),
    ] {
        metrics.push(metric);
        labels.push(json!({"broadcaster": broadcaster}).to_string());
        values.push(value);
    }
    client.update(
        "INSERT INTO eventeum.counters AS c (metric, labels, value)
         SELECT m, l::jsonb, v FROM unnest($1::text[], $2::text[], $3::float8[]) AS t(m, l, v)
         ON CONFLICT (metric, labels) DO UPDATE SET value = c.value + EXCLUDED.value",
        None,
        &[metrics.into(), labels.into(), values.into()],
    )?;
    Ok(())
}

/// Adds `by` to the counter `metric` with `labels` (see the `counters` table).
fn add_to_counter(
    client: &mut SpiClient<'_>,
    metric: &str,
    labels: Value,
    by: f64,
) -> SpiResult<()> {
    client.update(
        "INSERT INTO eventeum.counters AS c (metric, labels, value) VALUES ($1, $2::text::jsonb, $3)
         ON CONFLICT (metric, labels) DO UPDATE SET value = c.value + EXCLUDED.value",
        None,
        &[metric.into(), labels.to_string().into(), by.into()],
    )?;
    Ok(())
}

/// Counts contract events that were stored with, or moved to, `status`.
fn count_events(client: &mut SpiClient<'_>, node: &str, status: &str, n: usize) -> SpiResult<()> {
    if n == 0 {
        return Ok(());
    }
    add_to_counter(
        client,
        "events",
        json!({"node": node, "status": status}),
        n as f64,
    )
}

/// Adds the JSON-RPC calls and errors the followers made, per node.
pub fn record_call_counts(counts: &[(String, u64, u64)]) -> SpiResult<()> {
    Spi::connect_mut(|client| {
        for (node, calls, errors) in counts {
            let labels = json!({ "node": node });
            add_to_counter(client, "rpc_calls", labels.clone(), *calls as f64)?;
            if *errors > 0 {
                add_to_counter(client, "rpc_errors", labels, *errors as f64)?;
            }
        }
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
