//! Handing steps over (tokio): a step is queued for the main thread, and
//! the follower's position moves only once the main thread answers that it
//! committed. A live step with many events is cut into pieces, each
//! committed on its own, as a backfill is.

use alloy::primitives::B256;
use tokio::sync::{mpsc, oneshot};

use super::factory::children_of;
use super::pieces::split_into_pieces;
use super::position::Position;
use crate::config::{Backfill, BackfillOf, BlockHeader, ConfigSnapshot, NodeConfig};
use crate::limits::{ACK_TIMEOUT, LIVE_PIECE_LOGS};
use crate::protocol::{ChainStep, FollowerMessage, MatchedTransaction, Rewind, StepAck, StepKind};
use crate::rows::{prepare_events, Audience, DecodedEvent, UndecodableLog};
use crate::rpc::NodeClient;
use crate::wake::wake_main_thread;

/// A follower's way to the main thread: its bounded queue, and the wake
/// that goes with every message.
#[derive(Clone)]
pub(super) struct MainThread {
    queue: mpsc::Sender<FollowerMessage>,
}

impl MainThread {
    pub fn new(queue: mpsc::Sender<FollowerMessage>) -> Self {
        MainThread { queue }
    }

    /// Queues a message, waiting for room, and wakes the main thread. False
    /// when the worker is shutting down.
    pub async fn send(&self, message: FollowerMessage) -> bool {
        if self.queue.send(message).await.is_err() {
            return false;
        }
        wake_main_thread();
        true
    }

    /// Queues a report (health, an error) if there is room, and wakes the
    /// main thread: a report is superseded by the next, so none waits.
    pub fn report(&self, message: FollowerMessage) {
        let _ = self.queue.try_send(message);
        wake_main_thread();
    }
}

/// What a turn of a follower made of the chain.
pub(super) enum Progress {
    Advanced,
    CaughtUp,
    Retry,
}

impl Progress {
    /// After committing up to block `to` with the node's head at `head`.
    pub fn after(to: u64, head: u64) -> Self {
        if to < head {
            Progress::Advanced
        } else {
            Progress::CaughtUp
        }
    }
}

/// What the steps of one follower turn share: the node's client, the
/// published snapshot and the node as configured in it, and the way to the
/// main thread.
pub(super) struct Turn<'a> {
    pub client: &'a NodeClient,
    pub snapshot: &'a ConfigSnapshot,
    pub node: &'a NodeConfig,
    pub main: &'a MainThread,
}

/// A live step over blocks `from..=to`: the node's checkpoint moves to `to`
/// once it is committed.
#[derive(Default)]
pub(super) struct LiveStep {
    pub from: u64,
    pub to: u64,
    pub head: u64,
    /// Headers within the fork window, oldest first.
    pub headers: Vec<BlockHeader>,
    pub new_backfills: Vec<(BackfillOf, Backfill)>,
    /// Block events, oldest first.
    pub blocks: Vec<BlockHeader>,
    /// Matched transactions, oldest block first.
    pub transactions: Vec<MatchedTransaction>,
    pub events: Vec<DecodedEvent>,
    pub failures: Vec<UndecodableLog>,
}

impl LiveStep {
    /// Cut into block-aligned pieces of about [`LIVE_PIECE_LOGS`] logs, in
    /// order; the backfills it starts go with the first.
    fn into_pieces(self) -> Vec<LiveStep> {
        let LiveStep {
            from,
            to,
            head,
            mut headers,
            new_backfills,
            mut blocks,
            mut transactions,
            events,
            failures,
        } = self;
        let mut new_backfills = Some(new_backfills);
        split_into_pieces(from, to, events, failures, LIVE_PIECE_LOGS)
            .into_iter()
            .map(|piece| {
                let until = |n: u64| n <= piece.to;
                LiveStep {
                    from: piece.from,
                    to: piece.to,
                    head,
                    headers: headers
                        .drain(..headers.partition_point(|h| until(h.number)))
                        .collect(),
                    new_backfills: new_backfills.take().unwrap_or_default(),
                    blocks: blocks
                        .drain(..blocks.partition_point(|b| until(b.number)))
                        .collect(),
                    transactions: transactions
                        .drain(..transactions.partition_point(|t| until(t.block_number)))
                        .collect(),
                    events: piece.events,
                    failures: piece.failures,
                }
            })
            .collect()
    }
}

/// Hands over a live step: at once, or, when it holds more than
/// [`LIVE_PIECE_LOGS`] logs (a catch-up after an outage, say), in pieces
/// committed one after the other, so that no transaction grows with the
/// range. A piece that is not committed ends the step; the rest is fetched
/// again from where the cursor stands.
pub(super) async fn hand_over_live(
    turn: &Turn<'_>,
    step: LiveStep,
    position: &mut Position,
) -> Progress {
    let logs = step.events.len() + step.failures.len();
    if logs <= LIVE_PIECE_LOGS {
        return commit_live(turn, step, position).await;
    }
    let (from, to, head) = (step.from, step.to, step.head);
    let pieces = step.into_pieces();
    tracing::info!(node = %turn.node.name, from, to, logs, pieces = pieces.len(), "a large live step is committed in pieces");
    for piece in pieces {
        let end = piece.to;
        let progress = commit_live(turn, piece, position).await;
        if position.cursor != Some(end) {
            return progress; // not committed
        }
    }
    Progress::after(to, head)
}

/// Sends a live step and waits for the main thread to commit it; then moves
/// the position.
async fn commit_live(turn: &Turn<'_>, step: LiveStep, position: &mut Position) -> Progress {
    let Turn {
        client,
        snapshot,
        node,
        main,
    } = turn;
    let LiveStep {
        from,
        to,
        head,
        headers,
        new_backfills,
        blocks,
        transactions,
        events,
        failures,
    } = step;
    // What the position becomes once the step is committed.
    let known: Vec<(u64, B256)> = headers.iter().map(|h| (h.number, h.hash)).collect();
    let started = new_backfills.clone();
    let (ack, answer) = oneshot::channel();
    let children = children_of(&events);
    let prepared = prepare_events(
        &node.name,
        events,
        head.max(to),
        node.options.num_blocks_to_wait,
        Audience::Listeners, // every live state change is notified
    );
    let step = ChainStep {
        node: node.name.clone(),
        config_version: snapshot.version,
        from,
        to,
        head,
        status: client.status(position.heads.is_some()),
        kind: StepKind::Live {
            headers,
            new_backfills,
            blocks,
            transactions,
        },
        prepared,
        failures,
        children,
        ack,
    };
    if !main.send(step.into()).await {
        return Progress::CaughtUp; // shutting down
    }
    match tokio::time::timeout(ACK_TIMEOUT, answer).await {
        Ok(Ok(StepAck::Committed)) => {
            // Most steps start no backfill: look up nothing then.
            let added = (!started.is_empty()).then(|| node.added());
            for (of, backfill) in started {
                if let BackfillOf::Filter(id) = &of {
                    position.starts.remove(id);
                }
                if let Some(added_at) = added.as_ref().and_then(|a| a.get(&of)) {
                    position.backfills.insert(of, (added_at, backfill));
                    position.restart_backfill_ranges();
                }
            }
            position.cursor = Some(to);
            position.known.extend(known);
            let oldest = to.saturating_sub(node.options.fork_window());
            position.known.retain(|&n, _| n >= oldest && n <= to);
            Progress::after(to, head)
        }
        Ok(Ok(StepAck::Stale)) => Progress::Retry,
        Ok(Err(_)) | Err(_) => {
            tracing::warn!(node = %node.name, to, "step was not acknowledged; fetching it again");
            Progress::Retry
        }
    }
}

/// The fork a plan found: every block above `ancestor` is rewound, once
/// the main thread committed that.
pub(super) struct Fork {
    pub ancestor: u64,
    /// The new chain's hashes at the heights walked back over.
    pub canonical: Vec<B256>,
    /// The fork reached below the window.
    pub deep: bool,
    pub head: u64,
}

/// Asks the main thread to rewind to the fork's ancestor; the position
/// follows once it committed.
pub(super) async fn rewind(
    main: &MainThread,
    node: &NodeConfig,
    fork: Fork,
    position: &mut Position,
) -> Progress {
    let Fork {
        ancestor,
        canonical,
        deep,
        head,
    } = fork;
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
    if !main.send(FollowerMessage::Rewind(rewind)).await {
        return Progress::CaughtUp; // shutting down
    }
    if let Ok(Ok(StepAck::Committed)) = tokio::time::timeout(ACK_TIMEOUT, answer).await {
        position.cursor = Some(ancestor);
        position.known.retain(|&n, _| n <= ancestor);
    }
    Progress::Retry
}
