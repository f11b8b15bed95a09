//! Nodes: `add_node`, `remove_node` (backends).

use pgrx::prelude::{default, pg_extern, Spi};
use pgrx::JsonB;

use super::{
    network_policy, node_exists, or_raise, raise, require_served_database, wake_worker_at_commit,
    warn_if_worker_absent,
};
use crate::error::ApiError;
use crate::node::{
    check_urls_allowed, move_credentials_into_urls, validate_name, validate_urls, NodeOptions,
};

/// Registers an Ethereum node for the worker to follow.
///
/// `options` takes Eventeum's node properties in camelCase (pollingInterval,
/// numBlocksToWait, blockStrategy, ...); missing keys take Eventeum's defaults.
/// Returns the node name.
#[pg_extern(volatile)]
fn add_node(name: &str, url: &str, options: default!(JsonB, "'{}'")) -> String {
    require_served_database();
    or_raise(validate_name(name));
    let mut options = or_raise(NodeOptions::from_json(&options.0));
    let urls = or_raise(validate_urls(url, options.block_strategy));
    let urls = or_raise(move_credentials_into_urls(&urls, &mut options));
    or_raise(check_urls_allowed(&urls, &network_policy()));
    if node_exists(name) {
        raise(ApiError::Duplicate {
            kind: "node",
            name: name.to_string(),
        });
    }
    let options = serde_json::to_value(&options).expect("node options serialize");
    Spi::run_with_args(
        "INSERT INTO eventeum.nodes (name, url, options) VALUES ($1, $2, $3)",
        &[name.into(), urls.as_str().into(), JsonB(options).into()],
    )
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot add node: {e}"));
    warn_if_worker_absent();
    wake_worker_at_commit();
    name.to_string()
}

/// Removes a node. Its filters must be removed first; its events stay.
#[pg_extern(volatile)]
fn remove_node(name: &str) {
    if !node_exists(name) {
        raise(ApiError::not_found("node", name));
    }
    let users = Spi::get_one_with_args::<i64>(
        "SELECT (SELECT count(*) FROM eventeum.contract_event_filters WHERE node = $1)
              + (SELECT count(*) FROM eventeum.transaction_monitors WHERE node = $1)",
        &[name.into()],
    )
    .unwrap_or_else(|e| pgrx::error!("eventeum: {e}"))
    .unwrap_or(0);
    if users > 0 {
        raise(ApiError::InUse {
            kind: "node",
            name: name.to_string(),
            detail: format!("{users} filter(s) or transaction monitor(s) belong to it"),
        });
    }
    Spi::run_with_args("DELETE FROM eventeum.nodes WHERE name = $1", &[name.into()])
        .unwrap_or_else(|e| pgrx::error!("eventeum: cannot remove node: {e}"));
    wake_worker_at_commit();
}
