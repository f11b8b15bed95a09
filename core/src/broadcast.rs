//! Broadcasters (validation for the SQL API; any thread): where outbox messages
//! go (Kafka, RabbitMQ, HTTP), and SQL consumer groups. Options are validated
//! here; secrets never leave `list`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::redact::redact_url;

/// The kinds of broadcaster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BroadcasterKind {
    Kafka,
    Rabbitmq,
    Http,
    /// A consumer group read with `eventeum.poll`; nothing is relayed.
    Group,
}

impl BroadcasterKind {
    pub fn parse(kind: &str) -> ApiResult<Self> {
        match kind.trim().to_ascii_lowercase().as_str() {
            "kafka" => Ok(BroadcasterKind::Kafka),
            "rabbitmq" | "rabbit" => Ok(BroadcasterKind::Rabbitmq),
            "http" => Ok(BroadcasterKind::Http),
            _ => Err(ApiError::invalid_with_hint(
                format!("unknown broadcaster kind \"{kind}\""),
                "kinds are kafka, rabbitmq and http (consumer groups are made with create_consumer_group)",
            )),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            BroadcasterKind::Kafka => "kafka",
            BroadcasterKind::Rabbitmq => "rabbitmq",
            BroadcasterKind::Http => "http",
            BroadcasterKind::Group => "group",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaOptions {
    pub bootstrap_servers: String,
    #[serde(default = "topic_contract_events")]
    pub contract_events: String,
    #[serde(default = "topic_block_events")]
    pub block_events: String,
    #[serde(default = "topic_transaction_events")]
    pub transaction_events: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default = "request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Passed through to librdkafka as they are.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub librdkafka: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RabbitOptions {
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_events_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_events_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_events_url: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String, Value>,
}

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

/// Validates `options` for `kind` and returns them with defaults filled in.
pub fn normalize_options(kind: BroadcasterKind, options: &Value) -> ApiResult<Value> {
    fn parse<T: serde::de::DeserializeOwned + Serialize>(
        kind: &str,
        options: &Value,
    ) -> ApiResult<Value> {
        let parsed: T = serde_json::from_value(options.clone())
            .map_err(|e| ApiError::invalid(format!("invalid {kind} broadcaster options: {e}")))?;
        Ok(serde_json::to_value(parsed).expect("options serialize"))
    }
    let normalized = match kind {
        BroadcasterKind::Kafka => parse::<KafkaOptions>("kafka", options)?,
        BroadcasterKind::Rabbitmq => {
            let value = parse::<RabbitOptions>("rabbitmq", options)?;
            let url = value["url"].as_str().unwrap_or_default();
            check_url(url, &["amqp", "amqps"])?;
            value
        }
        BroadcasterKind::Http => {
            let value = parse::<HttpOptions>("http", options)?;
            let urls: Vec<&str> = [
                "contractEventsUrl",
                "blockEventsUrl",
                "transactionEventsUrl",
            ]
            .iter()
            .filter_map(|k| value[k].as_str())
            .collect();
            if urls.is_empty() {
                return Err(ApiError::invalid(
                    "an http broadcaster needs at least one of contractEventsUrl, blockEventsUrl, transactionEventsUrl",
                ));
            }
            for url in urls {
                check_url(url, &["http", "https"])?;
            }
            value
        }
        BroadcasterKind::Group => options.clone(),
    };
    Ok(normalized)
}

fn check_url(raw: &str, schemes: &[&str]) -> ApiResult<()> {
    let url = url::Url::parse(raw).map_err(|e| {
        ApiError::invalid(format!("\"{}\" is not a valid URL: {e}", redact_url(raw)))
    })?;
    if !schemes.contains(&url.scheme()) {
        return Err(ApiError::invalid(format!(
            "URL scheme \"{}\" is not supported here; use {}",
            url.scheme(),
            schemes.join(" or ")
        )));
    }
    Ok(())
}
