//! Transaction monitors and the TRANSACTION and BLOCK messages, without a database.

use alloy::primitives::{address, b256};
use eventeum_core::message::{BlockRecord, TransactionRecord};
use eventeum_core::monitor::{MonitorTarget, TransactionMonitor};
use eventeum_core::states::TransactionStatus;
use serde_json::{json, Value};

#[test]
fn eventeum_body_with_defaults() {
    let m = TransactionMonitor::from_json(&json!({
        "type": "to_address",
        "transactionIdentifierValue": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
    }))
    .unwrap();
    assert_eq!(m.node, "default");
    assert_eq!(
        m.target,
        MonitorTarget::ToAddress(address!("70997970C51812dc3A010C7d01b50e0d17dc79C8"))
    );
    // Eventeum's code defaults to all three (its README says otherwise).
    assert!(m.wants(TransactionStatus::Unconfirmed));
    assert!(m.wants(TransactionStatus::Failed) && m.wants(TransactionStatus::Confirmed));
    assert!(!m.wants(TransactionStatus::Invalidated));
    assert_eq!(
        m.to_json("m1"),
        json!({"id": "m1", "type": "TO_ADDRESS",
               "transactionIdentifierValue": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
               "nodeName": "default", "statuses": ["UNCONFIRMED", "CONFIRMED", "FAILED"]})
    );
}

/// Eventeum's id: keccak-256 of value (as given) + type + node + the status
/// list as Java prints it, hex without 0x. Computed here independently.
#[test]
fn monitor_ids_are_eventeums() {
    let value = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
    let m = TransactionMonitor::from_json(
        &json!({"type": "TO_ADDRESS", "transactionIdentifierValue": value}),
    )
    .unwrap();
    let text = format!("{value}TO_ADDRESSdefault[UNCONFIRMED, CONFIRMED, FAILED]");
    let expected = alloy::primitives::hex::encode(alloy::primitives::keccak256(text.as_bytes()));
    assert_eq!(m.eventeum_id, expected);
    assert_eq!(m.eventeum_id.len(), 64);
    let listed = TransactionMonitor::from_json(&json!({
        "type": "TO_ADDRESS", "transactionIdentifierValue": value, "nodeName": "n2",
        "statuses": ["FAILED", "CONFIRMED"]}))
    .unwrap();
    let text = format!("{value}TO_ADDRESSn2[FAILED, CONFIRMED]");
    assert_eq!(
        listed.eventeum_id,
        alloy::primitives::hex::encode(alloy::primitives::keccak256(text.as_bytes())),
        "the statuses in the order given"
    );
}

#[test]
fn a_failed_only_monitor_does_not_track_successes() {
    let m = TransactionMonitor::from_json(&json!({
        "type": "HASH", "transactionIdentifierValue": format!("0x{}", "ab".repeat(32)), "statuses": ["failed"]
    }))
    .unwrap();
    assert!(!m.tracks_successes());
    let hash = b256!("abababababababababababababababababababababababababababababababab");
    assert!(m.target.matches(
        &hash,
        &address!("0000000000000000000000000000000000000001"),
        None
    ));
}

#[test]
fn bad_monitors_are_rejected_with_22023() {
    for bad in [
        json!({"type": "HASH", "transactionIdentifierValue": "0x12"}),
        json!({"type": "FROM_ADDRESS", "transactionIdentifierValue": "0xzz"}),
        json!({"type": "NOPE", "transactionIdentifierValue": "0x12"}),
        json!({"transactionIdentifierValue": "0x12"}),
        json!({"type": "HASH"}),
        json!({"type": "HASH", "transactionIdentifierValue": format!("0x{}", "ab".repeat(32)), "statuses": ["SOON"]}),
        json!({"type": "HASH", "transactionIdentifierValue": format!("0x{}", "ab".repeat(32)), "statuses": []}),
        json!({"type": "HASH", "transactionIdentifierValue": format!("0x{}", "ab".repeat(32)), "extra": true}),
    ] {
        let err = TransactionMonitor::from_json(&bad).expect_err(&bad.to_string());
        assert_eq!(err.sqlstate().code(), "22023", "{bad}: {err}");
    }
}

#[test]
fn transaction_message_has_hex_quantities() {
    let record: TransactionRecord = serde_json::from_value(json!({
        "monitor_id": "m", "node": "default", "hash": "0xaa", "from_address": "0xF", "to_address": null,
        "contract_address": "0xC", "value": 18446744073709551616u128, "nonce": 15, "block_number": 481,
        "block_hash": "0xbb", "transaction_index": 0, "status": "CONFIRMED", "revert_reason": null
    }))
    .unwrap();
    let message: Value = serde_json::from_str(&record.message()).unwrap();
    assert_eq!(message["type"], "TRANSACTION");
    assert_eq!(message["id"], "0xaa");
    let d = &message["details"];
    assert_eq!(
        (d["nonce"].as_str(), d["blockNumber"].as_str()),
        (Some("0xf"), Some("0x1e1"))
    );
    assert_eq!(d["value"], "0x10000000000000000", "2^64 stays exact");
    assert_eq!(d["contractAddress"], "0xC");
    assert!(d.get("revertReason").is_none());
    assert!(
        d.get("to").is_none(),
        "a contract creation has no to; Eventeum leaves out nulls"
    );
    assert!(
        d.get("timestamp").is_none() && d.get("input").is_none(),
        "rows from before 0.5.0"
    );
}

#[test]
fn transaction_message_has_timestamp_and_input_and_a_reference_when_too_large() {
    let row = |input: String| -> TransactionRecord {
        serde_json::from_value(json!({
            "monitor_id": "m", "node": "default", "hash": "0xaa", "from_address": "0xF", "to_address": "0xT",
            "contract_address": null, "value": 0, "nonce": 1, "block_number": 2, "block_hash": "0xbb",
            "transaction_index": 0, "status": "UNCONFIRMED", "revert_reason": null,
            "input": input, "block_timestamp": 1700000000u64}))
        .unwrap()
    };
    let small = row("0xa9059cbb".into());
    let message: Value = serde_json::from_str(&small.message()).unwrap();
    assert_eq!(message["details"]["timestamp"], 1700000000u64);
    assert_eq!(message["details"]["input"], "0xa9059cbb");
    assert_eq!(message["details"]["to"], "0xT");
    let out = small.outgoing();
    assert_eq!(out.notice(), out.payload);
    let creation = row(format!("0x{}", "60".repeat(20_000)));
    let out = creation.outgoing();
    let notice: Value = serde_json::from_str(out.notice()).unwrap();
    assert_eq!(notice["truncated"], true);
    assert_eq!(notice["monitorId"], "m");
    assert!(out.payload.len() > 40_000, "brokers get the whole message");
}

#[test]
fn block_message_matches_eventeum() {
    let record: BlockRecord = serde_json::from_value(
        json!({"node": "default", "hash": "0x79", "number": 257, "timestamp": 12345678}),
    )
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&record.message()).unwrap(),
        json!({"id": "0x79", "type": "BLOCK", "details": {"number": 257, "hash": "0x79", "timestamp": 12345678,
               "nodeName": "default"}, "retries": 0})
    );
}
