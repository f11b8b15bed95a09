//! The relay's baseline for `scripts/bench`: a bare producer that sends the
//! same messages to the same broker with the relay's delivery settings, and
//! nothing else (no database, no outbox). Kafka: rdkafka's bundled
//! librdkafka, idempotent, acks=all, a `message_id` header. RabbitMQ: lapin,
//! a durable topic exchange, persistent messages with their message id and
//! Spring's `__TypeId__` header, publisher confirms.
//!
//! Every message is handed over at once and then every acknowledgement
//! awaited, the fastest a producer with those guarantees goes. Prints when
//! the first message was sent (seconds since the Unix epoch, for a clock
//! shared with the reader that counts arrivals) and the seconds from then to
//! the last acknowledgement.
//!
//! ```text
//! bare_producer kafka    <bootstrap servers> <topic>    <count> <payload file>
//! bare_producer rabbitmq <amqp url>          <exchange> <count> <payload file>
//! ```

use std::time::{Instant, SystemTime};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

const USAGE: &str =
    "usage: bare_producer kafka|rabbitmq <address> <topic or exchange> <count> <payload file>";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [broker, address, destination, count, payload] = args.as_slice() else {
        return Err(USAGE.into());
    };
    let count: usize = count.parse()?;
    let payload = std::fs::read_to_string(payload)?;
    let (started, seconds) = match broker.as_str() {
        "kafka" => kafka(address, destination, count, &payload).await?,
        "rabbitmq" => rabbitmq(address, destination, count, &payload).await?,
        _ => return Err(USAGE.into()),
    };
    let started = started.duration_since(std::time::UNIX_EPOCH)?.as_secs_f64();
    println!("{started:.6} {seconds:.6}");
    Ok(())
}

async fn kafka(
    servers: &str,
    topic: &str,
    count: usize,
    payload: &str,
) -> Result<(SystemTime, f64), Box<dyn std::error::Error>> {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "0")
        .set("queue.buffering.max.messages", (count + 1_000).to_string())
        .create()?;
    let (wall, started) = (SystemTime::now(), Instant::now());
    let mut deliveries = Vec::with_capacity(count);
    for i in 1..=count {
        let (key, message_id) = (i.to_string(), format!("bare-{i}"));
        let headers = OwnedHeaders::new().insert(Header {
            key: "message_id",
            value: Some(message_id.as_str()),
        });
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload(payload)
            .headers(headers);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    for delivery in deliveries {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    Ok((wall, started.elapsed().as_secs_f64()))
}

async fn rabbitmq(
    url: &str,
    exchange: &str,
    count: usize,
    payload: &str,
) -> Result<(SystemTime, f64), Box<dyn std::error::Error>> {
    let connection =
        lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    let mut headers = FieldTable::default();
    headers.insert(
        "__TypeId__".into(),
        AMQPValue::LongString(LongString::from(
            "net.consensys.eventeum.dto.message.ContractEvent",
        )),
    );
    let (wall, started) = (SystemTime::now(), Instant::now());
    // Every publish polled once as it is made (its frames queued, its delivery
    // tag taken, in order), then the writes and the confirms awaited: the
    // pipelining the relay does.
    let mut writes = Vec::with_capacity(count);
    for i in 1..=count {
        let properties = lapin::BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_content_encoding("UTF-8".into())
            .with_message_id(format!("bare-{i}").into())
            .with_headers(headers.clone());
        let mut publish = Box::pin(channel.basic_publish(
            exchange.into(),
            "bench.bulk".into(),
            BasicPublishOptions::default(),
            payload.as_bytes(),
            properties,
        ));
        let first = futures::poll!(publish.as_mut());
        writes.push((publish, first));
    }
    let mut confirms = Vec::with_capacity(count);
    for (write, first) in writes {
        confirms.push(match first {
            std::task::Poll::Ready(confirm) => confirm?,
            std::task::Poll::Pending => write.await?,
        });
    }
    for confirm in confirms {
        if !confirm.await?.is_ack() {
            return Err("RabbitMQ refused a message".into());
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    connection.close(200, "done".into()).await?;
    Ok((wall, seconds))
}
