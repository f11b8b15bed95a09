//! Contract-event filters: `add_filter` (REST body or signature), `remove_filter` (backends).

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

use super::*;
use crate::spec::{validate_set_name, Emitters, FilterDefinition};

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
/// e.g. `Transfer(address indexed from, address indexed to, uint256 value)`,
/// for one contract, any contract (`'*'`), or the members of `address_set`
/// (with `contract_address` NULL).
#[pg_extern(volatile, name = "add_filter")]
fn add_filter_signature(
    contract_address: Option<&str>,
    event_signature: Option<&str>,
    node: default!(&str, "'default'"),
    start_block: default!(Option<i64>, "NULL"),
    id: default!(Option<String>, "NULL"),
    address_set: default!(Option<&str>, "NULL"),
) -> String {
    let Some(event_signature) = event_signature else {
        raise(ApiError::invalid("the event signature must not be NULL"));
    };
    let contract_address = match (contract_address, address_set) {
        (Some(_), Some(_)) => raise(ApiError::invalid(
            "give contract_address or address_set, not both",
        )),
        (Some(address), None) => address,
        (None, Some(_)) => "*", // replaced by the set below
        (None, None) => raise(ApiError::invalid_with_hint(
            "contract_address must not be NULL",
            "give '*' for any contract that emits the event, or address_set in its place",
        )),
    };
    let mut filter = or_raise(FilterDefinition::from_signature(
        contract_address,
        event_signature,
        node,
        start_block,
        id,
    ));
    if let Some(set) = address_set {
        filter.emitters = Emitters::Set(or_raise(validate_set_name(set)));
    }
    store_filter(filter)
}

fn store_filter(filter: FilterDefinition) -> String {
    require_served_database();
    require_node(&filter.node);
    require_broadcasters(filter.broadcasters.as_ref());
    for set in filter.address_sets() {
        super::sets::require_set(set);
    }
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
                (id, node, contract_address, event_name, event_signature, start_block, definition, address_set)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            id.as_str().into(),
            filter.node.as_str().into(),
            filter
                .emitters
                .contract()
                .map(|a| a.to_checksum(None))
                .into(),
            filter.specification.event_name.as_str().into(),
            alloy::primitives::hex::encode_prefixed(filter.specification.topic0()).into(),
            filter.start_block.map(|b| b as i64).into(),
            JsonB(definition).into(),
            filter.emitters.set().into(),
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
