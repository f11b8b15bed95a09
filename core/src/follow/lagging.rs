//! Lagging backends (tokio): a provider's load balancer may answer
//! `eth_getLogs` from a backend that has not yet seen the newest blocks, and
//! its `[]` looks like "no events". A header's `logsBloom` says whether the
//! block may hold a log of a followed contract and event; when it may and the
//! answer has none, the block's logs are asked again by its hash, which a
//! backend that lacks the block cannot answer with `[]`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy::rpc::types::{Filter, Log};

use super::requests::{fetch_logs_at, may_hold_logs_of};
use crate::config::{BlockHeader, FilterConfig};
use crate::limits::LAGGING_WINDOW;
use crate::rpc::{NodeClient, RpcError};

/// The first block among `headers`, within [`LAGGING_WINDOW`] blocks of
/// `head`, for which the answer `logs` is incomplete: its bloom may hold a log
/// of one of `filters`, `logs` has none from it, and asked by hash the node
/// gives some. A bloom's false positive costs one call; a block asked by hash
/// that the node does not know is an error, and the step is taken again.
/// Both count as incomplete answers.
pub(super) async fn incomplete_answer(
    client: &NodeClient,
    filters: &[Arc<FilterConfig>],
    queries: &[Filter],
    logs: &[Log],
    headers: &BTreeMap<u64, BlockHeader>,
    head: u64,
) -> Result<Option<u64>, RpcError> {
    let answered: BTreeSet<u64> = logs.iter().filter_map(|l| l.block_number).collect();
    let newest = headers
        .values()
        .filter(|h| h.number.saturating_add(LAGGING_WINDOW) > head)
        .filter(|h| !answered.contains(&h.number));
    for header in newest {
        if !may_hold_logs_of(header, filters) {
            continue;
        }
        // Suspect until asked by hash shows the block has none of them.
        let again = fetch_logs_at(client, header.hash, queries)
            .await
            .inspect_err(|_| client.record_incomplete())?;
        if !again.is_empty() {
            client.record_incomplete();
            return Ok(Some(header.number));
        }
    }
    Ok(None)
}
