//! HTTP broadcasters through reqwest (tokio): one POST per message, in
//! outbox order, with the message id as `Idempotency-Key`. Like Eventeum, a
//! chain message's body is its bare details unless the broadcaster asks for
//! the whole envelope; `publish()` payloads go as they are. Every destination
//! is checked against `eventeum.allowed_hosts`: an address in the URL here,
//! what a name resolves to in the client's resolver.

use super::{Acks, Broker};
use crate::broadcast::HttpOptions;
use crate::limits::HTTP_TIMEOUT;
use crate::netpolicy;
use crate::protocol::{Delivery, DeliveryError, DeliveryFailure, OutboxMessage, Publish};
use crate::redact::redact_url;
use crate::states::MessageType;

pub struct HttpClient {
    http: reqwest::Client,
    /// Extra headers from the broadcaster's options (an API key, say).
    headers: Vec<(String, String)>,
    /// POST the whole message rather than its details.
    envelope: bool,
}

impl HttpClient {
    /// `http` is the relay's shared client (one connection pool for all
    /// lanes); a broadcaster with TLS material gets a client of its own.
    pub fn new(http: reqwest::Client, options: &HttpOptions) -> Result<Self, String> {
        let headers = options
            .headers
            .iter()
            .map(|(k, v)| {
                let value = v.as_str().map(str::to_string);
                (k.clone(), value.unwrap_or_else(|| v.to_string()))
            })
            .collect();
        let http = match &options.tls {
            None => http,
            Some(tls) => {
                let mut builder = netpolicy::http_client().timeout(HTTP_TIMEOUT);
                if let Some(ca) = &tls.ca_pem {
                    for certificate in reqwest::Certificate::from_pem_bundle(ca.as_bytes())
                        .map_err(|e| format!("tls.caPem: {e}"))?
                    {
                        builder = builder.add_root_certificate(certificate);
                    }
                }
                if let (Some(certificate), Some(key)) = (&tls.certificate_pem, &tls.key_pem) {
                    let identity =
                        reqwest::Identity::from_pkcs8_pem(certificate.as_bytes(), key.as_bytes())
                            .map_err(|e| format!("tls.certificatePem and tls.keyPem: {e}"))?;
                    builder = builder.identity(identity);
                }
                builder
                    .build()
                    .map_err(|e| format!("cannot make an HTTP client: {e}"))?
            }
        };
        Ok(HttpClient {
            http,
            headers,
            envelope: options.envelope,
        })
    }

    /// Sends one message.
    async fn send_one(&self, message: &OutboxMessage) -> Result<(), DeliveryError> {
        let destination = redact_url(&message.destination);
        // A destination the policy refuses stays refused: dead-lettered, so
        // that it does not hold back the messages behind it.
        let url = reqwest::Url::parse(&message.destination)
            .map_err(|e| DeliveryError::permanent(format!("{destination} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(DeliveryError::permanent(format!(
                "{destination} is not an http(s) URL"
            )));
        }
        netpolicy::current()
            .check_url(&url)
            .map_err(|refused| DeliveryError::permanent(refused.to_string()))?;
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("Idempotency-Key", &message.message_id)
            .body(self.body_of(message));
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| {
            DeliveryError::transient(format!(
                "POST {destination} failed: {}",
                crate::error::display_chain(&e.without_url())
            ))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // 408, 429 and 5xx may pass; any other 4xx will not.
        let transient =
            status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
        let cause = format!("POST {destination} answered {status}");
        Err(if transient {
            DeliveryError::transient(cause)
        } else {
            DeliveryError::permanent(cause)
        })
    }
}

impl HttpClient {
    /// What Eventeum POSTs: a chain message's `details` as they are in the
    /// message (the same bytes), or the whole message with `envelope`.
    fn body_of(&self, message: &OutboxMessage) -> String {
        #[derive(serde::Deserialize)]
        struct Details<'a> {
            #[serde(borrow)]
            details: &'a serde_json::value::RawValue,
        }
        let chain =
            MessageType::parse(&message.message_type).is_some_and(|t| t.eventeum_class().is_some());
        if self.envelope || !chain {
            return message.payload.clone();
        }
        match serde_json::from_str::<Details>(&message.payload) {
            Ok(d) => d.details.get().to_string(),
            Err(_) => message.payload.clone(),
        }
    }
}

impl Broker for HttpClient {
    type Leftover = ();

    async fn connect(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// POSTs one message after another: each is acknowledged by its answer.
    async fn send(&mut self, batch: &Publish) -> Acks<()> {
        let mut delivery = Delivery::nothing(&batch.broadcaster);
        for message in &batch.messages {
            match self.send_one(message).await {
                Ok(()) => delivery.delivered.push(message.id),
                Err(error) => {
                    delivery.failure = Some(DeliveryFailure {
                        id: message.id,
                        error,
                    });
                    break;
                }
            }
        }
        Box::pin(std::future::ready((delivery, ())))
    }

    fn settled(&mut self, _: &Delivery, (): ()) {}
}
