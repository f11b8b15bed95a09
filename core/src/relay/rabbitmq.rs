//! RabbitMQ through lapin (tokio): a durable topic exchange, persistent
//! messages with their message id, and publisher confirms awaited in order.
//! TLS material comes from the options as PEM; the host is checked against
//! `eventeum.allowed_hosts` before each connection.

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::uri::AMQPUri;

use super::{Acks, Broker};
use crate::broadcast::RabbitOptions;
use crate::limits::RABBIT_TIMEOUT;
use crate::netpolicy;
use crate::protocol::{Delivery, DeliveryError, DeliveryFailure, Publish};
use crate::redact::redact_url;
use crate::states::MessageType;

/// RabbitMQ through lapin: a durable topic exchange, persistent messages, and
/// publisher confirms; the batch is pipelined and the confirms awaited in order.
pub struct RabbitClient {
    url: String,
    exchange: String,
    tls: OwnedTLSConfig,
    channel: Option<(lapin::Connection, lapin::Channel)>,
}

impl RabbitClient {
    pub fn new(options: &RabbitOptions) -> Self {
        let tls = options.tls.clone().unwrap_or_default();
        let identity =
            tls.certificate_pem
                .zip(tls.key_pem)
                .map(|(pem, key)| OwnedIdentity::PKCS8 {
                    pem: pem.into_bytes(),
                    key: key.into_bytes(),
                });
        RabbitClient {
            url: options.url.clone(),
            exchange: options.exchange.clone(),
            tls: OwnedTLSConfig {
                identity,
                cert_chain: tls.ca_pem,
            },
            channel: None,
        }
    }

    /// The URL as lapin connects to it, once its host passed the network
    /// policy. lapin's own parser keeps only domain names (an IP address
    /// became `localhost`), so the host is set from the URL here.
    async fn checked_uri(&self) -> Result<AMQPUri, String> {
        let parsed = url::Url::parse(&self.url).map_err(|e| e.to_string())?;
        let mut uri: AMQPUri = self.url.parse()?;
        let host = match parsed.host() {
            Some(url::Host::Domain(name)) => name.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err("the rabbitmq url has no host".into()),
        };
        netpolicy::resolve_checked(&host, uri.authority.port).await?;
        uri.authority.host = host;
        Ok(uri)
    }

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
        let uri = self.checked_uri().await.map_err(|e| {
            format!(
                "cannot connect to RabbitMQ at {}: {e}",
                redact_url(&self.url)
            )
        })?;
        let connect = async {
            let runtime = lapin::runtime::default_runtime()?;
            let connection = lapin::Connection::connect_uri_with_config(
                uri,
                lapin::ConnectionProperties::default(),
                self.tls.clone(),
                runtime,
            )
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
}

/// The `__TypeId__` header Spring AMQP's JSON converter reads to choose the
/// class of the body: what Eventeum's own Spring consumers expect. Messages
/// of your own (`publish`) carry none.
fn spring_type_header(message_type: &str) -> lapin::types::FieldTable {
    use lapin::types::{AMQPValue, FieldTable, LongString};
    let Some(class) = MessageType::parse(message_type).and_then(MessageType::eventeum_class) else {
        return FieldTable::default();
    };
    let mut headers = FieldTable::default();
    headers.insert(
        "__TypeId__".into(),
        AMQPValue::LongString(LongString::from(class)),
    );
    headers
}

impl Broker for RabbitClient {
    type Leftover = ();

    async fn connect(&mut self) -> Result<(), String> {
        self.channel().await.map(drop)
    }

    /// Publishes the batch and returns the wait for its confirms, which
    /// does not hold the client: the next batch is published meanwhile.
    async fn send(&mut self, batch: &Publish) -> Acks<()> {
        let mut delivery = Delivery::nothing(&batch.broadcaster);
        let Some(first) = batch.messages.first() else {
            return Box::pin(std::future::ready((delivery, ())));
        };
        let channel = match self.channel().await {
            Ok(channel) => channel.clone(),
            Err(error) => {
                delivery.failure = Some(DeliveryFailure {
                    id: first.id,
                    error: DeliveryError::transient(error),
                });
                return Box::pin(std::future::ready((delivery, ())));
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
                .with_content_encoding("UTF-8".into())
                .with_message_id(message.message_id.as_str().into())
                .with_headers(spring_type_header(&message.message_type));
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
        Box::pin(async move {
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
            delivery.failure = failure.map(|(id, error)| DeliveryFailure {
                id,
                error: DeliveryError::transient(error),
            });
            (delivery, ())
        })
    }

    fn settled(&mut self, delivery: &Delivery, (): ()) {
        if delivery.failure.is_some() {
            self.channel = None; // reconnect for the next batch
        }
    }
}
