//! Kafka through rdkafka with its bundled librdkafka (tokio): an idempotent
//! producer with acks=all, topics created through the admin API when
//! missing, Eventeum's keys and a `message_id` header.
//!
//! Nothing is written twice: librdkafka keeps every message until the broker
//! takes it (no local message timeout), retrying within one idempotent
//! producer session, so the broker drops the copies of its retries. When the
//! relay's wait for a batch times out (the broker is slow or frozen), the
//! messages stay in the producer, and the batch that comes again waits for
//! them instead of producing them again. Only a fatal producer error (its
//! session is gone) makes a new producer, whose outcome for the old messages
//! is unknown: those are sent again.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rdkafka::producer::{DeliveryFuture, FutureProducer, Producer};

use serde_json::Value;

use super::Broker;
use crate::limits::KAFKA_TIMEOUT_MARGIN;
use crate::protocol::{Delivery, DeliveryFailure, Publish};

/// One broadcaster's producer. The batch is pipelined, deliveries awaited in order.
pub struct KafkaClient {
    config: rdkafka::ClientConfig,
    /// Made afresh only after a fatal error: then the idempotent session is
    /// gone (a broker that lost our producer id, say).
    producer: Option<FutureProducer>,
    admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>,
    /// The topics the options name, made when the broadcaster is added.
    configured_topics: Vec<String>,
    known_topics: HashSet<String>,
    /// Messages the producer holds, by outbox id, until their delivery
    /// report is read: at most the rows of the batches in flight.
    in_flight: HashMap<i64, DeliveryFuture>,
    timeout: Duration,
}

impl KafkaClient {
    pub fn new(options: &Value) -> Result<Self, String> {
        let timeout_ms = options["requestTimeoutMs"].as_u64().unwrap_or(30_000);
        let mut config = rdkafka::ClientConfig::new();
        config
            .set(
                "bootstrap.servers",
                options["bootstrapServers"].as_str().unwrap_or_default(),
            )
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // librdkafka keeps a message until the broker takes it; the
            // relay's own wait is bounded (see the module comment).
            .set("message.timeout.ms", "0")
            .set("request.timeout.ms", timeout_ms.min(300_000).to_string());
        for (key, setting) in [
            ("securityProtocol", "security.protocol"),
            ("saslMechanism", "sasl.mechanism"),
            ("username", "sasl.username"),
            ("password", "sasl.password"),
        ] {
            if let Some(value) = options[key].as_str() {
                config.set(setting, value);
            }
        }
        if let Value::Object(extra) = &options["librdkafka"] {
            for (key, value) in extra {
                config.set(
                    key,
                    value
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| value.to_string()),
                );
            }
        }
        Ok(KafkaClient {
            producer: None,
            admin: config.create().map_err(|e| e.to_string())?,
            config,
            configured_topics: ["contractEvents", "transactionEvents", "blockEvents"]
                .iter()
                .filter_map(|key| options[*key].as_str().map(str::to_string))
                .collect(),
            known_topics: Default::default(),
            in_flight: HashMap::new(),
            timeout: Duration::from_millis(timeout_ms),
        })
    }

    /// The producer, made when there is none: creating it starts the fetch of
    /// the broker's metadata and of the idempotent producer's id.
    fn producer(&mut self) -> Result<&rdkafka::producer::FutureProducer, String> {
        if self.producer.is_none() {
            let producer = self
                .config
                .create()
                .map_err(|e| format!("cannot make a Kafka producer: {e}"))?;
            self.producer = Some(producer);
        }
        Ok(self.producer.as_ref().expect("made above"))
    }

    /// Creates the topic unless it exists: many brokers do not auto-create.
    async fn ensure_topic(&mut self, topic: &str) -> Result<(), String> {
        use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
        use rdkafka::types::RDKafkaErrorCode;
        if self.known_topics.contains(topic) {
            return Ok(());
        }
        let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let results =
            tokio::time::timeout(self.timeout, self.admin.create_topics([&new], &options))
                .await
                .map_err(|_| format!("creating topic {topic} timed out"))?
                .map_err(|e| format!("cannot create topic {topic}: {e}"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(format!("cannot create topic {topic}: {code}")),
            }
        }
        self.known_topics.insert(topic.to_string());
        Ok(())
    }
}

impl Broker for KafkaClient {
    /// Makes the producer and the configured topics.
    async fn connect(&mut self) -> Result<(), String> {
        self.producer()?;
        for topic in std::mem::take(&mut self.configured_topics) {
            self.ensure_topic(&topic).await?;
        }
        Ok(())
    }

    async fn publish(&mut self, batch: &Publish) -> Delivery {
        let mut delivery = Delivery::nothing(&batch.broadcaster);
        let (queued, mut failure) = self.queue(batch).await;
        // One deadline for the batch: a frozen broker costs one timeout, not one per message.
        let deadline = tokio::time::Instant::now() + self.timeout + KAFKA_TIMEOUT_MARGIN;
        for id in queued {
            let Some(future) = self.in_flight.get_mut(&id) else {
                continue;
            };
            let problem = match tokio::time::timeout_at(deadline, future).await {
                Ok(Ok(Ok(_))) => None,
                Ok(Ok(Err((e, _)))) => {
                    use rdkafka::types::RDKafkaErrorCode;
                    let too_large =
                        e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge);
                    Some((format!("Kafka did not take the message: {e}"), too_large))
                }
                Ok(Err(_)) => Some(("the Kafka producer dropped the message".into(), false)),
                Err(_) => {
                    // Still in the producer: the next try waits for it again.
                    // It comes before any message that could not be queued.
                    failure = Some(DeliveryFailure {
                        id,
                        error: "Kafka's delivery report timed out; the message stays queued in the producer".into(),
                        permanent: false,
                    });
                    break;
                }
            };
            self.in_flight.remove(&id);
            match problem {
                None => delivery.delivered.push(id),
                Some((error, permanent)) => {
                    failure = Some(DeliveryFailure {
                        id,
                        error,
                        permanent,
                    });
                    break;
                }
            }
        }
        if failure.is_some() {
            // A restarted broker may have lost its topics.
            self.known_topics.clear();
            let fatal = self
                .producer
                .as_ref()
                .and_then(|p| p.client().fatal_error());
            if let Some((code, reason)) = fatal {
                tracing::warn!(broadcaster = %batch.broadcaster, ?code, %reason, "the Kafka producer failed for good; making a new one");
                self.producer = None;
                self.in_flight.clear();
            }
        }
        delivery.failure = failure;
        delivery
    }
}

impl KafkaClient {
    /// Hands the batch's messages to the producer, in order, except those it
    /// holds already from an earlier try. Returns the ids queued (or held)
    /// and, if one could not be queued, the failure that stops the batch there.
    async fn queue(&mut self, batch: &Publish) -> (Vec<i64>, Option<DeliveryFailure>) {
        use rdkafka::message::{Header, OwnedHeaders};
        use rdkafka::producer::FutureRecord;
        let mut queued = Vec::with_capacity(batch.messages.len());
        let producer = match self.producer() {
            Ok(producer) => producer.clone(),
            Err(error) => {
                let id = batch.messages.first().map(|m| m.id).unwrap_or_default();
                let failure = DeliveryFailure {
                    id,
                    error,
                    permanent: false,
                };
                return (queued, Some(failure));
            }
        };
        for message in &batch.messages {
            if self.in_flight.contains_key(&message.id) {
                queued.push(message.id);
                continue;
            }
            if let Err(error) = self.ensure_topic(&message.destination).await {
                let failure = DeliveryFailure {
                    id: message.id,
                    error,
                    permanent: false,
                };
                return (queued, Some(failure));
            }
            let key = message.key.as_deref().unwrap_or(&message.message_id);
            let headers = OwnedHeaders::new().insert(Header {
                key: "message_id",
                value: Some(message.message_id.as_str()),
            });
            let record = FutureRecord::to(&message.destination)
                .key(key)
                .payload(message.payload.as_str())
                .headers(headers);
            match producer.send_result(record) {
                Ok(future) => {
                    self.in_flight.insert(message.id, future);
                    queued.push(message.id);
                }
                Err((e, _)) => {
                    let failure = DeliveryFailure {
                        id: message.id,
                        error: format!("cannot queue: {e}"),
                        permanent: false,
                    };
                    return (queued, Some(failure));
                }
            }
        }
        (queued, None)
    }
}
