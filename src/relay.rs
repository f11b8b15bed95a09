//! The relay: publishes outbox batches to brokers on tokio threads, and
//! reports what each broker acknowledged. It never touches Postgres; the main
//! thread marks rows delivered, retries or dead-letters them.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::broadcast::{redact_url, BroadcasterKind};
use crate::follow::wake_main_thread;
use crate::protocol::{Delivery, DeliveryFailure, OutboxMessage, Publish};

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs until the main thread drops its sender.
pub async fn run(mut batches: mpsc::Receiver<Publish>, deliveries: mpsc::Sender<Delivery>) {
    let http = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("an HTTP client builds");
    // One client per broadcaster, made afresh when its options change (a
    // broadcaster removed and added again under the same name, say).
    let mut clients: HashMap<String, (Value, Client)> = HashMap::new();
    while let Some(batch) = batches.recv().await {
        let current = clients
            .get(&batch.broadcaster)
            .is_some_and(|(options, _)| *options == batch.options);
        if !current {
            let client = Client::new(&batch, http.clone());
            clients.insert(batch.broadcaster.clone(), (batch.options.clone(), client));
        }
        let (_, client) = clients.get_mut(&batch.broadcaster).expect("inserted above");
        let delivery = client.publish(&batch).await;
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
    Unsupported(&'static str),
}

impl Client {
    fn new(batch: &Publish, http: reqwest::Client) -> Self {
        match batch.kind {
            BroadcasterKind::Http => {
                let headers = match &batch.options["headers"] {
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
            BroadcasterKind::Kafka => Client::Unsupported("the kafka relay is not built yet"),
            BroadcasterKind::Rabbitmq => Client::Rabbit(Box::new(RabbitClient {
                url: batch.options["url"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                exchange: batch.options["exchange"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                channel: None,
            })),
            BroadcasterKind::Group => {
                Client::Unsupported("consumer groups are read with eventeum.poll")
            }
        }
    }

    async fn publish(&mut self, batch: &Publish) -> Delivery {
        if let Client::Rabbit(rabbit) = self {
            return rabbit.publish(batch).await;
        }
        let mut delivery = Delivery {
            broadcaster: batch.broadcaster.clone(),
            delivered: vec![],
            failure: None,
        };
        for message in &batch.messages {
            match self.send(message).await {
                Ok(()) => delivery.delivered.push(message.id),
                Err((error, permanent)) => {
                    tracing::warn!(broadcaster = %batch.broadcaster, message = %message.message_id, %error, permanent, "delivery failed");
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
            Client::Rabbit(_) => unreachable!("RabbitMQ batches are published as a whole"),
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
        let mut delivery = Delivery {
            broadcaster: batch.broadcaster.clone(),
            delivered: vec![],
            failure: None,
        };
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
        let mut confirms = Vec::with_capacity(batch.messages.len());
        let mut failure: Option<(i64, String)> = None;
        for message in &batch.messages {
            let properties = lapin::BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(message.message_id.as_str().into());
            let publish = channel.basic_publish(
                self.exchange.as_str().into(),
                message.destination.as_str().into(),
                lapin::options::BasicPublishOptions::default(),
                message.payload.as_bytes(),
                properties,
            );
            match tokio::time::timeout(RABBIT_TIMEOUT, publish).await {
                Ok(Ok(confirm)) => confirms.push((message.id, confirm)),
                Ok(Err(e)) => {
                    failure = Some((message.id, format!("publish to RabbitMQ failed: {e}")));
                    break;
                }
                Err(_) => {
                    failure = Some((message.id, "publish to RabbitMQ timed out".into()));
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
