//! Following (tokio): one task per node walks the chain block range by block
//! range, fetches the logs of all the node's filters in one merged
//! `eth_getLogs`, decodes them and hands each step to the main thread. It
//! advances only once the main thread has committed the step.
//!
//! - [`supervisor`]: one follower per configured node;
//! - [`endpoints`]: a node's URLs, failover and the way back to the primary;
//! - [`follower`]: a node's loop and its live step;
//! - [`handover`]: a step queued for the main thread, and the position moved once it committed;
//! - [`position`]: what a follower knows of the chain it has committed;
//! - [`plan`]: the next range, or the fork to rewind (fork detection);
//! - [`start`]: where a registration starts: the first block after its commit;
//! - [`backfill`]: a filter's backfill from its start, in pieces;
//! - [`pieces`]: a range's logs cut into block-aligned pieces that commit on their own;
//! - [`requests`]: a node's filters merged into few `eth_getLogs` (chunked, or by topic only);
//! - [`factory`]: the children a step's factory events add to address sets;
//! - [`matching`]: logs to filters (and decoded), transactions to monitors;
//! - [`lagging`]: an `eth_getLogs` answer checked against the blocks' blooms.

#![warn(missing_docs)]

mod backfill;
mod endpoints;
mod factory;
mod follower;
mod handover;
mod lagging;
mod matching;
mod pieces;
mod plan;
mod position;
mod requests;
mod start;
mod supervisor;
#[cfg(test)]
mod test_node;

pub use factory::children_of;
pub use matching::decode_logs;
pub use pieces::{piece_ends, split_into_pieces, Piece};
pub use requests::log_queries;
pub use supervisor::supervise;
