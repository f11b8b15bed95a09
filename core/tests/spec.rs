//! Filter parsing and validation: what add_filter accepts and rejects.

use eventeum_core::event::ParamType;
use eventeum_core::spec::FilterDefinition;
use serde_json::json;

const ADDRESS: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";

fn body(indexed: serde_json::Value, non_indexed: serde_json::Value) -> serde_json::Value {
    json!({
        "contractAddress": ADDRESS,
        "eventSpecification": {
            "eventName": "TestEvent",
            "indexedParameterDefinitions": indexed,
            "nonIndexedParameterDefinitions": non_indexed,
        }
    })
}

fn rejected(value: serde_json::Value) -> String {
    let err = FilterDefinition::from_json(&value).expect_err("must be rejected");
    assert_eq!(err.sqlstate().code(), "22023", "{err}");
    err.to_string()
}

#[test]
fn every_eventeum_type_parses_case_insensitively() {
    for bits in (8..=256).step_by(8) {
        assert_eq!(
            ParamType::parse(&format!("UINT{bits}")).unwrap().sol_name(),
            format!("uint{bits}")
        );
        assert_eq!(
            ParamType::parse(&format!("int{bits}[]"))
                .unwrap()
                .sol_name(),
            format!("int{bits}[]")
        );
    }
    for n in 1..=32 {
        assert_eq!(
            ParamType::parse(&format!("Bytes{n}"))
                .unwrap()
                .eventeum_name(),
            format!("BYTES{n}")
        );
    }
    for t in [
        "ADDRESS",
        "string",
        "Bool",
        "ADDRESS[]",
        "STRING[]",
        "BOOL[]",
        "BYTES32[]",
    ] {
        ParamType::parse(t).unwrap();
    }
}

#[test]
fn unknown_types_are_rejected() {
    for t in [
        "UINT7",
        "UINT0",
        "UINT264",
        "INT12",
        "BYTES33",
        "BYTES0",
        "FOO",
        "BYTE1",
        "UINT256[0]",
        "UINT256[1025]",
        "UINT256[01]",
        "UINT256[",
        "UINT256[]x",
        "TUPLE",
        "uint256[][][][][][][][][]",
        "uint08",
        "",
    ] {
        let err = ParamType::parse(t).expect_err(t);
        assert_eq!(err.sqlstate().code(), "22023");
    }
}

#[test]
fn abi_types_beyond_eventeums_parse() {
    for (t, sol) in [
        ("UINT256[][]", "uint256[][]"),
        ("uint256[2]", "uint256[2]"),
        ("address[3][]", "address[3][]"),
    ] {
        assert_eq!(ParamType::parse(t).unwrap().sol_name(), sol);
    }
    let tuple = FilterDefinition::from_signature(
        ADDRESS,
        "E((uint256,address[])[] x)",
        "default",
        None,
        None,
    )
    .unwrap();
    assert_eq!(
        tuple.specification.canonical_signature(),
        "E((uint256,address[])[])"
    );
    let ty = &tuple.specification.non_indexed[0].ty;
    assert_eq!(ty.components()[1].ty.sol_name(), "address[]");
}

#[test]
fn the_rest_body_round_trips_through_list_format() {
    let input = json!({
        "id": "event-identifier",
        "contractAddress": ADDRESS.to_lowercase(),
        "eventSpecification": {
            "eventName": "TestEvent",
            "indexedParameterDefinitions": [{"position": 0, "type": "UINT256"}, {"position": 1, "type": "address"}],
            "nonIndexedParameterDefinitions": [{"position": 2, "type": "BYTES32"}, {"position": 3, "type": "STRING"}]
        },
        "correlationIdStrategy": {"type": "NON_INDEXED_PARAMETER", "parameterIndex": 0}
    });
    let filter = FilterDefinition::from_json(&input).unwrap();
    assert_eq!(filter.node, "default");
    assert_eq!(
        filter.specification.canonical_signature(),
        "TestEvent(uint256,address,bytes32,string)"
    );
    let listed = filter.to_json("event-identifier");
    assert_eq!(listed["contractAddress"], ADDRESS, "checksummed");
    assert_eq!(
        listed["eventSpecification"]["indexedParameterDefinitions"][1]["type"],
        "ADDRESS"
    );
    assert_eq!(
        listed["correlationIdStrategy"],
        json!({"type": "NON_INDEXED_PARAMETER", "parameterIndex": 0})
    );
    assert_eq!(
        FilterDefinition::from_json(&listed).unwrap(),
        FilterDefinition {
            id: Some("event-identifier".into()),
            ..filter
        }
    );
}

#[test]
fn signature_and_body_give_the_same_topic0() {
    let from_sig = FilterDefinition::from_signature(
        ADDRESS,
        "Transfer(address indexed from, address indexed to, uint256 value)",
        "default",
        None,
        None,
    )
    .unwrap();
    assert_eq!(
        from_sig.specification.topic0().to_string(),
        "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
    );
    let from_body = FilterDefinition::from_json(&json!({
        "contractAddress": ADDRESS,
        "eventSpecification": {
            "eventName": "Transfer",
            "indexedParameterDefinitions": [{"position": 0, "type": "ADDRESS"}, {"position": 1, "type": "ADDRESS"}],
            "nonIndexedParameterDefinitions": [{"position": 2, "type": "UINT256"}]
        }
    }))
    .unwrap();
    assert_eq!(
        from_sig.specification.topic0(),
        from_body.specification.topic0()
    );
    // The signature names its parameters; the body may, and then the two are equal.
    let names: Vec<_> = from_sig
        .specification
        .indexed
        .iter()
        .chain(&from_sig.specification.non_indexed)
        .map(|p| p.name.as_deref())
        .collect();
    assert_eq!(names, [Some("from"), Some("to"), Some("value")]);
    let named_body = FilterDefinition::from_json(&json!({
        "contractAddress": ADDRESS,
        "eventSpecification": {
            "eventName": "Transfer",
            "indexedParameterDefinitions": [{"position": 0, "type": "ADDRESS", "name": "from"}, {"position": 1, "type": "ADDRESS", "name": "to"}],
            "nonIndexedParameterDefinitions": [{"position": 2, "type": "UINT256", "name": "value"}]
        }
    }))
    .unwrap();
    assert_eq!(from_sig.specification, named_body.specification);
}

#[test]
fn bad_bodies_are_rejected_with_22023() {
    assert!(rejected(json!({"eventSpecification": {"eventName": "X"}}))
        .contains("contractAddress is required"));
    assert!(
        rejected(json!({"contractAddress": ADDRESS, "eventSpecification": {}}))
            .contains("eventName")
    );
    assert!(rejected(json!({"contractAddress": ADDRESS})).contains("eventSpecification"));
    assert!(rejected(
        json!({"contractAddress": "0x1234", "eventSpecification": {"eventName": "X"}})
    )
    .contains("not an address"));
    let bad_checksum = "0x5fbDB2315678afecb367f032d93F642f64180aa3";
    assert!(rejected(
        json!({"contractAddress": bad_checksum, "eventSpecification": {"eventName": "X"}})
    )
    .contains("checksum"));
    assert!(rejected(body(json!([{"position": 0, "type": "UINT7"}]), json!([]))).contains("UINT7"));
    assert!(rejected(body(
        json!([{"position": 0, "type": "UINT8"}]),
        json!([{"position": 0, "type": "BOOL"}])
    ))
    .contains("more than once"));
    assert!(
        rejected(body(json!([]), json!([{"position": 1, "type": "BOOL"}])))
            .contains("without gaps")
    );
    let four: Vec<_> = (0..4)
        .map(|i| json!({"position": i, "type": "UINT8"}))
        .collect();
    assert!(rejected(body(json!(four), json!([]))).contains("at most 3"));
    assert!(rejected(json!({"contractAddress": ADDRESS, "eventSpecification": {"eventName": "X"}, "startBlock": -1})).contains("startBlock"));
    assert!(rejected(
        json!({"contractAddress": ADDRESS, "eventSpecification": {"eventName": "X"}, "colour": 1})
    )
    .contains("unknown field"));
    assert!(rejected(json!({"contractAddress": ADDRESS, "eventSpecification": {"eventName": "X"}, "correlationIdStrategy": {"type": "INDEXED_PARAMETER", "parameterIndex": 0}})).contains("out of range"));
    assert!(rejected(
        json!({"contractAddress": ADDRESS, "eventSpecification": {"eventName": "not valid"}})
    )
    .contains("event name"));
}

#[test]
fn bad_signatures_are_rejected_with_22023() {
    for sig in [
        "Transfer(",
        "Transfer(address indexed, uint7 x)",
        "(uint256)",
        "Transfer(function x)",
        "E(uint8 indexed a, uint8 indexed b, uint8 indexed c, uint8 indexed d)",
    ] {
        let err =
            FilterDefinition::from_signature(ADDRESS, sig, "default", None, None).expect_err(sig);
        assert_eq!(err.sqlstate().code(), "22023", "{sig}: {err}");
    }
    let err =
        FilterDefinition::from_signature(ADDRESS, "Ping(uint256 x)", "default", Some(-5), None)
            .unwrap_err();
    assert!(err.to_string().contains("negative"));
}

#[test]
fn a_start_block_backfill_is_notified_per_event_only_when_asked() {
    let plain = FilterDefinition::from_json(&body(json!([]), json!([]))).unwrap();
    assert!(
        plain.notifies_each_backfilled_event(),
        "a catch-up from registration is live"
    );
    let mut history = body(json!([]), json!([]));
    history["startBlock"] = json!(0);
    let history = FilterDefinition::from_json(&history).unwrap();
    assert!(!history.notifies_each_backfilled_event());
    assert!(history.to_json("h").get("notifyBackfill").is_none());
    let mut asked = body(json!([]), json!([]));
    asked["startBlock"] = json!(0);
    asked["notifyBackfill"] = json!(true);
    let asked = FilterDefinition::from_json(&asked).unwrap();
    assert!(asked.notifies_each_backfilled_event());
    let listed = asked.to_json("a");
    assert_eq!(listed["notifyBackfill"], json!(true));
    let mut expected = asked.clone();
    expected.id = Some("a".into());
    assert_eq!(FilterDefinition::from_json(&listed).unwrap(), expected);
}
