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
//! - [`requests`]: a node's filters merged into few `eth_getLogs` (chunked, or by topic only);
//! - [`factory`]: the children a step's factory events add to address sets;
//! - [`matching`]: logs to filters (and decoded), transactions to monitors;
//! - [`lagging`]: an `eth_getLogs` answer checked against the blocks' blooms.

mod backfill;
mod endpoints;
mod factory;
mod follower;
mod handover;
mod lagging;
mod matching;
mod plan;
mod position;
mod requests;
mod start;
mod supervisor;
#[cfg(test)]
mod test_node;

pub use backfill::{piece_ends, split_into_pieces, Piece};
pub use endpoints::EndpointHealth;
pub use factory::children_of;
pub use matching::decode_logs;
pub use requests::log_queries;
pub use supervisor::supervise;

use crate::protocol::{ChainStep, FollowerMessage};

/// Wakes the main thread, which sleeps on its latch. A process-directed
/// SIGUSR1 reaches the only thread that does not block signals (the main
/// thread), where Postgres' own handler sets the latch.
pub fn wake_main_thread() {
    // SAFETY: kill(2) on our own pid is async-signal-safe and touches no Postgres state.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGUSR1);
    }
}

impl From<ChainStep> for FollowerMessage {
    fn from(step: ChainStep) -> Self {
        FollowerMessage::Step(Box::new(step))
    }
}
