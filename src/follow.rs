//! Following: one task per node walks the chain block range by block range,
//! fetches the logs of all the node's filters in one merged `eth_getLogs`,
//! decodes them and hands each step to the main thread. It advances only
//! once the main thread has committed the step. Runs on tokio threads only.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{hex, Address, B256};
use alloy::rpc::types::{Log, Transaction};
use futures::stream::{self, StreamExt, TryStreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::decode::{decode_log_with_topic0, RawLog, RenderOptions};
use crate::node::BlockStrategy;
use crate::protocol::{
    Backfill, BlockHeader, ChainStep, ConfigSnapshot, DecodedEvent, FilterConfig, FollowerMessage,
    LogPosition, MatchedTransaction, MonitorConfig, NodeConfig, Rewind, StepAck, StepKind,
    UndecodableLog,
};
use crate::redact::redact_url;
use crate::rows::prepare_events;
use crate::rpc::{HeadSubscription, NodeClient, RpcError};

/// Blocks per `eth_getLogs` when the node sets no `maxBlocksToSync`.
const DEFAULT_RANGE: u64 = 2_000;
/// Fewer logs than this in an answer lets the range grow again.
const SMALL_ANSWER: usize = 1_000;
/// Block fetches in flight at once per follower.
const FETCH_CONCURRENCY: usize = 8;
/// Blocks in a backfill's first `eth_getLogs`; later ranges follow the density.
const BACKFILL_FIRST_RANGE: u64 = 1;
/// Logs per backfill piece: each piece commits in a transaction of its own.
pub const BACKFILL_PIECE_LOGS: usize = 10_000;
/// Backfill pieces queued for the main thread and not yet committed.
const BACKFILL_IN_FLIGHT: usize = 2;
/// How long one turn of backfilling lasts before live following gets a turn.
const BACKFILL_TURN: Duration = Duration::from_secs(5);
/// How long a follower waits for the main thread to commit a step. After
/// that it fetches the range again; the store ignores what it already has.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Wakes the main thread, which sleeps on its latch. A process-directed
/// SIGUSR1 reaches the only thread that does not block signals (the main
/// thread), where Postgres' own handler sets the latch.
pub fn wake_main_thread() {
    // SAFETY: kill(2) on our own pid is async-signal-safe and touches no Postgres state.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGUSR1);
    }
}

/// Starts, restarts and stops one follower per configured node as the
/// published configuration changes. Returns when the main thread drops the
/// configuration sender.
pub async fn supervise(
    mut config: watch::Receiver<Arc<ConfigSnapshot>>,
    to_main: mpsc::Sender<FollowerMessage>,
) {
    let mut running: HashMap<String, (NodeConfig, JoinHandle<()>)> = HashMap::new();
    loop {
        let snapshot = config.borrow_and_update().clone();
        running.retain(|name, (current, handle)| match snapshot.nodes.get(name) {
            Some(node) if !current.needs_restart(node) && !handle.is_finished() => true,
            _ => {
                handle.abort();
                false
            }
        });
        for (name, node) in &snapshot.nodes {
            if !running.contains_key(name) {
                tracing::info!(node = %name, url = %redact_url(&node.url), "following node");
                let task = Follower {
                    node: node.clone(),
                    config: config.clone(),
                    to_main: to_main.clone(),
                };
                running.insert(name.clone(), (node.clone(), tokio::spawn(task.run())));
            }
        }
        if config.changed().await.is_err() {
            break;
        }
    }
    for (_, (_, handle)) in running {
        handle.abort();
    }
}

struct Follower {
    node: NodeConfig,
    config: watch::Receiver<Arc<ConfigSnapshot>>,
    to_main: mpsc::Sender<FollowerMessage>,
}

enum Progress {
    Advanced,
    CaughtUp,
    Retry,
}

/// What the follower knows of the chain it has committed.
struct Position {
    /// The last committed block; None before the first contact.
    cursor: Option<u64>,
    /// Committed canonical hashes within the fork window.
    known: BTreeMap<u64, B256>,
    /// Blocks per `eth_getLogs`: halved when the node refuses a range, grown
    /// again while answers are small.
    range: u64,
    /// Blocks per backfill `eth_getLogs`: sized by the log density seen so
    /// far, starting small so that a dense start does not arrive all at once.
    backfill_range: u64,
    /// Backfills of filters with a `startBlock`, by filter id, with when the
    /// filter was added: a filter removed and added again is a new filter.
    backfills: HashMap<String, (i64, Backfill)>,
    /// The configuration version `backfills` was last checked against.
    checked_version: Option<i64>,
    /// The `newHeads` subscription of a PUBSUB node, while it is live.
    heads: Option<HeadSubscription>,
}

impl Position {
    /// Waits for the next block: pushed by the node when subscribed, else (or
    /// if the push does not come) after one polling interval.
    async fn wait_for_head(&mut self, poll: Duration) {
        let Some(heads) = &mut self.heads else {
            return tokio::time::sleep(poll).await;
        };
        match tokio::time::timeout(poll, heads.recv()).await {
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) | Err(_) => {}
            Ok(Err(RecvError::Closed)) => self.heads = None, // resubscribe next turn
        }
    }

    fn shrink_range(&mut self) {
        self.range = (self.range / 2).max(1);
        self.backfill_range = self.backfill_range.min(self.range);
    }

    fn grow_range(&mut self, logs: usize, cap: u64) {
        if logs < SMALL_ANSWER {
            self.range = (self.range * 2).min(cap);
        }
    }

    /// A new backfill starts small again: ranges sized for the last filter's
    /// logs may be far too large for this one, and its first rows would wait
    /// for the whole first range.
    fn restart_backfill_ranges(&mut self) {
        self.backfill_range = BACKFILL_FIRST_RANGE.min(self.range);
    }

    /// Sizes the next backfill range from the log density of the last one
    /// (`blocks` blocks, `logs` logs), toward two pieces per range: enough
    /// that one piece commits while the next range is fetched.
    fn size_backfill_range(&mut self, blocks: u64, logs: usize, cap: u64) {
        let target = 2 * BACKFILL_PIECE_LOGS as u64;
        let sized = if logs == 0 {
            blocks.saturating_mul(2)
        } else {
            (blocks.saturating_mul(target) / logs as u64).min(blocks.saturating_mul(2))
        };
        self.backfill_range = sized.clamp(1, cap.min(self.range));
    }
}

/// A range to fetch next, or a fork to rewind.
enum Plan {
    Range {
        from: u64,
        to: u64,
        headers: BTreeMap<u64, BlockHeader>,
        transactions: Vec<Transaction>,
    },
    Fork {
        ancestor: u64,
        canonical: Vec<B256>,
        deep: bool,
    },
    Wait,
}

impl Follower {
    async fn run(mut self) {
        let options = self.node.options.clone();
        let poll = Duration::from_millis(options.polling_interval);
        let pubsub = options.block_strategy == BlockStrategy::Pubsub;
        let mut backoff = BACKOFF_START;
        let mut client: Option<NodeClient> = None;
        // Crash-only: resume from the committed checkpoint, replaying a few
        // blocks in case they changed while we were away.
        let mut position = Position {
            cursor: self
                .node
                .checkpoint
                .map(|c| c.saturating_sub(options.num_blocks_to_replay)),
            known: std::mem::take(&mut self.node.recent_blocks),
            range: range_cap(&options),
            backfill_range: BACKFILL_FIRST_RANGE.min(range_cap(&options)),
            backfills: HashMap::new(),
            checked_version: None,
            heads: None,
        };
        loop {
            let result = match &client {
                Some(client) => {
                    if pubsub && position.heads.is_none() {
                        match client.subscribe_heads().await {
                            Ok(heads) => {
                                tracing::info!(node = %self.node.name, "subscribed to newHeads");
                                position.heads = Some(heads);
                            }
                            // Poll meanwhile; the next turn tries again.
                            Err(error) => {
                                tracing::warn!(node = %self.node.name, %error, "cannot subscribe to newHeads; polling")
                            }
                        }
                    }
                    // Seen: a configuration published from now on ends the wait below.
                    self.config.borrow_and_update();
                    self.step(client, &mut position).await
                }
                None => NodeClient::connect(&self.node.name, &self.node.url, &options)
                    .await
                    .map(|c| {
                        client = Some(c);
                        Progress::Retry
                    }),
            };
            match result {
                Ok(Progress::Advanced | Progress::Retry) => backoff = BACKOFF_START,
                Ok(Progress::CaughtUp) => {
                    backoff = BACKOFF_START;
                    // A new filter's backfill starts now, not at the next poll or head.
                    let config = &mut self.config;
                    tokio::select! {
                        () = position.wait_for_head(poll) => {}
                        Ok(()) = config.changed() => {}
                    }
                }
                Err(error) if error.is_range_limit() => {
                    position.shrink_range();
                    tracing::info!(node = %self.node.name, %error, range = position.range, "node refused the range; splitting it");
                }
                Err(error) => {
                    tracing::warn!(node = %self.node.name, %error, "node call failed; retrying in {backoff:?}");
                    let _ = self.to_main.try_send(FollowerMessage::NodeError {
                        node: self.node.name.clone(),
                        error: error.to_string(),
                    });
                    wake_main_thread();
                    // Connect afresh: a dead websocket does not come back by itself.
                    client = None;
                    position.heads = None;
                    tokio::time::sleep(backoff).await;
                    // A node that is down is checked again at least every healthcheckInterval.
                    let cap = BACKOFF_CAP.min(Duration::from_millis(options.healthcheck_interval));
                    backoff = (backoff * 2).min(cap);
                }
            }
        }
    }

    /// Checks the chain, then fetches, decodes and hands over the next block
    /// range, the fork to rewind, or a piece of a backfill.
    async fn step(
        &self,
        client: &NodeClient,
        position: &mut Position,
    ) -> Result<Progress, RpcError> {
        let snapshot = self.config.borrow().clone();
        let Some(node) = snapshot.nodes.get(&self.node.name) else {
            return Ok(Progress::CaughtUp); // removed; the supervisor stops us
        };
        if position.checked_version != Some(snapshot.version) {
            position.checked_version = Some(snapshot.version);
            // Forget the backfills of filters removed, even if added again.
            let added: HashMap<&str, i64> = node
                .filters
                .iter()
                .map(|f| (f.id.as_str(), f.added_at))
                .collect();
            position
                .backfills
                .retain(|id, (at, _)| added.get(id.as_str()) == Some(at));
            for filter in &node.filters {
                if let Some(stored) = filter.backfill {
                    if let Entry::Vacant(entry) = position.backfills.entry(filter.id.clone()) {
                        entry.insert((filter.added_at, stored));
                        position.restart_backfill_ranges();
                    }
                }
            }
        }
        let options = &node.options;
        let head = client.head().await?;

        let Some(last) = position.cursor else {
            // First contact: commit the starting point before fetching anything,
            // so that a crash right after cannot move the start to a later head.
            let start = head.saturating_sub(options.num_blocks_to_replay);
            let header = client.block_header(start).await?;
            let kind = StepKind::Live {
                headers: vec![header],
                new_backfills: new_backfills(node, position, start),
                blocks: vec![],
                transactions: vec![],
            };
            return self
                .hand_over(
                    &snapshot,
                    node,
                    start + 1,
                    start,
                    head,
                    kind,
                    vec![],
                    vec![],
                    position,
                )
                .await;
        };

        let needs = BlockNeeds {
            every_block: options.block_notification || !node.monitors.is_empty(),
            transactions: !node.monitors.is_empty(),
        };
        let (from, to, headers, transactions) =
            match plan(client, position, last, head, options, needs).await? {
                Plan::Wait => {
                    // A filter with a startBlock may arrive while the chain is
                    // idle: register its backfill now, not at the next block.
                    let started = new_backfills(node, position, last);
                    if !started.is_empty() {
                        let kind = StepKind::Live {
                            headers: vec![],
                            new_backfills: started,
                            blocks: vec![],
                            transactions: vec![],
                        };
                        self.hand_over(
                            &snapshot,
                            node,
                            last + 1,
                            last,
                            head,
                            kind,
                            vec![],
                            vec![],
                            position,
                        )
                        .await?;
                    }
                    return self.backfill(client, &snapshot, node, head, position).await;
                }
                Plan::Fork {
                    ancestor,
                    canonical,
                    deep,
                } => {
                    return self
                        .rewind(node, ancestor, canonical, deep, head, position)
                        .await;
                }
                Plan::Range {
                    from,
                    to,
                    headers,
                    transactions,
                } => (from, to, headers, transactions),
            };
        let transactions = match_transactions(client, node, &transactions).await?;

        let (events, failures) = if node.filters.is_empty() {
            (vec![], vec![])
        } else {
            let logs = client
                .logs(from, to, addresses(&node.filters), topics(&node.filters))
                .await?;
            position.grow_range(logs.len(), range_cap(options));
            // The logs must come from the blocks whose headers we checked; if the
            // chain moved in between, take the step again.
            let moved = logs.iter().any(|l| match (l.block_number, l.block_hash) {
                (Some(n), Some(h)) => headers.get(&n).is_some_and(|header| header.hash != h),
                _ => false,
            });
            if moved {
                return Ok(Progress::Retry);
            }
            let timestamps = block_timestamps(client, &logs, &headers).await?;
            let render = RenderOptions {
                bytes_to_ascii: snapshot.bytes_to_ascii,
            };
            decode_logs(&node.filters, &logs, &timestamps, render)
        };

        let window_start = head.saturating_sub(options.fork_window());
        let blocks: Vec<BlockHeader> = if options.block_notification {
            headers.values().copied().collect()
        } else {
            vec![]
        };
        let kind = StepKind::Live {
            headers: headers
                .into_values()
                .filter(|h| h.number >= window_start)
                .collect(),
            new_backfills: new_backfills(node, position, last),
            blocks,
            transactions,
        };
        self.hand_over(
            &snapshot, node, from, to, head, kind, events, failures, position,
        )
        .await
    }

    /// Backfills the first pending filter for one turn: ranges of its logs
    /// alone, handed over in pieces of about [`BACKFILL_PIECE_LOGS`], with the
    /// next range fetched while the main thread commits the last pieces.
    async fn backfill(
        &self,
        client: &NodeClient,
        snapshot: &ConfigSnapshot,
        node: &NodeConfig,
        head: u64,
        position: &mut Position,
    ) -> Result<Progress, RpcError> {
        let pending = node.filters.iter().find_map(|f| {
            position
                .backfills
                .get(&f.id)
                .filter(|(_, b)| !b.is_done())
                .map(|(_, b)| (f.clone(), *b))
        });
        let (Some((filter, backfill)), Some(checkpoint)) = (pending, position.cursor) else {
            return Ok(Progress::CaughtUp);
        };
        let wait = node.options.num_blocks_to_wait;
        let turn_ends = Instant::now() + BACKFILL_TURN;
        let mut in_flight = InFlight::default();
        let mut next = backfill.current + 1;
        let fetched: Result<(), RpcError> = async {
            while next <= backfill.to && Instant::now() < turn_ends && !in_flight.failed {
                let to = backfill.to.min(next + position.backfill_range - 1);
                let logs = client
                    .logs(
                        next,
                        to,
                        vec![filter.definition.contract_address],
                        vec![filter.topic0],
                    )
                    .await?;
                position.size_backfill_range(to - next + 1, logs.len(), range_cap(&node.options));
                let timestamps = block_timestamps(client, &logs, &BTreeMap::new()).await?;
                let render = RenderOptions {
                    bytes_to_ascii: snapshot.bytes_to_ascii,
                };
                let (events, failures) =
                    decode_logs(std::slice::from_ref(&filter), &logs, &timestamps, render);
                drop(logs);
                for piece in split_into_pieces(next, to, events, failures, BACKFILL_PIECE_LOGS) {
                    // Built while the main thread still commits the last pieces.
                    let prepared = prepare_events(&node.name, piece.events, checkpoint, wait);
                    while in_flight.len() >= BACKFILL_IN_FLIGHT && !in_flight.failed {
                        in_flight.settle_oldest().await;
                    }
                    if in_flight.failed {
                        break;
                    }
                    let step = ChainStep {
                        node: node.name.clone(),
                        config_version: snapshot.version,
                        from: piece.from,
                        to: piece.to,
                        head,
                        subscribed: position.heads.is_some(),
                        kind: StepKind::Backfill {
                            filter_id: filter.id.clone(),
                            checkpoint,
                        },
                        prepared,
                        failures: piece.failures,
                        ack: in_flight.push(piece.to),
                    };
                    if !self.send_step(step).await {
                        in_flight.failed = true; // shutting down
                    }
                }
                next = to + 1;
            }
            Ok(())
        }
        .await;
        // Whatever happened, learn how far the pieces already sent got.
        while !in_flight.is_empty() {
            in_flight.settle_oldest().await;
        }
        if let Some(done) = in_flight.committed {
            if let Some((_, backfill)) = position.backfills.get_mut(&filter.id) {
                backfill.current = backfill.current.max(done);
            }
        }
        fetched?;
        Ok(if in_flight.failed {
            Progress::Retry
        } else {
            Progress::Advanced // the backfill moved; live following gets its turn
        })
    }

    /// Queues a step for the main thread and wakes it. False when the worker
    /// is shutting down.
    async fn send_step(&self, step: ChainStep) -> bool {
        if self.to_main.send(step.into()).await.is_err() {
            return false;
        }
        wake_main_thread();
        true
    }

    async fn rewind(
        &self,
        node: &NodeConfig,
        ancestor: u64,
        canonical: Vec<B256>,
        deep: bool,
        head: u64,
        position: &mut Position,
    ) -> Result<Progress, RpcError> {
        if deep {
            tracing::error!(node = %node.name, ancestor, "reorg deeper than the fork window; replaying from the oldest block it could not check");
        }
        let (ack, answer) = oneshot::channel();
        let rewind = Rewind {
            node: node.name.clone(),
            ancestor,
            canonical,
            deeper_than_window: deep,
            head,
            ack,
        };
        if self
            .to_main
            .send(FollowerMessage::Rewind(rewind))
            .await
            .is_err()
        {
            return Ok(Progress::CaughtUp);
        }
        wake_main_thread();
        if let Ok(Ok(StepAck::Committed)) = tokio::time::timeout(ACK_TIMEOUT, answer).await {
            position.cursor = Some(ancestor);
            position.known.retain(|&n, _| n <= ancestor);
        }
        Ok(Progress::Retry)
    }

    /// Sends a step and waits for the main thread to commit it; then moves the position.
    #[allow(clippy::too_many_arguments)]
    async fn hand_over(
        &self,
        snapshot: &ConfigSnapshot,
        node: &NodeConfig,
        from: u64,
        to: u64,
        head: u64,
        kind: StepKind,
        events: Vec<DecodedEvent>,
        failures: Vec<UndecodableLog>,
        position: &mut Position,
    ) -> Result<Progress, RpcError> {
        // What the position becomes once the step is committed.
        let (headers, started) = match &kind {
            StepKind::Live {
                headers,
                new_backfills,
                ..
            } => (headers.clone(), new_backfills.clone()),
            StepKind::Backfill { .. } => unreachable!("backfill pieces are sent by `backfill`"),
        };
        let (ack, answer) = oneshot::channel();
        let prepared = prepare_events(&node.name, events, to, node.options.num_blocks_to_wait);
        let step = ChainStep {
            node: node.name.clone(),
            config_version: snapshot.version,
            from,
            to,
            head,
            subscribed: position.heads.is_some(),
            kind,
            prepared,
            failures,
            ack,
        };
        if !self.send_step(step).await {
            return Ok(Progress::CaughtUp); // shutting down
        }
        match tokio::time::timeout(ACK_TIMEOUT, answer).await {
            Ok(Ok(StepAck::Committed)) => {
                for (id, backfill) in started {
                    if let Some(filter) = node.filters.iter().find(|f| f.id == id) {
                        position.backfills.insert(id, (filter.added_at, backfill));
                        position.restart_backfill_ranges();
                    }
                }
                position.cursor = Some(to);
                position
                    .known
                    .extend(headers.iter().map(|h| (h.number, h.hash)));
                let oldest = to.saturating_sub(node.options.fork_window());
                position.known.retain(|&n, _| n >= oldest && n <= to);
                Ok(if to < head {
                    Progress::Advanced
                } else {
                    Progress::CaughtUp
                })
            }
            Ok(Ok(StepAck::Stale)) => Ok(Progress::Retry),
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(node = %self.node.name, to, "step was not acknowledged; fetching it again");
                Ok(Progress::Retry)
            }
        }
    }
}

/// Backfill pieces sent to the main thread and not yet answered, oldest first.
#[derive(Default)]
struct InFlight {
    pieces: VecDeque<(u64, oneshot::Receiver<StepAck>)>,
    /// The last block of the newest committed piece.
    committed: Option<u64>,
    /// A piece was refused or not answered: the ones after it are refused
    /// too (they would leave a gap), so send no more this turn.
    failed: bool,
}

impl InFlight {
    fn len(&self) -> usize {
        self.pieces.len()
    }

    fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Tracks a piece ending at block `to`; returns the sender of its answer.
    fn push(&mut self, to: u64) -> oneshot::Sender<StepAck> {
        let (ack, answer) = oneshot::channel();
        self.pieces.push_back((to, answer));
        ack
    }

    async fn settle_oldest(&mut self) {
        let Some((to, answer)) = self.pieces.pop_front() else {
            return;
        };
        match tokio::time::timeout(ACK_TIMEOUT, answer).await {
            Ok(Ok(StepAck::Committed)) if !self.failed => self.committed = Some(to),
            Ok(Ok(StepAck::Committed)) => {}
            Ok(Ok(StepAck::Stale)) => self.failed = true,
            Ok(Err(_)) | Err(_) => {
                tracing::warn!(to, "backfill piece was not acknowledged; fetching it again");
                self.failed = true;
            }
        }
    }
}

/// A block-aligned part of a fetched backfill range, committed on its own.
#[derive(Debug)]
pub struct Piece {
    pub from: u64,
    pub to: u64,
    pub events: Vec<DecodedEvent>,
    pub failures: Vec<UndecodableLog>,
}

/// Splits the decoded logs of blocks `from..=to` into consecutive pieces of
/// about `size` logs each, cut only between blocks, so that no transaction
/// grows with the range and the first rows commit early. Every block of the
/// range is in exactly one piece; the last piece ends at `to`.
pub fn split_into_pieces(
    from: u64,
    to: u64,
    events: Vec<DecodedEvent>,
    failures: Vec<UndecodableLog>,
    size: usize,
) -> Vec<Piece> {
    let mut per_block: BTreeMap<u64, usize> = BTreeMap::new();
    for number in events
        .iter()
        .map(|e| e.position.block_number)
        .chain(failures.iter().map(|f| f.position.block_number))
    {
        *per_block.entry(number).or_default() += 1;
    }
    // The last block of each piece but the final one.
    let mut ends = Vec::new();
    let mut count = 0;
    for (&number, &logs) in &per_block {
        count += logs;
        if count >= size.max(1) && number < to {
            ends.push(number);
            count = 0;
        }
    }
    ends.push(to);
    let mut events = events.into_iter().peekable();
    let mut failures = failures.into_iter().peekable();
    let mut start = from;
    ends.into_iter()
        .map(|end| {
            let mut piece = Piece {
                from: start,
                to: end,
                events: Vec::new(),
                failures: Vec::new(),
            };
            while let Some(event) = events.next_if(|e| e.position.block_number <= end) {
                piece.events.push(event);
            }
            while let Some(failure) = failures.next_if(|f| f.position.block_number <= end) {
                piece.failures.push(failure);
            }
            start = end + 1;
            piece
        })
        .collect()
}

/// Filters with a `startBlock` that live following takes over now, after
/// block `last`: each gets a backfill of `startBlock..=last`.
fn new_backfills(node: &NodeConfig, position: &Position, last: u64) -> Vec<(String, Backfill)> {
    node.filters
        .iter()
        .filter(|f| !position.backfills.contains_key(&f.id))
        .filter_map(|f| {
            let from = f.definition.start_block?;
            // A start above `last` needs no backfill: mark it done at once.
            let current = if from > last {
                last
            } else {
                from.saturating_sub(1)
            };
            Some((
                f.id.clone(),
                Backfill {
                    from,
                    to: last,
                    current,
                },
            ))
        })
        .collect()
}

fn range_cap(options: &crate::node::NodeOptions) -> u64 {
    if options.max_blocks_to_sync > 0 {
        options.max_blocks_to_sync
    } else {
        DEFAULT_RANGE
    }
}

fn addresses(filters: &[Arc<FilterConfig>]) -> Vec<Address> {
    filters
        .iter()
        .map(|f| f.definition.contract_address)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn topics(filters: &[Arc<FilterConfig>]) -> Vec<B256> {
    filters
        .iter()
        .map(|f| f.topic0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Decides the next move: a block range whose headers continue the committed
/// chain, a fork to rewind, or nothing yet.
async fn plan(
    client: &NodeClient,
    position: &Position,
    last: u64,
    head: u64,
    options: &crate::node::NodeOptions,
    needs: BlockNeeds,
) -> Result<Plan, RpcError> {
    if head <= last {
        // Nothing new; but the tip itself may have been replaced (same height, new hash).
        return match position.known.get(&last) {
            Some(hash) if client.block_header(last).await?.hash != *hash => {
                find_fork(client, position, last, head, options).await
            }
            _ => Ok(Plan::Wait),
        };
    }
    let from = last + 1;
    let to = head.min(last + position.range);
    // Blocks: the first (to check it continues our chain), every block within
    // the fork window of the head (to remember their hashes), and every block
    // of the range when block events or monitors need them.
    let numbers: Vec<u64> = if needs.every_block {
        (from..=to).collect()
    } else {
        let window_start = head.saturating_sub(options.fork_window()).max(from + 1);
        std::iter::once(from).chain(window_start..=to).collect()
    };
    let fetched: Vec<(BlockHeader, Vec<Transaction>)> = stream::iter(numbers)
        .map(|number| async move {
            if needs.transactions {
                client.full_block(number).await
            } else {
                client.block_header(number).await.map(|h| (h, vec![]))
            }
        })
        .buffered(FETCH_CONCURRENCY)
        .try_collect()
        .await?;
    let mut headers = BTreeMap::new();
    let mut transactions = Vec::new();
    for (header, txs) in fetched {
        headers.insert(header.number, header);
        transactions.extend(txs);
    }
    if let Some(hash) = position.known.get(&last) {
        if headers[&from].parent_hash != *hash {
            return find_fork(client, position, last, head, options).await;
        }
    }
    let broken = headers
        .values()
        .zip(headers.values().skip(1))
        .any(|(a, b)| b.number == a.number + 1 && b.parent_hash != a.hash);
    if broken {
        return Ok(Plan::Wait); // the chain moved while we read it; look again
    }
    Ok(Plan::Range {
        from,
        to,
        headers,
        transactions,
    })
}

/// Which blocks a live step must read beyond the fork checks.
#[derive(Debug, Clone, Copy)]
struct BlockNeeds {
    every_block: bool,
    transactions: bool,
}

/// Matches the range's transactions against the node's monitors, and reads
/// receipts only for those matched.
async fn match_transactions(
    client: &NodeClient,
    node: &NodeConfig,
    transactions: &[Transaction],
) -> Result<Vec<MatchedTransaction>, RpcError> {
    use alloy::consensus::Transaction as _;
    use alloy::network::TransactionResponse as _;
    let mut matched = Vec::new();
    for tx in transactions {
        let (hash, from, to) = (tx.tx_hash(), tx.from(), tx.to());
        let monitors: Vec<&Arc<MonitorConfig>> = node
            .monitors
            .iter()
            .filter(|m| m.monitor.target.matches(&hash, &from, to.as_ref()))
            .collect();
        if monitors.is_empty() {
            continue;
        }
        let (Some(block_number), Some(block_hash)) = (tx.block_number, tx.block_hash) else {
            continue;
        };
        let receipt = client.receipt(hash).await?;
        let success = receipt.status();
        let revert_reason = if !success && node.options.add_transaction_revert_reason {
            client.revert_reason(tx, block_number).await
        } else {
            None
        };
        for monitor in monitors {
            matched.push(MatchedTransaction {
                monitor_id: monitor.id.clone(),
                hash,
                from,
                to,
                contract_address: receipt.contract_address,
                value: tx.value(),
                nonce: tx.nonce(),
                block_number,
                block_hash,
                transaction_index: tx.transaction_index.unwrap_or_default(),
                success,
                revert_reason: revert_reason.clone(),
            });
        }
    }
    Ok(matched)
}

/// Walks back from `last` to the newest block whose hash the node still has.
async fn find_fork(
    client: &NodeClient,
    position: &Position,
    last: u64,
    head: u64,
    options: &crate::node::NodeOptions,
) -> Result<Plan, RpcError> {
    let mut canonical = Vec::new();
    let mut number = last;
    let (ancestor, deep) = loop {
        match position.known.get(&number) {
            None => break (number, true),
            Some(hash) => {
                let header = client.block_header(number).await?;
                if header.hash == *hash {
                    break (number, false);
                }
                canonical.push(header.hash);
                if number == 0 {
                    break (0, true);
                }
                number -= 1;
            }
        }
    };
    // Eventeum's numBlocksToWaitBeforeInvalidating: act on a fork only once the
    // new chain is that many blocks past the first orphaned block.
    if head < ancestor + 1 + options.num_blocks_to_wait_before_invalidating {
        return Ok(Plan::Wait);
    }
    Ok(Plan::Fork {
        ancestor,
        canonical,
        deep,
    })
}

impl From<ChainStep> for FollowerMessage {
    fn from(step: ChainStep) -> Self {
        FollowerMessage::Step(Box::new(step))
    }
}

/// Timestamps of the blocks the logs are in: from the logs (`blockTimestamp`),
/// the headers already fetched, or else one header fetch per block.
async fn block_timestamps(
    client: &NodeClient,
    logs: &[Log],
    headers: &BTreeMap<u64, BlockHeader>,
) -> Result<BTreeMap<u64, u64>, RpcError> {
    let mut timestamps: BTreeMap<u64, u64> =
        headers.values().map(|h| (h.number, h.timestamp)).collect();
    for log in logs {
        if let (Some(number), Some(ts)) = (log.block_number, log.block_timestamp) {
            timestamps.insert(number, ts);
        }
    }
    let missing: BTreeSet<u64> = logs
        .iter()
        .filter_map(|l| l.block_number)
        .filter(|n| !timestamps.contains_key(n))
        .collect();
    for number in missing {
        timestamps.insert(number, client.block_header(number).await?.timestamp);
    }
    Ok(timestamps)
}

/// Matches each log to the filters with its address and topic0, and decodes it
/// once per matching filter. Logs that do not decode are kept, with the reason.
pub fn decode_logs(
    filters: &[Arc<FilterConfig>],
    logs: &[Log],
    timestamps: &BTreeMap<u64, u64>,
    options: RenderOptions,
) -> (Vec<DecodedEvent>, Vec<UndecodableLog>) {
    let mut events = Vec::new();
    let mut failures = Vec::new();
    // A checksum is a keccak hash; most logs come from a few contracts.
    let mut checksums: HashMap<Address, String> = HashMap::new();
    for log in logs.iter().filter(|l| !l.removed) {
        let (Some(block_number), Some(block_hash), Some(tx_hash), Some(log_index)) = (
            log.block_number,
            log.block_hash,
            log.transaction_hash,
            log.log_index,
        ) else {
            continue; // pending logs have no position yet
        };
        let topics = log.topics();
        let Some(topic0) = topics.first() else {
            continue;
        };
        let position = LogPosition {
            address: checksums
                .entry(log.address())
                .or_insert_with(|| log.address().to_checksum(None))
                .clone(),
            block_number,
            block_hash: hex::encode_prefixed(block_hash),
            block_timestamp: timestamps.get(&block_number).copied(),
            transaction_hash: hex::encode_prefixed(tx_hash),
            log_index,
        };
        let matching = filters.iter().filter(|f| {
            f.topic0 == *topic0
                && f.definition.contract_address == log.address()
                && f.definition
                    .start_block
                    .is_none_or(|start| block_number >= start)
        });
        for filter in matching {
            let raw = RawLog {
                topics,
                data: &log.data().data,
            };
            match decode_log_with_topic0(&filter.definition, filter.topic0, raw, options) {
                Ok(parameters) => events.push(DecodedEvent {
                    filter: filter.clone(),
                    position: position.clone(),
                    parameters,
                }),
                Err(error) => failures.push(UndecodableLog {
                    filter_id: filter.id.clone(),
                    position: position.clone(),
                    topics: topics.to_vec(),
                    data: log.data().data.to_vec(),
                    reason: error.to_string(),
                }),
            }
        }
    }
    (events, failures)
}
