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
    let mut clients: HashMap<String, Client> = HashMap::new();
    while let Some(batch) = batches.recv().await {
        let client = clients
            .entry(batch.broadcaster.clone())
            .or_insert_with(|| Client::new(&batch, http.clone()));
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
            BroadcasterKind::Rabbitmq => Client::Unsupported("the rabbitmq relay is not built yet"),
            BroadcasterKind::Group => {
                Client::Unsupported("consumer groups are read with eventeum.poll")
            }
        }
    }

    async fn publish(&mut self, batch: &Publish) -> Delivery {
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
            Client::Unsupported(why) => Err((why.to_string(), false)),
        }
    }
}
