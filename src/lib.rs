//! eventeum: Ethereum contract events into PostgreSQL tables and NOTIFY, and
//! out to brokers, from one `CREATE EXTENSION`.
//!
//! This crate is what runs inside Postgres on the worker's main thread or in
//! backends: `_PG_init` and GUCs (`guc`), the SQL API (`api`), the worker
//! loop (`worker`) and the store (`store`), where a decoded log becomes a row.
//! Everything that runs on tokio threads (node RPC, following, decoding,
//! rows, messages, the relay, the metrics endpoint) is in `eventeum-core`,
//! which does not depend on pgrx; its modules are re-exported here.

use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::bgworkers::{BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::prelude::{pg_guard, pg_sys};

// The stages that run off the main thread, from the pgrx-free core crate.
pub use eventeum_core::{
    broadcast, compact, config, decode, discard, error, event, follow, kind, limits, matcher,
    message, metrics, monitor, netpolicy, node, protocol, redact, relay, rows, rpc, spec, states,
    view, wake,
};

mod api;
mod compat;
mod guc;
mod indexer;
mod panic;
mod store;
mod worker;

pgrx::pg_module_magic!();

// A fresh install: the current schema (tables, types, views, SQL functions),
// then the functions written in Rust with their comments, then roles and
// privileges, which need every function in place. The upgrade scripts
// (sql/eventeum--<old>--<new>.sql) are only for ALTER EXTENSION UPDATE;
// e2e/test_upgrade.py checks that both paths give the same catalog.
pgrx::extension_sql_file!("../sql/current/schema.sql", name = "schema", bootstrap);
pgrx::extension_sql_file!(
    "../sql/current/privileges.sql",
    name = "privileges",
    requires = ["function_comments"],
    finalize
);

static WORKER_REGISTERED: AtomicBool = AtomicBool::new(false);

/// Whether this server preloaded the library and so runs the worker. Backends
/// are forked from the postmaster after `_PG_init`, so they inherit the flag.
pub(crate) fn worker_registered() -> bool {
    WORKER_REGISTERED.load(Ordering::Relaxed)
}

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Only the postmaster, loading shared_preload_libraries, may register a
    // static worker or a postmaster-level setting.
    // SAFETY: a plain global Postgres sets before it loads libraries; read on
    // the loading (main) thread.
    let preloading = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    panic::install();
    guc::register(preloading);
    if !preloading {
        return;
    }
    register_worker("eventeum worker", "eventeum", "eventeum_worker_main");
    // Typed views' indexes are built by a process of their own, so that the
    // worker never waits for one (see `indexer`).
    register_worker(
        "eventeum index builder",
        "eventeum index builder",
        "eventeum_index_builder_main",
    );
    WORKER_REGISTERED.store(true, Ordering::Relaxed);
}

/// Registers a static background worker of this library, restarted after
/// `worker::RESTART_DELAY` whenever it exits non-zero.
fn register_worker(name: &str, backend_type: &str, function: &str) {
    BackgroundWorkerBuilder::new(name)
        .set_type(backend_type)
        .set_function(function)
        .set_library("eventeum")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(worker::RESTART_DELAY))
        .load();
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn add_node_and_filter_round_trip() {
        Spi::run("SELECT eventeum.add_node('default', 'http://127.0.0.1:8545', '{\"numBlocksToWait\": 3}')")
            .unwrap();
        let wait =
            Spi::get_one::<i64>("SELECT (options->>'numBlocksToWait')::bigint FROM eventeum.nodes")
                .unwrap();
        assert_eq!(wait, Some(3));
        let id = Spi::get_one::<String>(
            "SELECT eventeum.add_filter('0x5FbDB2315678afecb367f032d93F642f64180aa3',
                    'Transfer(address indexed from, address indexed to, uint256 value)')",
        )
        .unwrap()
        .unwrap();
        let listed = Spi::get_one::<pgrx::JsonB>("SELECT f FROM eventeum.list_filters() f")
            .unwrap()
            .unwrap();
        assert_eq!(listed.0["id"], id.as_str());
        assert_eq!(listed.0["eventSpecification"]["eventName"], "Transfer");
        assert_eq!(
            listed.0["eventSpecification"]["indexedParameterDefinitions"][1]["type"],
            "ADDRESS"
        );
        let topic0 =
            Spi::get_one::<String>("SELECT event_signature FROM eventeum.contract_event_filters")
                .unwrap()
                .unwrap();
        assert_eq!(
            topic0,
            "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
        );
    }

    #[pg_test]
    fn config_changes_bump_the_version() {
        let before = Spi::get_one::<i64>("SELECT version FROM eventeum.config_version")
            .unwrap()
            .unwrap();
        Spi::run("SELECT eventeum.add_node('n1', 'ws://127.0.0.1:8546', '{\"blockStrategy\": \"PUBSUB\"}')").unwrap();
        let after = Spi::get_one::<i64>("SELECT version FROM eventeum.config_version")
            .unwrap()
            .unwrap();
        assert!(after > before);
    }

    #[pg_test(error = "node \"nope\" does not exist")]
    fn filter_on_unknown_node_is_rejected() {
        Spi::run(
            "SELECT eventeum.add_filter('0x5FbDB2315678afecb367f032d93F642f64180aa3', 'Ping(uint256 x)', 'nope')",
        )
        .unwrap();
    }
}

/// Hooks `cargo pgrx test` calls.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
