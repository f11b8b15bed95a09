//! Factories (tokio): the children a step's factory events add to address
//! sets, read from the decoded events before they become rows.

use alloy::primitives::Address;

use crate::config::Child;
use crate::decode::ParamValue;
use crate::message::contract_event_id;
use crate::rows::DecodedEvent;

/// The children that `events` add: one per factory event and set it feeds,
/// when the parameter decoded to an address.
pub fn children_of(events: &[DecodedEvent]) -> Vec<Child> {
    let mut children = Vec::new();
    for event in events.iter().filter(|e| !e.filter.feeds.is_empty()) {
        let specification = &event.filter.definition.specification;
        for feed in &event.filter.feeds {
            let parameter = match specification.locate(feed.position) {
                Some((true, i)) => event.parameters.indexed.get(i),
                Some((false, i)) => event.parameters.non_indexed.get(i),
                None => None,
            };
            let address = match parameter.map(|p| &p.value) {
                Some(ParamValue::Text(text)) => text.parse::<Address>().ok(),
                _ => None,
            };
            let Some(address) = address else {
                continue;
            };
            let at = &event.position;
            children.push(Child {
                set: feed.set.clone(),
                address,
                block_number: at.block_number,
                filter_id: event.filter.id.clone(),
                event_id: contract_event_id(&at.transaction_hash, &at.block_hash, at.log_index),
            });
        }
    }
    children
}
