//! The supervisor (tokio): starts, restarts and stops one follower per
//! configured node as the published configuration changes.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::follower::Follower;
use crate::protocol::{ConfigSnapshot, FollowerMessage, NodeConfig};
use crate::redact::redact_url;

/// Starts, restarts and stops one follower per configured node as the
/// published configuration changes. Returns when the main thread drops the
/// configuration sender.
pub async fn supervise(
    mut config: watch::Receiver<Arc<ConfigSnapshot>>,
    to_main: mpsc::Sender<FollowerMessage>,
) {
    let mut running: HashMap<String, (NodeConfig, JoinHandle<()>)> = HashMap::new();
    loop {
        let snapshot = config.borrow_and_update().clone();
        running.retain(|name, (current, handle)| match snapshot.nodes.get(name) {
            Some(node) if !current.needs_restart(node) && !handle.is_finished() => true,
            _ => {
                handle.abort();
                false
            }
        });
        for (name, node) in &snapshot.nodes {
            if !running.contains_key(name) {
                tracing::info!(node = %name, url = %redact_url(&node.url), "following node");
                let task = Follower::new(node.clone(), config.clone(), to_main.clone());
                running.insert(name.clone(), (node.clone(), tokio::spawn(task.run())));
            }
        }
        if config.changed().await.is_err() {
            break;
        }
    }
    for (_, (_, handle)) in running {
        handle.abort();
    }
}
