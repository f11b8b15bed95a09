//! Retention of a node's other rows (main thread): its block events, its
//! monitored transactions and its undecodable logs out of the window that
//! removes its events' partitions ([`super::retention`]). These tables are
//! not partitioned (a row per block at most, and far fewer for the others),
//! so they go by `DELETE`, a bounded batch per table per pass, each found
//! by an index on the node and block: never a scan of a whole table, and a
//! pass's work stays small however much history is out of the window.

use pgrx::prelude::Spi;
use pgrx::spi::SpiResult;

use super::retention::Window;
use crate::limits::RETENTION_ROWS_PER_PASS;

/// Each table's rows of node `$1` out of the window: at or below block `$2`,
/// and with `retainFor` also stamped at or before `$3` (chain time, seconds)
/// or, for undecodable logs, which carry no block time, recorded more than
/// `$5` milliseconds ago. `$4` rows at most, oldest first.
const BATCHES: [(&str, &str); 3] = [
    (
        "blocks",
        "DELETE FROM eventeum.blocks b USING (
             SELECT hash FROM eventeum.blocks
              WHERE node = $1 AND number <= $2 AND ($3::bigint IS NULL OR \"timestamp\" <= $3)
              ORDER BY number LIMIT $4) o
          WHERE b.node = $1 AND b.hash = o.hash",
    ),
    (
        "transaction_states",
        "DELETE FROM eventeum.transaction_states t USING (
             SELECT monitor_id, hash, block_hash FROM eventeum.transaction_states
              WHERE node = $1 AND block_number <= $2 AND status <> 'UNCONFIRMED'
                AND ($3::bigint IS NULL OR block_timestamp IS NULL OR block_timestamp <= $3)
              ORDER BY block_number LIMIT $4) o
          WHERE (t.monitor_id, t.hash, t.block_hash) = (o.monitor_id, o.hash, o.block_hash)",
    ),
    (
        "undecodable_logs",
        "DELETE FROM eventeum.undecodable_logs u USING (
             SELECT filter_id, block_hash, transaction_hash, log_index FROM eventeum.undecodable_logs
              WHERE node = $1 AND block_number <= $2
                AND ($5::bigint = 0 OR created_at <= now() - $5::bigint * interval '1 millisecond')
              ORDER BY block_number LIMIT $4) o
          WHERE u.node = $1 AND (u.filter_id, u.block_hash, u.transaction_hash, u.log_index)
                              = (o.filter_id, o.block_hash, o.transaction_hash, o.log_index)",
    ),
];

/// Deletes a batch of each table's rows of `node` that are out of `window`.
pub fn age_out(node: &str, window: &Window) -> SpiResult<()> {
    for (table, delete) in BATCHES {
        let removed = Spi::connect_mut(|client| {
            let args = [
                node.into(),
                window.last_block.into(),
                window.oldest_kept.into(),
                (RETENTION_ROWS_PER_PASS as i64).into(),
                (window.retain_for_ms.min(i64::MAX as u64) as i64).into(),
            ];
            client.update(delete, None, &args).map(|t| t.len())
        })?;
        if removed > 0 {
            tracing::debug!(
                node,
                table,
                removed,
                "retention: removed rows out of the window"
            );
        }
    }
    Ok(())
}
