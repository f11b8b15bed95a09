//! The relay (tokio): publishes outbox batches to brokers and reports what
//! each broker acknowledged. It never touches Postgres; the main thread marks
//! rows delivered, retries or dead-letters them.
//!
//! Each broadcaster has a lane of its own, a task with its client, so that a
//! broker that is slow or down (a Kafka delivery waits up to its
//! `requestTimeoutMs`) holds back only its own messages. Every broker is one
//! module behind [`Broker`]: [`http`], [`kafka`], [`rabbitmq`].

#![warn(missing_docs)]

mod http;
mod kafka;
mod rabbitmq;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::broadcast::{BroadcasterKind, HttpOptions, KafkaOptions, RabbitOptions};
use crate::config::ConfigSnapshot;
use crate::limits::{BATCHES_IN_FLIGHT, CONNECT_AHEAD_TIMEOUT, HTTP_TIMEOUT, LANE_QUEUE};
use crate::netpolicy;
use crate::protocol::{Delivery, DeliveryError, DeliveryFailure, Publish};
use crate::redact::Scrubber;
use crate::wake::wake_main_thread;

/// A batch handed to its broker: the future of what the broker acknowledged,
/// awaited without the client, so that the lane can hand over the next batch
/// meanwhile. It yields the delivery and what the client takes back.
pub type Acks<T> = BoxFuture<'static, (Delivery, T)>;

/// A connection to one broadcaster's broker. Errors are plain text: the lane
/// scrubs them of credentials before they reach the log or the outbox.
pub trait Broker: Send + 'static {
    /// What a batch's acknowledgements give back to the client once awaited
    /// (messages a producer still holds, say).
    type Leftover: Send + 'static;

    /// Opens what the first batch would need (a channel, a producer and its
    /// topics), so that the first message does not wait for it.
    fn connect(&mut self) -> impl Future<Output = Result<(), String>> + Send;

    /// Hands a batch to the broker in order, up to the first message that
    /// cannot be; the acknowledgements are the returned future's.
    fn send(&mut self, batch: &Publish) -> impl Future<Output = Acks<Self::Leftover>> + Send;

    /// Takes back what a batch's acknowledgements left, in the order the
    /// batches were sent.
    fn settled(&mut self, delivery: &Delivery, leftover: Self::Leftover);
}

/// Runs until the main thread drops its sender: hands each batch to its
/// broadcaster's lane. A lane starts as soon as its broadcaster appears in
/// the configuration, and connects then, so that the first message does not
/// wait for a producer id, a topic or a channel.
pub async fn run(
    mut batches: mpsc::Receiver<Publish>,
    deliveries: mpsc::Sender<Delivery>,
    mut config: watch::Receiver<Arc<ConfigSnapshot>>,
) {
    let http = netpolicy::http_client()
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("an HTTP client builds");
    let mut lanes: HashMap<String, Lane> = HashMap::new();
    let open = |lanes: &mut HashMap<String, Lane>,
                name: &str,
                kind: BroadcasterKind,
                options: &Value| {
        let current = lanes
            .get(name)
            .is_some_and(|l| l.options == *options && !l.task.is_finished());
        if lanes.get(name).is_some_and(|l| l.task.is_finished()) {
            // A lane only ends early by panicking: open a new one. The
            // main thread sends again what the dead lane held once its
            // in-flight deadline passes; the rows are still pending.
            tracing::error!(broadcaster = %name, "the broadcaster's lane ended; opening a new one");
        }
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
                if let Err(lost) = lane.send(batch).await {
                    // The lane died after `open` looked: a new one takes the batch.
                    let batch = lost.0;
                    let lane = open(&mut lanes, &batch.broadcaster, batch.kind, &batch.options);
                    if lane.send(batch).await.is_err() {
                        tracing::error!("a new lane ended at once; its batch is sent again after the deadline");
                    }
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
        let name = name.to_string();
        // Options are checked again here (an older version stored them, or
        // a superuser wrote the table): a lane never runs on options the
        // SQL API would refuse. Hosts are checked when the client connects,
        // against the policy in force then, so that a lane outlives a reload.
        let policy = netpolicy::NetworkPolicy::any();
        let client: Result<Client, String> = match kind {
            BroadcasterKind::Http => HttpOptions::parse(options, &policy)
                .map_err(|e| e.to_string())
                .and_then(|o| http::HttpClient::new(http, &o))
                .map(Client::Http),
            BroadcasterKind::Rabbitmq => RabbitOptions::parse(options, &policy)
                .map_err(|e| e.to_string())
                .map(|o| Client::Rabbit(rabbitmq::RabbitClient::new(&o))),
            BroadcasterKind::Kafka => KafkaOptions::parse(options, &policy)
                .map_err(|e| e.to_string())
                .map(|o| Client::Kafka(kafka::KafkaClient::new(&o))),
            BroadcasterKind::Group => Err("consumer groups are read with eventeum.poll".into()),
        };
        let task = match client {
            Ok(Client::Http(client)) => {
                tokio::spawn(serve(name, scrubber, client, queue, deliveries, before))
            }
            Ok(Client::Rabbit(client)) => {
                tokio::spawn(serve(name, scrubber, client, queue, deliveries, before))
            }
            Ok(Client::Kafka(client)) => {
                tokio::spawn(serve(name, scrubber, client, queue, deliveries, before))
            }
            Err(error) => {
                let error = scrubber.scrub(&format!("the broadcaster cannot be used: {error}"));
                if kind != BroadcasterKind::Group {
                    tracing::error!(broadcaster = %name, %error, "cannot open the broadcaster's lane");
                }
                let client = Unavailable(error);
                tokio::spawn(serve(name, scrubber, client, queue, deliveries, before))
            }
        };
        Lane {
            options: options.clone(),
            batches,
            task,
        }
    }
}

/// A lane's task: publishes its broadcaster's batches in order, the next
/// handed to the broker while the last one's acknowledgements are awaited
/// (up to [`BATCHES_IN_FLIGHT`]), so that the broker is never idle between
/// batches. After a failure, the batches behind the failed one are reported
/// skipped, sent or not, so that none overtakes the retry of the failed
/// message; the main thread reads again from there.
async fn serve(
    name: String,
    scrubber: Scrubber,
    mut client: impl Broker,
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
    let mut sent = FuturesOrdered::new();
    let mut failed = false;
    let mut open = true;
    while open || !sent.is_empty() {
        let delivery = tokio::select! {
            biased;
            Some((mut delivery, leftover)) = sent.next(), if !sent.is_empty() => {
                client.settled(&delivery, leftover);
                if failed {
                    Delivery::skipped(&delivery.broadcaster)
                } else {
                    failed = delivery.failure.is_some();
                    if let Some(failure) = &mut delivery.failure {
                        // Broker errors may quote a URL or a credential; they go to the log and the outbox.
                        failure.error.rewrite_cause(|cause| scrubber.scrub(cause));
                        tracing::warn!(broadcaster = %name, row = failure.id, error = %failure.error, permanent = failure.error.is_permanent(), "delivery failed");
                    }
                    delivery
                }
            }
            batch = batches.recv(), if open && sent.len() < BATCHES_IN_FLIGHT => {
                let Some(batch) = batch else {
                    open = false;
                    continue;
                };
                if batch.behind_another && failed {
                    Delivery::skipped(&batch.broadcaster)
                } else {
                    failed = false;
                    sent.push_back(client.send(&batch).await);
                    continue;
                }
            }
        };
        if deliveries.send(delivery).await.is_err() {
            break;
        }
        wake_main_thread();
    }
}

/// The client a lane runs.
enum Client {
    Http(http::HttpClient),
    Rabbit(rabbitmq::RabbitClient),
    Kafka(kafka::KafkaClient),
}

/// A broadcaster whose batches cannot be published now: each fails with the
/// reason and is retried with back-off, so that fixing the options (which
/// opens a new lane) delivers them.
struct Unavailable(String);

impl Broker for Unavailable {
    type Leftover = ();

    async fn connect(&mut self) -> Result<(), String> {
        Ok(())
    }

    async fn send(&mut self, batch: &Publish) -> Acks<()> {
        let mut delivery = Delivery::nothing(&batch.broadcaster);
        delivery.failure = batch.messages.first().map(|first| DeliveryFailure {
            id: first.id,
            error: DeliveryError::transient(self.0.clone()),
        });
        Box::pin(std::future::ready((delivery, ())))
    }

    fn settled(&mut self, _: &Delivery, (): ()) {}
}
