//! Monitored transactions: their rows, statuses and the HASH monitors that end (main thread).

use std::collections::HashMap;

use alloy::primitives::hex;
use pgrx::spi::{SpiClient, SpiResult};
use serde_json::{json, Value};

use super::records_of;
use crate::config::NodeConfig;
use crate::message::{Outgoing, TransactionRecord};
use crate::monitor::{MonitorTarget, TransactionMonitor};
use crate::protocol::{ChainStep, MatchedTransaction};
use crate::states::TransactionStatus;

/// Stores the transactions monitors matched, promotes those deep enough, and
/// ends the HASH monitors whose transaction is final (or missing). Returns
/// the NOTIFY payloads of the statuses the monitors asked for.
pub(super) fn store_transactions(
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
        } else if step.tip().saturating_sub(tx.block_number) >= wait {
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
                "input": tx.input,
                "block_timestamp": tx.block_timestamp,
            }));
        }
    }
    let mut records = Vec::new();
    if !rows.is_empty() {
        let inserted = client.update(
            "INSERT INTO eventeum.transaction_states AS t
                    (monitor_id, node, hash, from_address, to_address, contract_address, value, nonce,
                     block_number, block_hash, transaction_index, status, revert_reason, reported,
                     input, block_timestamp)
             SELECT r.monitor_id, r.node, r.hash, r.from_address, r.to_address, r.contract_address, r.value,
                    r.nonce, r.block_number, r.block_hash, r.transaction_index,
                    r.status::eventeum.transaction_status, r.revert_reason, r.reported,
                    r.input, r.block_timestamp
               FROM jsonb_to_recordset($1::text::jsonb) AS r(
                    monitor_id text, node text, hash text, from_address text, to_address text,
                    contract_address text, value numeric, nonce bigint, block_number bigint, block_hash text,
                    transaction_index integer, status text, revert_reason text, reported boolean,
                    input text, block_timestamp bigint)
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
    if let Some(depth) = step.tip().checked_sub(wait) {
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
pub(super) fn end_hash_monitors(
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
pub(super) fn transaction_payloads(
    records: &[TransactionRecord],
    monitors: &HashMap<&str, &TransactionMonitor>,
) -> Vec<Outgoing> {
    records
        .iter()
        .filter(|r| {
            monitors
                .get(r.monitor_id.as_str())
                .is_some_and(|m| m.wants(r.status))
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
