//! Where a registration starts (tokio): a node, filter or monitor is followed
//! from the chain's state when its transaction committed, whenever the
//! follower gets to it. The database records when (`created_at`, the start
//! of the registering transaction, a little before its commit).
//!
//! - A follower remembers the heads it read and when. Every block up to the
//!   last head it read before the registration was mined before it, so the
//!   registration starts at the next block: exact to one polling interval.
//! - A follower that did not see the registration commit (the worker was
//!   away, the node is new) turns the time into a block by the block
//!   timestamps, allowing them to run [`REGISTRATION_CLOCK_MARGIN`] behind
//!   the server's clock. Nothing after the commit is skipped; a few blocks
//!   before it may be taken.

use std::sync::Arc;

use super::position::Position;
use crate::config::{BackfillOf, NodeConfig};
use crate::limits::{FRESH_HEAD, REGISTRATION_CLOCK_MARGIN};
use crate::rpc::{NodeClient, RpcError};

/// Seconds since the epoch of a registration made at `added_at` microseconds:
/// rounded down, as block timestamps are whole seconds.
pub(super) fn registered_second(added_at: i64) -> u64 {
    u64::try_from(added_at.div_euclid(1_000_000)).unwrap_or(0)
}

/// The first block of a registration made at `added_at` (microseconds since
/// the epoch), given the node's head now.
pub(super) async fn registration_start(
    client: &NodeClient,
    position: &Position,
    added_at: i64,
    head: u64,
) -> Result<u64, RpcError> {
    let at = u64::try_from(added_at.div_euclid(1_000)).unwrap_or(0);
    let seen = position.head_seen_by(at);
    if let Some((when, seen_head)) = seen {
        if at - when <= FRESH_HEAD.as_millis() as u64 {
            return Ok(seen_head + 1);
        }
    }
    let second = registered_second(added_at).saturating_sub(REGISTRATION_CLOCK_MARGIN.as_secs());
    let by_time = first_block_at(client, second, head).await?;
    Ok(seen.map_or(by_time, |(_, seen_head)| by_time.max(seen_head + 1)))
}

/// The first block whose timestamp is at or after `second`, or `head + 1`
/// when the head itself is older (every block still to come is newer).
///
/// Gallops back from the head and then bisects, so a registration `k`
/// blocks ago costs about `2·log2(k)` header reads: one for the common case
/// of a follower that is caught up.
pub(super) async fn first_block_at(
    client: &NodeClient,
    second: u64,
    head: u64,
) -> Result<u64, RpcError> {
    let newer = |number: u64| async move {
        client
            .block_header(number)
            .await
            .map(|h| h.timestamp >= second)
    };
    if !newer(head).await? {
        return Ok(head + 1);
    }
    // `at_or_after` is newer; look for an older block below it.
    let mut at_or_after = head;
    let mut stride = 1u64;
    let before = loop {
        if at_or_after == 0 {
            return Ok(0);
        }
        let probe = at_or_after.saturating_sub(stride);
        if newer(probe).await? {
            at_or_after = probe;
            stride = stride.saturating_mul(2);
        } else {
            break probe;
        }
    };
    // Timestamps never decrease along the chain: bisect (before, at_or_after].
    let (mut older, mut newer_block) = (before, at_or_after);
    while newer_block - older > 1 {
        let middle = older + (newer_block - older) / 2;
        if newer(middle).await? {
            newer_block = middle;
        } else {
            older = middle;
        }
    }
    Ok(newer_block)
}

/// The node's configuration with the first block of each filter filled in:
/// its `startBlock`, where its backfill starts, or else the block its
/// registration resolves to (remembered in `position`, so that it is
/// resolved once). Kept in `position` until the configuration, a start or a
/// backfill changes: with thousands of filters, rebuilding it every step
/// would copy every filter's definition.
pub(super) async fn resolve_filter_starts(
    client: &NodeClient,
    node: &NodeConfig,
    version: i64,
    position: &mut Position,
    head: u64,
) -> Result<Arc<NodeConfig>, RpcError> {
    let key = (version, position.backfills.len(), position.starts.len());
    if let Some((cached, resolved)) = &position.resolved {
        if *cached == key {
            return Ok(resolved.clone());
        }
    }
    let mut resolved = node.clone();
    for filter in &mut resolved.filters {
        if filter.start.is_some() {
            continue;
        }
        let start = match position
            .backfills
            .get(&BackfillOf::Filter(filter.id.clone()))
        {
            Some((_, backfill)) => backfill.from,
            None => match position.starts.get(&filter.id) {
                Some(&(added_at, start)) if added_at == filter.added_at => start,
                _ => {
                    // Eventeum: a filter not followed yet on a node with an
                    // initialStartBlock starts there.
                    let start = match node.options.initial_start_block {
                        Some(first) => first,
                        None => registration_start(client, position, filter.added_at, head).await?,
                    };
                    tracing::debug!(node = %node.name, filter = %filter.id, start, "filter registered; following it from this block");
                    position
                        .starts
                        .insert(filter.id.clone(), (filter.added_at, start));
                    start
                }
            },
        };
        let mut with_start = (**filter).clone();
        with_start.start = Some(start);
        *filter = Arc::new(with_start);
    }
    let resolved = Arc::new(resolved);
    let key = (version, position.backfills.len(), position.starts.len());
    position.resolved = Some((key, resolved.clone()));
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::follow::position::unix_millis;
    use crate::follow::test_node::{block_at, node_answering};

    /// A chain of blocks 0..=20 with timestamps 1000, 1002, ..., 1040.
    fn timestamp(number: u64) -> u64 {
        1_000 + 2 * number
    }

    async fn resolve(second: u64, head: u64) -> (u64, usize) {
        let (client, calls) = node_answering(move |n| block_at(n, timestamp(n)));
        let start = first_block_at(&client, second, head).await.unwrap();
        (start, calls.load(std::sync::atomic::Ordering::Relaxed))
    }

    #[tokio::test]
    async fn a_registration_after_the_head_starts_at_the_next_block() {
        assert_eq!(resolve(timestamp(20) + 1, 20).await, (21, 1));
    }

    #[tokio::test]
    async fn a_registration_starts_at_the_first_block_of_its_second_or_later() {
        for number in 0..=20 {
            assert_eq!(resolve(timestamp(number), 20).await.0, number);
            // Between two blocks: the later one.
            assert_eq!(resolve(timestamp(number) - 1, 20).await.0, number);
        }
    }

    #[tokio::test]
    async fn a_recent_registration_costs_a_few_header_reads() {
        let (start, calls) = resolve(timestamp(19), 20).await;
        assert_eq!(start, 19);
        assert!(calls <= 4, "{calls} reads");
        let (_, calls) = resolve(timestamp(3), 1_000_000).await;
        assert!(calls <= 45, "{calls} reads for a million blocks");
    }

    #[tokio::test]
    async fn a_registration_the_follower_saw_starts_after_the_last_head_it_read() {
        let (client, calls) = node_answering(move |n| block_at(n, timestamp(n)));
        let mut position = Position::new(Some(10), Default::default(), 1);
        position.saw_head(17);
        let now_us = i64::try_from(unix_millis()).unwrap() * 1_000 + 500;
        assert_eq!(
            registration_start(&client, &position, now_us, 20)
                .await
                .unwrap(),
            18
        );
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "no call needed"
        );
    }

    #[tokio::test]
    async fn a_registration_the_follower_did_not_see_starts_by_timestamps_with_a_margin() {
        let (client, _) = node_answering(move |n| block_at(n, timestamp(n)));
        let position = Position::new(None, Default::default(), 1);
        // Registered at block 15's second: blocks stamped up to the margin
        // (15 s, seven and a half blocks here) before it are taken.
        let added_at = i64::try_from(timestamp(15)).unwrap() * 1_000_000;
        assert_eq!(
            registration_start(&client, &position, added_at, 20)
                .await
                .unwrap(),
            8
        );
    }

    #[test]
    fn registration_seconds_round_down() {
        assert_eq!(registered_second(1_700_000_000_999_999), 1_700_000_000);
        assert_eq!(registered_second(-5), 0);
    }
}
