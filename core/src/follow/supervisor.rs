//! The supervisor (tokio): starts, restarts and stops one follower per
//! configured node as the published configuration changes, and restarts a
//! follower that ended (only a panic ends one) from its committed checkpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::follower::Follower;
use super::handover::MainThread;
use crate::config::{ConfigSnapshot, NodeConfig};
use crate::limits::{BACKOFF_CAP, BACKOFF_START, SUPERVISE_EVERY};
use crate::protocol::FollowerMessage;
use crate::redact::redact_url;
use crate::states::NodeStatus;

struct Running {
    node: NodeConfig,
    task: JoinHandle<()>,
}

/// A node whose follower ended: when it may start again, and the wait after that.
struct Restart {
    at: Instant,
    backoff: Duration,
}

/// Starts, restarts and stops one follower per configured node. Returns when
/// the main thread drops the configuration sender.
pub async fn supervise(
    mut config: watch::Receiver<Arc<ConfigSnapshot>>,
    to_main: mpsc::Sender<FollowerMessage>,
) {
    let main = MainThread::new(to_main);
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut restarts: HashMap<String, Restart> = HashMap::new();
    loop {
        let snapshot = config.borrow_and_update().clone();
        let mut ended = Vec::new();
        running.retain(|name, follower| match snapshot.nodes.get(name) {
            Some(_) if follower.task.is_finished() => {
                ended.push(name.clone());
                false
            }
            Some(node) if !follower.node.needs_restart(node) => true,
            _ => {
                follower.task.abort();
                false
            }
        });
        restarts.retain(|name, _| snapshot.nodes.contains_key(name));
        for name in ended {
            let restart = restarts.entry(name.clone()).or_insert(Restart {
                at: Instant::now(),
                backoff: BACKOFF_START,
            });
            restart.at = Instant::now() + restart.backoff;
            let error = format!(
                "the follower ended unexpectedly (see the server log); restarting it from the checkpoint in {:?}",
                restart.backoff
            );
            restart.backoff = (restart.backoff * 2).min(BACKOFF_CAP);
            tracing::error!(node = %name, "{error}");
            main.report(FollowerMessage::NodeError {
                node: name,
                error,
                status: NodeStatus::Down,
            });
        }
        for (name, node) in &snapshot.nodes {
            let waiting = restarts.get(name).is_some_and(|r| r.at > Instant::now());
            if !running.contains_key(name) && !waiting {
                tracing::info!(node = %name, url = %redact_url(&node.url), "following node");
                let follower = Follower::new(node.clone(), config.clone(), main.clone());
                running.insert(
                    name.clone(),
                    Running {
                        node: node.clone(),
                        task: tokio::spawn(follower.run()),
                    },
                );
            }
        }
        tokio::select! {
            changed = config.changed() => if changed.is_err() { break },
            () = tokio::time::sleep(SUPERVISE_EVERY) => {}
        }
    }
    for (_, follower) in running {
        follower.task.abort();
    }
}
