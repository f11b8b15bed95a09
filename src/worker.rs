//! The background worker's main thread: the only thread that touches Postgres.
//!
//! Each turn of the loop it (1) republishes the configuration when
//! `config_version` moved, and (2) applies the steps the followers sent, one
//! short transaction each, acknowledging each after it committed. Network
//! work happens on the tokio runtime it owns; the two talk over channels.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, watch};

use crate::discard;
use crate::follow;
use crate::guc;
use crate::metrics::{self, Pages};
use crate::protocol::{
    BroadcasterConfig, ChainStep, ConfigSnapshot, Delivery, FollowerMessage, Publish, StepAck,
};
use crate::relay;
use crate::rpc;
use crate::store;

/// How long the postmaster waits before restarting a worker that exited.
pub const RESTART_DELAY: Duration = Duration::from_secs(5);
/// The longest the main thread sleeps; followers wake it sooner.
const TICK: Duration = Duration::from_millis(100);
/// How often to look for the extension before it is created.
const EXTENSION_POLL: Duration = Duration::from_secs(1);
const FOLLOWER_QUEUE: usize = 64;
/// How often freed memory is handed back to the system while following live
/// (see `Heap`).
const TRIM_EVERY: Duration = Duration::from_secs(5);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const RELAY_QUEUE: usize = 16;
/// Most outbox rows handed to the relay at once per broadcaster.
const RELAY_BATCH: i64 = 5_000;
/// Batches a broadcaster may have in flight at once.
const BATCHES_IN_FLIGHT: usize = 2;
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Steps with at least this many events allocate megabytes at a time.
const LARGE_STEP: usize = 5_000;
/// How long after the last large step the heap stays in bulk mode.
const BULK_LINGER: Duration = Duration::from_secs(1);
/// How often RPC counts are written and the metrics endpoint's pages rendered.
const METRICS_EVERY: Duration = Duration::from_secs(1);

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
    // COPY reads binary text fields in the client encoding; ours are UTF-8.
    if let Err(e) = BackgroundWorker::transaction(|| Spi::run("SET client_encoding = 'UTF8'")) {
        pgrx::error!("eventeum: cannot set the worker's client encoding: {e}");
    }
    let mut snapshot = Arc::new(load_snapshot());
    let (config_tx, config_rx) = watch::channel(snapshot.clone());
    let (to_main, mut from_followers) = mpsc::channel(FOLLOWER_QUEUE);
    runtime.spawn(follow::supervise(config_rx.clone(), to_main));
    let (publish_tx, publish_rx) = mpsc::channel(RELAY_QUEUE);
    let (delivery_tx, delivery_rx) = mpsc::channel(RELAY_QUEUE);
    runtime.spawn(relay::run(publish_rx, delivery_tx, config_rx));
    let mut outbox = Outbox {
        publish: publish_tx,
        deliveries: delivery_rx,
        in_flight: HashMap::new(),
        last_prune: Instant::now(),
    };
    let mut metrics = Metrics::new();
    let mut heap = Heap::steady();
    let mut reload = false;

    while BackgroundWorker::wait_latch(Some(TICK)) {
        if BackgroundWorker::sighup_received() {
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            reload = true; // bytes_to_ascii may have changed
        }
        // Every wake compares the version (one index read): the API wakes the
        // worker when a change commits, so a new filter's backfill starts at
        // once; a change made straight in the tables is seen within a tick.
        match BackgroundWorker::transaction(store::config_version) {
            Ok(Some(current)) if reload || current != snapshot.version => {
                snapshot = Arc::new(load_snapshot());
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
        loop {
            match from_followers.try_recv() {
                Ok(FollowerMessage::Step(mut step)) => {
                    if step.prepared.len() >= LARGE_STEP {
                        heap.large_step();
                    }
                    let ack = apply(&mut step, &snapshot);
                    if ack == StepAck::Stale {
                        // Publish the new configuration before the follower retries.
                        snapshot = Arc::new(load_snapshot());
                        config_tx.send_replace(snapshot.clone());
                    }
                    let _ = step.ack.send(ack);
                }
                Ok(FollowerMessage::Rewind(rewind)) => {
                    let ack = BackgroundWorker::transaction(AssertUnwindSafe(|| {
                        store::apply_rewind(&rewind, &snapshot)
                    }))
                    .unwrap_or_else(|e| {
                        pgrx::error!("eventeum: cannot rewind node \"{}\": {e}", rewind.node)
                    });
                    let _ = rewind.ack.send(ack);
                }
                Ok(FollowerMessage::NodeError { node, error }) => {
                    if let Err(e) =
                        BackgroundWorker::transaction(|| store::record_node_error(&node, &error))
                    {
                        pgrx::warning!("eventeum: cannot record the error of node \"{node}\": {e}");
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
    }
    shutdown(runtime, config_tx);
}

/// The main thread's half of metrics: writes the followers' RPC counts, and
/// while `eventeum.metrics_address` is set, renders the pages the endpoint
/// serves and (re)starts the endpoint when the address changes.
struct Metrics {
    address: Option<String>,
    server: Option<tokio::task::JoinHandle<()>>,
    pages: watch::Sender<Pages>,
    last_tick: Instant,
}

impl Metrics {
    fn new() -> Self {
        Metrics {
            address: None,
            server: None,
            pages: watch::Sender::new(Pages::default()),
            last_tick: Instant::now(),
        }
    }

    fn tick(&mut self, runtime: &tokio::runtime::Runtime) {
        if self.last_tick.elapsed() < METRICS_EVERY {
            return;
        }
        self.last_tick = Instant::now();
        let counts = rpc::take_call_counts();
        if !counts.is_empty() {
            if let Err(e) = BackgroundWorker::transaction(|| store::record_call_counts(&counts)) {
                pgrx::warning!("eventeum: cannot record RPC counts: {e}");
            }
        }
        let address = guc::metrics_address();
        if address != self.address {
            if let Some(server) = self.server.take() {
                server.abort();
            }
            self.address = address.clone();
            match address.as_deref().map(str::parse::<std::net::SocketAddr>) {
                Some(Ok(socket)) => {
                    self.render();
                    self.server =
                        Some(runtime.spawn(metrics::serve(socket, self.pages.subscribe())));
                }
                Some(Err(e)) => pgrx::warning!(
                    "eventeum: eventeum.metrics_address \"{}\" is not host:port ({e}); metrics are off",
                    address.unwrap_or_default()
                ),
                None => {}
            }
        }
        if self.server.is_some() {
            self.render();
        }
    }

    fn render(&self) {
        match BackgroundWorker::transaction(store::render_pages) {
            Ok(pages) => {
                self.pages.send_replace(pages);
            }
            Err(e) => pgrx::warning!("eventeum: cannot render metrics: {e}"),
        }
    }
}

/// The main thread's half of delivery: hands due outbox batches to the relay
/// and records what the brokers acknowledged. A broadcaster has up to
/// [`BATCHES_IN_FLIGHT`] batches in flight, in outbox order: the next is read
/// and queued while the broker takes the last. After a failure the relay skips
/// the batch behind it, and nothing new is sent until both are back, so the
/// next batch starts at the failed message.
struct Outbox {
    publish: mpsc::Sender<Publish>,
    deliveries: mpsc::Receiver<Delivery>,
    in_flight: HashMap<String, BatchesInFlight>,
    last_prune: Instant,
}

struct BatchesInFlight {
    count: usize,
    /// The outbox id the newest batch ends with.
    last_id: i64,
    /// One of them failed (or was skipped): wait for the rest before reading more.
    halted: bool,
}

impl Outbox {
    fn relay(&mut self, snapshot: &ConfigSnapshot) {
        while let Ok(delivery) = self.deliveries.try_recv() {
            if let Some(batches) = self.in_flight.get_mut(&delivery.broadcaster) {
                batches.count -= 1;
                batches.halted |= delivery.failure.is_some() || delivery.skipped;
                if batches.count == 0 {
                    self.in_flight.remove(&delivery.broadcaster);
                }
            }
            if delivery.skipped {
                continue;
            }
            if let Err(e) = BackgroundWorker::transaction(|| store::record_delivery(&delivery)) {
                pgrx::error!(
                    "eventeum: cannot record deliveries to \"{}\": {e}",
                    delivery.broadcaster
                );
            }
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
            let batches = BackgroundWorker::transaction(|| store::due_batches(&ready, RELAY_BATCH))
                .unwrap_or_else(|e| pgrx::error!("eventeum: cannot read the outbox: {e}"));
            for batch in batches {
                let name = batch.broadcaster.clone();
                let last_id = batch.messages.last().map_or(0, |m| m.id);
                if self.publish.try_send(batch).is_ok() {
                    let batches = self.in_flight.entry(name).or_insert(BatchesInFlight {
                        count: 0,
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

fn apply(step: &mut ChainStep, snapshot: &ConfigSnapshot) -> StepAck {
    // The step holds its ack channel, which is not UnwindSafe; an ERROR ends the worker anyway.
    BackgroundWorker::transaction(AssertUnwindSafe(|| store::apply_step(step, snapshot)))
        .unwrap_or_else(|e| {
            pgrx::error!(
                "eventeum: cannot store blocks {}..={} of node \"{}\": {e}",
                step.from,
                step.to,
                step.node
            )
        })
}

fn load_snapshot() -> ConfigSnapshot {
    let bytes_to_ascii = guc::BYTES_TO_ASCII.get();
    BackgroundWorker::transaction(|| store::load_snapshot(bytes_to_ascii))
        .unwrap_or_else(|e| pgrx::error!("eventeum: cannot load the configuration: {e}"))
}

/// Waits until `CREATE EXTENSION eventeum` has run, at this library's
/// version; false when asked to stop.
fn wait_for_extension() -> bool {
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

/// glibc's allocator, set for the work at hand.
///
/// Steady (live following): buffers above 128 KiB are mapped on their own and
/// unmapped when freed, and the rest of the freed heap goes back to the
/// kernel every [`TRIM_EVERY`]. With thousands of filters every live step
/// builds and drops large requests; glibc's default threshold grows after the
/// first large free, and later large buffers then fragment the heap, where
/// they stay resident.
///
/// Bulk (backfill pieces, large catch-up steps): every buffer comes from the
/// heap and nothing is handed back, so that each piece reuses the last one's
/// pages instead of faulting fresh ones in: a fifth of the main thread's time
/// went to page faults. A second after the last large step the heap is
/// trimmed and steady again.
struct Heap {
    bulk: bool,
    last_large: Instant,
    last_trim: Instant,
}

impl Heap {
    const STEADY_MMAP_THRESHOLD: i32 = 128 * 1024;
    /// glibc's largest mmap threshold (32 MiB on 64-bit).
    const BULK_MMAP_THRESHOLD: i32 = 32 * 1024 * 1024;
    const BULK_TRIM_THRESHOLD: i32 = 1024 * 1024 * 1024;

    fn steady() -> Self {
        Self::set(Self::STEADY_MMAP_THRESHOLD, Self::STEADY_MMAP_THRESHOLD);
        Heap {
            bulk: false,
            last_large: Instant::now(),
            last_trim: Instant::now(),
        }
    }

    fn large_step(&mut self) {
        self.last_large = Instant::now();
        if !self.bulk {
            self.bulk = true;
            Self::set(Self::BULK_MMAP_THRESHOLD, Self::BULK_TRIM_THRESHOLD);
        }
    }

    fn tick(&mut self) {
        if self.bulk {
            if self.last_large.elapsed() < BULK_LINGER {
                return;
            }
            self.bulk = false;
            Self::set(Self::STEADY_MMAP_THRESHOLD, Self::STEADY_MMAP_THRESHOLD);
        } else if self.last_trim.elapsed() < TRIM_EVERY {
            return;
        }
        self.last_trim = Instant::now();
        // SAFETY: malloc_trim only walks glibc's own arenas; it is thread-safe.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    fn set(mmap_threshold: i32, trim_threshold: i32) {
        // SAFETY: mallopt only sets glibc tunables; it takes the arena locks itself.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, mmap_threshold);
            libc::mallopt(libc::M_TRIM_THRESHOLD, trim_threshold);
        }
    }
}

/// A multi-threaded runtime whose threads block every signal, so that
/// Postgres' signal handlers only ever run on the main thread.
fn build_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    // Two arenas for the tokio threads besides the main one: fewer heaps to keep
    // freed memory in (glibc's default is 8 per core).
    // SAFETY: mallopt only sets a glibc tunable, before the threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 3);
    }
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut previous: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain libc signal-mask calls on this thread; threads spawned meanwhile inherit the full mask.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("eventeum-io")
        .enable_all()
        .build();
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
    }
    runtime
}

fn shutdown(runtime: tokio::runtime::Runtime, config_tx: watch::Sender<Arc<ConfigSnapshot>>) {
    drop(config_tx); // the supervisor sees the sender gone and stops the followers
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
}
