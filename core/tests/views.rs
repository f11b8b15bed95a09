//! Typed views: column names and types, the SQL they are made of, ABI JSON
//! (tuples included) as a filter, and names that try to break out.

use alloy::dyn_abi::DynSolValue;
use alloy::primitives::{Address, B256, I256, U256};
use eventeum_core::decode::{decode_log, RawLog, RenderOptions};
use eventeum_core::event::abi_events;
use eventeum_core::kind::{EventKind, KindTable};
use eventeum_core::spec::FilterDefinition;
use eventeum_core::view::{default_view_name, ViewRequest, ViewSource};
use serde_json::{json, Value};

const ADDRESS: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

fn abi_filter(event: Value, view: Option<Value>) -> FilterDefinition {
    let mut body = json!({"id": "t", "contractAddress": ADDRESS, "eventSpecification": event});
    if let Some(view) = view {
        body["view"] = view;
    }
    FilterDefinition::from_json(&body).unwrap()
}

fn input(name: &str, ty: &str, indexed: bool) -> Value {
    json!({"name": name, "type": ty, "indexed": indexed, "internalType": ty})
}

fn columns(filter: &FilterDefinition) -> Vec<(String, String)> {
    filter
        .typed_view("t")
        .unwrap()
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.ty.sql()))
        .collect()
}

#[test]
fn columns_are_named_and_typed_after_the_parameters() {
    let filter = abi_filter(
        json!({"type": "event", "name": "Everything", "anonymous": false, "inputs": [
            input("from", "address", true),
            input("", "uint256", false),
            input("status", "int8", false),
            input("data", "bytes", true),
            input("flags", "bool[]", false),
            input("names", "string[2]", false),
            input("grid", "uint8[][]", false),
            {"name": "order", "type": "tuple", "indexed": false, "components": [
                {"name": "maker", "type": "address"},
                {"name": "", "type": "uint256"},
                {"name": "legs", "type": "tuple[]", "components": [{"name": "amount", "type": "int256"}]}
            ]},
            input("id", "bytes32", false)
        ]}),
        None,
    );
    let expected = [
        ("from", "text"),
        ("p1", "numeric"),
        ("status_", "numeric"),
        ("data", "bytea"), // indexed bytes: the topic's hash
        ("flags", "boolean[]"),
        ("names", "text[]"),
        ("grid", "jsonb"),
        ("order", "jsonb"),
        ("id", "bytea"),
    ];
    let got = columns(&filter);
    let got: Vec<(&str, &str)> = got.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    assert_eq!(got, expected);
    let sql = filter.typed_view("t").unwrap().create_sql(&json_source());
    assert!(
        sql.starts_with("CREATE VIEW \"eventeum\".\"t\" WITH (security_invoker = true)"),
        "{sql}"
    );
    assert!(
        sql.contains("((e.indexed_parameters -> 0) ->> 'value') AS \"from\""),
        "{sql}"
    );
    assert!(sql.contains("jsonb_build_object(E'maker', "), "{sql}");
    assert!(sql.contains("E'p1', "), "{sql}");
    assert!(sql.contains("E'n\\'ode'::text AS node"), "{sql}");
    assert!(
        sql.ends_with(
            "FROM eventeum_store.events_json AS e\n WHERE e.node_key = 3 AND e.filter_key = 7"
        ),
        "{sql}"
    );
    // The definition keeps the tuple's components: it parses back the same.
    let stored = filter.to_json("t");
    assert_eq!(
        FilterDefinition::from_json(&stored).unwrap().to_json("t"),
        stored
    );
    assert_eq!(
        stored["eventSpecification"]["nonIndexedParameterDefinitions"][5]["components"][2]["type"],
        "TUPLE[]"
    );
}

#[test]
fn hostile_names_are_quoted_or_replaced() {
    // alloy refuses ABI names that are not Solidity identifiers...
    let body = json!({"contractAddress": ADDRESS, "eventSpecification":
        {"type": "event", "name": "E", "inputs": [input("x\"; --", "uint256", false)]}});
    assert_eq!(
        FilterDefinition::from_json(&body)
            .unwrap_err()
            .sqlstate()
            .code(),
        "22023"
    );
    // ...but Eventeum's eventSpecification names anything.
    let nasty = "x\"; DROP TABLE eventeum.nodes; --";
    let param =
        |position: u32, name: &str| json!({"position": position, "type": "UINT256", "name": name});
    let body = json!({"id": "t", "contractAddress": ADDRESS,
    "view": {"name": "v\"'; --", "index": [nasty]},
    "eventSpecification": {"eventName": "E", "nonIndexedParameterDefinitions": [
        param(0, nasty), param(1, "a\u{0}b"), param(2, &"long".repeat(20)),
        param(3, "select"), param(4, "select"),
        {"position": 5, "type": "TUPLE", "name": "t",
         "components": [{"name": "k'); --\\", "type": "BOOL"}]}
    ]}});
    let filter = FilterDefinition::from_json(&body).unwrap();
    let names: Vec<String> = columns(&filter).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, [nasty, "p1", "p2", "select", "select_", "t"]);
    let view = filter.typed_view("it's").unwrap();
    let sql = view.create_sql(&json_source());
    assert!(
        sql.contains("AS \"x\"\"; DROP TABLE eventeum.nodes; --\""),
        "{sql}"
    );
    assert!(sql.contains("\"eventeum\".\"v\"\"'; --\""), "{sql}");
    assert!(sql.contains("E'k\\'); --\\\\'"), "{sql}");
    let index = &view.indexes(&json_source())[0];
    let name = &index.name;
    assert!(name.len() <= 63 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    let sql = index.create_on_table_sql(true);
    assert!(sql.ends_with("WHERE filter_key = 7"), "{sql}");
    // A view name with a control character is refused.
    let mut bad = body.clone();
    bad["view"] = json!("a\nb");
    assert_eq!(
        FilterDefinition::from_json(&bad)
            .unwrap_err()
            .sqlstate()
            .code(),
        "22023"
    );
}

#[test]
fn view_options() {
    let event = json!({"type": "event", "name": "Transfer", "inputs": [
        input("from", "address", true), input("to", "address", true), input("value", "uint256", false),
        input("memo", "string[]", false)
    ]});
    let off = abi_filter(event.clone(), Some(json!(false)));
    assert_eq!(off.view, ViewRequest::Off);
    assert_eq!(off.to_json("t")["view"], json!(false));
    let named = abi_filter(
        event.clone(),
        Some(json!({"name": "transfers", "schema": "app", "index": ["to", "value"]})),
    );
    assert_eq!(
        named.to_json("t")["view"],
        json!({"schema": "app", "name": "transfers", "index": ["to", "value"]})
    );
    let view = named.typed_view("t").unwrap();
    let indexes = view.indexes(&json_source());
    assert_eq!(indexes.len(), 2);
    assert_eq!(
        indexes[0].create_on_table_sql(true),
        format!("CREATE INDEX IF NOT EXISTS \"{}\" ON ONLY eventeum_store.\"events_json\" (((indexed_parameters -> 1) ->> 'value'), block_number) WHERE filter_key = 7", indexes[0].name)
    );
    assert_eq!(
        (indexes[0].column.as_str(), indexes[1].column.as_str()),
        ("to", "value")
    );
    // In a kind table, a column is the parameter's own. (With its string[]
    // this event's rows are in the JSON table; this is its shape without it.)
    assert_eq!(KindTable::of(&named.specification), KindTable::Json);
    let typed = ViewSource {
        table: KindTable::Typed(EventKind::from_key("address!,address!,uint256").unwrap()),
        ..json_source()
    };
    let indexes = view.indexes(&typed);
    let sql = indexes[1].create_on_table_sql(true);
    assert!(
        sql.contains(" (p3, block_number) WHERE filter_key = 7"),
        "{sql}"
    );
    let sql = view.create_sql(&typed);
    assert!(sql.contains("e.p2 AS \"to\""), "{sql}");
    let defaulted = abi_filter(event.clone(), None);
    assert_eq!(
        defaulted.to_json("My Transfers!")["view"],
        json!({"schema": "eventeum", "name": "my_transfers", "index": []})
    );
    for bad in [
        json!({"index": ["nope"]}),
        json!({"index": ["memo"]}),
        json!({"index": "to"}),
        json!({"other": 1}),
        json!(3),
    ] {
        let body = json!({"contractAddress": ADDRESS, "eventSpecification": event, "view": bad});
        assert_eq!(
            FilterDefinition::from_json(&body)
                .unwrap_err()
                .sqlstate()
                .code(),
            "22023",
            "{bad}"
        );
    }
}

#[test]
fn default_view_names_are_safe_identifiers() {
    assert_eq!(default_view_name("transfers"), "transfers");
    assert_eq!(default_view_name("Transfers Of USDC!"), "transfers_of_usdc");
    assert_eq!(
        default_view_name("3f2a9c1d-0000-4000-8000-000000000000"),
        "filter_3f2a9c1d_0000_4000_8000_000000000000"
    );
    assert_eq!(default_view_name("\"; --"), "filter_");
    let long = default_view_name(&"a".repeat(100));
    assert_eq!(long.len(), 63);
    assert_ne!(long, default_view_name(&"a".repeat(101)));
}

#[test]
fn abi_events_in_order_and_by_name() {
    let abi = json!([
        {"type": "constructor", "inputs": []},
        {"type": "event", "name": "A", "inputs": [], "anonymous": false},
        {"type": "function", "name": "f", "inputs": [], "outputs": [], "stateMutability": "view"},
        {"type": "event", "name": "B", "inputs": [input("x", "uint256", true)], "anonymous": false},
        {"type": "event", "name": "A", "inputs": [input("y", "uint8", false)], "anonymous": false}
    ]);
    let names = |events: Vec<alloy::json_abi::Event>| {
        events.iter().map(|e| e.signature()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(abi_events(&abi, None).unwrap()),
        ["A()", "B(uint256)", "A(uint8)"]
    );
    assert_eq!(
        names(abi_events(&json!({"abi": abi}), Some(&["A".into()])).unwrap()),
        ["A()", "A(uint8)"]
    );
    assert_eq!(
        abi_events(&abi, Some(&["C".into()]))
            .unwrap_err()
            .sqlstate()
            .code(),
        "42704"
    );
    assert_eq!(
        abi_events(&json!("x"), None).unwrap_err().sqlstate().code(),
        "22023"
    );
}

#[test]
fn tuples_and_extremes_decode() {
    let filter = abi_filter(
        json!({"type": "event", "name": "E", "inputs": [
            input("max", "uint256", false),
            input("min", "int256", false),
            {"name": "pair", "type": "tuple", "indexed": false, "components": [
                {"name": "who", "type": "address"}, {"name": "ok", "type": "bool"}]},
            input("empty", "uint256[]", false)
        ]}),
        None,
    );
    let values = DynSolValue::Tuple(vec![
        DynSolValue::Uint(U256::MAX, 256),
        DynSolValue::Int(I256::MIN, 256),
        DynSolValue::Tuple(vec![
            DynSolValue::Address(Address::repeat_byte(0xab)),
            DynSolValue::Bool(true),
        ]),
        DynSolValue::Array(vec![]),
    ]);
    let data = values.abi_encode_params();
    let topic0 = filter.specification.topic0();
    let decoded = decode_log(
        &filter,
        RawLog {
            topics: &[topic0],
            data: &data,
        },
        RenderOptions::default(),
    )
    .unwrap();
    let json = serde_json::to_value(&decoded.non_indexed).unwrap();
    assert_eq!(json[0]["value"].to_string(), U256::MAX.to_string());
    assert_eq!(json[1]["value"].to_string(), I256::MIN.to_string());
    assert_eq!(json[2]["type"], "(address,bool)");
    assert_eq!(
        json[2]["value"][0]["value"],
        Address::repeat_byte(0xab).to_checksum(None)
    );
    assert_eq!(json[2]["value"][1], json!({"type": "bool", "value": 1}));
    assert_eq!(json[3], json!({"type": "uint256[]", "value": []}));
    let _ = B256::ZERO;
}

/// A filter's rows in the JSON table, under key 7, on a node with a quote in its name.
fn json_source() -> ViewSource {
    ViewSource {
        table: KindTable::Json,
        filter_key: 7,
        node_key: 3,
        node: "n'ode".into(),
    }
}
