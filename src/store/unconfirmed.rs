//! Which kind tables hold a node's UNCONFIRMED rows (main thread), so that
//! a step's confirmation updates those tables only, not every kind table
//! there is: with fifty kinds, fifty statements a step.
//!
//! Kept in memory per node: read from the tables (through their partial
//! indexes on unconfirmed rows) the first time a node confirms, then kept up
//! to date by the inserts and confirmations of this process. A transaction
//! that fails ends the worker, so what is here never outlives a rollback.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use pgrx::spi::{SpiClient, SpiResult};

use crate::kind::KindTable;

thread_local! {
    /// Per node, each kind table that may hold its UNCONFIRMED rows, with
    /// the highest block among them.
    static UNCONFIRMED: RefCell<HashMap<String, HashMap<String, i64>>> = RefCell::new(HashMap::new());
}

/// Notes that `table` now holds UNCONFIRMED rows of `node` up to block `highest`.
pub(super) fn note(node: &str, table: &KindTable, highest: i64) {
    UNCONFIRMED.with_borrow_mut(|nodes| {
        // Not read yet: the first confirmation reads every table anyway.
        if let Some(tables) = nodes.get_mut(node) {
            let entry = tables.entry(table.name()).or_insert(highest);
            *entry = (*entry).max(highest);
        }
    });
}

/// The tables among `tables` that may hold UNCONFIRMED rows of `node`.
pub(super) fn tables_of(
    client: &mut SpiClient<'_>,
    node: &str,
    tables: &[Arc<KindTable>],
) -> SpiResult<Vec<Arc<KindTable>>> {
    if !UNCONFIRMED.with_borrow(|nodes| nodes.contains_key(node)) {
        let mut found = HashMap::new();
        for table in tables {
            let highest = client
                .select(
                    &format!(
                        "SELECT max(block_number) FROM {} WHERE status = 'UNCONFIRMED'
                            AND node_key = (SELECT node_key FROM eventeum.event_nodes WHERE name = $1)",
                        table.qualified_name()
                    ),
                    None,
                    &[node.into()],
                )?
                .first()
                .get_one::<i64>()?;
            if let Some(highest) = highest {
                found.insert(table.name(), highest);
            }
        }
        UNCONFIRMED.with_borrow_mut(|nodes| nodes.insert(node.to_string(), found));
    }
    Ok(UNCONFIRMED.with_borrow(|nodes| {
        let pending = &nodes[node];
        tables
            .iter()
            .filter(|t| pending.contains_key(&t.name()))
            .cloned()
            .collect()
    }))
}

/// Forgets the tables whose UNCONFIRMED rows of `node` are all at or below
/// `depth`, now CONFIRMED.
pub(super) fn confirmed_up_to(node: &str, depth: i64) {
    UNCONFIRMED.with_borrow_mut(|nodes| {
        if let Some(tables) = nodes.get_mut(node) {
            tables.retain(|_, highest| *highest > depth);
        }
    });
}
