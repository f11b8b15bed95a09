//! Every tunable bound of the pipeline in one place: batch and piece sizes,
//! channel capacities, timeouts and back-off. Any thread.
//!
//! Each bound keeps something finite: the memory the worker holds inside the
//! database server, the time a wait may take (so that SIGTERM is always
//! noticed), or the work one transaction does. Limits that belong to a format
//! (NOTIFY's payload size, COPY's header) stay with that format.

#![warn(missing_docs)]

use std::time::Duration;

// --- following a node (tokio) ---------------------------------------------

/// Blocks per `eth_getLogs` when the node sets no `maxBlockRange`.
pub const DEFAULT_RANGE: u64 = 2_000;
/// Fewer logs than this in an answer lets the range grow again.
pub const SMALL_ANSWER: usize = 1_000;
/// The most addresses one `eth_getLogs` lists; longer lists are chunked.
pub const ADDRESSES_PER_QUERY: usize = 500;
/// Above this many addresses a node's filters are asked by topic only and
/// matched locally: a large set costs the calls of a small one.
pub const TOPIC_ONLY_ABOVE: usize = 2_000;
/// The most values a topic filter passes to the node; beyond, it is matched locally.
pub const VALUES_PER_TOPIC: usize = 500;
/// Block fetches in flight at once per follower.
pub const FETCH_CONCURRENCY: usize = 8;
/// Blocks in a backfill's first `eth_getLogs`; later ranges follow the density.
pub const BACKFILL_FIRST_RANGE: u64 = 1;
/// Logs per backfill piece: each piece commits in a transaction of its own.
/// Small, because what a piece holds on its way to the main thread (rows,
/// COPY data, messages: about 3 kB a log) is most of the worker's memory.
pub const BACKFILL_PIECE_LOGS: usize = 2_500;
/// Logs a backfill `eth_getLogs` range is sized for: two pieces, so that a
/// rate-limited provider is asked few, large questions, while the answer
/// (held twice as it is parsed: the body and alloy's raw result) stays near
/// 4 MB a copy.
pub const BACKFILL_RANGE_LOGS: usize = 5_000;
/// Logs a backfill range is sized for when the node refused a call for its
/// rate limit within [`RATE_LIMITED_RECENTLY`]: each refusal costs its
/// `Retry-After`, so fewer, larger questions; the answer's size stays bound
/// by `maxResponseBytes`. Against the bench's hostile proxy, ranges of 5,000
/// logs ran at 0.09–0.13 of the clean rate, of 10,000 at 0.17–0.22.
pub const BACKFILL_RANGE_LOGS_RATE_LIMITED: usize = 20_000;
/// How long a rate-limit refusal keeps backfill ranges large.
pub const RATE_LIMITED_RECENTLY: Duration = Duration::from_secs(60);
/// Logs above which a live step (a catch-up after an outage, say) is cut
/// into pieces of this many, each committed on its own.
pub const LIVE_PIECE_LOGS: usize = BACKFILL_PIECE_LOGS;
/// Backfill pieces built and not yet committed, the one being built
/// included: one commits while the next is built and queued.
pub const BACKFILL_IN_FLIGHT: usize = 2;
/// How long one turn of backfilling lasts before live following gets a turn.
pub const BACKFILL_TURN: Duration = Duration::from_secs(5);
/// How long a follower waits for the main thread to commit a step. After
/// that it fetches the range again; the store ignores what it already has.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the supervisor checks that every follower still runs.
pub const SUPERVISE_EVERY: Duration = Duration::from_secs(1);
/// Failures in a row of the URL serving a node before the next URL serves.
pub const FAILOVER_AFTER: u32 = 2;
/// The first wait after a failed node call; it doubles on each failure.
pub const BACKOFF_START: Duration = Duration::from_millis(250);
/// The longest wait between calls to a failing node (also capped by its
/// `healthcheckInterval`).
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Retries of one call a node refused for its rate limit, before the step
/// gives up and the follower backs off.
pub const RATE_LIMIT_RETRIES: u32 = 8;
/// The first wait before retrying a rate-limited call; it doubles per retry.
pub const RATE_LIMIT_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between retries of a rate-limited call, `Retry-After`
/// included: a node cannot park a follower (and its SIGTERM) for long.
pub const RATE_LIMIT_BACKOFF_CAP: Duration = Duration::from_secs(10);
/// How long a follower waits before a smaller range after a range refusal.
pub const RANGE_REFUSAL_DELAY: Duration = Duration::from_millis(200);
/// Heads a follower remembers with when it read them, to tell where a
/// registration committed while it was following starts.
pub const HEADS_REMEMBERED: usize = 256;
/// A head read at most this long before a registration tells where it
/// starts; an older one only bounds it, with the block timestamps.
pub const FRESH_HEAD: Duration = Duration::from_secs(5);
/// How far block timestamps may run behind the database server's clock.
/// A registration the follower did not see commit (the worker was away, or
/// the node is new) starts at the first block stamped at most this long
/// before it: a block built before the commit but seen after it (late
/// blocks, slow sequencers) is never skipped.
pub const REGISTRATION_CLOCK_MARGIN: Duration = Duration::from_secs(15);
/// How close to the head a block must be for its `logsBloom` to be checked
/// against an `eth_getLogs` answer with none of its logs: lagging backends
/// miss the newest blocks.
pub const LAGGING_WINDOW: u64 = 8;
/// How long a follower waits before asking again after an incomplete answer.
pub const LAGGING_RETRY_DELAY: Duration = Duration::from_millis(500);
/// Most blocks fetched with their transactions in one step (monitors): full
/// blocks are large.
pub const FULL_BLOCKS_PER_STEP: u64 = 100;

// --- between the threads ---------------------------------------------------

/// Follower messages (steps, rewinds, errors) queued for the main thread.
pub const FOLLOWER_QUEUE: usize = 64;
/// Relay messages (deliveries) queued for the main thread.
pub const RELAY_QUEUE: usize = 16;
/// Leftovers queued to be freed on a tokio thread (a piece leaves three);
/// when full, the main thread frees them itself. Small: what waits here is
/// memory the worker still holds.
pub const DISCARD_QUEUE: usize = 6;

// --- the relay (tokio) -----------------------------------------------------

/// Most outbox rows handed to the relay at once per broadcaster.
pub const RELAY_BATCH: i64 = 5_000;
/// Batches a broadcaster may have in flight at once: the broker takes one
/// while the next is read from the outbox and handed to it.
pub const BATCHES_IN_FLIGHT: usize = 2;
/// Batches queued for one lane; the main thread has at most
/// [`BATCHES_IN_FLIGHT`] per broadcaster, so handing one over never waits.
pub const LANE_QUEUE: usize = BATCHES_IN_FLIGHT;
/// How long a broadcaster's batches may go without any answer from its lane
/// before the main thread reads them again from the outbox (a lane that
/// panicked is replaced, and what it held is sent again). Far above the
/// time a lane takes for a batch against a slow broker.
pub const IN_FLIGHT_DEADLINE: Duration = Duration::from_secs(600);
/// One HTTP delivery, connection included.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// One RabbitMQ connect, declare or publish confirm.
pub const RABBIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Kafka waits `requestTimeoutMs` for a delivery, plus this much for the
/// producer's own bookkeeping.
pub const KAFKA_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);
/// How long connecting to a broadcaster ahead of its first batch may take. A
/// broker that is down then is tried again, and its failure recorded, when a
/// batch comes.
pub const CONNECT_AHEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a host name's lookup may take before `eventeum.allowed_hosts`
/// can judge its addresses.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

// --- the worker's main thread ----------------------------------------------

/// The longest the main thread sleeps; followers and the SQL API wake it sooner.
pub const TICK: Duration = Duration::from_millis(100);
/// How often to look for the extension before it is created.
pub const EXTENSION_POLL: Duration = Duration::from_secs(1);
/// How long the tokio runtime gets to stop its tasks on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How often delivered outbox rows past their retention are deleted.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// How often RPC counts are written.
pub const METRICS_EVERY: Duration = Duration::from_secs(1);
/// How often the metrics endpoint's pages are rendered (they count the
/// outbox backlog); Prometheus scrapes every 15 s or more.
pub const METRICS_RENDER_EVERY: Duration = Duration::from_secs(5);
/// Follower messages the main thread applies per turn of its loop before it
/// looks at SIGTERM, the outbox and the metrics again.
pub const FOLLOWER_MESSAGES_PER_TICK: usize = 16;
/// The worker's `lock_timeout`: a step that waits this long for a lock (an
/// admin's `LOCK TABLE`, say) fails and is taken again, so the worker always
/// gets back to its loop and to SIGTERM.
pub const WORKER_LOCK_TIMEOUT: &str = "5s";
/// The worker's `statement_timeout`: far above any one step's statement.
pub const WORKER_STATEMENT_TIMEOUT: &str = "5min";
/// Steps with at least this many events allocate megabytes at a time.
pub const LARGE_STEP: usize = 2_000;
/// Steps with more events than this get [`LARGE_STEP_WORK_MEM`], so that
/// their arrays and sorts stay in memory instead of temp files.
pub const LARGE_STEP_EVENTS: usize = 10_000;
/// `work_mem` for the transaction of a step above [`LARGE_STEP_EVENTS`].
pub const LARGE_STEP_WORK_MEM: &str = "256MB";
/// How long after the last large step the heap stays in bulk mode.
pub const BULK_LINGER: Duration = Duration::from_secs(1);
/// How often freed memory is handed back to the system while following live.
pub const TRIM_EVERY: Duration = Duration::from_secs(5);
/// How long the postmaster waits before restarting a worker that exited.
pub const RESTART_DELAY: Duration = Duration::from_secs(5);
/// How often the worker looks for partitions its nodes' retention removes.
pub const RETENTION_EVERY: Duration = Duration::from_secs(5);
/// Most partitions one retention pass looks at per node: the rest wait for
/// the next pass, so a first pass over years of partitions stays short.
pub const RETENTION_PARTITIONS_PER_PASS: usize = 16;
/// Most rows of each of a node's blocks, monitored transactions and
/// undecodable logs one retention pass deletes: a first pass over years of
/// blocks stays short, and the rest goes at this many every pass.
pub const RETENTION_ROWS_PER_PASS: usize = 5_000;
/// How long dropping a partition waits for its kind table's lock before
/// it gives up until the next pass.
pub const RETENTION_LOCK_TIMEOUT: &str = "100ms";
