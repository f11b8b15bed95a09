//! Transaction monitors: `add_transaction_monitor`, `remove_transaction_monitor` (backends).

use pgrx::prelude::{pg_extern, Spi};
use pgrx::JsonB;
use serde_json::Value;

use super::{
    exists, notice_registered, or_raise, raise, require_broadcasters, require_node,
    require_served_database, wake_worker_at_commit, warn_if_worker_absent,
};
use crate::error::ApiError;
use crate::monitor::TransactionMonitor;

/// Adds a transaction monitor given as Eventeum's REST body: `type` (HASH,
/// FROM_ADDRESS or TO_ADDRESS), `transactionIdentifierValue`, `nodeName`
/// (default `default`), `statuses` (default UNCONFIRMED, CONFIRMED and
/// FAILED), and an optional `id` (else Eventeum's id, a hash of the spec).
/// Registering a monitor whose id exists leaves it as it is and returns the
/// id, as Eventeum does. Returns the monitor id.
#[pg_extern(volatile)]
fn add_transaction_monitor(monitor: JsonB) -> String {
    require_served_database();
    if !matches!(monitor.0, Value::Object(_)) {
        raise(ApiError::invalid(
            "the transaction monitor must be a JSON object",
        ));
    }
    let monitor = or_raise(TransactionMonitor::from_json(&monitor.0));
    require_node(&monitor.node);
    require_broadcasters(monitor.broadcasters.as_ref());
    let id = monitor
        .id
        .clone()
        .unwrap_or_else(|| monitor.eventeum_id.clone());
    if exists(
        "SELECT EXISTS (SELECT 1 FROM eventeum.transaction_monitors WHERE id = $1)",
        &id,
    ) {
        notice_registered("transaction monitor", &id);
        return id;
    }
    let statuses: Vec<String> = monitor
        .statuses
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    Spi::run_with_args(
        "INSERT INTO eventeum.transaction_monitors (id, node, type, value, statuses, definition)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            id.as_str().into(),
            monitor.node.as_str().into(),
            monitor.target.kind().into(),
            monitor.target.value().into(),
            statuses.into(),
            JsonB(monitor.to_json(&id)).into(),
        ],
    )
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot add transaction monitor: {e}"));
    warn_if_worker_absent();
    wake_worker_at_commit();
    id
}

/// Removes a transaction monitor. The transactions it stored stay.
#[pg_extern(volatile)]
fn remove_transaction_monitor(id: &str) {
    let deleted = Spi::connect_mut(|client| {
        client
            .update(
                "DELETE FROM eventeum.transaction_monitors WHERE id = $1",
                None,
                &[id.into()],
            )
            .map(|table| table.len())
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot remove transaction monitor: {e}"));
    if deleted == 0 {
        raise(ApiError::not_found("transaction monitor", id));
    }
    wake_worker_at_commit();
}
