//! The main thread's half of metrics: writes the followers' RPC counts and,
//! while `eventeum.metrics_address` is set, renders the pages the endpoint
//! (a tokio task) serves.

use std::time::Instant;

use pgrx::bgworkers::BackgroundWorker;
use tokio::sync::watch;

use crate::guc;
use crate::limits::{METRICS_EVERY, METRICS_RENDER_EVERY};
use crate::metrics::{self, Pages};
use crate::rpc;
use crate::store;

/// while `eventeum.metrics_address` is set, renders the pages the endpoint
/// serves and (re)starts the endpoint when the address changes.
pub(super) struct Metrics {
    address: Option<String>,
    server: Option<tokio::task::JoinHandle<()>>,
    pages: watch::Sender<Pages>,
    last_tick: Instant,
    last_render: Instant,
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            address: None,
            server: None,
            pages: watch::Sender::new(Pages::default()),
            last_tick: Instant::now(),
            last_render: Instant::now(),
        }
    }

    pub fn tick(&mut self, runtime: &tokio::runtime::Runtime) {
        if self.last_tick.elapsed() < METRICS_EVERY {
            return;
        }
        self.last_tick = Instant::now();
        let counts = rpc::take_call_counts();
        if !counts.is_empty() {
            if let Err(e) = BackgroundWorker::transaction(|| store::record_call_counts(&counts)) {
                pgrx::warning!("eventeum: cannot record RPC counts: {e}");
            }
        }
        let address = guc::metrics_address();
        if address != self.address {
            if let Some(server) = self.server.take() {
                server.abort();
            }
            self.address = address.clone();
            match address.as_deref().map(str::parse::<std::net::SocketAddr>) {
                Some(Ok(socket)) => {
                    self.render();
                    self.server =
                        Some(runtime.spawn(metrics::serve(socket, self.pages.subscribe())));
                }
                Some(Err(e)) => pgrx::warning!(
                    "eventeum: eventeum.metrics_address \"{}\" is not host:port ({e}); metrics are off",
                    address.unwrap_or_default()
                ),
                None => {}
            }
        }
        // The pages count the outbox backlog: render them less often than
        // the counts are written, so that a large backlog costs little.
        if self.server.is_some() && self.last_render.elapsed() >= METRICS_RENDER_EVERY {
            self.render();
        }
    }

    fn render(&mut self) {
        self.last_render = Instant::now();
        match BackgroundWorker::transaction(store::render_pages) {
            Ok(pages) => {
                self.pages.send_replace(pages);
            }
            Err(e) => pgrx::warning!("eventeum: cannot render metrics: {e}"),
        }
    }
}
