//! Broadcaster options: defaults, validation, and secrets kept out of listings.

use eventeum_core::broadcast::BroadcasterKind;
use eventeum_core::error::{ApiError, ApiResult};
use eventeum_core::netpolicy::NetworkPolicy;
use eventeum_core::redact::{redact_options, redact_url};
use serde_json::{json, Value};

fn normalize_options(kind: BroadcasterKind, options: &Value) -> ApiResult<Value> {
    eventeum_core::broadcast::normalize_options(kind, options, &NetworkPolicy::default())
}

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
        (BroadcasterKind::Kafka, json!({"bootstrapServers": "h"})),
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "lingerMs": 1_000_000}),
        ),
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "partitions": 0}),
        ),
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "compression": "brotli"}),
        ),
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "contractEvents": "a/b"}),
        ),
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "saslMechanism": "PLAIN"}),
        ),
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "securityProtocol": "SASL_SSL"}),
        ),
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "saslMechanism": "GSSAPI", "securityProtocol": "SASL_SSL", "username": "u", "password": "p"}),
        ),
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "tls": {"caPem": "x"}}),
        ),
        (
            BroadcasterKind::Rabbitmq,
            json!({"url": "amqp://h", "exchange": "x", "tls": {}}),
        ),
        (
            BroadcasterKind::Http,
            json!({"contractEventsUrl": "http://h", "headers": {"Bad Name": "x"}}),
        ),
        (
            BroadcasterKind::Http,
            json!({"contractEventsUrl": "ftp://h"}),
        ),
    ] {
        let err = normalize_options(kind, &options).expect_err(&options.to_string());
        assert_eq!(err.sqlstate().code(), "22023", "{options}: {err}");
    }
    assert_eq!(
        BroadcasterKind::parse("pigeon")
            .unwrap_err()
            .sqlstate()
            .code(),
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

/// The option names a role could use to reach the server's files or code.
#[test]
fn only_named_options_pass_and_the_error_names_the_key() {
    let cases = [
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "librdkafka": {"plugin.library.paths": "/tmp/x.so"}}),
            "librdkafka",
        ),
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "plugin.library.paths": "/tmp/x.so"}),
            "plugin.library.paths",
        ),
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "ssl.ca.location": "/etc/ssl/ca.pem"}),
            "ssl.ca.location",
        ),
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "sasl.kerberos.kinit.cmd": "touch /tmp/x"}),
            "sasl.kerberos.kinit.cmd",
        ),
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "h:1", "securityProtocol": "SSL", "tls": {"caLocation": "/etc/ssl/ca.pem"}}),
            "tls.caLocation",
        ),
        (
            BroadcasterKind::Http,
            json!({"contractEventsUrl": "https://h", "tls": {"certificatePath": "/x"}}),
            "tls.certificatePath",
        ),
        (
            BroadcasterKind::Rabbitmq,
            json!({"url": "amqps://h", "exchange": "x", "cacertfile": "/x"}),
            "cacertfile",
        ),
        (
            BroadcasterKind::Rabbitmq,
            json!({"url": "amqps://h?cacertfile=/etc/ca.pem", "exchange": "x"}),
            "cacertfile",
        ),
    ];
    for (kind, options, key) in cases {
        let err = normalize_options(kind, &options).expect_err(&options.to_string());
        assert_eq!(err.sqlstate().code(), "22023", "{options}: {err}");
        assert!(
            err.to_string().contains(&format!("\"{key}\"")),
            "{err} names {key}"
        );
    }
    let err = normalize_options(
        BroadcasterKind::Kafka,
        &json!({"bootstrapServers": "h:1", "librdkafka": {}}),
    )
    .unwrap_err();
    assert!(
        err.hint().unwrap().contains("plugin.library.paths"),
        "the hint says why"
    );
}

#[test]
fn tls_material_is_pem_text_never_a_path() {
    for pem in [
        "/etc/ssl/certs/ca.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    ] {
        let options = json!({"contractEventsUrl": "https://h", "tls": {"caPem": pem}});
        let err = normalize_options(BroadcasterKind::Http, &options).unwrap_err();
        assert_eq!(err.sqlstate().code(), "22023", "{err}");
    }
    let half =
        json!({"contractEventsUrl": "https://h", "tls": {"keyPem": "-----BEGIN PRIVATE KEY-----"}});
    assert!(normalize_options(BroadcasterKind::Http, &half).is_err());
    let shown = redact_options(
        &json!({"tls": {"keyPem": "-----BEGIN PRIVATE KEY-----\nMIIE\n", "caPem": "c"}}),
    );
    assert_eq!(shown["tls"]["keyPem"], "***");
    assert_eq!(shown["tls"]["caPem"], "c");
}

#[test]
fn every_kind_takes_its_named_options() {
    let kafka = normalize_options(
        BroadcasterKind::Kafka,
        &json!({"bootstrapServers": "k1:9092, [::1]:9093", "securityProtocol": "SASL_PLAINTEXT",
                "saslMechanism": "SCRAM-SHA-512", "username": "u", "password": "p", "compression": "zstd",
                "lingerMs": 5, "batchSize": 65536, "messageMaxBytes": 2000000, "clientId": "indexer-1",
                "partitions": 6, "replicationFactor": 3, "createTopics": false}),
    )
    .unwrap();
    assert_eq!(kafka["replicationFactor"], 3);
    assert_eq!(kafka["createTopics"], false);
    let defaults =
        normalize_options(BroadcasterKind::Kafka, &json!({"bootstrapServers": "k:1"})).unwrap();
    assert!(
        defaults.get("partitions").is_none() && defaults.get("replicationFactor").is_none(),
        "the broker's defaults"
    );
    assert_eq!(defaults["createTopics"], true);
    normalize_options(
        BroadcasterKind::Rabbitmq,
        &json!({"url": "amqps://u:p@h:5671/%2f?heartbeat=10", "exchange": "x"}),
    )
    .unwrap();
}

#[test]
fn hosts_the_policy_refuses_are_42501() {
    let cases = [
        (
            BroadcasterKind::Kafka,
            json!({"bootstrapServers": "k:1,169.254.169.254:9092"}),
        ),
        (
            BroadcasterKind::Rabbitmq,
            json!({"url": "amqp://[fe80::1]:5672", "exchange": "x"}),
        ),
        (
            BroadcasterKind::Http,
            json!({"contractEventsUrl": "http://metadata.google.internal/computeMetadata/v1/"}),
        ),
        (
            BroadcasterKind::Http,
            json!({"blockEventsUrl": "http://169.254.169.254/latest/meta-data/"}),
        ),
    ];
    for (kind, options) in cases {
        let err = normalize_options(kind, &options).expect_err(&options.to_string());
        assert!(
            matches!(err, ApiError::Forbidden { .. }),
            "{options}: {err:?}"
        );
        assert_eq!(err.sqlstate().code(), "42501");
        assert!(err.to_string().contains("eventeum.allowed_hosts"), "{err}");
    }
    let strict = NetworkPolicy::parse("kafka.internal").unwrap();
    let options = json!({"bootstrapServers": "127.0.0.1:9092"});
    let err =
        eventeum_core::broadcast::normalize_options(BroadcasterKind::Kafka, &options, &strict)
            .unwrap_err();
    assert_eq!(err.sqlstate().code(), "42501");
    let options = json!({"bootstrapServers": "kafka.internal:9092"});
    eventeum_core::broadcast::normalize_options(BroadcasterKind::Kafka, &options, &strict).unwrap();
}
