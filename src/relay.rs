//! The relay: publishes outbox batches to brokers on tokio threads, and
//! reports what each broker acknowledged. It never touches Postgres; the main
//! thread marks rows delivered, retries or dead-letters them.
//!
//! Each broadcaster has a lane of its own, a task with its client, so that a
//! broker that is slow or down (a Kafka delivery waits up to its
//! `requestTimeoutMs`) holds back only its own messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::broadcast::BroadcasterKind;
use crate::follow::wake_main_thread;
use crate::protocol::{ConfigSnapshot, Delivery, DeliveryFailure, OutboxMessage, Publish};
use crate::redact::{redact_url, Scrubber};

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long connecting to a broadcaster ahead of its first batch may take. A
/// broker that is down then is tried again, and its failure recorded, when a
/// batch comes.
const CONNECT_AHEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Batches queued for one lane; the main thread has at most two in flight
/// per broadcaster, so handing one over never waits.
const LANE_QUEUE: usize = 4;

/// Runs until the main thread drops its sender: hands each batch to its
/// broadcaster's lane. A lane starts as soon as its broadcaster appears in
/// the configuration, and connects then, so that the first message does not
/// wait for a producer id, a topic or a channel.
pub async fn run(
    mut batches: mpsc::Receiver<Publish>,
    deliveries: mpsc::Sender<Delivery>,
    mut config: watch::Receiver<Arc<ConfigSnapshot>>,
) {
    let http = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("an HTTP client builds");
    let mut lanes: HashMap<String, Lane> = HashMap::new();
    let open =
        |lanes: &mut HashMap<String, Lane>, name: &str, kind: BroadcasterKind, options: &Value| {
            let current = lanes.get(name).is_some_and(|l| l.options == *options);
            if !current {
                // Options changed (removed and added again under the name, say):
                // dropping the old lane's sender ends it once it has sent what
                // it holds, and the new lane starts after that.
                let before = lanes.remove(name).map(|old| old.task);
                let lane = Lane::open(
                    name,
                    kind,
                    options,
                    http.clone(),
                    deliveries.clone(),
                    before,
                );
                lanes.insert(name.to_string(), lane);
            }
            lanes.get(name).expect("inserted above").batches.clone()
        };
    config.mark_changed();
    let mut watching = true;
    loop {
        tokio::select! {
            biased;
            batch = batches.recv() => {
                let Some(batch) = batch else { break };
                let lane = open(&mut lanes, &batch.broadcaster, batch.kind, &batch.options);
                if lane.send(batch).await.is_err() {
                    break; // the lane ended: the worker is stopping
                }
            }
            changed = config.changed(), if watching => match changed {
                Ok(()) => {
                    let snapshot = config.borrow_and_update().clone();
                    lanes.retain(|name, _| snapshot.broadcasters.iter().any(|b| b.name == *name));
                    for b in &snapshot.broadcasters {
                        open(&mut lanes, &b.name, b.kind, &b.options);
                    }
                }
                Err(_) => watching = false,
            },
        }
    }
}

/// One broadcaster's task and its queue.
struct Lane {
    options: Value,
    batches: mpsc::Sender<Publish>,
    task: JoinHandle<()>,
}

impl Lane {
    fn open(
        name: &str,
        kind: BroadcasterKind,
        options: &Value,
        http: reqwest::Client,
        deliveries: mpsc::Sender<Delivery>,
        before: Option<JoinHandle<()>>,
    ) -> Self {
        let (batches, queue) = mpsc::channel(LANE_QUEUE);
        let scrubber = Scrubber::for_options(options);
        let client = Client::new(name, kind, options, http, &scrubber);
        let serve = serve(
            name.to_string(),
            scrubber,
            client,
            queue,
            deliveries,
            before,
        );
        Lane {
            options: options.clone(),
            batches,
            task: tokio::spawn(serve),
        }
    }
}

/// A lane's task: publishes its broadcaster's batches in order. After a
/// failure, a batch read behind the failed one is skipped, so that it cannot
/// overtake the retry of the failed message.
async fn serve(
    name: String,
    scrubber: Scrubber,
    mut client: Client,
    mut batches: mpsc::Receiver<Publish>,
    deliveries: mpsc::Sender<Delivery>,
    before: Option<JoinHandle<()>>,
) {
    if let Some(before) = before {
        let _ = before.await;
    }
    let error = match tokio::time::timeout(CONNECT_AHEAD_TIMEOUT, client.connect()).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(scrubber.scrub(&error)),
        Err(_) => Some("timed out".to_string()),
    };
    if let Some(error) = error {
        tracing::info!(broadcaster = %name, %error, "cannot connect ahead of the first batch");
    }
    let mut failed = false;
    while let Some(batch) = batches.recv().await {
        let delivery = if batch.behind_another && failed {
            Delivery {
                skipped: true,
                ..Delivery::nothing(&batch.broadcaster)
            }
        } else {
            let mut delivery = client.publish(&batch).await;
            failed = delivery.failure.is_some();
            if let Some(failure) = &mut delivery.failure {
                // Broker errors may quote a URL or a credential; they go to the log and the outbox.
                failure.error = scrubber.scrub(&failure.error);
                tracing::warn!(broadcaster = %name, row = failure.id, error = %failure.error, permanent = failure.permanent, "delivery failed");
            }
            delivery
        };
        if deliveries.send(delivery).await.is_err() {
            break;
        }
        wake_main_thread();
    }
}

/// A connection to one broadcaster.
enum Client {
    Http {
        http: reqwest::Client,
        headers: Vec<(String, String)>,
    },
    Rabbit(Box<RabbitClient>),
    Kafka(Box<KafkaClient>),
    Unsupported(&'static str),
}

impl Client {
    fn new(
        name: &str,
        kind: BroadcasterKind,
        options: &Value,
        http: reqwest::Client,
        scrubber: &Scrubber,
    ) -> Self {
        match kind {
            BroadcasterKind::Http => {
                let headers = match &options["headers"] {
                    Value::Object(map) => map
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str()
                                    .map(str::to_string)
                                    .unwrap_or_else(|| v.to_string()),
                            )
                        })
                        .collect(),
                    _ => vec![],
                };
                Client::Http { http, headers }
            }
            BroadcasterKind::Kafka => match KafkaClient::new(options) {
                Ok(kafka) => Client::Kafka(Box::new(kafka)),
                Err(error) => {
                    let error = scrubber.scrub(&error);
                    tracing::error!(broadcaster = %name, %error, "cannot make a Kafka producer");
                    Client::Unsupported(
                        "the Kafka producer could not be configured; see the server log",
                    )
                }
            },
            BroadcasterKind::Rabbitmq => Client::Rabbit(Box::new(RabbitClient {
                url: options["url"].as_str().unwrap_or_default().to_string(),
                exchange: options["exchange"].as_str().unwrap_or_default().to_string(),
                channel: None,
            })),
            BroadcasterKind::Group => {
                Client::Unsupported("consumer groups are read with eventeum.poll")
            }
        }
    }

    /// Opens what the first batch would: RabbitMQ's channel, or Kafka's
    /// producer and configured topics.
    async fn connect(&mut self) -> Result<(), String> {
        match self {
            Client::Rabbit(rabbit) => rabbit.channel().await.map(drop),
            Client::Kafka(kafka) => kafka.connect().await,
            _ => Ok(()),
        }
    }

    async fn publish(&mut self, batch: &Publish) -> Delivery {
        match self {
            Client::Rabbit(rabbit) => return rabbit.publish(batch).await,
            Client::Kafka(kafka) => return kafka.publish(batch).await,
            _ => {}
        }
        let mut delivery = Delivery::nothing(&batch.broadcaster);
        for message in &batch.messages {
            match self.send(message).await {
                Ok(()) => delivery.delivered.push(message.id),
                Err((error, permanent)) => {
                    delivery.failure = Some(DeliveryFailure {
                        id: message.id,
                        error,
                        permanent,
                    });
                    break;
                }
            }
        }
        delivery
    }

    /// Sends one message; on failure, the reason and whether it is permanent.
    async fn send(&mut self, message: &OutboxMessage) -> Result<(), (String, bool)> {
        match self {
            Client::Http { http, headers } => {
                let mut request = http
                    .post(&message.destination)
                    .header("content-type", "application/json")
                    .header("Idempotency-Key", &message.message_id)
                    .body(message.payload.clone());
                for (name, value) in headers.iter() {
                    request = request.header(name, value);
                }
                let response = request.send().await.map_err(|e| {
                    (
                        format!(
                            "POST {} failed: {}",
                            redact_url(&message.destination),
                            e.without_url()
                        ),
                        false,
                    )
                })?;
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else {
                    // 408, 429 and 5xx may pass; any other 4xx will not.
                    let transient = status.is_server_error()
                        || status.as_u16() == 408
                        || status.as_u16() == 429;
                    Err((
                        format!(
                            "POST {} answered {status}",
                            redact_url(&message.destination)
                        ),
                        !transient,
                    ))
                }
            }
            Client::Rabbit(_) | Client::Kafka(_) => {
                unreachable!("broker batches are published as a whole")
            }
            Client::Unsupported(why) => Err((why.to_string(), false)),
        }
    }
}

/// RabbitMQ through lapin: a durable topic exchange, persistent messages, and
/// publisher confirms; the batch is pipelined and the confirms awaited in order.
struct RabbitClient {
    url: String,
    exchange: String,
    channel: Option<(lapin::Connection, lapin::Channel)>,
}

const RABBIT_TIMEOUT: Duration = Duration::from_secs(30);

impl RabbitClient {
    async fn channel(&mut self) -> Result<&lapin::Channel, String> {
        use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions};
        use lapin::types::FieldTable;
        if self
            .channel
            .as_ref()
            .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected())
        {
            return Ok(&self.channel.as_ref().expect("checked above").1);
        }
        self.channel = None;
        let connect = async {
            let connection =
                lapin::Connection::connect(&self.url, lapin::ConnectionProperties::default())
                    .await?;
            let channel = connection.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            let options = ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            };
            channel
                .exchange_declare(
                    self.exchange.as_str().into(),
                    lapin::ExchangeKind::Topic,
                    options,
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((connection, channel))
        };
        let connected = tokio::time::timeout(RABBIT_TIMEOUT, connect)
            .await
            .map_err(|_| "connecting to RabbitMQ timed out".to_string())?
            .map_err(|e| {
                format!(
                    "cannot connect to RabbitMQ at {}: {e}",
                    redact_url(&self.url)
                )
            })?;
        Ok(&self.channel.insert(connected).1)
    }

    async fn publish(&mut self, batch: &Publish) -> Delivery {
        let mut delivery = Delivery::nothing(&batch.broadcaster);
        let Some(first) = batch.messages.first() else {
            return delivery;
        };
        let channel = match self.channel().await {
            Ok(channel) => channel.clone(),
            Err(error) => {
                delivery.failure = Some(DeliveryFailure {
                    id: first.id,
                    error,
                    permanent: false,
                });
                return delivery;
            }
        };
        // Publish the whole batch, then await the confirms in order: the first
        // failure (publish or confirm, whichever comes first) stops the batch.
        // Each publish is polled once, in outbox order, as it is made: that
        // first poll queues its frames and takes its delivery tag, so the
        // broker gets the batch in order while the writes are pipelined
        // instead of awaited one by one.
        let mut writes = Vec::with_capacity(batch.messages.len());
        for message in &batch.messages {
            let properties = lapin::BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(message.message_id.as_str().into());
            let mut publish = Box::pin(channel.basic_publish(
                self.exchange.as_str().into(),
                message.destination.as_str().into(),
                lapin::options::BasicPublishOptions::default(),
                message.payload.as_bytes(),
                properties,
            ));
            let first = futures::poll!(publish.as_mut());
            writes.push((message.id, publish, first));
        }
        let mut confirms = Vec::with_capacity(writes.len());
        let mut failure: Option<(i64, String)> = None;
        for (id, publish, first) in writes {
            let written = match first {
                std::task::Poll::Ready(result) => Ok(result),
                std::task::Poll::Pending => tokio::time::timeout(RABBIT_TIMEOUT, publish).await,
            };
            match written {
                Ok(Ok(confirm)) => confirms.push((id, confirm)),
                Ok(Err(e)) => {
                    failure = Some((id, format!("publish to RabbitMQ failed: {e}")));
                    break;
                }
                Err(_) => {
                    failure = Some((id, "publish to RabbitMQ timed out".into()));
                    break;
                }
            }
        }
        for (id, confirm) in confirms {
            let problem = match tokio::time::timeout(RABBIT_TIMEOUT, confirm).await {
                Ok(Ok(confirmation)) if confirmation.is_ack() => {
                    delivery.delivered.push(id);
                    continue;
                }
                Ok(Ok(_)) => "RabbitMQ refused the message (nack)".to_string(),
                Ok(Err(e)) => format!("RabbitMQ did not confirm the message: {e}"),
                Err(_) => "RabbitMQ's confirm timed out".to_string(),
            };
            failure = Some((id, problem));
            break;
        }
        if let Some((id, error)) = failure {
            self.channel = None; // reconnect for the next batch
            delivery.failure = Some(DeliveryFailure {
                id,
                error,
                permanent: false,
            });
        }
        delivery
    }
}

/// Kafka through rdkafka (bundled librdkafka): an idempotent producer with
/// acks=all, topics created through the admin API when missing, the message id
/// in a `message_id` header. The batch is pipelined, deliveries awaited in order.
struct KafkaClient {
    config: rdkafka::ClientConfig,
    /// Made afresh after a failure: a restarted broker may not know the
    /// idempotent producer's id any more, and would refuse it forever.
    producer: Option<rdkafka::producer::FutureProducer>,
    admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>,
    /// The topics the options name, made when the broadcaster is added.
    configured_topics: Vec<String>,
    known_topics: std::collections::HashSet<String>,
    timeout: Duration,
}

impl KafkaClient {
    fn new(options: &Value) -> Result<Self, String> {
        let timeout_ms = options["requestTimeoutMs"].as_u64().unwrap_or(30_000);
        let mut config = rdkafka::ClientConfig::new();
        config
            .set(
                "bootstrap.servers",
                options["bootstrapServers"].as_str().unwrap_or_default(),
            )
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", timeout_ms.to_string())
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

    /// Makes the producer and the configured topics.
    async fn connect(&mut self) -> Result<(), String> {
        self.producer()?;
        for topic in std::mem::take(&mut self.configured_topics) {
            self.ensure_topic(&topic).await?;
        }
        Ok(())
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

    async fn publish(&mut self, batch: &Publish) -> Delivery {
        use rdkafka::message::{Header, OwnedHeaders};
        use rdkafka::producer::FutureRecord;
        use rdkafka::types::RDKafkaErrorCode;
        let mut delivery = Delivery::nothing(&batch.broadcaster);
        let mut failure: Option<DeliveryFailure> = None;
        let mut pending = Vec::with_capacity(batch.messages.len());
        let producer = match self.producer() {
            Ok(producer) => producer.clone(),
            Err(error) => {
                let id = batch.messages.first().map(|m| m.id).unwrap_or_default();
                delivery.failure = Some(DeliveryFailure {
                    id,
                    error,
                    permanent: false,
                });
                return delivery;
            }
        };
        for message in &batch.messages {
            if let Err(error) = self.ensure_topic(&message.destination).await {
                failure = Some(DeliveryFailure {
                    id: message.id,
                    error,
                    permanent: false,
                });
                break;
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
                Ok(future) => pending.push((message.id, future)),
                Err((e, _)) => {
                    failure = Some(DeliveryFailure {
                        id: message.id,
                        error: format!("cannot queue: {e}"),
                        permanent: false,
                    });
                    break;
                }
            }
        }
        for (id, future) in pending {
            let problem =
                match tokio::time::timeout(self.timeout + Duration::from_secs(5), future).await {
                    Ok(Ok(Ok(_))) => {
                        delivery.delivered.push(id);
                        continue;
                    }
                    Ok(Ok(Err((e, _)))) => {
                        let too_large =
                            e.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge);
                        (format!("Kafka did not take the message: {e}"), too_large)
                    }
                    Ok(Err(_)) => ("the Kafka producer dropped the message".to_string(), false),
                    Err(_) => ("Kafka's delivery report timed out".to_string(), false),
                };
            failure = Some(DeliveryFailure {
                id,
                error: problem.0,
                permanent: problem.1,
            });
            break;
        }
        if failure.is_some() {
            // A restarted broker may have lost its topics and our producer id.
            self.known_topics.clear();
            self.producer = None;
        }
        delivery.failure = failure;
        delivery
    }
}
