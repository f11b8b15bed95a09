//! Contract-event filters: `add_filter` (REST body or signature), `remove_filter` (backends).

use pgrx::prelude::{default, pg_extern, Spi};
use pgrx::JsonB;
use serde_json::Value;

use super::{
    exists, new_uuid, notice_registered, or_raise, raise, require_broadcasters, require_node,
    require_served_database, wake_worker_at_commit, warn_if_worker_absent,
};
use crate::error::ApiError;
use crate::spec::{validate_set_name, Emitters, Factory, FilterDefinition};

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
    if let Some(factory) = &filter.factory {
        require_factory(factory, &filter.node);
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
    if let Some(view) = filter.typed_view(&id) {
        super::views::check_target(&view);
    }
    let definition = filter.to_json(&id);
    let topic0 = alloy::primitives::hex::encode_prefixed(filter.specification.topic0());
    super::kinds::event_source(&id, &filter.node, &filter.specification.event_name, &topic0);
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
            topic0.as_str().into(),
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

/// Registers one filter per event of a contract ABI (a JSON array as solc
/// and Foundry write it, or an artifact object with an `"abi"` key): all
/// its events, or those named in `events` (every overload of a name).
/// Returns their ids, `<EventName>_<first 8 hex digits of the address>`
/// (`_any` for `'*'`), with the event's topic0 prefix appended to overloads;
/// each filter gets the default typed view named after its id. Anonymous
/// events are skipped with a NOTICE unless named, then refused.
#[pg_extern(volatile)]
fn add_filters_from_abi(
    contract_address: &str,
    abi: JsonB,
    events: default!(Option<Vec<String>>, "NULL"),
    node: default!(&str, "'default'"),
    start_block: default!(Option<i64>, "NULL"),
) -> Vec<String> {
    let emitters = or_raise(Emitters::from_address_argument(contract_address));
    let all = or_raise(crate::event::abi_events(&abi.0, events.as_deref()));
    let suffix = match emitters.contract() {
        Some(address) => alloy::primitives::hex::encode(&address[..4]),
        None => "any".to_string(),
    };
    let mut ids = vec![];
    for event in &all {
        if event.anonymous && events.is_none() {
            pgrx::notice!(
                "event {} is anonymous: it has no signature topic to filter on; skipped",
                event.name
            );
            continue;
        }
        let overloaded = all.iter().filter(|e| e.name == event.name).count() > 1;
        let mut id = format!("{}_{suffix}", event.name);
        if overloaded {
            id = format!(
                "{id}_{}",
                alloy::primitives::hex::encode(&event.selector()[..4])
            );
        }
        ids.push(store_filter(or_raise(FilterDefinition::for_event(
            contract_address,
            event,
            node,
            start_block,
            Some(id),
        ))));
    }
    ids
}

/// Raises unless `factory` names a filter on `node` whose event has an
/// address parameter as named: 42704 for a missing filter, 22023 otherwise.
fn require_factory(factory: &Factory, node: &str) {
    let stored = Spi::get_two_with_args::<String, JsonB>(
        "SELECT node, definition FROM eventeum.contract_event_filters WHERE id = $1",
        &[factory.filter.as_str().into()],
    );
    let (parent_node, definition) = match stored {
        Ok((Some(node), Some(definition))) => (node, definition.0),
        Ok(_) | Err(pgrx::spi::SpiError::InvalidPosition) => raise(ApiError::NotFound {
            kind: "factory filter",
            name: factory.filter.clone(),
            hint: Some("add the filter of the factory's creation event first".into()),
        }),
        Err(e) => pgrx::error!("eventeum: {e}"),
    };
    if parent_node != node {
        raise(ApiError::invalid(format!(
            "factory filter \"{}\" is on node \"{parent_node}\", not \"{node}\"",
            factory.filter
        )));
    }
    let parent = or_raise(FilterDefinition::from_json(&definition));
    or_raise(factory.position_in(&parent.specification));
}

/// Removes a contract-event filter. Events it already stored stay. Refused
/// (2BP01) while another filter names it as its factory.
#[pg_extern(volatile)]
fn remove_filter(id: &str) {
    let children = Spi::get_one_with_args::<String>(
        "SELECT string_agg(id, ', ' ORDER BY id) FROM eventeum.contract_event_filters
          WHERE definition -> 'factory' ->> 'filter' = $1 AND id <> $1",
        &[id.into()],
    )
    .unwrap_or_else(|e| pgrx::error!("eventeum: {e}"));
    if let Some(children) = children {
        raise(ApiError::InUse {
            kind: "filter",
            name: id.to_string(),
            detail: format!("it is the factory of filter(s) {children}; remove them first"),
        });
    }
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
