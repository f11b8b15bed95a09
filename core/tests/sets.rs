//! Address sets, any-emitter filters and indexed-parameter filters: how they
//! parse, what they match, and how a node's filters merge into few
//! `eth_getLogs` questions.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::Filter;
use eventeum_core::config::FilterConfig;
use eventeum_core::follow::log_queries;
use eventeum_core::matcher::{AddressSet, AddressSets, Member};
use eventeum_core::spec::{Emitters, FilterDefinition};
use serde_json::{json, Value};

use common::{ALICE, CONTRACT};

const TRANSFER: &str = "Transfer(address indexed from, address indexed to, uint256 value)";

fn body(extra: Value) -> Value {
    let mut body = json!({
        "id": "t",
        "eventSpecification": {
            "eventName": "Transfer",
            "indexedParameterDefinitions": [{"position": 0, "type": "ADDRESS"}, {"position": 1, "type": "ADDRESS"}],
            "nonIndexedParameterDefinitions": [{"position": 2, "type": "UINT256"}],
        },
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn error_of(extra: Value) -> String {
    FilterDefinition::from_json(&body(extra))
        .unwrap_err()
        .to_string()
}

fn address(n: u64) -> Address {
    Address::from_word(B256::from(U256::from(n + 1_000)))
}

fn set(name: &str, members: impl IntoIterator<Item = Address>) -> Arc<AddressSet> {
    Arc::new(AddressSet {
        name: name.into(),
        members: members
            .into_iter()
            .map(|a| (a, Member::default()))
            .collect::<HashMap<_, _>>(),
    })
}

fn config(id: &str, definition: FilterDefinition, sets: &AddressSets) -> Arc<FilterConfig> {
    Arc::new(FilterConfig::new(id.into(), definition, 0, None, sets))
}

fn sets(list: &[Arc<AddressSet>]) -> AddressSets {
    list.iter()
        .map(|s| (s.name.clone(), s.clone()))
        .collect::<BTreeMap<_, _>>()
}

fn word(address: Address) -> B256 {
    address.into_word()
}

#[test]
fn emitters_are_one_contract_any_contract_or_a_set() {
    let one = FilterDefinition::from_json(&body(json!({"contractAddress": CONTRACT.to_string()})))
        .unwrap();
    assert_eq!(one.emitters, Emitters::Contract(CONTRACT));
    for any in [json!(null), json!("*")] {
        let f = FilterDefinition::from_json(&body(json!({ "contractAddress": any }))).unwrap();
        assert_eq!(f.emitters, Emitters::Any);
        assert_eq!(f.to_json("t")["contractAddress"], Value::Null);
    }
    let from_set = FilterDefinition::from_json(&body(json!({"addressSet": "pairs"}))).unwrap();
    assert_eq!(from_set.emitters, Emitters::Set("pairs".into()));
    let listed = from_set.to_json("t");
    assert_eq!(listed["addressSet"], "pairs");
    assert!(listed.get("contractAddress").is_none());
    assert_eq!(FilterDefinition::from_json(&listed).unwrap(), from_set);
    let any_by_signature =
        FilterDefinition::from_signature("*", TRANSFER, "default", None, None).unwrap();
    assert_eq!(any_by_signature.emitters, Emitters::Any);
}

#[test]
fn emitters_are_required_once() {
    assert!(error_of(json!({})).contains("contractAddress is required"));
    assert!(
        error_of(json!({"contractAddress": CONTRACT.to_string(), "addressSet": "s"}))
            .contains("not both")
    );
    assert!(error_of(json!({"contractAddress": 5})).contains("must be an address"));
    assert!(error_of(json!({"addressSet": "  "})).contains("must not be empty"));
}

#[test]
fn indexed_parameter_filters_become_topics() {
    let f = FilterDefinition::from_json(&body(json!({
        "contractAddress": "*",
        "indexedParameterFilters": [
            {"position": 1, "addressSet": "deposits"},
            {"position": 0, "values": [ALICE.to_string(), CONTRACT.to_string()]},
        ],
    })))
    .unwrap();
    assert_eq!(f.indexed_filters.len(), 2);
    assert_eq!(f.indexed_filters[0].position, 0, "sorted by position");
    assert_eq!(f.indexed_filters[0].topic, 1);
    assert_eq!(f.indexed_filters[1].topic, 2);
    assert_eq!(f.address_sets().collect::<Vec<_>>(), ["deposits"]);
    let listed = f.to_json("t");
    assert_eq!(FilterDefinition::from_json(&listed).unwrap(), f);

    let deposits = set("deposits", [address(1), address(2)]);
    let matcher = config("t", f, &sets(&[deposits])).matcher.clone();
    let topics = |from: Address, to: Address| vec![B256::ZERO, word(from), word(to)];
    assert!(matcher.matches(&address(9), &topics(ALICE, address(1))));
    assert!(matcher.matches(&address(9), &topics(CONTRACT, address(2))));
    assert!(!matcher.matches(&address(9), &topics(address(3), address(2))));
    assert!(!matcher.matches(&address(9), &topics(ALICE, address(3))));
    assert!(
        !matcher.matches(&address(9), &[B256::ZERO, word(ALICE)]),
        "too few topics"
    );
}

#[test]
fn literal_values_are_encoded_as_their_type_puts_them_in_a_topic() {
    let f = FilterDefinition::from_json(&json!({
        "contractAddress": CONTRACT.to_string(),
        "eventSpecification": {
            "eventName": "E",
            "indexedParameterDefinitions": [
                {"position": 0, "type": "UINT256"}, {"position": 1, "type": "STRING"}, {"position": 2, "type": "BOOL"}],
        },
        "indexedParameterFilters": [
            {"position": 0, "values": [5, "6"]},
            {"position": 1, "value": "hello"},
            {"position": 2, "value": true},
        ],
    }))
    .unwrap();
    let matcher = config("e", f, &AddressSets::new()).matcher.clone();
    let five = B256::from(U256::from(5));
    let hello = alloy::primitives::keccak256("hello");
    let yes = B256::from(U256::from(1));
    assert!(matcher.matches(&CONTRACT, &[B256::ZERO, five, hello, yes]));
    assert!(matcher.matches(
        &CONTRACT,
        &[B256::ZERO, B256::from(U256::from(6)), hello, yes]
    ));
    assert!(!matcher.matches(&CONTRACT, &[B256::ZERO, five, hello, B256::ZERO]));
    assert!(
        !matcher.matches(&ALICE, &[B256::ZERO, five, hello, yes]),
        "another contract"
    );
}

#[test]
fn bad_indexed_parameter_filters_are_refused() {
    let cases = [
        (json!([{"position": 2, "value": 1}]), "is not indexed"),
        (json!([{"position": 0, "value": "0x12"}]), "not an address"),
        (
            json!([{"position": 0, "addressSet": "s"}, {"position": 0, "value": ALICE.to_string()}]),
            "more than once",
        ),
        (json!([{"position": 0}]), "exactly one of"),
        (json!([{"position": 0, "values": []}]), "lists no values"),
        (json!([{"position": 0, "values": "x"}]), "must be an array"),
        (
            json!([{"position": 0, "value": ALICE.to_string(), "other": 1}]),
            "unknown field",
        ),
        (json!(["x"]), "must be an object"),
    ];
    for (filters, expected) in cases {
        let error = error_of(json!({"contractAddress": "*", "indexedParameterFilters": filters}));
        assert!(error.contains(expected), "{filters}: {error}");
    }
    let not_address = FilterDefinition::from_json(&json!({
        "contractAddress": "*",
        "eventSpecification": {"eventName": "E", "indexedParameterDefinitions": [{"position": 0, "type": "UINT8"}]},
        "indexedParameterFilters": [{"position": 0, "addressSet": "s"}],
    }))
    .unwrap_err()
    .to_string();
    assert!(
        not_address.contains("constrains an address"),
        "{not_address}"
    );
    let too_big = FilterDefinition::from_json(&json!({
        "contractAddress": "*",
        "eventSpecification": {"eventName": "E", "indexedParameterDefinitions": [{"position": 0, "type": "UINT8"}]},
        "indexedParameterFilters": [{"position": 0, "value": 256}],
    }))
    .unwrap_err()
    .to_string();
    assert!(too_big.contains("uint8"), "{too_big}");
}

fn on_set(id: &str, name: &str, sets: &AddressSets) -> Arc<FilterConfig> {
    let mut definition =
        FilterDefinition::from_signature("*", TRANSFER, "default", None, None).unwrap();
    definition.emitters = Emitters::Set(name.into());
    config(id, definition, sets)
}

fn addresses_of(query: &Filter) -> Option<usize> {
    (!query.address.is_empty()).then(|| query.address.len())
}

#[test]
fn a_set_of_a_hundred_thousand_costs_the_calls_of_a_set_of_ten() {
    let small = sets(&[set("s", (0..10).map(address))]);
    let large = sets(&[set("s", (0..100_000).map(address))]);
    let small_queries = log_queries(&[on_set("t", "s", &small)]);
    let large_queries = log_queries(&[on_set("t", "s", &large)]);
    assert_eq!(small_queries.len(), 1);
    assert_eq!(addresses_of(&small_queries[0]), Some(10));
    assert_eq!(large_queries.len(), 1);
    assert_eq!(addresses_of(&large_queries[0]), None, "asked by topic only");
}

#[test]
fn long_address_lists_are_chunked_and_empty_sets_ask_nothing() {
    let medium = sets(&[set("s", (0..1_200).map(address)), set("empty", [])]);
    let queries = log_queries(&[
        on_set("t", "s", &medium),
        common::filter_config("c", TRANSFER),
        on_set("e", "empty", &medium),
    ]);
    let sizes: Vec<_> = queries.iter().map(addresses_of).collect();
    assert_eq!(
        sizes,
        [Some(500), Some(500), Some(201)],
        "1,200 members and one contract"
    );
    assert!(log_queries(&[on_set("e", "empty", &medium)]).is_empty());
}

#[test]
fn an_any_emitter_filter_takes_the_filters_of_its_event_into_a_topic_query() {
    let any = config(
        "any",
        FilterDefinition::from_signature("*", TRANSFER, "default", None, None).unwrap(),
        &AddressSets::new(),
    );
    let other = common::filter_config("ping", "Ping(uint256 x)");
    let same_event = common::filter_config("t", TRANSFER);
    let queries = log_queries(&[any.clone(), other.clone(), same_event]);
    assert_eq!(queries.len(), 2);
    assert_eq!(addresses_of(&queries[0]), Some(1), "Ping by address");
    assert!(queries[0].topics[0].matches(&other.topic0));
    assert!(!queries[0].topics[0].matches(&any.topic0));
    assert_eq!(addresses_of(&queries[1]), None, "Transfer by topic");
    assert!(queries[1].topics[0].matches(&any.topic0));
    assert!(!queries[1].topics[0].matches(&other.topic0));
}

#[test]
fn topics_are_passed_on_only_when_every_filter_of_the_query_constrains_them() {
    let deposits = sets(&[set("deposits", (0..3).map(address))]);
    let to_deposits = |id: &str| {
        let definition = FilterDefinition::from_json(&body(json!({
            "id": id,
            "contractAddress": CONTRACT.to_string(),
            "indexedParameterFilters": [{"position": 1, "addressSet": "deposits"}],
        })))
        .unwrap();
        config(id, definition, &deposits)
    };
    let queries = log_queries(&[to_deposits("a")]);
    assert_eq!(queries[0].topics[2].len(), 3, "`to` is topic 2");
    assert!(queries[0].topics[2].matches(&word(address(1))));
    assert!(queries[0].topics[1].is_empty());
    let queries = log_queries(&[to_deposits("a"), common::filter_config("t", TRANSFER)]);
    assert!(
        queries[0].topics[2].is_empty(),
        "the plain filter takes any `to`"
    );

    let many = sets(&[set("deposits", (0..10_000).map(address))]);
    let definition = FilterDefinition::from_json(&body(json!({
        "contractAddress": CONTRACT.to_string(),
        "indexedParameterFilters": [{"position": 1, "addressSet": "deposits"}],
    })))
    .unwrap();
    let queries = log_queries(&[config("a", definition, &many)]);
    assert!(
        queries[0].topics[2].is_empty(),
        "10,000 values are matched locally"
    );
}

#[test]
fn a_member_backfill_asks_for_its_address_alone() {
    let pairs = sets(&[set("pairs", (0..5).map(address))]);
    let filter = on_set("swap", "pairs", &pairs);
    let cut = filter
        .matcher
        .restricted_to("pairs", address(2), Member::default());
    assert!(cut.matches(&address(2), &[filter.topic0]));
    assert!(!cut.matches(&address(3), &[filter.topic0]));
    assert!(filter.matcher.matches(&address(3), &[filter.topic0]));
    assert!(cut.reads("pairs") && !cut.reads("other"));
}
