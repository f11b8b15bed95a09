//! The questions a node is asked for its filters' logs (tokio): all of a
//! node's filters, address sets and indexed-parameter filters merged into as
//! few `eth_getLogs` as a provider takes. Each question asks for a superset
//! of what its filters match; matching (`matching.rs`) takes each log to the
//! filters that really want it.
//!
//! - Filters that follow any contract, or a set too large to list, are asked
//!   by topic only, together with every other filter of the same events.
//! - The rest are asked by address, in chunks of [`ADDRESSES_PER_QUERY`],
//!   unless there are more than [`TOPIC_ONLY_ABOVE`] addresses, when they too
//!   are asked by topic only.
//! - Topics 1–3 are passed on when every filter of the question constrains
//!   them and their values fit in [`VALUES_PER_TOPIC`].

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use alloy::primitives::{Address, BloomInput, B256};
use alloy::rpc::types::{Filter, Log};

use crate::config::{BlockHeader, FilterConfig};
use crate::limits::{ADDRESSES_PER_QUERY, TOPIC_ONLY_ABOVE, VALUES_PER_TOPIC};
use crate::matcher::EmitterMatch;
use crate::rpc::{NodeClient, RpcError};

/// The `eth_getLogs` questions (without their block range) that together
/// return every log `filters` may match; none when there is nothing to ask
/// (no filter, or only sets without members).
pub fn log_queries(filters: &[Arc<FilterConfig>]) -> Vec<Filter> {
    let asking: Vec<&Arc<FilterConfig>> = filters
        .iter()
        .filter(|f| f.matcher.address_count() != Some(0))
        .collect();
    let wide = |f: &FilterConfig| {
        f.matcher
            .address_count()
            .is_none_or(|n| n > TOPIC_ONLY_ABOVE)
    };
    let wide_topics: HashSet<B256> = asking
        .iter()
        .filter(|f| wide(f))
        .map(|f| f.topic0)
        .collect();
    // A filter of an event already asked by topic only gets its logs from that question.
    let (mut by_topic, by_address): (Vec<&Arc<FilterConfig>>, Vec<_>) = asking
        .into_iter()
        .partition(|f| wide_topics.contains(&f.topic0));
    let addresses: BTreeSet<Address> = by_address
        .iter()
        .flat_map(|f| f.matcher.addresses().unwrap_or_default())
        .collect();
    let mut queries = Vec::new();
    if addresses.len() > TOPIC_ONLY_ABOVE {
        by_topic.extend(by_address);
    } else if !by_address.is_empty() {
        let template = topics_of(&by_address);
        let addresses: Vec<Address> = addresses.into_iter().collect();
        for chunk in addresses.chunks(ADDRESSES_PER_QUERY) {
            queries.push(template.clone().address(chunk.to_vec()));
        }
    }
    if !by_topic.is_empty() {
        queries.push(topics_of(&by_topic));
    }
    queries
}

/// A question for the topics of `filters`: their topic0s, and each of
/// topics 1–3 that all of them constrain, when the values fit.
fn topics_of(filters: &[&Arc<FilterConfig>]) -> Filter {
    let topic0s: Vec<B256> = filters
        .iter()
        .map(|f| f.topic0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut query = Filter::new().event_signature(topic0s);
    for index in 1..=3 {
        let mut values: BTreeSet<B256> = BTreeSet::new();
        let constrained = filters.iter().all(|f| match f.matcher.topic(index) {
            Some(words) => {
                values.extend(words.iter().copied());
                values.len() <= VALUES_PER_TOPIC
            }
            None => false,
        });
        if constrained {
            let values: Vec<B256> = values.into_iter().collect();
            query = match index {
                1 => query.topic1(values),
                2 => query.topic2(values),
                _ => query.topic3(values),
            };
        }
    }
    query
}

/// The logs of blocks `from..=to` for `queries`, in chain order.
pub(super) async fn fetch_logs(
    client: &NodeClient,
    from: u64,
    to: u64,
    queries: &[Filter],
) -> Result<Vec<Log>, RpcError> {
    let mut logs = Vec::new();
    for query in queries {
        logs.extend(client.logs(from, to, query).await?);
    }
    if queries.len() > 1 {
        logs.sort_by_key(|l| (l.block_number, l.log_index));
    }
    Ok(logs)
}

/// The logs of the block `hash` for `queries`.
pub(super) async fn fetch_logs_at(
    client: &NodeClient,
    hash: B256,
    queries: &[Filter],
) -> Result<Vec<Log>, RpcError> {
    let mut logs = Vec::new();
    for query in queries {
        logs.extend(client.logs_at(hash, query).await?);
    }
    Ok(logs)
}

/// The most members of a set whose addresses a bloom check looks for; a
/// larger set is checked by its event alone (a false positive costs a call).
const BLOOM_MEMBERS: usize = 64;

/// Whether the block's bloom may hold a log of some filter: its topic0, an
/// emitter it takes and a value of each topic it constrains (sets and value
/// lists larger than [`BLOOM_MEMBERS`] are not looked up).
pub(super) fn may_hold_logs_of(header: &BlockHeader, filters: &[Arc<FilterConfig>]) -> bool {
    let bloom = &header.logs_bloom;
    let has = |bytes: &[u8]| bloom.contains_input(BloomInput::Raw(bytes));
    filters.iter().any(|f| {
        f.start.is_none_or(|start| header.number >= start)
            && has(f.topic0.as_slice())
            && match &f.matcher.emitters {
                EmitterMatch::Contract(address) => has(address.as_slice()),
                EmitterMatch::Any => true,
                EmitterMatch::Set(set) if set.members.len() <= BLOOM_MEMBERS => {
                    set.members.keys().any(|a| has(a.as_slice()))
                }
                EmitterMatch::Set(set) => !set.members.is_empty(),
            }
            && f.matcher
                .topics
                .iter()
                .all(|t| t.words.len() > BLOOM_MEMBERS || t.words.iter().any(|w| has(w.as_slice())))
    })
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{address, Bloom};
    use serde_json::json;

    use super::*;
    use crate::spec::FilterDefinition;

    const TOKEN: Address = address!("5FbDB2315678afecb367f032d93F642f64180aa3");
    const ALICE: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    const BOB: Address = address!("70997970C51812dc3A010C7d01b50e0d17dc79C8");

    /// Transfers from TOKEN whose `to` is `to`.
    fn transfers_to(to: Address) -> Arc<FilterConfig> {
        let definition = FilterDefinition::from_json(&json!({
            "contractAddress": TOKEN.to_string(),
            "eventSpecification": {"eventName": "Transfer",
                "indexedParameterDefinitions": [{"position": 0, "type": "ADDRESS"}, {"position": 1, "type": "ADDRESS"}],
                "nonIndexedParameterDefinitions": [{"position": 2, "type": "UINT256"}]},
            "indexedParameterFilters": [{"position": 1, "value": to.to_string()}],
        }))
        .unwrap();
        Arc::new(FilterConfig::new(
            "t".into(),
            definition,
            0,
            None,
            &Default::default(),
        ))
    }

    /// A block whose one log is a Transfer from TOKEN to `to`.
    fn block_with_transfer(filter: &FilterConfig, to: Address) -> BlockHeader {
        let mut logs_bloom = Bloom::default();
        for input in [
            TOKEN.as_slice(),
            filter.topic0.as_slice(),
            ALICE.into_word().as_slice(),
            to.into_word().as_slice(),
        ] {
            logs_bloom.accrue(BloomInput::Raw(input));
        }
        BlockHeader {
            number: 1,
            hash: B256::ZERO,
            parent_hash: B256::ZERO,
            timestamp: 0,
            logs_bloom,
        }
    }

    #[test]
    fn a_block_whose_bloom_lacks_the_constrained_value_is_not_suspect() {
        let to_bob = transfers_to(BOB);
        assert!(may_hold_logs_of(
            &block_with_transfer(&to_bob, BOB),
            std::slice::from_ref(&to_bob)
        ));
        assert!(!may_hold_logs_of(
            &block_with_transfer(&to_bob, ALICE),
            &[to_bob]
        ));
    }
}
