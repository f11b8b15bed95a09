//! A fork in one transaction: invalidate what the orphaned blocks held, move the checkpoint back (main thread).

use std::collections::HashMap;

use alloy::primitives::hex;
use pgrx::prelude::Spi;
use pgrx::spi::SpiResult;
use serde_json::json;

use super::children::drop_children;
use super::counters::{add_to_counter, count_events};
use super::emit::{emit, with_filter_targets};
use super::kinds::set_status;
use super::records_of;
use super::transactions::transaction_payloads;
use crate::config::ConfigSnapshot;
use crate::message::{Batch, ContractEventRecord, TransactionRecord};
use crate::monitor::TransactionMonitor;
use crate::protocol::{Rewind, StepAck};
use crate::states::{EventStatus, MessageType};

/// Applies a fork: events in the orphaned blocks above `ancestor` become
/// INVALIDATED (never those in blocks the new chain still has), their hashes
/// are forgotten and the checkpoint moves back to the ancestor.
pub fn apply_rewind(rewind: &Rewind, snapshot: &ConfigSnapshot) -> SpiResult<StepAck> {
    // Eventeum never took back what it had CONFIRMED; eventeum does unless asked not to.
    let confirmed_is_final = snapshot
        .nodes
        .get(&rewind.node)
        .is_some_and(|n| n.options.confirmed_is_final);
    Spi::connect_mut(|client| {
        let canonical: Vec<String> = rewind.canonical.iter().map(hex::encode_prefixed).collect();
        let orphaned_transactions = client.update(
            "UPDATE eventeum.transaction_states t
                SET status = 'INVALIDATED', invalidated_at_block = $4, updated_at = now(),
                    reported = t.reported OR eventeum.monitor_wants(t.monitor_id, 'INVALIDATED')
              WHERE node = $1 AND block_number > $2 AND status <> 'INVALIDATED'
                AND block_hash <> ALL ($3::text[]) AND NOT ($5 AND status = 'CONFIRMED')
             RETURNING to_jsonb(t)::text",
            None,
            &[
                rewind.node.as_str().into(),
                (rewind.ancestor as i64).into(),
                canonical.clone().into(),
                (rewind.head as i64).into(),
                confirmed_is_final.into(),
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
        let rows = set_status(
            client,
            &snapshot.kind_tables,
            EventStatus::Invalidated,
            "e.block_number > $2 AND e.status <> 'INVALIDATED'
             AND e.block_hash <> ALL ($3::text[]::eventeum.hash[])
             AND NOT ($4 AND e.status = 'CONFIRMED')",
            || {
                vec![
                    rewind.node.as_str().into(),
                    (rewind.ancestor as i64).into(),
                    canonical.clone().into(),
                    confirmed_is_final.into(),
                ]
            },
        )?;
        if let Some(node) = snapshot.nodes.get(&rewind.node) {
            drop_children(client, node, &rows)?;
        }
        let count = rows.len();
        count_events(client, &rewind.node, EventStatus::Invalidated, count)?;
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
