//! The store (main thread): where a decoded log becomes a row. Every
//! function here runs on the worker's main thread, inside a transaction the
//! caller opened.
//!
//! A step is applied in one transaction: event rows, status changes, their
//! NOTIFYs, undecodable logs and the node's checkpoint commit together, or
//! not at all. Inserts are idempotent on (node, block, log index, block
//! hash, filter), so replaying a range after a crash changes nothing.
//!
//! - [`snapshot`]: the configuration the followers work from;
//! - [`step`]: a follower step, and the node's checkpoint and fork window;
//! - [`events`]: contract-event rows (a log becomes a row here), confirmations;
//! - [`copy`]: first-pass rows through Postgres' COPY;
//! - [`kinds`]: the kind tables, the filters' and nodes' keys, the views' indexes;
//! - [`partitions`]: the kind tables' partitions by node and block range;
//! - [`retention`]: old partitions dropped, per the nodes' retention options;
//! - [`children`]: factories' children added to address sets, and taken out on a fork;
//! - [`unconfirmed`]: which kind tables hold a node's unconfirmed rows;
//! - [`rewind`]: a fork;
//! - [`transactions`], [`blocks`]: monitored transactions and block events;
//! - [`emit`]: NOTIFY and outbox rows for what a step changed;
//! - [`outbox`]: batches for the relay and what it delivered;
//! - [`counters`]: the metrics' counters.

mod blocks;
mod children;
mod copy;
mod counters;
mod emit;
mod events;
mod kinds;
mod outbox;
mod partitions;
mod retention;
mod retention_rows;
mod rewind;
mod snapshot;
mod step;
mod subtransaction;
mod transactions;
mod unconfirmed;

use pgrx::spi::SpiResult;

pub use children::{catch_up_children, FeedKey};
pub use counters::{record_call_counts, render_pages};
pub use kinds::{kind_tables, view_indexes};
pub use outbox::{due_batches, prune_outbox, record_delivery};
pub use partitions::{ensure_range, prepare_for_step};
pub use retention::retain;
pub use rewind::apply_rewind;
pub use snapshot::{config_version, installed_version, load_snapshot};
pub use step::{apply_step, record_endpoints, record_node_error};

pub(super) fn records_of<T: serde::de::DeserializeOwned>(
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
