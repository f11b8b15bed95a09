//! A node's follower (tokio): its loop (connect, subscribe, step, back off),
//! the live step, and how a step is handed to the main thread and committed.

use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::backfill::{backfill, new_backfills};
use super::endpoints::{open, probe_primary, Endpoints};
use super::handover::{hand_over_live, rewind, Fork, LiveStep, MainThread, Progress, Turn};
use super::lagging::incomplete_answer;
use super::matching::{decode_logs, match_transactions};
use super::plan::{block_timestamps, plan, BlockNeeds, Plan};
use super::position::{range_cap, sync_floor, Position};
use super::requests::{fetch_logs, log_queries};
use super::start::{registration_start, resolve_filter_starts};
use crate::config::{BackfillOf, BlockHeader, ConfigSnapshot, NodeConfig};
use crate::decode::RenderOptions;
use crate::limits::{BACKOFF_CAP, BACKOFF_START, LAGGING_RETRY_DELAY, RANGE_REFUSAL_DELAY};
use crate::node::BlockStrategy;
use crate::protocol::FollowerMessage;
use crate::redact::redact_url;
use crate::rpc::{NodeClient, RpcError};
use crate::states::NodeStatus;

/// One node's follower: the node as it was configured when the follower
/// started (a change of its URL or options restarts it), the published
/// configuration, and the way to the main thread.
pub(super) struct Follower {
    node: NodeConfig,
    config: watch::Receiver<Arc<ConfigSnapshot>>,
    main: MainThread,
}

impl Follower {
    pub fn new(
        node: NodeConfig,
        config: watch::Receiver<Arc<ConfigSnapshot>>,
        main: MainThread,
    ) -> Self {
        Follower { node, config, main }
    }

    pub async fn run(mut self) {
        let options = self.node.options.clone();
        let poll = Duration::from_millis(options.polling_interval);
        let healthcheck = Duration::from_millis(options.healthcheck_interval);
        let pubsub = options.block_strategy == BlockStrategy::Pubsub;
        let mut backoff = BACKOFF_START;
        let mut client: Option<NodeClient> = None;
        let mut endpoints = Endpoints::new(&self.node.url);
        let mut chain_id = self.node.chain_id;
        let mut reported = (chain_id, endpoints.report());
        // Crash-only: resume from the committed checkpoint, replaying a few
        // blocks in case they changed while we were away.
        let cursor = self
            .node
            .checkpoint
            .map(|c| c.saturating_sub(options.num_blocks_to_replay));
        let known = std::mem::take(&mut self.node.recent_blocks);
        let mut position = Position::new(cursor, known, range_cap(&options));
        loop {
            if endpoints.probe_due(healthcheck) {
                if let Some(primary) =
                    probe_primary(&self.node, &mut endpoints, &mut chain_id).await
                {
                    client = Some(primary);
                    position.heads = None;
                }
            }
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
                None => open(&self.node, endpoints.url(), &mut chain_id)
                    .await
                    .map(|c| {
                        client = Some(c);
                        Progress::Retry
                    }),
            };
            if result.is_ok() {
                endpoints.succeeded();
            }
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
                // Down to one block, a refusal is the node's answer, not the range's.
                Err(error) if error.is_range_limit() && position.range > 1 => {
                    position.shrink_range();
                    tracing::info!(node = %self.node.name, %error, range = position.range, "node refused the range; splitting it");
                    tokio::time::sleep(RANGE_REFUSAL_DELAY).await;
                }
                Err(error) => {
                    tracing::warn!(node = %self.node.name, %error, "node call failed; retrying in {backoff:?}");
                    let status = if error.is_rate_limit() {
                        NodeStatus::RateLimited
                    } else {
                        NodeStatus::Down
                    };
                    self.main.report(FollowerMessage::NodeError {
                        node: self.node.name.clone(),
                        error: error.to_string(),
                        status,
                    });
                    let wrong_chain = matches!(error, RpcError::WrongChain { .. });
                    let moved = endpoints.failed(&error, wrong_chain, healthcheck);
                    if moved {
                        tracing::warn!(node = %self.node.name, url = %redact_url(endpoints.url()), "switching to the next url");
                    }
                    // Connect afresh: a dead websocket does not come back by itself.
                    if moved || wrong_chain || pubsub {
                        client = None;
                        position.heads = None;
                    }
                    if !moved {
                        tokio::time::sleep(backoff).await;
                        // A node that is down is checked again at least every healthcheckInterval.
                        backoff = (backoff * 2).min(BACKOFF_CAP.min(healthcheck));
                    }
                }
            }
            let now = (chain_id, endpoints.report());
            if now != reported {
                reported = now.clone();
                self.main.report(FollowerMessage::Endpoints {
                    node: self.node.name.clone(),
                    chain_id: now.0,
                    endpoints: now.1,
                });
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
            // Forget the backfills of filters and members removed, even if added again.
            let added = node.added();
            position
                .backfills
                .retain(|of, (at, _)| added.get(of) == Some(*at));
            position
                .starts
                .retain(|id, (at, _)| added.filter(id) == Some(*at));
            let stored = node
                .filters
                .iter()
                .filter_map(|f| Some((BackfillOf::Filter(f.id.clone()), f.backfill?)))
                .chain(node.member_backfills.iter().map(|(of, b)| (of.clone(), *b)));
            for (of, stored) in stored {
                let Some(added_at) = added.get(&of) else {
                    continue;
                };
                if let Entry::Vacant(entry) = position.backfills.entry(of) {
                    entry.insert((added_at, stored));
                    position.restart_backfill_ranges();
                }
            }
        }
        let options = &node.options;
        let head = client.head().await?;
        position.saw_head(head);
        if position.drop_silent_subscription(head, Duration::from_millis(options.polling_interval))
        {
            tracing::warn!(node = %node.name, head, "the newHeads subscription went silent while the head moved; subscribing again");
        }
        let node = &*resolve_filter_starts(client, node, snapshot.version, position, head).await?;
        let turn = Turn {
            client,
            snapshot: &snapshot,
            node,
            main: &self.main,
        };

        let floor = sync_floor(options, head);
        let Some(last) = position.cursor else {
            // First contact: follow from the node's initialStartBlock, else
            // from the first block mined since the node was added, however
            // late the worker gets here.
            let first = match options.initial_start_block {
                Some(first) if first > head + 1 => return Ok(Progress::CaughtUp), // not mined yet
                Some(first) => first,
                None => registration_start(client, position, node.added_at, head).await?,
            };
            return start_after(&turn, first.saturating_sub(1), head, position).await;
        };
        if position.sync_limit_pending {
            if last + 1 < floor {
                // Eventeum's maxBlocksToSync: a follower that starts further
                // behind skips to the last blocks it allows; older ones are never read.
                tracing::info!(node = %node.name, checkpoint = last, head, first = floor, "maxBlocksToSync: skipping the blocks before the first");
                let progress = start_after(&turn, floor - 1, head, position).await?;
                if position.cursor == Some(floor - 1) {
                    position.sync_limit_pending = false;
                }
                return Ok(progress);
            }
            position.sync_limit_pending = false;
        }

        let needs = BlockNeeds {
            every_block: options.block_notification || !node.monitors.is_empty(),
            transactions: !node.monitors.is_empty(),
        };
        let (from, to, headers, transactions) =
            match plan(client, position, last, head, options, needs).await? {
                Plan::Wait => {
                    // A filter with a startBlock may arrive while the chain is
                    // idle: register its backfill now, not at the next block.
                    let started = new_backfills(node, position, last, floor);
                    if !started.is_empty() {
                        let step = LiveStep {
                            from: last + 1,
                            to: last,
                            head,
                            new_backfills: started,
                            ..LiveStep::default()
                        };
                        hand_over_live(&turn, step, position).await;
                    }
                    return backfill(&turn, head, position).await;
                }
                Plan::Fork {
                    ancestor,
                    canonical,
                    deep,
                } => {
                    let fork = Fork {
                        ancestor,
                        canonical,
                        deep,
                        head,
                    };
                    return Ok(rewind(&self.main, node, fork, position).await);
                }
                Plan::Range {
                    from,
                    to,
                    headers,
                    transactions,
                } => (from, to, headers, transactions),
            };
        let transactions = match_transactions(client, node, &transactions, &headers).await?;

        let (events, failures) = if node.filters.is_empty() {
            (vec![], vec![])
        } else {
            let queries = log_queries(&node.filters);
            let logs = fetch_logs(client, from, to, &queries).await?;
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
            if let Some(block) =
                incomplete_answer(client, &node.filters, &queries, &logs, &headers, head).await?
            {
                tracing::info!(node = %node.name, block, "eth_getLogs left out logs of a new block (a lagging backend); asking again");
                tokio::time::sleep(LAGGING_RETRY_DELAY).await;
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
        let step = LiveStep {
            from,
            to,
            head,
            headers: headers
                .into_values()
                .filter(|h| h.number >= window_start)
                .collect(),
            new_backfills: new_backfills(node, position, last, floor),
            blocks,
            transactions,
            events,
            failures,
        };
        Ok(hand_over_live(&turn, step, position).await)
    }
}

/// Moves the follower to just after block `start` without reading the
/// blocks before it: the block is committed first (with the backfills of
/// the filters that start below it), so a crash cannot move the start.
async fn start_after(
    turn: &Turn<'_>,
    start: u64,
    head: u64,
    position: &mut Position,
) -> Result<Progress, RpcError> {
    let node = turn.node;
    let header = turn.client.block_header(start).await?;
    let step = LiveStep {
        from: start + 1,
        to: start,
        head,
        headers: vec![header],
        new_backfills: new_backfills(node, position, start, sync_floor(&node.options, head)),
        ..LiveStep::default()
    };
    Ok(hand_over_live(turn, step, position).await)
}
