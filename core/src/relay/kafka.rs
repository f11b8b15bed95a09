//! Kafka through rdkafka with its bundled librdkafka (tokio): an idempotent
//! producer with acks=all, topics created through the admin API when
//! missing (`createTopics`, with the broker's default partitions and
//! replication factor unless the options set them), Eventeum's keys and a
//! `message_id` header.
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

use super::{Acks, Broker};
use crate::broadcast::KafkaOptions;
use crate::limits::KAFKA_TIMEOUT_MARGIN;
use crate::netpolicy;
use crate::protocol::{Delivery, DeliveryError, DeliveryFailure, Publish};

/// Messages queued in the producer whose delivery reports were not read:
/// the next try of their batch waits for them instead of producing them again.
type Leftover = Vec<(i64, DeliveryFuture)>;

/// One broadcaster's producer. The batch is pipelined, deliveries awaited in order.
pub struct KafkaClient {
    config: rdkafka::ClientConfig,
    /// Made afresh only after a fatal error: then the idempotent session is
    /// gone (a broker that lost our producer id, say).
    producer: Option<FutureProducer>,
    /// Made with the producer, after the bootstrap servers were checked.
    admin: Option<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>>,
    bootstrap_servers: String,
    /// The topics the options name, made when the broadcaster is added.
    configured_topics: Vec<String>,
    /// Whether missing topics are made (`createTopics`), with how many
    /// partitions and replicas: -1 is the broker's default.
    create_topics: bool,
    partitions: i32,
    replication: i32,
    known_topics: HashSet<String>,
    /// Messages the producer holds, by outbox id, whose delivery reports
    /// a batch's acknowledgements left unread: at most the rows of the
    /// batches in flight.
    in_flight: HashMap<i64, DeliveryFuture>,
    timeout: Duration,
}

impl KafkaClient {
    /// A client configured from the named options only: no librdkafka
    /// property is set from anything else (see `broadcast::options`).
    pub fn new(options: &KafkaOptions) -> Self {
        let timeout_ms = options.request_timeout_ms;
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", &options.bootstrap_servers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // librdkafka keeps a message until the broker takes it; the
            // relay's own wait is bounded (see the module comment).
            .set("message.timeout.ms", "0")
            .set("request.timeout.ms", timeout_ms.min(300_000).to_string());
        if let Some(protocol) = options.security_protocol {
            config.set("security.protocol", protocol.as_librdkafka());
        }
        if let Some(mechanism) = options.sasl_mechanism {
            config.set("sasl.mechanism", mechanism.as_librdkafka());
        }
        let named = [
            ("sasl.username", options.username.clone()),
            ("sasl.password", options.password.clone()),
            (
                "compression.type",
                options.compression.map(|c| c.as_librdkafka().into()),
            ),
            ("linger.ms", options.linger_ms.map(|v| v.to_string())),
            ("batch.size", options.batch_size.map(|v| v.to_string())),
            (
                "message.max.bytes",
                options.message_max_bytes.map(|v| v.to_string()),
            ),
            ("client.id", options.client_id.clone()),
        ];
        for (property, value) in named {
            if let Some(value) = value {
                config.set(property, value);
            }
        }
        if let Some(tls) = &options.tls {
            // PEM text in memory: librdkafka reads no file for these.
            let pems = [
                ("ssl.ca.pem", &tls.ca_pem),
                ("ssl.certificate.pem", &tls.certificate_pem),
                ("ssl.key.pem", &tls.key_pem),
            ];
            for (property, pem) in pems {
                if let Some(pem) = pem {
                    config.set(property, pem);
                }
            }
        }
        let configured_topics = if options.create_topics {
            vec![
                options.contract_events.clone(),
                options.transaction_events.clone(),
                options.block_events.clone(),
            ]
        } else {
            vec![]
        };
        KafkaClient {
            producer: None,
            admin: None,
            config,
            bootstrap_servers: options.bootstrap_servers.clone(),
            configured_topics,
            create_topics: options.create_topics,
            partitions: options.partitions.unwrap_or(-1),
            replication: options.replication_factor.map(i32::from).unwrap_or(-1),
            known_topics: Default::default(),
            in_flight: HashMap::new(),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    /// The producer, made when there is none once the bootstrap servers
    /// passed the network policy: creating it starts the fetch of the
    /// broker's metadata and of the idempotent producer's id.
    async fn checked_producer(&mut self) -> Result<&FutureProducer, String> {
        if self.producer.is_none() {
            self.check_bootstrap_servers().await?;
            self.admin = None;
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
        if !self.create_topics || self.known_topics.contains(topic) {
            return Ok(());
        }
        let new = NewTopic::new(
            topic,
            self.partitions,
            TopicReplication::Fixed(self.replication),
        );
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let admin = match &self.admin {
            Some(admin) => admin,
            None => {
                let admin = self
                    .config
                    .create()
                    .map_err(|e| format!("cannot make a Kafka admin client: {e}"))?;
                self.admin.insert(admin)
            }
        };
        let results = tokio::time::timeout(self.timeout, admin.create_topics([&new], &options))
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
    type Leftover = Leftover;

    /// Checks where the bootstrap servers are, then makes the producer and
    /// the configured topics.
    async fn connect(&mut self) -> Result<(), String> {
        self.checked_producer().await?;
        for topic in std::mem::take(&mut self.configured_topics) {
            self.ensure_topic(&topic).await?;
        }
        Ok(())
    }

    /// Queues the batch in the producer and returns the wait for its
    /// delivery reports, which own them: the next batch is queued meanwhile.
    async fn send(&mut self, batch: &Publish) -> Acks<Leftover> {
        let (reports, queue_failure) = self.queue(batch).await;
        // One deadline for the batch: a frozen broker costs one timeout, not one per message.
        let deadline = tokio::time::Instant::now() + self.timeout + KAFKA_TIMEOUT_MARGIN;
        let mut delivery = Delivery::nothing(&batch.broadcaster);
        Box::pin(async move {
            let mut reports = reports.into_iter();
            let mut failure = None;
            let mut leftover = Vec::new();
            for (id, mut report) in reports.by_ref() {
                let problem = match tokio::time::timeout_at(deadline, &mut report).await {
                    Ok(Ok(Ok(_))) => None,
                    Ok(Ok(Err((e, _)))) => {
                        use rdkafka::types::RDKafkaErrorCode;
                        let too_large =
                            e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge);
                        let cause = format!("Kafka did not take the message: {e}");
                        Some(if too_large {
                            DeliveryError::permanent(cause)
                        } else {
                            DeliveryError::transient(cause)
                        })
                    }
                    Ok(Err(_)) => Some(DeliveryError::transient(
                        "the Kafka producer dropped the message",
                    )),
                    Err(_) => {
                        // Still in the producer: the next try waits for it again.
                        leftover.push((id, report));
                        Some(DeliveryError::transient(
                            "Kafka's delivery report timed out; the message stays queued in the producer",
                        ))
                    }
                };
                match problem {
                    None => delivery.delivered.push(id),
                    Some(error) => {
                        failure = Some(DeliveryFailure { id, error });
                        break;
                    }
                }
            }
            // The messages behind a failure stay in the producer, awaited by the next try.
            leftover.extend(reports);
            // A message that could not be queued comes after every one that was.
            delivery.failure = failure.or(queue_failure);
            (delivery, leftover)
        })
    }

    fn settled(&mut self, delivery: &Delivery, leftover: Leftover) {
        self.in_flight.extend(leftover);
        if delivery.failure.is_none() {
            return;
        }
        // A restarted broker may have lost its topics.
        self.known_topics.clear();
        let fatal = self
            .producer
            .as_ref()
            .and_then(|p| p.client().fatal_error());
        if let Some((code, reason)) = fatal {
            tracing::warn!(broadcaster = %delivery.broadcaster, ?code, %reason, "the Kafka producer failed for good; making a new one");
            self.producer = None;
            self.in_flight.clear();
        }
    }
}

impl KafkaClient {
    /// Every address a bootstrap server resolves to must be one
    /// `eventeum.allowed_hosts` allows (librdkafka resolves them again).
    async fn check_bootstrap_servers(&self) -> Result<(), String> {
        for server in self.bootstrap_servers.split(',').map(str::trim) {
            let Some((host, port)) = server.rsplit_once(':') else {
                continue;
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            netpolicy::resolve_checked(host, port.parse().unwrap_or(9092)).await?;
        }
        Ok(())
    }

    /// Hands the batch's messages to the producer, in order, except those it
    /// holds already from an earlier try. Returns their delivery reports (the
    /// held ones taken back from `in_flight`) and, if one could not be
    /// queued, the failure that stops the batch there.
    async fn queue(&mut self, batch: &Publish) -> (Leftover, Option<DeliveryFailure>) {
        use rdkafka::message::{Header, OwnedHeaders};
        use rdkafka::producer::FutureRecord;
        let mut queued = Vec::with_capacity(batch.messages.len());
        let producer = match self.checked_producer().await {
            Ok(producer) => producer.clone(),
            Err(error) => {
                let id = batch.messages.first().map(|m| m.id).unwrap_or_default();
                let failure = DeliveryFailure {
                    id,
                    error: DeliveryError::transient(error),
                };
                return (queued, Some(failure));
            }
        };
        for message in &batch.messages {
            if let Some(report) = self.in_flight.remove(&message.id) {
                queued.push((message.id, report));
                continue;
            }
            if let Err(error) = self.ensure_topic(&message.destination).await {
                let failure = DeliveryFailure {
                    id: message.id,
                    error: DeliveryError::transient(error),
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
                Ok(report) => queued.push((message.id, report)),
                Err((e, _)) => {
                    let failure = DeliveryFailure {
                        id: message.id,
                        error: DeliveryError::transient(format!("cannot queue: {e}")),
                    };
                    return (queued, Some(failure));
                }
            }
        }
        (queued, None)
    }
}
