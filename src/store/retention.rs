//! Retention (main thread): a node's partitions that are out of its window
//! (`retainBlocks`, `retainFor`), below its fork window (its confirmation,
//! invalidation and replay depths plus a margin) and hold no UNCONFIRMED
//! row are dropped, whole, and recorded in
//! `eventeum.retention_log`. Never a `DELETE` over a kind table. The
//! node's blocks, monitored transactions and undecodable logs out of the
//! same window go in small batches ([`super::retention_rows`]).
//!
//! Dropping a partition takes an exclusive lock on its kind table for a
//! moment. So that a long query on the table does not queue the worker
//! (and every insert behind it), each drop waits at most
//! [`RETENTION_LOCK_TIMEOUT`] in a subtransaction of its own, and a drop
//! that times out is tried again on the next pass.

use pgrx::prelude::Spi;
use pgrx::spi::{SpiClient, SpiResult};

use super::subtransaction::in_subtransaction;
use crate::config::{ConfigSnapshot, NodeConfig};
use crate::kind::STORE_SCHEMA;
use crate::limits::{RETENTION_LOCK_TIMEOUT, RETENTION_PARTITIONS_PER_PASS};
use crate::view::ident;

/// The node's time: the timestamp of the last block it processed, or the
/// server's clock before one is known. `retainFor` counts from it, so that a
/// chain whose clock runs ahead of or behind the server's (or that stopped)
/// keeps the same span of its own history.
const CHAIN_TIME: &str =
    "COALESCE((SELECT b.timestamp FROM eventeum.recent_blocks b WHERE b.node = $1
                                    ORDER BY b.number DESC LIMIT 1),
                                   extract(epoch FROM now())::bigint)";

/// A partition retention may drop.
struct Candidate {
    table: String,
    partition: String,
    from: i64,
    to: i64,
}

/// One pass over every node with a retention option.
pub fn retain(snapshot: &ConfigSnapshot) -> SpiResult<()> {
    for node in snapshot.nodes.values() {
        if node.options.retains() {
            retain_node(node)?;
        }
    }
    Ok(())
}

fn retain_node(node: &NodeConfig) -> SpiResult<()> {
    let Some(window) = Spi::connect(|client| window(client, node))? else {
        return Ok(());
    };
    super::retention_rows::age_out(&node.name, &window)?;
    let Some(node_key) = window.node_key else {
        return Ok(()); // no stored events yet
    };
    let candidates = Spi::connect(|client| candidates(client, node_key, &window))?;
    for candidate in candidates {
        let outcome = in_subtransaction(|| {
            Spi::connect_mut(|client| drop_partition(client, &node.name, &candidate))
        });
        match outcome {
            Ok(result) => result?,
            Err(e) => tracing::info!(
                node = %node.name, partition = %candidate.partition,
                "retention: cannot drop the partition now, trying again later: {e}"
            ),
        }
    }
    Ok(())
}

/// What of a node's history is out of its window.
pub(super) struct Window {
    /// Its key in the kind tables; None before it stored an event.
    node_key: Option<i32>,
    /// Every block at or below it is out of the window, confirmed, and below
    /// the fork window: no replay or fork check reads it again, so nothing
    /// removed comes back as a new row with a second message.
    pub last_block: i64,
    /// With `retainFor`: what is stamped after it (chain time, seconds) stays.
    pub oldest_kept: Option<i64>,
    /// `retainFor` in milliseconds (0 without), for rows stamped by the server's clock.
    pub retain_for_ms: u64,
}

/// The node's window, or None while it is not followed yet or nothing is out of it.
fn window(client: &SpiClient<'_>, node: &NodeConfig) -> SpiResult<Option<Window>> {
    let options = &node.options;
    let state = client.select(
        &format!(
            // One row always: a node without stored events has no key yet.
            "SELECT (SELECT node_key FROM eventeum.event_nodes WHERE name = $1),
                    s.latest_block, s.current_block, {CHAIN_TIME}
               FROM (SELECT 1) one LEFT JOIN eventeum.node_state s ON s.node = $1"
        ),
        None,
        &[node.name.as_str().into()],
    )?;
    let state = state.first();
    let node_key = state.get::<i32>(1)?;
    let (Some(checkpoint), Some(head)) = (state.get::<i64>(2)?, state.get::<i64>(3)?) else {
        return Ok(None);
    };
    let chain_time = state.get::<i64>(4)?.unwrap_or_default();
    let mut last = checkpoint.saturating_sub(options.fork_window().min(i64::MAX as u64) as i64);
    if options.retain_blocks > 0 {
        last = last.min(head.saturating_sub(options.retain_blocks.min(i64::MAX as u64) as i64));
    }
    if last < 0 {
        return Ok(None);
    }
    Ok(Some(Window {
        node_key,
        last_block: last,
        oldest_kept: (options.retain_for > 0)
            .then(|| chain_time - (options.retain_for / 1000) as i64),
        retain_for_ms: options.retain_for,
    }))
}

/// The node's partitions wholly below its window and its fork window,
/// oldest first, at most a pass's worth.
fn candidates(client: &SpiClient<'_>, node_key: i32, window: &Window) -> SpiResult<Vec<Candidate>> {
    let rows = client.select(
        "SELECT p.table_name, p.partition_name, p.from_block, p.to_block
           FROM eventeum.event_partitions p
          WHERE p.node_key = $1 AND p.to_block <= $2
          ORDER BY p.from_block, p.table_name
          LIMIT $3",
        None,
        &[
            node_key.into(),
            window.last_block.into(),
            (RETENTION_PARTITIONS_PER_PASS as i64).into(),
        ],
    )?;
    let mut candidates = vec![];
    for row in rows {
        candidates.push(Candidate {
            table: row.get(1)?.unwrap_or_default(),
            partition: row.get(2)?.unwrap_or_default(),
            from: row.get(3)?.unwrap_or_default(),
            to: row.get(4)?.unwrap_or_default(),
        });
    }
    let Some(oldest_kept) = window.oldest_kept else {
        return Ok(candidates);
    };
    // By time too: a partition whose newest row is within `retainFor` stays.
    let mut old = vec![];
    for candidate in candidates {
        let newest = client
            .select(
                &format!(
                    // One row always, with NULL for an empty partition.
                    "SELECT (SELECT block_timestamp FROM {STORE_SCHEMA}.{}
                              ORDER BY node_key DESC, block_number DESC LIMIT 1)",
                    ident(&candidate.partition)
                ),
                None,
                &[],
            )?
            .first()
            .get_one::<i64>()?;
        // An empty partition, or one whose newest row has no timestamp,
        // is judged by the blocks alone.
        let keep = newest.is_some_and(|stamp| stamp > oldest_kept);
        if !keep {
            old.push(candidate);
        }
    }
    Ok(old)
}

/// Drops `candidate` unless it holds an UNCONFIRMED row.
fn drop_partition(client: &mut SpiClient<'_>, node: &str, candidate: &Candidate) -> SpiResult<()> {
    let partition = format!("{STORE_SCHEMA}.{}", ident(&candidate.partition));
    client.update(
        "SELECT set_config('lock_timeout', $1, true)",
        None,
        &[RETENTION_LOCK_TIMEOUT.into()],
    )?;
    let counts = client
        .select(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE status = 'UNCONFIRMED') FROM {partition}"
            ),
            None,
            &[],
        )?
        .first()
        .get_two::<i64, i64>()?;
    let (rows, unconfirmed) = (counts.0.unwrap_or(0), counts.1.unwrap_or(0));
    if unconfirmed > 0 {
        return Ok(());
    }
    client.update(&format!("DROP TABLE {partition}"), None, &[])?;
    client.update(
        "DELETE FROM eventeum.event_partitions WHERE partition_name = $1",
        None,
        &[candidate.partition.as_str().into()],
    )?;
    client.update(
        "INSERT INTO eventeum.retention_log (node, table_name, from_block, to_block, rows)
         VALUES ($1, $2, $3, $4, $5)",
        None,
        &[
            node.into(),
            candidate.table.as_str().into(),
            candidate.from.into(),
            candidate.to.into(),
            rows.into(),
        ],
    )?;
    tracing::info!(node, partition = %candidate.partition, from = candidate.from, to = candidate.to, rows, "retention: dropped a partition");
    Ok(())
}
