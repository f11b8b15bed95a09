//! eventeum: Ethereum contract events into PostgreSQL tables and NOTIFY.
//!
//! The pipeline, one module per stage:
//! - [`rpc`]: node RPC calls (tokio threads);
//! - [`follow`]: per-node followers that fetch merged `eth_getLogs` ranges (tokio threads);
//! - [`decode`]: raw logs to Eventeum's typed parameters (alloy dyn-abi);
//! - [`protocol`]: the messages between the two halves;
//! - [`store`]: a decoded log becomes a row, with its NOTIFY and the checkpoint (main thread);
//! - [`message`]: Eventeum's message JSON, rendered in one place;
//! - [`worker`]: the background worker's main loop; [`metrics`]: its HTTP endpoint;
//! - [`redact`]: secrets out of lists, logs and errors;
//! - [`api`]: the SQL functions; [`spec`] and [`node`] validate what they are given.

use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::bgworkers::{BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::prelude::*;

pub mod broadcast;
pub mod decode;
pub mod error;
pub mod follow;
pub mod message;
pub mod metrics;
pub mod monitor;
pub mod node;
pub mod protocol;
pub mod redact;
pub mod relay;
pub mod rows;
pub mod rpc;
pub mod spec;

mod api;
mod discard;
mod guc;
mod store;
mod worker;

pgrx::pg_module_magic!();

pgrx::extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
// Every release's upgrade script is also the end of a fresh install, in
// release order, so that an upgraded database and a new one have the same
// schema (pg_test checks it). The first needs every function in place, as the
// function comments do; the newest is the finalize step.
pgrx::extension_sql_file!(
    "../sql/eventeum--0.1.0--0.2.0.sql",
    name = "release_0_2_0",
    requires = ["function_comments"]
);
pgrx::extension_sql_file!(
    "../sql/eventeum--0.2.0--0.3.0.sql",
    name = "release_0_3_0",
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
    let preloading = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    guc::register(preloading);
    if !preloading {
        return;
    }
    BackgroundWorkerBuilder::new("eventeum worker")
        .set_type("eventeum")
        .set_function("eventeum_worker_main")
        .set_library("eventeum")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(worker::RESTART_DELAY))
        .load();
    WORKER_REGISTERED.store(true, Ordering::Relaxed);
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
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
