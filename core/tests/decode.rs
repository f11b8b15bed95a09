//! Decoding logs and rendering Eventeum's message JSON, without a database.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy::dyn_abi::DynSolValue;
use alloy::primitives::{keccak256, B256, I256, U256};
use eventeum_core::config::FilterConfig;
use eventeum_core::decode::{decode_log, DecodeError, RawLog, RenderOptions};
use eventeum_core::follow::{decode_logs, split_into_pieces};
use eventeum_core::message::{ContractEventRecord, NOTIFY_PAYLOAD_LIMIT};
use eventeum_core::rows::{prepare_events, Audience, BinaryCopy};
use eventeum_core::spec::FilterDefinition;
use serde_json::{json, Value};

mod common;

use common::*;

fn decode(
    f: &FilterDefinition,
    topics: &[B256],
    data: &[u8],
) -> eventeum_core::decode::DecodedParameters {
    decode_log(f, RawLog { topics, data }, RenderOptions::default()).unwrap()
}

fn json_of<T: serde::Serialize>(value: &T) -> Value {
    serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
}

#[test]
fn transfer_decodes_with_checksummed_addresses_and_exact_numbers() {
    let f = filter("Transfer(address indexed from, address indexed to, uint256 value)");
    let topics = [
        f.specification.topic0(),
        topic(DynSolValue::Address(ALICE)),
        topic(DynSolValue::Address(CONTRACT)),
    ];
    let data = DynSolValue::Tuple(vec![DynSolValue::Uint(U256::MAX, 256)]).abi_encode_params();
    let decoded = decode(&f, &topics, &data);
    let text = serde_json::to_string(&decoded.non_indexed).unwrap();
    assert_eq!(
        text,
        format!(r#"[{{"type":"uint256","value":{}}}]"#, U256::MAX)
    );
    assert_eq!(
        json_of(&decoded.indexed),
        json!([
            {"type": "address", "value": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"},
            {"type": "address", "value": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}
        ])
    );
}

#[test]
fn negative_ints_bools_bytes_strings_and_arrays_render_as_eventeum_does() {
    let f = filter("E(int8 indexed a, bool indexed b, bytes4 c, string d, int256[] e, bool[] g)");
    let topics = [
        f.specification.topic0(),
        topic(DynSolValue::Int(I256::try_from(-128).unwrap(), 8)),
        topic(DynSolValue::Bool(true)),
    ];
    let data = DynSolValue::Tuple(vec![
        DynSolValue::FixedBytes(B256::ZERO, 4),
        DynSolValue::String(" hi\0there ".into()),
        DynSolValue::Array(vec![
            DynSolValue::Int(I256::MIN, 256),
            DynSolValue::Int(I256::ONE, 256),
        ]),
        DynSolValue::Array(vec![DynSolValue::Bool(false)]),
    ])
    .abi_encode_params();
    let decoded = decode(&f, &topics, &data);
    assert_eq!(
        json_of(&decoded.indexed),
        json!([{"type": "int8", "value": -128}, {"type": "bool", "value": 1}])
    );
    let rendered = serde_json::to_string(&decoded.non_indexed).unwrap();
    assert!(
        rendered.contains(&format!(r#"{{"type":"int256","value":{}}}"#, I256::MIN)),
        "{rendered}"
    );
    let non_indexed = json_of(&decoded.non_indexed);
    assert_eq!(
        non_indexed[0],
        json!({"type": "bytes4", "value": "0x00000000"})
    );
    assert_eq!(
        non_indexed[1],
        json!({"type": "string", "value": "hithere"})
    );
    assert_eq!(
        non_indexed[3],
        json!({"type": "bool[]", "value": [{"type": "bool", "value": 0}]})
    );
}

#[test]
fn bytes_to_ascii_renders_text() {
    let f = filter("Named(bytes32 name)");
    let mut word = [0u8; 32];
    word[..5].copy_from_slice(b"hello");
    let data =
        DynSolValue::Tuple(vec![DynSolValue::FixedBytes(B256::from(word), 32)]).abi_encode_params();
    let topics = [f.specification.topic0()];
    let ascii = decode_log(
        &f,
        RawLog {
            topics: &topics,
            data: &data,
        },
        RenderOptions {
            bytes_to_ascii: true,
        },
    )
    .unwrap();
    assert_eq!(
        json_of(&ascii.non_indexed),
        json!([{"type": "bytes32", "value": "hello"}])
    );
    let hex = decode(&f, &topics, &data);
    assert_eq!(
        json_of(&hex.non_indexed)[0]["value"],
        format!("0x68656c6c6f{}", "00".repeat(27))
    );
}

#[test]
fn indexed_dynamic_types_carry_the_topic_hash() {
    let f = filter("Keyed(string indexed key, uint256[] indexed list)");
    let key = keccak256("key");
    let list = keccak256([1u8; 32]);
    let topics = [f.specification.topic0(), key, list];
    let decoded = decode_log(
        &f,
        RawLog {
            topics: &topics,
            data: &[],
        },
        RenderOptions::default(),
    )
    .unwrap();
    // Typed as what the topic holds, a bytes32, as Eventeum types it.
    assert_eq!(
        json_of(&decoded.indexed),
        json!([{"type": "bytes32", "value": key.to_string()}, {"type": "bytes32", "value": list.to_string()}])
    );
}

/// web3j's aliases in Eventeum's filters: BYTE is bytes1, UINT and INT are
/// 256 bits, BYTES is dynamic; list_filters gives the spelling back.
#[test]
fn eventeum_type_aliases() {
    use eventeum_core::event::ParamType;
    for (given, sol) in [
        ("BYTE", "bytes1"),
        ("byte[]", "bytes1[]"),
        ("UINT", "uint256"),
        ("INT[]", "int256[]"),
        ("BYTES", "bytes"),
    ] {
        let ty = ParamType::parse(given).unwrap();
        assert_eq!(ty.sol_name(), sol);
        assert_eq!(ty.eventeum_name(), given.to_ascii_uppercase());
    }
    assert!(ParamType::parse("BYTES33").is_err() && ParamType::parse("BYTE2").is_err());
}

/// Java's String.trim(): everything up to U+0020 at both ends (NUL and
/// control characters too), and no other whitespace.
#[test]
fn strings_are_trimmed_as_java_trims_them() {
    let f = filter("E(string s)");
    for (raw, shown) in [
        ("\0\t hello \x01\0", "hello"),
        ("\u{a0}nbsp\u{2003}", "\u{a0}nbsp\u{2003}"),
        ("in\0side", "inside"),
    ] {
        let data = DynSolValue::Tuple(vec![DynSolValue::String(raw.into())]).abi_encode_params();
        let decoded = decode(&f, &[f.specification.topic0()], &data);
        assert_eq!(
            json_of(&decoded.non_indexed),
            json!([{"type": "string", "value": shown}]),
            "{raw:?}"
        );
    }
}

#[test]
fn correlation_id_comes_from_the_chosen_parameter() {
    let f = FilterDefinition::from_json(&json!({
        "contractAddress": CONTRACT.to_string(),
        "eventSpecification": {
            "eventName": "Ping",
            "indexedParameterDefinitions": [{"position": 0, "type": "UINT256"}],
            "nonIndexedParameterDefinitions": [{"position": 1, "type": "ADDRESS"}]
        },
        "correlationIdStrategy": {"type": "NON_INDEXED_PARAMETER", "parameterIndex": 0}
    }))
    .unwrap();
    let topics = [
        f.specification.topic0(),
        topic(DynSolValue::Uint(U256::from(7), 256)),
    ];
    let data = DynSolValue::Tuple(vec![DynSolValue::Address(ALICE)]).abi_encode_params();
    let decoded = decode(&f, &topics, &data);
    assert_eq!(
        decoded.correlation_id.as_deref(),
        Some("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
    );
}

#[test]
fn mismatched_logs_are_errors_not_panics() {
    let f = filter("Transfer(address indexed from, address to, uint256 value)");
    let topics = [
        f.specification.topic0(),
        topic(DynSolValue::Address(ALICE)),
        topic(DynSolValue::Address(ALICE)),
    ];
    let err = decode_log(
        &f,
        RawLog {
            topics: &topics,
            data: &[],
        },
        RenderOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        DecodeError::TopicCount {
            expected: 2,
            actual: 3
        }
    );
    let short = [f.specification.topic0(), topics[1]];
    let err = decode_log(
        &f,
        RawLog {
            topics: &short,
            data: &[1, 2, 3],
        },
        RenderOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, DecodeError::Data { .. }), "{err}");
}

#[test]
fn one_merged_log_list_is_split_per_filter_and_failures_are_kept() {
    let transfer = filter_config(
        "t",
        "Transfer(address indexed from, address indexed to, uint256 value)",
    );
    let twin = Arc::new(FilterConfig {
        id: "t2".into(),
        ..(*transfer).clone()
    });
    let wrong = filter_config(
        "w",
        "Transfer(address indexed from, address to, uint256 value)",
    );
    let topics = vec![
        transfer.topic0,
        topic(DynSolValue::Address(ALICE)),
        topic(DynSolValue::Address(ALICE)),
    ];
    let data = DynSolValue::Tuple(vec![DynSolValue::Uint(U256::from(5), 256)]).abi_encode_params();
    let logs = vec![rpc_log(topics, data, 3, 0)];
    let timestamps = BTreeMap::from([(3, 1_700_000_000)]);
    let (events, failures) = decode_logs(
        &[transfer, twin, wrong],
        &logs,
        &timestamps,
        RenderOptions::default(),
    );
    assert_eq!(
        events
            .iter()
            .map(|e| e.filter.id.as_str())
            .collect::<Vec<_>>(),
        ["t", "t2"]
    );
    assert_eq!(events[0].position.block_timestamp, Some(1_700_000_000));
    assert_eq!(
        events[0].position.address,
        "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    );
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].filter_id, "w");
    assert_eq!(
        failures[0].reason,
        "log has 3 topics but the specification expects 2"
    );
}

#[test]
fn a_backfill_range_splits_into_block_aligned_pieces() {
    let transfer = transfer_filter();
    let good = |block, index| transfer_log(&transfer, block, index);
    // Blocks 10..=19: three logs in 11, two in 12, one undecodable in 12, two in 15.
    let mut logs = vec![
        good(11, 0),
        good(11, 1),
        good(11, 2),
        good(12, 0),
        good(12, 1),
    ];
    logs.push(rpc_log(vec![transfer.topic0], vec![], 12, 2));
    logs.extend([good(15, 0), good(15, 1)]);
    let (events, failures) = decode_logs(
        std::slice::from_ref(&transfer),
        &logs,
        &BTreeMap::new(),
        RenderOptions::default(),
    );
    assert_eq!((events.len(), failures.len()), (7, 1));

    let pieces = split_into_pieces(10, 19, events.clone(), failures.clone(), 3);
    let shape: Vec<_> = pieces
        .iter()
        .map(|p| (p.from, p.to, p.events.len(), p.failures.len()))
        .collect();
    // A block is never cut: block 12's three logs stay together.
    assert_eq!(shape, [(10, 11, 3, 0), (12, 12, 2, 1), (13, 19, 2, 0)]);
    let order: Vec<_> = pieces
        .iter()
        .flat_map(|p| &p.events)
        .map(|e| (e.position.block_number, e.position.log_index))
        .collect();
    assert_eq!(
        order,
        [
            (11, 0),
            (11, 1),
            (11, 2),
            (12, 0),
            (12, 1),
            (15, 0),
            (15, 1)
        ]
    );

    // One piece when the range is small; an empty range is still one piece.
    let whole = split_into_pieces(10, 19, events, failures, 100);
    assert_eq!((whole.len(), whole[0].from, whole[0].to), (1, 10, 19));
    let empty = split_into_pieces(20, 29, vec![], vec![], 100);
    assert_eq!((empty.len(), empty[0].from, empty[0].to), (1, 20, 29));
}

fn record(non_indexed: &str) -> ContractEventRecord {
    serde_json::from_value(json!({
        "id": "0xtx-0xblock-0", "filter_id": "f", "node": "default", "name": "Big",
        "address": CONTRACT.to_string(), "block_number": 7, "block_hash": "0xblock",
        "transaction_hash": "0xtx", "log_index": 0,
        "indexed_parameters": [], "non_indexed_parameters": serde_json::from_str::<Value>(non_indexed).unwrap(),
        "event_specification_signature": "0xsig", "status": "UNCONFIRMED", "block_timestamp": 12345678,
        "correlation_id": null, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
    }))
    .unwrap()
}

#[test]
fn message_has_eventeums_envelope() {
    let message: Value =
        serde_json::from_str(&record(r#"[{"type":"string","value":"x"}]"#).message()).unwrap();
    assert_eq!(message["type"], "CONTRACT_EVENT");
    assert_eq!(message["retries"], 0);
    assert_eq!(message["id"], "0xtx-0xblock-0");
    let details = &message["details"];
    for (key, value) in [
        ("name", json!("Big")),
        ("filterId", json!("f")),
        ("nodeName", json!("default")),
        ("networkName", json!("default")),
        ("blockNumber", json!(7)),
        ("logIndex", json!(0)),
        ("timestamp", json!(12345678)),
        ("status", json!("UNCONFIRMED")),
        ("eventSpecificationSignature", json!("0xsig")),
        ("id", json!("0xtx-0xblock-0")),
    ] {
        assert_eq!(details[key], value, "{key}");
    }
}

#[test]
fn oversized_messages_become_a_reference() {
    let big = format!(
        r#"[{{"type":"string","value":"{}"}}]"#,
        "x".repeat(NOTIFY_PAYLOAD_LIMIT)
    );
    let payload = record(&big).notify_payload();
    assert!(payload.len() < 8000);
    let reference: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(reference["truncated"], true);
    assert_eq!(reference["id"], "0xtx-0xblock-0");
    assert_eq!(reference["filterId"], "f");
    let small = record(r#"[]"#);
    assert_eq!(small.notify_payload(), small.message());
}

#[test]
fn prepared_rows_carry_their_status_message_and_escaped_copy_text() {
    let transfer = transfer_filter();
    let log = |block, index| transfer_log(&transfer, block, index);
    // Handed over out of order; block 20 is the tip and 2 blocks make CONFIRMED.
    let logs = vec![log(19, 1), log(18, 0), log(19, 0)];
    let (events, _) = decode_logs(
        std::slice::from_ref(&transfer),
        &logs,
        &BTreeMap::new(),
        RenderOptions::default(),
    );
    let quiet = prepare_events("node\t1", events.clone(), 20, 2, Audience::Outbox);
    assert_eq!(
        quiet.messages.len(),
        3,
        "a quiet backfill piece still has its messages for the outbox"
    );
    assert!(!quiet.messages.has_notices() && quiet.messages.notices().next().is_none());
    let unread = prepare_events("node\t1", events.clone(), 20, 2, Audience::Nobody);
    assert!(
        unread.messages.is_empty(),
        "with no outbox reader, no message is built"
    );
    assert_eq!(unread.records.len(), 3, "the rows are all there");
    assert_eq!(
        unread.copies[0].data, quiet.copies[0].data,
        "and so is their COPY data"
    );
    let prepared = prepare_events("node\t1", events, 20, 2, Audience::Listeners);

    let rows: Vec<_> = prepared
        .records
        .iter()
        .map(|r| (r.block_number, r.log_index, r.status.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            (18, 0, "CONFIRMED"),
            (19, 0, "UNCONFIRMED"),
            (19, 1, "UNCONFIRMED")
        ]
    );
    let record = &prepared.records[0];
    let outgoing = &prepared.messages.messages[0];
    assert_eq!(prepared.messages.len(), 3);
    assert_eq!(outgoing.message_id, format!("{}:CONFIRMED", record.id));
    assert_eq!(outgoing.payload, record.message());
    assert_eq!(outgoing.notice(), outgoing.payload);
    let notices: Vec<String> = prepared
        .messages
        .notices()
        .map(|n| n.to_str().unwrap().to_string())
        .collect();
    let payloads: Vec<String> = prepared
        .messages
        .messages
        .iter()
        .map(|m| m.payload.clone())
        .collect();
    assert_eq!(notices, payloads);

    // One row per record, in its kind table's COPY columns, each field in
    // its type's binary form; the missing correlation id is NULL.
    assert_eq!(prepared.copies.len(), 1, "one kind table");
    let copy = &prepared.copies[0];
    assert_eq!(copy.rows, [(0, 11), (1, 11), (2, 11)]);
    let columns = copy.table.copy_columns();
    let copied = read_binary_copy(&copy.data);
    assert_eq!(copied.len(), 3);
    let fields = &copied[0];
    assert_eq!(fields.len(), columns.len());
    let field = |name: &str| fields[columns.iter().position(|c| c == name).unwrap()].clone();
    let bytes = |name: &str| field(name).unwrap();
    assert_eq!(bytes("node_key"), 3i32.to_be_bytes());
    assert_eq!(bytes("filter_key"), 11i32.to_be_bytes());
    assert_eq!(bytes("status"), b"CONFIRMED");
    assert_eq!(bytes("block_number"), 18i64.to_be_bytes());
    assert_eq!(bytes("log_index"), 0i32.to_be_bytes());
    assert_eq!(field("correlation_id"), None);
    assert_eq!(bytes("address"), CONTRACT.as_slice());
    assert_eq!(bytes("p1"), ALICE.as_slice(), "an address is its 20 bytes");
    assert_eq!(bytes("block_hash"), [18u8; 32]);
    // numeric 5: one base-10,000 digit, weight 0, positive, scale 0.
    assert_eq!(bytes("p3"), [0, 1, 0, 0, 0, 0, 0, 0, 0, 5]);
}

#[test]
fn events_whose_values_have_no_column_keep_their_json_lists() {
    let filter = filter_config("j", "Listed(uint256[] amounts)");
    let data = DynSolValue::Tuple(vec![DynSolValue::Array(vec![DynSolValue::Uint(
        U256::from(9),
        256,
    )])])
    .abi_encode_params();
    let logs = vec![rpc_log(vec![filter.topic0], data, 4, 0)];
    let (events, _) = decode_logs(
        std::slice::from_ref(&filter),
        &logs,
        &BTreeMap::new(),
        RenderOptions::default(),
    );
    let prepared = prepare_events("n", events, 4, 2, Audience::Listeners);
    let copy = &prepared.copies[0];
    assert_eq!(*copy.table, eventeum_core::kind::KindTable::Json);
    let columns = copy.table.copy_columns();
    let row = &read_binary_copy(&copy.data)[0];
    let jsonb = row[columns
        .iter()
        .position(|c| c == "non_indexed_parameters")
        .unwrap()]
    .clone()
    .unwrap();
    assert_eq!(jsonb[0], 1, "jsonb's binary format starts with its version");
    assert_eq!(
        serde_json::from_slice::<Value>(&jsonb[1..]).unwrap(),
        serde_json::from_str::<Value>(prepared.records[0].non_indexed_parameters.get()).unwrap()
    );
}

#[test]
fn binary_copy_writes_each_type_as_postgres_reads_it() {
    let mut copy = BinaryCopy::with_capacity(0);
    copy.row(6)
        .text("line\nfeed\ttab\\")
        .jsonb(r#"{"s":"a"}"#)
        .bigint(-5)
        .integer(7)
        .optional_text(None)
        .optional_bigint(None);
    let rows = read_binary_copy(&copy.finish());
    assert_eq!(
        rows,
        [vec![
            Some(b"line\nfeed\ttab\\".to_vec()),
            Some(b"\x01{\"s\":\"a\"}".to_vec()),
            Some((-5i64).to_be_bytes().to_vec()),
            Some(7i32.to_be_bytes().to_vec()),
            None,
            None,
        ]]
    );
}
