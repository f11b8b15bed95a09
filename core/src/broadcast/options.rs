//! Every option a broadcaster takes, named and typed (any thread). Nothing is
//! passed through to a client library as it is: the worker runs inside the
//! database server, and a free-form client property (librdkafka's
//! `plugin.library.paths`, `ssl.*.location`, `sasl.kerberos.kinit.cmd`) would
//! load code, read files or run commands as the server's OS user. TLS
//! material comes as PEM text ([`TlsPem`]), never as a path.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Certificates and a key as PEM text. `keyPem` is a secret: lists and
/// errors show `***`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsPem {
    /// Certificate authorities to trust besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// A client certificate (chain), with `keyPem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_pem: Option<String>,
    /// The client certificate's unencrypted PKCS#8 key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<String>,
}

pub const TLS_KEYS: &[&str] = &["caPem", "certificatePem", "keyPem"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// SASL with a user name and password. GSSAPI (Kerberos) runs `kinit` and
/// reads keytabs, and OAUTHBEARER needs a token provider: neither is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaOptions {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    #[serde(default = "topic_contract_events")]
    pub contract_events: String,
    #[serde(default = "topic_block_events")]
    pub block_events: String,
    #[serde(default = "topic_transaction_events")]
    pub transaction_events: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_protocol: Option<SecurityProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<SaslMechanism>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsPem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// librdkafka's `linger.ms`: how long a message waits for others to share its request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linger_ms: Option<u32>,
    /// librdkafka's `batch.size` in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// librdkafka's `message.max.bytes`: the largest request it sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_max_bytes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default = "request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Partitions of a topic eventeum creates; the broker's `num.partitions` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Replicas of a topic eventeum creates; the broker's
    /// `default.replication.factor` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i16>,
    /// Whether missing topics are created; when false they must exist.
    #[serde(default = "yes")]
    pub create_topics: bool,
}

pub const KAFKA_KEYS: &[&str] = &[
    "bootstrapServers",
    "contractEvents",
    "blockEvents",
    "transactionEvents",
    "securityProtocol",
    "saslMechanism",
    "username",
    "password",
    "tls",
    "compression",
    "lingerMs",
    "batchSize",
    "messageMaxBytes",
    "clientId",
    "requestTimeoutMs",
    "partitions",
    "replicationFactor",
    "createTopics",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RabbitOptions {
    /// `amqp(s)://user:password@host:port/vhost`, with only the query
    /// parameters lapin reads (heartbeat, connection_timeout, channel_max,
    /// frame_max, auth_mechanism).
    pub url: String,
    pub exchange: String,
    #[serde(default = "key_contract_events")]
    pub contract_events: String,
    #[serde(default = "key_block_events")]
    pub block_events: String,
    #[serde(default = "key_transaction_events")]
    pub transaction_events: String,
    #[serde(default = "yes")]
    pub block_notification: bool,
    /// For `amqps` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsPem>,
}

pub const RABBIT_KEYS: &[&str] = &[
    "url",
    "exchange",
    "contractEvents",
    "blockEvents",
    "transactionEvents",
    "blockNotification",
    "tls",
];
/// The query parameters of an AMQP URL that lapin reads.
pub const AMQP_QUERY_KEYS: &[&str] = &[
    "heartbeat",
    "connection_timeout",
    "channel_max",
    "frame_max",
    "auth_mechanism",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_events_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_events_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_events_url: Option<String>,
    /// Extra request headers (an API key, say); values are text.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String, Value>,
    /// For `https` URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsPem>,
    /// POST the whole message (`{id, type, details, retries}`) instead of
    /// Eventeum's bare `ContractEventDetails`/`BlockDetails`/`TransactionDetails`.
    #[serde(default)]
    pub envelope: bool,
}

pub const HTTP_KEYS: &[&str] = &[
    "contractEventsUrl",
    "blockEventsUrl",
    "transactionEventsUrl",
    "headers",
    "tls",
    "envelope",
];

fn topic_contract_events() -> String {
    "contract-events".into()
}
fn topic_block_events() -> String {
    "block-events".into()
}
fn topic_transaction_events() -> String {
    "transaction-events".into()
}
fn key_contract_events() -> String {
    "contractEvents".into()
}
fn key_block_events() -> String {
    "blockEvents".into()
}
fn key_transaction_events() -> String {
    "transactionEvents".into()
}
fn request_timeout_ms() -> u64 {
    30_000
}
fn yes() -> bool {
    true
}
