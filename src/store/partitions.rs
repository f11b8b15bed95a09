//! The partitions of the kind tables (main thread, or a backend's call of
//! `make_partitions`): made before the rows that need them, each recorded
//! in `eventeum.event_partitions`, which retention reads to find old ones.
//!
//! Not cached across transactions: a backend's rollback would leave a cache
//! that names partitions that do not exist. One indexed read per kind table
//! and step is the cost.

use pgrx::spi::{SpiClient, SpiResult};

use crate::config::ConfigSnapshot;
use crate::kind::partition::{create_partition_sql, partition_name, span_for, BlockSpan};
use crate::kind::STORE_SCHEMA;
use crate::protocol::{ChainStep, StepKind};

/// Most partitions one call makes: a range that would need more is an
/// error, not a catalog of a million empty tables.
pub const MAX_PARTITIONS_PER_CALL: usize = 10_000;

/// The spans of `table`'s partitions of node `node_key`, in block order.
fn spans(client: &SpiClient<'_>, table: &str, node_key: i32) -> SpiResult<Vec<BlockSpan>> {
    let rows = client.select(
        "SELECT p.from_block, p.to_block FROM eventeum.event_partitions p
          WHERE p.table_name = $1 AND p.node_key = $2
            AND pg_catalog.to_regclass(pg_catalog.quote_ident($3) || '.' || pg_catalog.quote_ident(p.partition_name)) IS NOT NULL
          ORDER BY p.from_block",
        None,
        &[table.into(), node_key.into(), STORE_SCHEMA.into()],
    )?;
    let mut spans = Vec::with_capacity(rows.len());
    for row in rows {
        let from: i64 = row.get(1)?.unwrap_or_default();
        let to: i64 = row.get(2)?.unwrap_or_default();
        spans.push(BlockSpan {
            from: from as u64,
            to: to as u64,
        });
    }
    Ok(spans)
}

/// Makes the partitions of `table` (in `eventeum_store`) that node
/// `node_key`'s blocks `from ..= to` need; returns the spans made.
pub fn ensure_range(
    client: &mut SpiClient<'_>,
    table: &str,
    node_key: i32,
    from: u64,
    to: u64,
    width: u64,
) -> SpiResult<Vec<BlockSpan>> {
    let mut known = spans(client, table, node_key)?;
    make_missing(client, table, node_key, &mut known, (from, to), width)
}

/// Makes the partitions of blocks `from ..= to` that `existing` (the
/// table's spans for the node, in block order) lacks, and adds them to it.
fn make_missing(
    client: &mut SpiClient<'_>,
    table: &str,
    node_key: i32,
    existing: &mut Vec<BlockSpan>,
    (from, to): (u64, u64),
    width: u64,
) -> SpiResult<Vec<BlockSpan>> {
    let mut made = vec![];
    let mut block = from;
    while block <= to {
        let span = match existing.iter().find(|s| s.contains(block)) {
            Some(span) => *span,
            None => {
                if made.len() == MAX_PARTITIONS_PER_CALL {
                    pgrx::error!(
                        "eventeum: blocks {from}..={to} would need more than {MAX_PARTITIONS_PER_CALL} new partitions of {table}; raise the node's partitionBlocks"
                    );
                }
                let span = span_for(block, width, existing);
                make(client, table, node_key, span)?;
                let at = existing.partition_point(|s| s.from < span.from);
                existing.insert(at, span);
                made.push(span);
                span
            }
        };
        match span.to.checked_add(1) {
            Some(next) => block = next,
            None => break,
        }
    }
    Ok(made)
}

fn make(client: &mut SpiClient<'_>, table: &str, node_key: i32, span: BlockSpan) -> SpiResult<()> {
    for sql in create_partition_sql(table, node_key, span) {
        client.update(&sql, None, &[])?;
    }
    // SAFETY: a backend global, read on the thread that runs this statement.
    if unsafe { pgrx::pg_sys::creating_extension } {
        // Made by an update script (the 0.7.0 rows' move): a member would be
        // left out of pg_dump, rows and all, while its kind table is not.
        client.update(
            &format!(
                "ALTER EXTENSION eventeum DROP TABLE {STORE_SCHEMA}.{}",
                partition_name(table, node_key, span.from)
            ),
            None,
            &[],
        )?;
    }
    client.update(
        "INSERT INTO eventeum.event_partitions (table_name, node_key, from_block, to_block, partition_name)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (table_name, node_key, from_block) DO UPDATE
            SET to_block = EXCLUDED.to_block, partition_name = EXCLUDED.partition_name, created_at = now()",
        None,
        &[
            table.into(),
            node_key.into(),
            (span.from as i64).into(),
            (span.to as i64).into(),
            partition_name(table, node_key, span.from).into(),
        ],
    )?;
    tracing::debug!(
        table,
        node_key,
        from = span.from,
        to = span.to,
        "made a partition"
    );
    Ok(())
}

/// Makes the partitions the rows of `step` go to, grouped by the width of
/// the node's partitions so that a backfill piece over a wide range makes
/// only those that get rows; and after a live step past the middle of its
/// partition, the next one, so that live rows seldom wait for one.
pub fn prepare_for_step(
    client: &mut SpiClient<'_>,
    step: &ChainStep,
    snapshot: &ConfigSnapshot,
) -> SpiResult<()> {
    let Some(node) = snapshot.nodes.get(&step.node) else {
        return Ok(());
    };
    let width = node.options.partition_blocks.max(1);
    let live = matches!(step.kind, StepKind::Live { .. });
    for copy in &step.prepared.copies {
        let table = copy.table.name();
        let mut groups: Vec<(u64, u64)> = vec![]; // per width bucket: lowest, highest block
        for &(i, _) in &copy.rows {
            let block = step.prepared.records[i].block_number.max(0) as u64;
            match groups
                .iter_mut()
                .find(|(low, _)| low / width == block / width)
            {
                Some((low, high)) => {
                    *low = (*low).min(block);
                    *high = (*high).max(block);
                }
                None => groups.push((block, block)),
            }
        }
        let mut known = spans(client, &table, copy.node_key)?;
        for &(low, high) in &groups {
            make_missing(
                client,
                &table,
                copy.node_key,
                &mut known,
                (low, high),
                width,
            )?;
        }
        let highest = groups.iter().map(|&(_, high)| high).max();
        if let (true, Some(highest)) = (live, highest) {
            let current = known.iter().find(|s| s.contains(highest)).copied();
            if let Some(current) = current.filter(|s| highest >= s.middle()) {
                if let Some(next) = current.to.checked_add(1) {
                    make_missing(
                        client,
                        &table,
                        copy.node_key,
                        &mut known,
                        (next, next),
                        width,
                    )?;
                }
            }
        }
    }
    Ok(())
}
