//! The main thread's half of delivery: due outbox batches to the relay,
//! deliveries back into the outbox.

use std::collections::HashMap;
use std::time::Instant;

use pgrx::bgworkers::BackgroundWorker;
use tokio::sync::mpsc;

use super::commit_or_abort;
use crate::config::{BroadcasterConfig, ConfigSnapshot};
use crate::guc;
use crate::limits::{BATCHES_IN_FLIGHT, IN_FLIGHT_DEADLINE, PRUNE_EVERY, RELAY_BATCH};
use crate::protocol::{Delivery, Publish};
use crate::store;

/// The main thread's half of delivery: hands due outbox batches to the relay
/// and records what the brokers acknowledged. A broadcaster has up to
/// [`BATCHES_IN_FLIGHT`] batches in flight, in outbox order: the next is read
/// and queued while the broker takes the last. After a failure the relay skips
/// the batch behind it, and nothing new is sent until both are back, so the
/// next batch starts at the failed message.
pub(super) struct Outbox {
    publish: mpsc::Sender<Publish>,
    deliveries: mpsc::Receiver<Delivery>,
    in_flight: HashMap<String, BatchesInFlight>,
    last_prune: Instant,
}

struct BatchesInFlight {
    count: usize,
    /// When the last delivery came back (or the first batch left).
    answered_at: Instant,
    /// The outbox id the newest batch ends with.
    last_id: i64,
    /// One of them failed (or was skipped): wait for the rest before reading more.
    halted: bool,
}

impl Outbox {
    pub fn new(publish: mpsc::Sender<Publish>, deliveries: mpsc::Receiver<Delivery>) -> Self {
        Outbox {
            publish,
            deliveries,
            in_flight: HashMap::new(),
            last_prune: Instant::now(),
        }
    }

    pub fn relay(&mut self, snapshot: &ConfigSnapshot) {
        // A lane that died (and was replaced) never answers for the batches
        // it held: after the deadline they are read again from the outbox,
        // where they are still pending.
        self.in_flight.retain(|name, batches| {
            let alive = batches.answered_at.elapsed() < IN_FLIGHT_DEADLINE;
            if !alive {
                pgrx::warning!("eventeum: no answer from broadcaster \"{name}\"'s lane for {IN_FLIGHT_DEADLINE:?}; sending its batches again");
            }
            alive
        });
        while let Ok(delivery) = self.deliveries.try_recv() {
            if let Some(batches) = self.in_flight.get_mut(&delivery.broadcaster) {
                batches.answered_at = Instant::now();
                batches.count -= 1;
                batches.halted |= delivery.failure.is_some() || delivery.skipped;
                if batches.count == 0 {
                    self.in_flight.remove(&delivery.broadcaster);
                }
            }
            if delivery.skipped {
                continue;
            }
            commit_or_abort(
                || format!("cannot record deliveries to \"{}\"", delivery.broadcaster),
                || store::record_delivery(&delivery),
            );
        }
        // Each broadcaster with room for a batch, and the id its next batch starts after.
        let ready: Vec<(&BroadcasterConfig, Option<i64>)> = snapshot
            .broadcasters
            .iter()
            .filter_map(|b| match self.in_flight.get(&b.name) {
                None => Some((b, None)),
                Some(f) if !f.halted && f.count < BATCHES_IN_FLIGHT => Some((b, Some(f.last_id))),
                Some(_) => None,
            })
            .collect();
        if !ready.is_empty() {
            let batches = commit_or_abort(
                || "cannot read the outbox".into(),
                || store::due_batches(&ready, RELAY_BATCH),
            );
            for batch in batches {
                let name = batch.broadcaster.clone();
                let last_id = batch.messages.last().map_or(0, |m| m.id);
                if self.publish.try_send(batch).is_ok() {
                    let batches = self.in_flight.entry(name).or_insert(BatchesInFlight {
                        count: 0,
                        answered_at: Instant::now(),
                        last_id,
                        halted: false,
                    });
                    batches.count += 1;
                    batches.last_id = last_id;
                }
            }
        }
        if self.last_prune.elapsed() >= PRUNE_EVERY {
            self.last_prune = Instant::now();
            let retention = guc::OUTBOX_RETENTION.get();
            if let Err(e) = BackgroundWorker::transaction(|| store::prune_outbox(retention)) {
                pgrx::warning!("eventeum: cannot prune the outbox: {e}");
            }
        }
    }
}
