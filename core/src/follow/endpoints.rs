//! A node's URLs (tokio): the primary and its fallbacks for the same chain.
//! The follower moves to the next URL when the one serving keeps failing or
//! serves another chain, and goes back to the primary once it answers again.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::NodeConfig;
use crate::limits::FAILOVER_AFTER;
use crate::node::split_urls;
use crate::protocol::EndpointHealth;
use crate::redact::redact_url;
use crate::rpc::{NodeClient, RpcError};

pub(super) struct Endpoints {
    urls: Vec<String>,
    errors: Vec<Option<String>>,
    /// Failures in a row of the URL serving.
    failures: u32,
    current: usize,
    /// When the primary is next tried while a fallback serves.
    next_probe: Instant,
}

impl Endpoints {
    pub fn new(stored: &str) -> Self {
        let urls: Vec<String> = split_urls(stored).into_iter().map(String::from).collect();
        Endpoints {
            errors: vec![None; urls.len()],
            urls,
            failures: 0,
            current: 0,
            next_probe: Instant::now(),
        }
    }

    pub fn url(&self) -> &str {
        &self.urls[self.current]
    }

    pub fn primary(&self) -> &str {
        &self.urls[0]
    }

    pub fn on_fallback(&self) -> bool {
        self.current != 0
    }

    /// The URL serving answered.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.errors[self.current] = None;
    }

    /// The URL serving failed with `error`; true when the follower moved to
    /// another URL (after [`FAILOVER_AFTER`] failures in a row, or at once
    /// when it serves another chain).
    pub fn failed(&mut self, error: &RpcError, other_chain: bool, probe_every: Duration) -> bool {
        self.errors[self.current] = Some(error.to_string());
        self.failures += 1;
        if self.urls.len() < 2 || (self.failures < FAILOVER_AFTER && !other_chain) {
            return false;
        }
        self.current = (self.current + 1) % self.urls.len();
        self.failures = 0;
        self.next_probe = Instant::now() + probe_every;
        true
    }

    /// Whether to try the primary again now (a fallback serves).
    pub fn probe_due(&mut self, every: Duration) -> bool {
        if !self.on_fallback() || Instant::now() < self.next_probe {
            return false;
        }
        self.next_probe = Instant::now() + every;
        true
    }

    /// The primary answered a probe: serve from it again.
    pub fn back_to_primary(&mut self) {
        self.current = 0;
        self.failures = 0;
        self.errors[0] = None;
    }

    /// The primary failed a probe.
    pub fn primary_failed(&mut self, error: &RpcError) {
        self.errors[0] = Some(error.to_string());
    }

    pub fn report(&self) -> Vec<EndpointHealth> {
        self.urls
            .iter()
            .zip(&self.errors)
            .enumerate()
            .map(|(i, (url, error))| EndpointHealth {
                url: redact_url(url),
                serving: i == self.current,
                healthy: error.is_none(),
                last_error: error.clone(),
            })
            .collect()
    }
}

/// Connects to `url` and checks that it serves the node's chain; the
/// first URL to answer tells which chain that is.
pub(super) async fn open(
    node: &NodeConfig,
    url: &str,
    chain_id: &mut Option<u64>,
) -> Result<NodeClient, RpcError> {
    let client = NodeClient::connect(&node.name, url, &node.options).await?;
    let got = client.chain_id().await?;
    match *chain_id {
        Some(expected) if expected != got => Err(RpcError::WrongChain { expected, got }),
        _ => {
            *chain_id = Some(got);
            Ok(client)
        }
    }
}

/// Tries the primary while a fallback serves: it serves again once it
/// answers on the node's chain.
pub(super) async fn probe_primary(
    node: &NodeConfig,
    endpoints: &mut Endpoints,
    chain_id: &mut Option<u64>,
) -> Option<NodeClient> {
    let probed = match open(node, endpoints.primary(), chain_id).await {
        Ok(client) => client.head().await.map(|_| client),
        Err(error) => Err(error),
    };
    match probed {
        Ok(client) => {
            tracing::info!(node = %node.name, "the primary url answers again; following from it");
            endpoints.back_to_primary();
            Some(client)
        }
        Err(error) => {
            endpoints.primary_failed(&error);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> RpcError {
        RpcError::Transport {
            call: "eth_blockNumber",
            message: "connection refused".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fails_over_after_failures_in_a_row_and_probes_the_primary() {
        let every = Duration::from_secs(10);
        let mut endpoints = Endpoints::new("http://a:1, http://b:2/v3/0123456789abcdef0123");
        assert!(!endpoints.failed(&refused(), false, every));
        assert!(endpoints.failed(&refused(), false, every));
        assert_eq!(endpoints.url(), "http://b:2/v3/0123456789abcdef0123");
        let report = endpoints.report();
        assert!(!report[0].healthy && !report[0].serving);
        assert!(report[1].healthy && report[1].serving);
        assert_eq!(report[1].url, "http://b:2/v3/***");
        assert!(!endpoints.probe_due(every));
        tokio::time::advance(every).await;
        assert!(endpoints.probe_due(every));
        endpoints.back_to_primary();
        assert_eq!(endpoints.url(), "http://a:1");
    }

    #[test]
    fn another_chain_fails_over_at_once() {
        let mut endpoints = Endpoints::new("http://a:1,http://b:2");
        assert!(endpoints.failed(&refused(), true, Duration::from_secs(1)));
        let mut single = Endpoints::new("http://a:1");
        assert!(!single.failed(&refused(), true, Duration::from_secs(1)));
    }
}
