//! Planning and fork detection (tokio): checks that the next blocks continue
//! the committed chain, and finds the common ancestor when they do not.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::B256;
use alloy::rpc::types::{Log, Transaction};
use futures::stream::{self, StreamExt, TryStreamExt};

use super::position::Position;
use crate::config::BlockHeader;
use crate::limits::{FETCH_CONCURRENCY, FULL_BLOCKS_PER_STEP};
use crate::node::NodeOptions;
use crate::rpc::{NodeClient, RpcError};

/// A range to fetch next, or a fork to rewind.
pub(super) enum Plan {
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

/// Decides the next move: a block range whose headers continue the committed
/// chain, a fork to rewind, or nothing yet.
pub(super) async fn plan(
    client: &NodeClient,
    position: &Position,
    last: u64,
    head: u64,
    options: &NodeOptions,
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
    // Full blocks are large: fetch them a bounded number at a time.
    let range = if needs.transactions {
        position.range.min(FULL_BLOCKS_PER_STEP)
    } else {
        position.range
    };
    let to = head.min(last + range);
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
pub(super) struct BlockNeeds {
    pub every_block: bool,
    pub transactions: bool,
}

/// Walks back from `last` to the newest block whose hash the node still has.
async fn find_fork(
    client: &NodeClient,
    position: &Position,
    last: u64,
    head: u64,
    options: &NodeOptions,
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

/// Timestamps of the blocks the logs are in: from the logs (`blockTimestamp`),
/// the headers already fetched, or else one header fetch per block.
pub(super) async fn block_timestamps(
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

#[cfg(test)]
mod tests {
    //! Planning and fork detection against alloy's mocked transport: the node
    //! answers each call with the next queued response, in call order. A
    //! range of one block keeps the calls sequential.

    use std::time::Duration;

    use alloy::providers::{Provider, ProviderBuilder};
    use alloy::rpc::types::{Block, Header};
    use alloy::transports::mock::Asserter;

    use super::*;

    /// The hash of block `number` on chain `fork` (0 is the one we committed).
    fn hash(number: u64, fork: u8) -> B256 {
        let mut bytes = [fork; 32];
        bytes[24..].copy_from_slice(&number.to_be_bytes());
        B256::from(bytes)
    }

    fn block(number: u64, fork: u8, parent_fork: u8) -> Block {
        let inner = alloy::consensus::Header {
            number,
            parent_hash: hash(number.saturating_sub(1), parent_fork),
            timestamp: 1_700_000_000 + number,
            ..Default::default()
        };
        Block::empty(Header {
            hash: hash(number, fork),
            inner,
            total_difficulty: None,
            size: None,
        })
    }

    /// A node that answers with what `asserter` was given, in call order.
    fn client(asserter: Asserter) -> NodeClient {
        let provider = ProviderBuilder::new()
            .connect_mocked_client(asserter)
            .erased();
        NodeClient::from_provider("mock", provider, Duration::from_secs(5))
    }

    /// A node that will answer with `blocks`, in order.
    fn node(blocks: &[Block]) -> NodeClient {
        let asserter = Asserter::new();
        for b in blocks {
            asserter.push_success(b);
        }
        client(asserter)
    }

    /// Committed up to block 10 on chain 0, knowing 8, 9 and 10.
    fn position() -> Position {
        let known = (8..=10).map(|n| (n, hash(n, 0))).collect();
        Position::new(Some(10), known, 1)
    }

    const ONLY_FORK_CHECKS: BlockNeeds = BlockNeeds {
        every_block: false,
        transactions: false,
    };

    #[tokio::test]
    async fn a_block_that_continues_the_chain_is_the_next_range() {
        let client = node(&[block(11, 0, 0)]);
        let options = NodeOptions::default();
        let plan = plan(&client, &position(), 10, 20, &options, ONLY_FORK_CHECKS)
            .await
            .unwrap();
        let Plan::Range {
            from, to, headers, ..
        } = plan
        else {
            panic!("expected a range");
        };
        assert_eq!((from, to), (11, 11));
        assert_eq!(headers[&11].parent_hash, hash(10, 0));
    }

    #[tokio::test]
    async fn a_parent_mismatch_walks_back_to_the_common_ancestor() {
        // Blocks 9 and 10 were replaced; 8 is still canonical.
        let client = node(&[
            block(11, 1, 1),
            block(10, 1, 1),
            block(9, 1, 0),
            block(8, 0, 0),
        ]);
        let options = NodeOptions::default();
        let plan = plan(&client, &position(), 10, 20, &options, ONLY_FORK_CHECKS)
            .await
            .unwrap();
        let Plan::Fork {
            ancestor,
            canonical,
            deep,
        } = plan
        else {
            panic!("expected a fork");
        };
        assert_eq!(ancestor, 8);
        assert_eq!(canonical, [hash(10, 1), hash(9, 1)]);
        assert!(!deep);
    }

    #[tokio::test]
    async fn a_replaced_tip_at_the_same_height_is_a_fork_once_the_new_chain_is_long_enough() {
        // Head 10 = our tip, but with another hash. numBlocksToWaitBeforeInvalidating
        // is 2: the fork above 9 is acted on from head 12, not before.
        let replaced = [block(10, 1, 0), block(10, 1, 0), block(9, 0, 0)];
        let options = NodeOptions::default();
        let waits = plan(
            &node(&replaced),
            &position(),
            10,
            10,
            &options,
            ONLY_FORK_CHECKS,
        )
        .await
        .unwrap();
        assert!(matches!(waits, Plan::Wait));

        let options = NodeOptions {
            num_blocks_to_wait_before_invalidating: 0,
            ..NodeOptions::default()
        };
        let acts = plan(
            &node(&replaced),
            &position(),
            10,
            10,
            &options,
            ONLY_FORK_CHECKS,
        )
        .await
        .unwrap();
        assert!(matches!(
            acts,
            Plan::Fork {
                ancestor: 9,
                deep: false,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_fork_below_the_known_window_is_reported_as_deep() {
        let known = BTreeMap::from([(10, hash(10, 0))]);
        let position = Position::new(Some(10), known, 1);
        let client = node(&[block(11, 1, 1), block(10, 1, 1)]);
        let plan = plan(
            &client,
            &position,
            10,
            20,
            &NodeOptions::default(),
            ONLY_FORK_CHECKS,
        )
        .await
        .unwrap();
        assert!(matches!(
            plan,
            Plan::Fork {
                ancestor: 9,
                deep: true,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn nothing_new_and_the_same_tip_waits() {
        let client = node(&[block(10, 0, 0)]);
        let plan = plan(
            &client,
            &position(),
            10,
            10,
            &NodeOptions::default(),
            ONLY_FORK_CHECKS,
        )
        .await
        .unwrap();
        assert!(matches!(plan, Plan::Wait));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_call_is_retried_on_its_own() {
        let asserter = Asserter::new();
        asserter.push_failure_msg("rate limited");
        asserter.push_failure_msg("Too Many Requests");
        asserter.push_success(&block(11, 0, 0));
        let plan = plan(
            &client(asserter),
            &position(),
            10,
            20,
            &NodeOptions::default(),
            ONLY_FORK_CHECKS,
        )
        .await
        .unwrap();
        assert!(matches!(
            plan,
            Plan::Range {
                from: 11,
                to: 11,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_failed_call_is_an_error_not_a_plan() {
        let asserter = Asserter::new();
        asserter.push_failure_msg("header not found");
        let error = plan(
            &client(asserter),
            &position(),
            10,
            20,
            &NodeOptions::default(),
            ONLY_FORK_CHECKS,
        )
        .await
        .err()
        .expect("an error");
        assert!(error.to_string().contains("header not found"), "{error}");
    }
}
