//! HTTP broadcasters through reqwest (tokio): one POST per message, in
//! outbox order, with the message id as `Idempotency-Key`.

use serde_json::Value;

use super::Broker;
use crate::protocol::{Delivery, DeliveryFailure, OutboxMessage, Publish};
use crate::redact::redact_url;

pub struct HttpClient {
    http: reqwest::Client,
    /// Extra headers from the broadcaster's options (an API key, say).
    headers: Vec<(String, String)>,
}

impl HttpClient {
    /// `http` is the relay's shared client (one connection pool for all lanes).
    pub fn new(http: reqwest::Client, options: &Value) -> Self {
        let headers = match &options["headers"] {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| {
                    let value = v.as_str().map(str::to_string);
                    (k.clone(), value.unwrap_or_else(|| v.to_string()))
                })
                .collect(),
            _ => vec![],
        };
        HttpClient { http, headers }
    }

    /// Sends one message; on failure, the reason and whether it is permanent.
    async fn send(&self, message: &OutboxMessage) -> Result<(), (String, bool)> {
        let mut request = self
            .http
            .post(&message.destination)
            .header("content-type", "application/json")
            .header("Idempotency-Key", &message.message_id)
            .body(message.payload.clone());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let destination = redact_url(&message.destination);
        let response = request.send().await.map_err(|e| {
            let error = format!("POST {destination} failed: {}", e.without_url());
            (error, false)
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // 408, 429 and 5xx may pass; any other 4xx will not.
        let transient =
            status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
        Err((format!("POST {destination} answered {status}"), !transient))
    }
}

impl Broker for HttpClient {
    async fn connect(&mut self) -> Result<(), String> {
        Ok(())
    }

    async fn publish(&mut self, batch: &Publish) -> Delivery {
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
}
