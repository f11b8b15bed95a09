//! A follower step in one transaction: its rows, messages, fork window and checkpoint (main thread).

use alloy::primitives::hex;
use pgrx::prelude::Spi;
use pgrx::spi::{SpiClient, SpiResult};
use serde_json::{json, Value};

use super::blocks::store_blocks;
use super::children::add_children;
use super::emit::{emit, notify_one, with_filter_targets};
use super::events::{confirm_events, insert_events, insert_undecodable};
use super::transactions::store_transactions;
use crate::config::{Backfill, BackfillOf, BlockHeader, ConfigSnapshot};
use crate::limits::{LARGE_STEP_EVENTS, LARGE_STEP_WORK_MEM};
use crate::matcher::stored_address;
use crate::message::BackfillPiece;
use crate::protocol::EndpointHealth;
use crate::protocol::{ChainStep, StepAck, StepKind};
use crate::states::BACKFILL_CHANNEL;
use crate::states::{MessageType, NodeStatus};

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
        if let StepKind::Backfill { of, .. } = &step.kind {
            // Pieces of a backfill may be in flight together: each must extend
            // the committed backfill (or overlap it), never leave a gap.
            let (from, to) = ((step.from as i64).into(), (step.to as i64).into());
            let extended = match of {
                BackfillOf::Filter(filter_id) => client.update(
                    "UPDATE eventeum.filter_backfill
                        SET current_block = greatest(current_block, $3), updated_at = now()
                      WHERE filter_id = $1 AND current_block >= $2 - 1
                     RETURNING 1",
                    None,
                    &[filter_id.as_str().into(), from, to],
                )?,
                BackfillOf::Member { set, address } => client.update(
                    "UPDATE eventeum.member_backfill
                        SET current_block = greatest(current_block, $3), updated_at = now()
                      WHERE node = $4 AND set_name = $1 AND address = $5 AND current_block >= $2 - 1
                     RETURNING 1",
                    None,
                    &[
                        set.as_str().into(),
                        from,
                        to,
                        step.node.as_str().into(),
                        stored_address(address).into(),
                    ],
                )?,
            };
            if extended.is_empty() {
                return Ok(StepAck::Stale);
            }
        }
        if step.prepared.len() > LARGE_STEP_EVENTS {
            // Keep the large step's arrays and sorts in memory instead of temp files.
            client.select(
                "SELECT set_config('work_mem', $1, true)",
                None,
                &[LARGE_STEP_WORK_MEM.into()],
            )?;
        }
        let wait = node.options.num_blocks_to_wait;
        let (stored, mut messages) = insert_events(client, step)?;
        if let StepKind::Backfill { of, .. } = &step.kind {
            if stored > 0 && !messages.has_notices() {
                let (filter_id, address_set, address) = match of {
                    BackfillOf::Filter(id) => (Some(id.as_str()), None, None),
                    BackfillOf::Member { set, address } => {
                        (None, Some(set.as_str()), Some(address.to_checksum(None)))
                    }
                };
                let piece = BackfillPiece {
                    filter_id,
                    address_set,
                    address,
                    node_name: &step.node,
                    from_block: step.from,
                    to_block: step.to,
                    events: stored,
                };
                notify_one(BACKFILL_CHANNEL, &piece.notice());
            }
        }
        messages.append(confirm_events(client, snapshot, &step.node, step.tip(), wait)?.into());
        emit(
            client,
            MessageType::ContractEvent,
            with_filter_targets(messages, node),
        )?;
        insert_undecodable(client, step)?;
        add_children(client, &step.node, &step.children)?;
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
                        step.status.as_str().into(),
                    ],
                )?;
            }
            StepKind::Backfill { .. } => {} // its checkpoint moved first
        }
        Ok(StepAck::Committed)
    })
}

/// Remembers the step's block hashes for fork checks, and forgets those that
/// fell out of the window.
pub(super) fn remember_blocks(
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
                       "parent_hash": hex::encode_prefixed(h.parent_hash), "timestamp": h.timestamp})
            })
            .collect();
        client.update(
            "INSERT INTO eventeum.recent_blocks (node, number, hash, parent_hash, timestamp)
             SELECT $1, r.number, r.hash, r.parent_hash, r.timestamp
               FROM jsonb_to_recordset($2::text::jsonb)
                    AS r(number bigint, hash text, parent_hash text, timestamp bigint)
             ON CONFLICT (node, number) DO UPDATE
                SET hash = EXCLUDED.hash, parent_hash = EXCLUDED.parent_hash, timestamp = EXCLUDED.timestamp",
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
pub(super) fn start_backfills(
    client: &mut SpiClient<'_>,
    node: &str,
    backfills: &[(BackfillOf, Backfill)],
) -> SpiResult<()> {
    for (of, b) in backfills {
        let [from, to, current] = [b.from, b.to, b.current].map(|n| n as i64);
        match of {
            BackfillOf::Filter(filter_id) => client.update(
                "INSERT INTO eventeum.filter_backfill (filter_id, node, from_block, to_block, current_block)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (filter_id) DO NOTHING",
                None,
                &[
                    filter_id.as_str().into(),
                    node.into(),
                    from.into(),
                    to.into(),
                    current.into(),
                ],
            )?,
            // The member may have left its set since the step was fetched:
            // then there is nothing to backfill.
            BackfillOf::Member { set, address } => client.update(
                "INSERT INTO eventeum.member_backfill (set_name, address, node, from_block, to_block, current_block)
                 SELECT set_name, address, $3, $4, $5, $6 FROM eventeum.address_set_members
                  WHERE set_name = $1 AND address = $2
                 ON CONFLICT (node, set_name, address) DO NOTHING",
                None,
                &[
                    set.as_str().into(),
                    stored_address(address).into(),
                    node.into(),
                    from.into(),
                    to.into(),
                    current.into(),
                ],
            )?,
        };
    }
    Ok(())
}

/// Records that a node failed to answer; the checkpoint stays where it is.
pub fn record_node_error(node: &str, error: &str, status: NodeStatus) -> SpiResult<()> {
    Spi::connect_mut(|client| {
        client.update(
            "INSERT INTO eventeum.node_state AS s (node, status, last_error, updated_at)
             SELECT name, $3, $2, now() FROM eventeum.nodes WHERE name = $1
             ON CONFLICT (node) DO UPDATE SET status = $3, last_error = $2, updated_at = now()",
            None,
            &[node.into(), error.into(), status.as_str().into()],
        )?;
        Ok(())
    })
}

/// Records which of a node's urls serves and how each is, and the chain
/// they serve.
pub fn record_endpoints(
    node: &str,
    chain_id: Option<u64>,
    endpoints: &[EndpointHealth],
) -> SpiResult<()> {
    let endpoints = serde_json::to_value(endpoints).unwrap_or_default();
    let chain_id = chain_id.and_then(|c| i64::try_from(c).ok());
    Spi::connect_mut(|client| {
        client.update(
            "INSERT INTO eventeum.node_state AS s (node, chain_id, endpoints, updated_at)
             SELECT name, $2, $3, now() FROM eventeum.nodes WHERE name = $1
             ON CONFLICT (node) DO UPDATE SET chain_id = $2, endpoints = $3",
            None,
            &[node.into(), chain_id.into(), pgrx::JsonB(endpoints).into()],
        )?;
        Ok(())
    })
}
