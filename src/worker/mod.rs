//! The background worker's main thread: the only thread that touches Postgres.
//!
//! Each turn of the loop it (1) republishes the configuration when
//! `config_version` moved, (2) applies the steps the followers sent, one
//! short transaction each, acknowledging each after it committed, (3) hands
//! due outbox batches to the relay ([`outbox`]), and (4) writes metrics
//! ([`metrics`]). Network work happens on the tokio runtime it owns
//! ([`runtime`]); the two talk over bounded channels.

mod heap;
mod metrics;
mod outbox;
mod runtime;

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::{log, pg_guard, pg_sys, Spi};
use pgrx::spi::SpiResult;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, watch};

use self::heap::Heap;
use self::metrics::Metrics;
use self::outbox::Outbox;
use self::runtime::{build_runtime, shutdown};
use crate::config::ConfigSnapshot;
use crate::discard;
use crate::follow;
use crate::guc;
use crate::limits::{
    EXTENSION_POLL, FOLLOWER_MESSAGES_PER_TICK, FOLLOWER_QUEUE, LARGE_STEP, RELAY_QUEUE,
    RETENTION_EVERY, TICK, WORKER_LOCK_TIMEOUT, WORKER_STATEMENT_TIMEOUT,
};
use crate::protocol::{ChainStep, FollowerMessage, StepAck};
use crate::relay;
use crate::store;
use crate::wake;

pub use crate::limits::RESTART_DELAY;

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn eventeum_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    init_tracing();
    let database = guc::database();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    log!("eventeum worker started for database \"{database}\"");
    run();
    // Exit non-zero so that the postmaster restarts us unless it is shutting down:
    // a worker that exits 0 is never restarted.
    // SAFETY: the worker's own exit, on its main thread, outside any
    // transaction; proc_exit runs Postgres' exit callbacks and does not return.
    unsafe { pg_sys::proc_exit(1) };
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Hands `eventeum.allowed_hosts` to the tokio threads, which check every
/// connection against it. A value that does not parse allows nothing.
fn install_network_policy() {
    let policy = guc::network_policy().unwrap_or_else(|e| {
        pgrx::warning!("eventeum: {e}; no node or broker is reached until it is fixed");
        crate::netpolicy::NetworkPolicy::deny_all(&e)
    });
    crate::netpolicy::install(policy);
}

/// Returns when Postgres asks us to stop, or when the extension disappears.
fn run() {
    if !wait_for_extension() {
        return;
    }
    let runtime = match build_runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            pgrx::warning!("eventeum: cannot start the tokio runtime: {e}");
            return;
        }
    };
    discard::start(&runtime);
    install_network_policy();
    // COPY reads binary text fields in the client encoding; ours are UTF-8.
    // No wait on a lock or a statement is unbounded, so SIGTERM is always seen.
    let settings = format!(
        "SET client_encoding = 'UTF8'; SET lock_timeout = '{WORKER_LOCK_TIMEOUT}'; \
         SET statement_timeout = '{WORKER_STATEMENT_TIMEOUT}'"
    );
    if let Err(e) = BackgroundWorker::transaction(|| Spi::run(&settings)) {
        pgrx::error!("eventeum: cannot set the worker's session: {e}");
    }
    let mut feeds = HashSet::new();
    let mut snapshot = Arc::new(load_snapshot(&mut feeds));
    let (config_tx, config_rx) = watch::channel(snapshot.clone());
    let (to_main, mut from_followers) = mpsc::channel(FOLLOWER_QUEUE);
    runtime.spawn(follow::supervise(config_rx.clone(), to_main));
    let (publish_tx, publish_rx) = mpsc::channel(RELAY_QUEUE);
    let (delivery_tx, delivery_rx) = mpsc::channel(RELAY_QUEUE);
    runtime.spawn(relay::run(publish_rx, delivery_tx, config_rx));
    let mut outbox = Outbox::new(publish_tx, delivery_rx);
    let mut metrics = Metrics::new();
    let mut heap = Heap::steady();
    let mut reload = false;
    let mut last_retention = Instant::now();

    // `sigterm_received` clears the flag it reads: remember that it was set.
    let mut stopping = false;
    while !stopping && BackgroundWorker::wait_latch(Some(TICK)) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: main thread, between transactions, as Postgres' own
            // processes do on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            install_network_policy();
            reload = true; // bytes_to_ascii may have changed
        }
        // Every wake compares the version (one index read): the API wakes the
        // worker when a change commits, so a new filter's backfill starts at
        // once; a change made straight in the tables is seen within a tick.
        match BackgroundWorker::transaction(store::config_version) {
            Ok(Some(current)) if reload || current != snapshot.version => {
                snapshot = Arc::new(load_snapshot(&mut feeds));
                config_tx.send_replace(snapshot.clone());
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                log!("eventeum: the extension was dropped; the worker restarts and waits for it");
                break;
            }
            Err(e) => pgrx::error!("eventeum: cannot read the configuration version: {e}"),
        }
        reload = false;
        for turn in 0..=FOLLOWER_MESSAGES_PER_TICK {
            if BackgroundWorker::sigterm_received() {
                stopping = true;
                break;
            }
            if turn == FOLLOWER_MESSAGES_PER_TICK {
                // More may be queued: come straight back after the outbox.
                wake::wake_main_thread();
                break;
            }
            match from_followers.try_recv() {
                Ok(FollowerMessage::Step(mut step)) => {
                    if step.prepared.len() >= LARGE_STEP {
                        heap.large_step();
                    }
                    let ack = apply(&mut step, &snapshot);
                    if ack == StepAck::Stale {
                        // Publish the new configuration before the follower retries.
                        snapshot = Arc::new(load_snapshot(&mut feeds));
                        config_tx.send_replace(snapshot.clone());
                    }
                    let _ = step.ack.send(ack);
                }
                Ok(FollowerMessage::Rewind(rewind)) => {
                    let ack = commit_or_abort(
                        || format!("cannot rewind node \"{}\"", rewind.node),
                        || store::apply_rewind(&rewind, &snapshot),
                    );
                    let _ = rewind.ack.send(ack);
                }
                Ok(FollowerMessage::NodeError {
                    node,
                    error,
                    status,
                }) => {
                    if let Err(e) = BackgroundWorker::transaction(|| {
                        store::record_node_error(&node, &error, status)
                    }) {
                        pgrx::warning!("eventeum: cannot record the error of node \"{node}\": {e}");
                    }
                }
                Ok(FollowerMessage::Endpoints {
                    node,
                    chain_id,
                    endpoints,
                }) => {
                    if let Err(e) = BackgroundWorker::transaction(|| {
                        store::record_endpoints(&node, chain_id, &endpoints)
                    }) {
                        pgrx::warning!("eventeum: cannot record the urls of node \"{node}\": {e}");
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    pgrx::warning!(
                        "eventeum: the follower supervisor stopped; restarting the worker"
                    );
                    return shutdown(runtime, config_tx);
                }
            }
        }
        heap.tick();
        outbox.relay(&snapshot);
        metrics.tick(&runtime);
        if last_retention.elapsed() >= RETENTION_EVERY {
            last_retention = Instant::now();
            commit_or_abort(
                || "cannot apply the nodes' retention".into(),
                || store::retain(&snapshot),
            );
        }
    }
    shutdown(runtime, config_tx);
}

fn apply(step: &mut ChainStep, snapshot: &ConfigSnapshot) -> StepAck {
    let (from, to, node) = (step.from, step.to, step.node.clone());
    // Partitions first, in a short transaction of their own: the step's
    // transaction then takes no lock a reader of the kind tables waits for.
    if !step.prepared.copies.is_empty() {
        commit_or_abort(
            || format!("cannot make the partitions of blocks {from}..={to} of node \"{node}\""),
            || Spi::connect_mut(|client| store::prepare_for_step(client, step, snapshot)),
        );
    }
    commit_or_abort(
        || format!("cannot store blocks {from}..={to} of node \"{node}\""),
        || store::apply_step(step, snapshot),
    )
}

/// Loads the configuration, then adds the children of factory events
/// stored before their factory's feed was configured (see
/// `store::catch_up_children`); `feeds` holds those already caught up.
fn load_snapshot(feeds: &mut HashSet<store::FeedKey>) -> ConfigSnapshot {
    let bytes_to_ascii = guc::BYTES_TO_ASCII.get();
    let snapshot = commit_or_abort(
        || "cannot load the configuration".into(),
        || store::load_snapshot(bytes_to_ascii),
    );
    commit_or_abort(
        || "cannot add the children of stored factory events".into(),
        || store::catch_up_children(&snapshot, feeds),
    );
    snapshot
}

/// Runs `work` in a transaction of its own that commits only when it returns
/// `Ok`. An `Err` raises an ERROR inside the transaction, so that nothing it
/// half-wrote commits (`BackgroundWorker::transaction` commits whatever its
/// closure returns); the worker then ends, and the postmaster restarts it
/// from the committed checkpoint.
pub(crate) fn commit_or_abort<T>(
    what: impl FnOnce() -> String,
    work: impl FnOnce() -> SpiResult<T>,
) -> T {
    // The work may hold channels, which are not UnwindSafe; an ERROR ends the worker anyway.
    BackgroundWorker::transaction(AssertUnwindSafe(|| match work() {
        Ok(value) => value,
        Err(e) => pgrx::error!("eventeum: {}: {e}", what()),
    }))
}

/// Waits until `CREATE EXTENSION eventeum` has run, at this library's
/// version; false when asked to stop.
pub(crate) fn wait_for_extension() -> bool {
    const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");
    let mut warned = false;
    loop {
        match BackgroundWorker::transaction(store::installed_version) {
            Ok(Some(version)) if version == LIBRARY_VERSION => return true,
            Ok(Some(version)) if !warned => {
                warned = true;
                pgrx::warning!(
                    "eventeum: the schema is at version {version} but the library is {LIBRARY_VERSION}; \
                     the worker waits for ALTER EXTENSION eventeum UPDATE"
                );
            }
            Ok(_) => {}
            Err(e) => pgrx::warning!("eventeum: cannot look for the extension: {e}"),
        }
        if !BackgroundWorker::wait_latch(Some(EXTENSION_POLL)) {
            return false;
        }
    }
}
