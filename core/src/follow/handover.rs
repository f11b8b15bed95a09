//! Handing steps over (tokio): a step is queued for the main thread, and
//! the follower's position moves only once the main thread answers that it
//! committed. A live step with many events is cut into pieces, each
//! committed on its own, as a backfill is.

use alloy::primitives::B256;
use tokio::sync::oneshot;

use super::backfill::split_into_pieces;
use super::factory::children_of;
use super::follower::{Follower, Progress};
use super::position::Position;
use super::wake_main_thread;
use crate::limits::{ACK_TIMEOUT, LIVE_PIECE_LOGS};
use crate::protocol::{
    Backfill, BackfillOf, BlockHeader, ChainStep, ConfigSnapshot, DecodedEvent, FollowerMessage,
    MatchedTransaction, NodeConfig, Rewind, StepAck, StepKind, UndecodableLog,
};
use crate::rows::{prepare_events, Audience};
use crate::rpc::{NodeClient, RpcError};

/// What a live step carries besides its events.
pub(super) struct LiveParts {
    /// Headers within the fork window, oldest first.
    pub headers: Vec<BlockHeader>,
    pub new_backfills: Vec<(BackfillOf, Backfill)>,
    /// Block events, oldest first.
    pub blocks: Vec<BlockHeader>,
    /// Matched transactions, oldest block first.
    pub transactions: Vec<MatchedTransaction>,
}

impl Follower {
    /// Hands over the live range `from..=to`: in one step, or, when it holds
    /// more than [`LIVE_PIECE_LOGS`] logs (a catch-up after an outage, say),
    /// in block-aligned pieces committed one after the other, so that no
    /// transaction grows with the range. A piece that is not committed ends
    /// the step; the rest is fetched again from where the cursor stands.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn hand_over_live(
        &self,
        client: &NodeClient,
        snapshot: &ConfigSnapshot,
        node: &NodeConfig,
        (from, to, head): (u64, u64, u64),
        parts: LiveParts,
        events: Vec<DecodedEvent>,
        failures: Vec<UndecodableLog>,
        position: &mut Position,
    ) -> Result<Progress, RpcError> {
        let LiveParts {
            mut headers,
            new_backfills,
            mut blocks,
            mut transactions,
        } = parts;
        if events.len() + failures.len() <= LIVE_PIECE_LOGS {
            let kind = StepKind::Live {
                headers,
                new_backfills,
                blocks,
                transactions,
            };
            return self
                .hand_over(
                    client, snapshot, node, from, to, head, kind, events, failures, position,
                )
                .await;
        }
        let logs = events.len() + failures.len();
        let pieces = split_into_pieces(from, to, events, failures, LIVE_PIECE_LOGS);
        tracing::info!(node = %node.name, from, to, logs, pieces = pieces.len(), "a large live step is committed in pieces");
        let mut new_backfills = Some(new_backfills);
        for piece in pieces {
            let until = |n: u64| n <= piece.to;
            let kind = StepKind::Live {
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
            };
            let progress = self
                .hand_over(
                    client,
                    snapshot,
                    node,
                    piece.from,
                    piece.to,
                    head,
                    kind,
                    piece.events,
                    piece.failures,
                    position,
                )
                .await?;
            if position.cursor != Some(piece.to) {
                return Ok(progress); // not committed
            }
        }
        Ok(if to < head {
            Progress::Advanced
        } else {
            Progress::CaughtUp
        })
    }

    /// Queues a step for the main thread and wakes it. False when the worker
    /// is shutting down.
    pub(super) async fn send_step(&self, step: ChainStep) -> bool {
        if self.to_main.send(step.into()).await.is_err() {
            return false;
        }
        wake_main_thread();
        true
    }

    pub(super) async fn rewind(
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
    pub(super) async fn hand_over(
        &self,
        client: &NodeClient,
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
            kind,
            prepared,
            failures,
            children,
            ack,
        };
        if !self.send_step(step).await {
            return Ok(Progress::CaughtUp); // shutting down
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
