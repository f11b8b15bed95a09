//! Backfill (tokio): a filter's `startBlock..=` range, fetched for its logs
//! alone, cut into block-aligned pieces that commit on their own, with the
//! next range fetched while the main thread commits the last pieces.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::factory::children_of;
use super::handover::{Progress, Turn};
use super::matching::decode_logs;
use super::pieces::piece_ends;
use super::plan::block_timestamps;
use super::position::{range_cap, Position};
use super::requests::{fetch_logs, log_queries};
use crate::config::{Backfill, BackfillOf, FilterConfig, NodeConfig};
use crate::decode::RenderOptions;
use crate::limits::{
    ACK_TIMEOUT, BACKFILL_IN_FLIGHT, BACKFILL_PIECE_LOGS, BACKFILL_RANGE_LOGS,
    BACKFILL_RANGE_LOGS_RATE_LIMITED, BACKFILL_TURN, RATE_LIMITED_RECENTLY,
};
use crate::matcher::Member;
use crate::protocol::{ChainStep, StepAck, StepKind};
use crate::rows::{prepare_events, Audience};
use crate::rpc::RpcError;

/// Backfills the first pending filter (then set member) for one turn:
/// ranges of its logs alone, handed over in pieces of about [`BACKFILL_PIECE_LOGS`], with the
/// next range fetched while the main thread commits the last pieces.
pub(super) async fn backfill(
    turn: &Turn<'_>,
    head: u64,
    position: &mut Position,
) -> Result<Progress, RpcError> {
    let Turn {
        client,
        snapshot,
        node,
        main,
    } = turn;
    let (Some((of, backfill)), Some(checkpoint)) = (pending(node, position), position.cursor)
    else {
        return Ok(Progress::CaughtUp);
    };
    let filters = backfilled_filters(node, &of, &backfill);
    let wait = node.options.num_blocks_to_wait;
    let audience = if filters
        .iter()
        .any(|f| f.definition.notifies_each_backfilled_event())
    {
        Audience::Listeners
    } else if snapshot.outbox_readers {
        Audience::Outbox
    } else {
        // Nobody to write the outbox for: a broadcaster added meanwhile
        // bumps the configuration version, which makes this piece stale.
        Audience::Nobody
    };
    // A set's members as this snapshot has them: one added later is
    // backfilled on its own from its start_block, or followed from then.
    let queries = log_queries(&filters);
    let turn_ends = Instant::now() + BACKFILL_TURN;
    let mut in_flight = InFlight::default();
    let mut next = backfill.current + 1;
    let fetched: Result<(), RpcError> = async {
        while next <= backfill.to && Instant::now() < turn_ends && !in_flight.failed {
            let to = backfill.to.min(next + position.backfill_range - 1);
            let mut logs = fetch_logs(client, next, to, &queries).await?;
            // A node that refuses calls for its rate limit is asked fewer,
            // larger questions: each refusal costs its Retry-After.
            let target = if client.rate_limited_within(RATE_LIMITED_RECENTLY) {
                BACKFILL_RANGE_LOGS_RATE_LIMITED
            } else {
                BACKFILL_RANGE_LOGS
            };
            position.size_backfill_range(
                to - next + 1,
                logs.len(),
                range_cap(&node.options),
                target,
            );
            let timestamps = block_timestamps(client, &logs, &BTreeMap::new()).await?;
            let render = RenderOptions {
                bytes_to_ascii: snapshot.bytes_to_ascii,
            };
            // Decoded and built a piece at a time, each piece's logs freed
            // as it goes: a range's rows and messages never exist at once.
            // In block order, whatever order the node answered in, so
            // that a piece holds exactly its blocks' logs.
            logs.sort_by_key(|l| (l.block_number, l.log_index));
            let ends = piece_ends(
                to,
                logs.iter().filter_map(|l| l.block_number),
                BACKFILL_PIECE_LOGS,
            );
            let mut logs = logs.into_iter().peekable();
            let mut from = next;
            for end in ends {
                // Room first, then the piece: at most BACKFILL_IN_FLIGHT
                // built pieces exist at once, the one being built included.
                while in_flight.len() >= BACKFILL_IN_FLIGHT && !in_flight.failed {
                    in_flight.settle_oldest().await;
                }
                if in_flight.failed {
                    break;
                }
                let piece: Vec<_> = std::iter::from_fn(|| {
                    logs.next_if(|l| l.block_number.is_none_or(|n| n <= end))
                })
                .collect();
                let (events, failures) = decode_logs(&filters, &piece, &timestamps, render);
                drop(piece);
                let children = children_of(&events);
                // Built while the main thread still commits the last pieces.
                let prepared = prepare_events(&node.name, events, checkpoint, wait, audience);
                let step = ChainStep {
                    node: node.name.clone(),
                    config_version: snapshot.version,
                    from,
                    to: end,
                    head,
                    status: client.status(position.heads.is_some()),
                    kind: StepKind::Backfill {
                        of: of.clone(),
                        checkpoint,
                    },
                    prepared,
                    failures,
                    children,
                    ack: in_flight.push(end),
                };
                if !main.send(step.into()).await {
                    in_flight.failed = true; // shutting down
                }
                from = end + 1;
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
        if let Some((_, backfill)) = position.backfills.get_mut(&of) {
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

/// The next backfill to work on: the first pending filter's, in the
/// configuration's order, else the first pending member's.
fn pending(node: &NodeConfig, position: &Position) -> Option<(BackfillOf, Backfill)> {
    node.filters
        .iter()
        .find_map(|f| {
            let of = BackfillOf::Filter(f.id.clone());
            let (_, b) = position.backfills.get(&of)?;
            (!b.is_done()).then_some((of, *b))
        })
        .or_else(|| {
            position
                .backfills
                .iter()
                .filter(|(of, (_, b))| matches!(of, BackfillOf::Member { .. }) && !b.is_done())
                .min_by_key(|(of, _)| *of)
                .map(|(of, (_, b))| (of.clone(), *b))
        })
}

/// The filters a backfill decodes for: the filter; or, for a set member,
/// every filter that reads its set, cut down to that address and taking its
/// logs from the member's start block.
fn backfilled_filters(
    node: &NodeConfig,
    of: &BackfillOf,
    backfill: &Backfill,
) -> Vec<Arc<FilterConfig>> {
    match of {
        BackfillOf::Filter(id) => node
            .filters
            .iter()
            .filter(|f| &f.id == id)
            .cloned()
            .collect(),
        BackfillOf::Member { set, address } => node
            .filters
            .iter()
            .filter(|f| f.matcher.reads(set))
            .map(|f| {
                let member = Member {
                    start_block: Some(backfill.from),
                    added_at: 0,
                };
                Arc::new(FilterConfig {
                    matcher: f.matcher.restricted_to(set, *address, member),
                    start: Some(backfill.from),
                    ..(**f).clone()
                })
            })
            .collect(),
    }
}

/// Filters and set members that live following takes over now, after block
/// `last`: each gets a backfill of `start..=last` (a filter's `startBlock`
/// or the block its registration resolved to; a member's `start_block`),
/// done at once when it starts after `last`. No backfill starts below
/// `floor` (the node's `maxBlocksToSync`).
pub(super) fn new_backfills(
    node: &NodeConfig,
    position: &Position,
    last: u64,
    floor: u64,
) -> Vec<(BackfillOf, Backfill)> {
    let filters = node
        .filters
        .iter()
        .filter_map(|f| Some((BackfillOf::Filter(f.id.clone()), f.start?)));
    let sets = node.sets();
    let members = sets.values().flat_map(|set| {
        set.members.iter().filter_map(|(address, member)| {
            let start = member.start_block?;
            let of = BackfillOf::Member {
                set: set.name.clone(),
                address: *address,
            };
            Some((of, start))
        })
    });
    filters
        .chain(members)
        .filter(|(of, _)| !position.backfills.contains_key(of))
        .map(|(of, start)| {
            let from = start.max(floor);
            // A start above `last` needs no backfill: mark it done at once.
            let current = if from > last {
                last
            } else {
                from.saturating_sub(1)
            };
            (
                of,
                Backfill {
                    from,
                    to: last,
                    current,
                },
            )
        })
        .collect()
}

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
