//! Node options and URLs: what add_node accepts and rejects.

use eventeum_core::node::{
    split_urls, validate_name, validate_url, validate_urls, BlockStrategy, NodeOptions,
};
use serde_json::json;

#[test]
fn missing_options_take_eventeums_defaults() {
    let options = NodeOptions::from_json(&json!({})).unwrap();
    assert_eq!(options, NodeOptions::default());
    assert_eq!(options.num_blocks_to_wait, 12);
    assert_eq!(options.num_blocks_to_replay, 12);
    assert_eq!(options.polling_interval, 10_000);
    assert_eq!(options.block_strategy, BlockStrategy::Poll);
}

#[test]
fn every_documented_key_is_accepted() {
    let options = NodeOptions::from_json(&json!({
        "pollingInterval": 500, "numBlocksToWait": 0, "numBlocksToWaitBeforeInvalidating": 1,
        "numBlocksToWaitForMissingTx": 5, "numBlocksToReplay": 3, "maxBlocksToSync": 100,
        "blockStrategy": "PUBSUB", "healthcheckInterval": 1000, "connectionTimeout": 100,
        "readTimeout": 1000, "addTransactionRevertReason": true, "syncingThreshold": 10,
        "blockNotification": false, "maxRequestsPerSecond": 25, "maxResponseBytes": 1048576
    }))
    .unwrap();
    assert_eq!(options.block_strategy, BlockStrategy::Pubsub);
    assert_eq!(options.max_requests_per_second, 25);
    assert_eq!(options.max_response_bytes, 1 << 20);
    assert_eq!(options.num_blocks_to_wait, 0);
    assert!(options.add_transaction_revert_reason);
}

#[test]
fn unknown_keys_and_bad_values_are_rejected() {
    for bad in [
        json!({"pollInterval": 5}),
        json!({"numBlocksToWait": -1}),
        json!({"numBlocksToWait": 1.5}),
        json!({"pollingInterval": "fast"}),
        json!({"pollingInterval": 0}),
        json!({"blockStrategy": "PUSH"}),
        json!({"numBlocksToReplay": 10_000_000}),
        json!({"maxResponseBytes": 1000}),
        json!({"maxResponseBytes": 1u64 << 40}),
        json!({"maxRequestsPerSecond": -1}),
        json!([1]),
    ] {
        let err = NodeOptions::from_json(&bad).expect_err(&bad.to_string());
        assert_eq!(err.sqlstate().code(), "22023", "{bad}: {err}");
    }
}

#[test]
fn urls_must_be_http_or_ws_with_a_host() {
    for good in [
        "http://127.0.0.1:8545",
        "https://node.example",
        "ws://localhost:8546",
        "wss://x.y/ws",
    ] {
        validate_url(good, BlockStrategy::Poll).unwrap();
    }
    validate_url("ws://localhost:8546", BlockStrategy::Pubsub).unwrap();
    for bad in ["ftp://x", "not a url", "http://", "file:///tmp/x", ""] {
        assert_eq!(
            validate_url(bad, BlockStrategy::Poll)
                .unwrap_err()
                .sqlstate()
                .code(),
            "22023",
            "{bad}"
        );
    }
    assert!(
        validate_url("http://x", BlockStrategy::Pubsub).is_err(),
        "PUBSUB needs a websocket"
    );
    assert!(validate_name(" ").is_err());
    validate_name("mainnet").unwrap();
}

#[test]
fn a_node_may_have_fallback_urls_of_any_scheme_after_its_primary() {
    let stored = validate_urls(
        "wss://a.example/ws, https://b.example/v3/key ,http://127.0.0.1:8545",
        BlockStrategy::Pubsub,
    )
    .unwrap();
    assert_eq!(
        split_urls(&stored),
        [
            "wss://a.example/ws",
            "https://b.example/v3/key",
            "http://127.0.0.1:8545/"
        ]
    );
    // The primary must suit PUBSUB; fallbacks then poll.
    let err =
        validate_urls("https://a.example, wss://b.example", BlockStrategy::Pubsub).unwrap_err();
    assert_eq!(err.sqlstate().code(), "22023");
    for bad in ["", " , ", "http://a.example, ftp://b.example"] {
        let err = validate_urls(bad, BlockStrategy::Poll).expect_err(bad);
        assert_eq!(err.sqlstate().code(), "22023", "{bad}: {err}");
    }
    let nine = ["http://a.example"; 9].join(",");
    assert!(validate_urls(&nine, BlockStrategy::Poll).is_err());
}

/// Eventeum's username/password move into each URL's user info; the options
/// keep none of them.
#[test]
fn credentials_move_into_the_urls() {
    use eventeum_core::node::move_credentials_into_urls;
    let mut options = NodeOptions::from_json(&serde_json::json!({
        "username": "indexer", "password": "p@ss word", "maxIdleConnections": 3, "keepAliveDuration": 1000
    }))
    .unwrap();
    let stored =
        move_credentials_into_urls("https://a.example/rpc, https://b.example", &mut options)
            .unwrap();
    assert_eq!(
        stored,
        "https://indexer:p%40ss%20word@a.example/rpc, https://indexer:p%40ss%20word@b.example/"
    );
    assert_eq!((&options.username, &options.password), (&None, &None));
    let shown = serde_json::to_value(&options).unwrap();
    assert!(shown.get("username").is_none() && shown.get("password").is_none());
    let mut both = NodeOptions::from_json(&serde_json::json!({"username": "u"})).unwrap();
    assert!(move_credentials_into_urls("https://x:y@a.example", &mut both).is_err());
    let mut orphan = NodeOptions::from_json(&serde_json::json!({"password": "p"})).unwrap();
    assert!(move_credentials_into_urls("https://a.example", &mut orphan).is_err());
}

#[test]
fn eventeums_start_options_and_the_range_cap_have_their_own_names() {
    let options = NodeOptions::from_json(&json!({
        "maxBlocksToSync": 4, "initialStartBlock": 3, "maxBlockRange": 500, "confirmedIsFinal": true
    }))
    .unwrap();
    assert_eq!(options.max_blocks_to_sync, 4);
    assert_eq!(options.initial_start_block, Some(3));
    assert_eq!(options.max_block_range, 500);
    assert!(options.confirmed_is_final);
    let defaults = NodeOptions::default();
    assert_eq!(
        (defaults.max_blocks_to_sync, defaults.initial_start_block),
        (0, None)
    );
    assert!(!defaults.confirmed_is_final);
}
