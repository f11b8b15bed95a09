//! Contract-event filters: `add_filter` (REST body or signature), `remove_filter` (backends).

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

use super::*;
use crate::spec::FilterDefinition;

/// Adds a contract-event filter given as Eventeum's REST body, plus the optional
/// keys `node` (default `default`) and `startBlock`. Returns the filter id,
/// generated when the body has none.
#[pg_extern(volatile, name = "add_filter")]
fn add_filter_json(filter: JsonB) -> String {
    if !matches!(filter.0, Value::Object(_)) {
        raise(ApiError::invalid("the filter must be a JSON object"));
    }
    store_filter(or_raise(FilterDefinition::from_json(&filter.0)))
}

/// Adds a contract-event filter from a human-readable Solidity event signature,
/// e.g. `Transfer(address indexed from, address indexed to, uint256 value)`.
#[pg_extern(volatile, name = "add_filter")]
fn add_filter_signature(
    contract_address: &str,
    event_signature: &str,
    node: default!(&str, "'default'"),
    start_block: default!(Option<i64>, "NULL"),
    id: default!(Option<String>, "NULL"),
) -> String {
    store_filter(or_raise(FilterDefinition::from_signature(
        contract_address,
        event_signature,
        node,
        start_block,
        id,
    )))
}

fn store_filter(filter: FilterDefinition) -> String {
    require_served_database();
    require_node(&filter.node);
    require_broadcasters(filter.broadcasters.as_ref());
    let id = match filter.id.as_deref() {
        Some(id)
            if exists(
                "SELECT EXISTS (SELECT 1 FROM eventeum.contract_event_filters WHERE id = $1)",
                id,
            ) =>
        {
            notice_registered("filter", id);
            return id.to_string();
        }
        Some(id) => id.to_string(),
        None => new_uuid(),
    };
    let definition = filter.to_json(&id);
    Spi::run_with_args(
        "INSERT INTO eventeum.contract_event_filters
                (id, node, contract_address, event_name, event_signature, start_block, definition)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            id.as_str().into(),
            filter.node.as_str().into(),
            filter.contract_address.to_checksum(None).into(),
            filter.specification.event_name.as_str().into(),
            alloy::primitives::hex::encode_prefixed(filter.specification.topic0()).into(),
            filter.start_block.map(|b| b as i64).into(),
            JsonB(definition).into(),
        ],
    )
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot add filter: {e}"));
    warn_if_worker_absent();
    wake_worker_at_commit();
    id
}

/// Removes a contract-event filter. Events it already stored stay.
#[pg_extern(volatile)]
fn remove_filter(id: &str) {
    // A mutating statement goes through `update`: a read-only SPI call would
    // run the DELETE without its statement triggers seeing it.
    let deleted = Spi::connect_mut(|client| {
        client
            .update(
                "DELETE FROM eventeum.contract_event_filters WHERE id = $1",
                None,
                &[id.into()],
            )
            .map(|table| table.len())
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot remove filter: {e}"));
    if deleted == 0 {
        raise(ApiError::not_found("filter", id));
    }
    wake_worker_at_commit();
}
