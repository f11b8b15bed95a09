//! Broadcaster options: defaults, validation, and secrets kept out of listings.

use eventeum_core::broadcast::{normalize_options, BroadcasterKind};
use eventeum_core::redact::{redact_options, redact_url};
use serde_json::json;

#[test]
fn kafka_and_rabbit_options_take_eventeums_defaults() {
    let kafka = normalize_options(
        BroadcasterKind::Kafka,
        &json!({"bootstrapServers": "127.0.0.1:9092"}),
    )
    .unwrap();
    assert_eq!(kafka["contractEvents"], "contract-events");
    assert_eq!(kafka["blockEvents"], "block-events");
    assert_eq!(kafka["transactionEvents"], "transaction-events");
    let rabbit = normalize_options(
        BroadcasterKind::Rabbitmq,
        &json!({"url": "amqp://127.0.0.1", "exchange": "ex"}),
    )
    .unwrap();
    assert_eq!(rabbit["contractEvents"], "contractEvents");
    assert_eq!(rabbit["blockNotification"], true);
}

#[test]
fn bad_options_are_rejected_with_22023() {
    for (kind, options) in [
        (BroadcasterKind::Kafka, json!({})),
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "acks": "1"}),
        ),
        (
            BroadcasterKind::Rabbitmq,
            json!({"url": "http://h", "exchange": "x"}),
        ),
        (BroadcasterKind::Rabbitmq, json!({"url": "amqp://h"})),
        (BroadcasterKind::Http, json!({})),
        (
            BroadcasterKind::Http,
            json!({"contractEventsUrl": "ftp://h"}),
        ),
    ] {
        let err = normalize_options(kind, &options).expect_err(&options.to_string());
        assert_eq!(err.sqlstate(), "22023", "{options}: {err}");
    }
    assert_eq!(
        BroadcasterKind::parse("pigeon").unwrap_err().sqlstate(),
        "22023"
    );
    assert_eq!(
        BroadcasterKind::parse("RabbitMQ").unwrap(),
        BroadcasterKind::Rabbitmq
    );
}

#[test]
fn listings_hide_passwords_tokens_and_url_credentials() {
    let shown = redact_options(&json!({
        "url": "amqp://guest:s3cret@127.0.0.1:5672/%2f",
        "password": "hunter2",
        "headers": {"Authorization": "Bearer t0ken", "X-Plain": "visible"},
        "librdkafka": {"sasl.password": "p4ss", "linger.ms": "5"},
    }));
    let text = shown.to_string();
    for secret in ["s3cret", "hunter2", "t0ken", "p4ss", "guest"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert_eq!(shown["headers"]["X-Plain"], "visible");
    assert_eq!(shown["librdkafka"]["linger.ms"], "5");
    assert_eq!(redact_url("http://user:pw@host/x"), "http://***@host/x");
    assert_eq!(redact_url("http://host/x"), "http://host/x");
}
