//! Broadcasters (validation for the SQL API and the relay; any thread): where
//! outbox messages go (Kafka, RabbitMQ, HTTP), and SQL consumer groups.
//!
//! - [`options`]: every option each kind takes, named and typed;
//! - here: the kinds, and the checks the SQL API makes before it stores
//!   options and the relay makes again before it uses them.

pub mod options;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::netpolicy::NetworkPolicy;
use crate::redact::redact_url;
pub use options::{HttpOptions, KafkaOptions, RabbitOptions, TlsPem};
use options::{AMQP_QUERY_KEYS, HTTP_KEYS, KAFKA_KEYS, RABBIT_KEYS, TLS_KEYS};

/// The largest PEM text an option takes: a certificate chain is a few KiB.
const MAX_PEM_BYTES: usize = 64 * 1024;

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

/// Validates `options` for `kind` and returns them with defaults filled in.
/// Hosts are checked against `policy` as far as the options alone show.
pub fn normalize_options(
    kind: BroadcasterKind,
    options: &Value,
    policy: &NetworkPolicy,
) -> ApiResult<Value> {
    let normalized = match kind {
        BroadcasterKind::Kafka => to_value(&KafkaOptions::parse(options, policy)?),
        BroadcasterKind::Rabbitmq => to_value(&RabbitOptions::parse(options, policy)?),
        BroadcasterKind::Http => to_value(&HttpOptions::parse(options, policy)?),
        BroadcasterKind::Group => options.clone(),
    };
    Ok(normalized)
}

fn to_value(options: &impl Serialize) -> Value {
    serde_json::to_value(options).expect("options serialize")
}

/// Parses options after refusing any key that is not in `allowed`, with an
/// error that names the key.
fn parse_known<T: DeserializeOwned>(kind: &str, options: &Value, allowed: &[&str]) -> ApiResult<T> {
    let Value::Object(map) = options else {
        return Err(ApiError::invalid(format!(
            "{kind} broadcaster options must be a JSON object"
        )));
    };
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(unknown_option(kind, key, allowed));
        }
    }
    if let Some(Value::Object(tls)) = map.get("tls") {
        if let Some(key) = tls.keys().find(|k| !TLS_KEYS.contains(&k.as_str())) {
            return Err(unknown_option(kind, &format!("tls.{key}"), TLS_KEYS));
        }
    }
    serde_json::from_value(options.clone())
        .map_err(|e| ApiError::invalid(format!("invalid {kind} broadcaster options: {e}")))
}

fn unknown_option(kind: &str, key: &str, allowed: &[&str]) -> ApiError {
    let why = if kind == "kafka" && (key == "librdkafka" || key.contains('.')) {
        "librdkafka properties are not passed through: some load code, read files or run commands \
         as the database server's OS user (plugin.library.paths, ssl.*.location, sasl.kerberos.*). "
    } else {
        ""
    };
    ApiError::invalid_with_hint(
        format!("unknown {kind} broadcaster option \"{key}\""),
        format!("{why}{kind} options are: {}", allowed.join(", ")),
    )
}

impl KafkaOptions {
    /// Parses and checks stored or given options.
    pub fn parse(options: &Value, policy: &NetworkPolicy) -> ApiResult<Self> {
        let parsed: KafkaOptions = parse_known("kafka", options, KAFKA_KEYS)?;
        parsed.validate(policy)?;
        Ok(parsed)
    }

    fn validate(&self, policy: &NetworkPolicy) -> ApiResult<()> {
        let servers: Vec<&str> = self.bootstrap_servers.split(',').map(str::trim).collect();
        if servers.iter().all(|s| s.is_empty()) {
            return Err(ApiError::invalid(
                "kafka bootstrapServers must not be empty",
            ));
        }
        for server in servers {
            let host = kafka_host(server)?;
            check_host(policy, &host, server)?;
        }
        for (name, topic) in [
            ("contractEvents", &self.contract_events),
            ("blockEvents", &self.block_events),
            ("transactionEvents", &self.transaction_events),
        ] {
            check_topic(name, topic)?;
        }
        let protocol = self
            .security_protocol
            .unwrap_or(options::SecurityProtocol::Plaintext);
        if self.sasl_mechanism.is_some() && !protocol.uses_sasl() {
            return Err(ApiError::invalid(
                "kafka saslMechanism needs securityProtocol SASL_PLAINTEXT or SASL_SSL",
            ));
        }
        if protocol.uses_sasl() && (self.username.is_none() || self.password.is_none()) {
            return Err(ApiError::invalid(
                "kafka securityProtocol SASL_* needs username and password",
            ));
        }
        if let Some(tls) = &self.tls {
            if !protocol.uses_tls() {
                return Err(ApiError::invalid(
                    "kafka tls needs securityProtocol SSL or SASL_SSL",
                ));
            }
            tls.validate()?;
        }
        in_range("lingerMs", self.linger_ms, 0, 900_000)?;
        in_range("batchSize", self.batch_size, 1, i32::MAX.into())?;
        in_range(
            "messageMaxBytes",
            self.message_max_bytes,
            1_000,
            1_000_000_000,
        )?;
        in_range("partitions", self.partitions, 1, 100_000)?;
        in_range(
            "replicationFactor",
            self.replication_factor,
            1,
            i16::MAX.into(),
        )?;
        if let Some(id) = &self.client_id {
            let ok = !id.is_empty()
                && id.len() <= 255
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok {
                return Err(ApiError::invalid(
                    "kafka clientId is 1 to 255 letters, digits, '.', '_' or '-'",
                ));
            }
        }
        Ok(())
    }
}

/// The host of a `host:port` bootstrap server.
fn kafka_host(server: &str) -> ApiResult<url::Host<String>> {
    let bad = || {
        ApiError::invalid(format!(
            "kafka bootstrap server \"{server}\" is not host:port"
        ))
    };
    let (host, port) = server.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    url::Host::parse(host).map_err(|_| bad())
}

/// A Kafka topic name: what the broker accepts (and nothing that is not).
fn check_topic(option: &str, topic: &str) -> ApiResult<()> {
    let ok = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "kafka {option} \"{topic}\" is not a topic name (1 to 249 letters, digits, '.', '_' or '-')"
        )))
    }
}

fn in_range<T: Into<i64> + Copy>(
    option: &str,
    value: Option<T>,
    min: i64,
    max: i64,
) -> ApiResult<()> {
    match value.map(Into::into) {
        Some(v) if v < min || v > max => Err(ApiError::invalid(format!(
            "{option} must be between {min} and {max}, got {v}"
        ))),
        _ => Ok(()),
    }
}

impl RabbitOptions {
    pub fn parse(options: &Value, policy: &NetworkPolicy) -> ApiResult<Self> {
        let parsed: RabbitOptions = parse_known("rabbitmq", options, RABBIT_KEYS)?;
        let url = check_url(&parsed.url, &["amqp", "amqps"], policy)?;
        if let Some((key, _)) = url
            .query_pairs()
            .find(|(k, _)| !AMQP_QUERY_KEYS.contains(&k.as_ref()))
        {
            return Err(ApiError::invalid_with_hint(
                format!("unknown query parameter \"{key}\" in the rabbitmq url"),
                format!(
                    "the url takes {}; TLS material goes in the tls option as PEM",
                    AMQP_QUERY_KEYS.join(", ")
                ),
            ));
        }
        if let Some(tls) = &parsed.tls {
            if url.scheme() != "amqps" {
                return Err(ApiError::invalid("rabbitmq tls needs an amqps:// url"));
            }
            tls.validate()?;
        }
        // The exchange's name is sent as an AMQP short string.
        if parsed.exchange.is_empty() || parsed.exchange.len() > 255 {
            return Err(ApiError::invalid(
                "rabbitmq exchange must be 1 to 255 bytes",
            ));
        }
        Ok(parsed)
    }
}

impl HttpOptions {
    pub fn parse(options: &Value, policy: &NetworkPolicy) -> ApiResult<Self> {
        let parsed: HttpOptions = parse_known("http", options, HTTP_KEYS)?;
        let urls: Vec<&String> = [
            &parsed.contract_events_url,
            &parsed.block_events_url,
            &parsed.transaction_events_url,
        ]
        .into_iter()
        .flatten()
        .collect();
        if urls.is_empty() {
            return Err(ApiError::invalid(
                "an http broadcaster needs at least one of contractEventsUrl, blockEventsUrl, transactionEventsUrl",
            ));
        }
        for url in urls {
            check_url(url, &["http", "https"], policy)?;
        }
        for (name, value) in &parsed.headers {
            let text = value
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            let valid = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && reqwest::header::HeaderValue::from_str(&text).is_ok();
            if !valid {
                return Err(ApiError::invalid(format!(
                    "http header \"{name}\" is not a valid header name and value"
                )));
            }
        }
        if let Some(tls) = &parsed.tls {
            tls.validate()?;
        }
        Ok(parsed)
    }
}

impl TlsPem {
    /// Checks that the PEM text parses: certificates, and a certificate with
    /// its unencrypted PKCS#8 key.
    pub fn validate(&self) -> ApiResult<()> {
        for (name, pem) in [
            ("caPem", &self.ca_pem),
            ("certificatePem", &self.certificate_pem),
            ("keyPem", &self.key_pem),
        ] {
            if let Some(pem) = pem {
                if pem.len() > MAX_PEM_BYTES || !pem.contains("-----BEGIN ") {
                    return Err(ApiError::invalid_with_hint(
                        format!("tls.{name} is not PEM text of at most {MAX_PEM_BYTES} bytes"),
                        "pass the PEM itself (-----BEGIN ...), never a file path",
                    ));
                }
            }
        }
        if let Some(ca) = &self.ca_pem {
            let certificates =
                reqwest::Certificate::from_pem_bundle(ca.as_bytes()).map_err(|e| {
                    ApiError::invalid(format!("tls.caPem holds no valid certificate: {e}"))
                })?;
            if certificates.is_empty() {
                return Err(ApiError::invalid("tls.caPem holds no certificate"));
            }
        }
        match (&self.certificate_pem, &self.key_pem) {
            (Some(certificate), Some(key)) => {
                reqwest::Identity::from_pkcs8_pem(certificate.as_bytes(), key.as_bytes()).map_err(|e| {
                    ApiError::invalid_with_hint(
                        format!("tls.certificatePem and tls.keyPem are not a client certificate and its key: {e}"),
                        "the key must be unencrypted PKCS#8 (-----BEGIN PRIVATE KEY-----); openssl pkcs8 -topk8 -nocrypt converts one",
                    )
                })?;
                Ok(())
            }
            (None, None) => Ok(()),
            _ => Err(ApiError::invalid(
                "tls.certificatePem and tls.keyPem come together",
            )),
        }
    }
}

/// Parses a broker URL, checks its scheme and what the policy says of its host.
fn check_url(raw: &str, schemes: &[&str], policy: &NetworkPolicy) -> ApiResult<url::Url> {
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
    let Some(host) = url.host() else {
        return Err(ApiError::invalid(format!(
            "\"{}\" has no host",
            redact_url(raw)
        )));
    };
    check_host(policy, &host, &redact_url(raw))?;
    Ok(url)
}

fn check_host<S: AsRef<str>>(
    policy: &NetworkPolicy,
    host: &url::Host<S>,
    shown: &str,
) -> ApiResult<()> {
    policy
        .check_host(host)
        .map(drop)
        .map_err(|refused| ApiError::refused(refused, shown))
}
