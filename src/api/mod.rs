//! The SQL API (backends, never the worker): the functions users call to
//! configure nodes, filters, monitors and broadcasters. Each validates fully
//! before it writes, and reports errors with a SQLSTATE (`crate::error`).
//!
//! - [`nodes`], [`filters`], [`monitors`], [`broadcasters`]: one file per object;
//! - [`sets`]: address sets and their members (`watch`, `unwatch`);
//! - [`groups`]: who may consume which consumer group;
//! - [`views`]: each filter's typed view and its indexes;
//! - here: raising errors, existence checks, the served database, waking
//!   the worker at commit.
//!
//! `publish`, `poll`, `ack`, the consumer-group grants and the views are
//! plain SQL (`sql/`).

mod broadcasters;
mod compact_types;
mod filters;
mod groups;
mod kinds;
mod monitors;
mod nodes;
mod sets;
mod views;

use pgrx::prelude::{pg_extern, pg_sys, PgLogLevel, Spi};
use pgrx::PgSqlErrorCode;

use crate::error::{ApiError, ApiResult, SqlState};
use crate::spec::DEFAULT_NODE;

/// Reports `error` as an SQL ERROR with its SQLSTATE. Never returns.
pub(super) fn raise(error: ApiError) -> ! {
    let code = match error.sqlstate() {
        SqlState::InvalidParameterValue => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        SqlState::UniqueViolation => PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
        SqlState::UndefinedObject => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        SqlState::DuplicateTable => PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
        SqlState::InvalidSchemaName => PgSqlErrorCode::ERRCODE_INVALID_SCHEMA_NAME,
        SqlState::DependentObjectsStillExist => {
            PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST
        }
        SqlState::InsufficientPrivilege => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        SqlState::ObjectNotInPrerequisiteState => {
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
        }
        SqlState::InvalidTextRepresentation => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        SqlState::InvalidBinaryRepresentation => {
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION
        }
    };
    let mut report = pgrx::pg_sys::panic::ErrorReport::new(code, error.to_string(), "eventeum");
    if let Some(hint) = error.hint() {
        report = report.set_hint(hint);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

pub(super) fn or_raise<T>(result: ApiResult<T>) -> T {
    result.unwrap_or_else(|e| raise(e))
}

/// Runs an `EXISTS` query; an SPI error is raised as such, never read as "no".
pub(super) fn exists(sql: &str, key: &str) -> bool {
    exists_with(sql, &[key.into()])
}

/// The value of a query that returns at most one row: None for no row or
/// NULL; an SPI error is raised as such.
pub(super) fn at_most_one<T>(result: Result<Option<T>, pgrx::spi::SpiError>) -> Option<T> {
    match result {
        Ok(value) => value,
        Err(pgrx::spi::SpiError::InvalidPosition) => None,
        Err(e) => pgrx::error!("eventeum: {e}"),
    }
}

/// [`exists`] with any arguments.
pub(super) fn exists_with(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> bool {
    Spi::get_one_with_args::<bool>(sql, args)
        .unwrap_or_else(|e| pgrx::error!("eventeum: {e}"))
        .unwrap_or(false)
}

/// Runs a statement the API composed (DDL, mostly); an error is an ERROR.
pub(super) fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| pgrx::error!("eventeum: {e}"));
}

/// Takes relation `name` (a `TABLE` or `VIEW`, as `kind` says) out of the
/// extension when it is a member: one an update script made would be, and
/// pg_dump would leave it out, rows and all. Kind tables and typed views are
/// the user's data.
pub(super) fn leave_extension(kind: &str, name: &str) {
    let member = exists_with(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_depend
                         WHERE classid = 'pg_catalog.pg_class'::regclass AND objid = $1::regclass
                           AND deptype = 'e')",
        &[name.into()],
    );
    if member {
        run(&format!("ALTER EXTENSION eventeum DROP {kind} {name}"));
    }
}

/// Raises 55000 when the worker serves another database: what would be
/// configured here would never be followed or delivered. Restoring a dump
/// is not affected: it writes the tables, not through these functions.
pub(super) fn require_served_database() {
    let Some(served) = crate::guc::served_database() else {
        return; // no worker on this server at all: add_node warns
    };
    // publish() calls this per message: read the name, no SPI round trip.
    // SAFETY: a backend's own database id, set before any query runs;
    // get_database_name returns a palloc'd C string (or NULL) in the
    // current memory context, which outlives this call.
    let current = unsafe {
        let name = pg_sys::get_database_name(pg_sys::MyDatabaseId);
        if name.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(name)
                .to_string_lossy()
                .into_owned()
        }
    };
    if current != served {
        raise(ApiError::NotServed {
            database: current,
            served,
        });
    }
}

/// The same check for the API written in SQL (`publish`,
/// `create_consumer_group`, `grant_consumer_group`).
#[pg_extern(volatile, name = "require_served_database")]
fn require_served_database_sql() {
    require_served_database();
}

/// `eventeum.allowed_hosts` as the SQL API applies it; one that does not
/// parse refuses every host (42501).
pub(super) fn network_policy() -> crate::netpolicy::NetworkPolicy {
    crate::guc::network_policy().unwrap_or_else(|e| {
        raise(ApiError::Forbidden {
            message: format!("no host is allowed: {e}"),
            hint: Some(
                "a superuser fixes eventeum.allowed_hosts in postgresql.conf, then reloads".into(),
            ),
        })
    })
}

pub(super) fn node_exists(name: &str) -> bool {
    exists(
        "SELECT EXISTS (SELECT 1 FROM eventeum.nodes WHERE name = $1)",
        name,
    )
}

/// Raises 42704 unless `node` exists, with a hint on how to add it.
pub(super) fn require_node(node: &str) {
    if !node_exists(node) {
        let hint = if node == DEFAULT_NODE {
            "without a node name, \"default\" is used; add it with eventeum.add_node('default', url)"
        } else {
            "add it with eventeum.add_node(name, url)"
        };
        raise(ApiError::NotFound {
            kind: "node",
            name: node.to_string(),
            hint: Some(hint.into()),
        });
    }
}

/// A new UUID, for a filter registered without an id.
pub(super) fn new_uuid() -> String {
    Spi::get_one::<String>("SELECT gen_random_uuid()::text")
        .unwrap_or_else(|e| pgrx::error!("eventeum: {e}"))
        .expect("gen_random_uuid returns a value")
}

/// Eventeum answers a registration whose id exists with that id and changes
/// nothing; say so, since the caller may have meant another definition.
pub(super) fn notice_registered(kind: &str, id: &str) {
    pgrx::notice!(
        "{kind} \"{id}\" is registered already and is left as it is; remove it first to change it"
    );
}

/// Raises 42704 for a named broadcaster that does not exist.
pub(super) fn require_broadcasters(names: Option<&Vec<String>>) {
    for name in names.into_iter().flatten() {
        if !exists(
            "SELECT EXISTS (SELECT 1 FROM eventeum.broadcasters WHERE name = $1)",
            name,
        ) {
            raise(ApiError::not_found("broadcaster", name));
        }
    }
}

pub(super) fn warn_if_worker_absent() {
    if !crate::worker_registered() {
        pgrx::warning!(
            "eventeum's background worker is not running: add eventeum to shared_preload_libraries and restart PostgreSQL"
        );
    }
}

/// Wakes the worker's relay when the calling transaction commits, so that
/// what `publish()` wrote goes out within milliseconds instead of at the next
/// poll. Once per transaction; nothing happens on rollback.
#[pg_extern(volatile)]
fn wake_relay_at_commit() {
    wake_worker_at_commit();
}

/// Wakes the worker when the calling transaction commits: it reads the
/// configuration and the outbox on every wake, so a new filter's backfill or
/// a published message starts within milliseconds instead of at the next poll.
/// Once per transaction; nothing happens on rollback.
pub(super) fn wake_worker_at_commit() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static ARMED: AtomicBool = AtomicBool::new(false);
    if !crate::worker_registered() || ARMED.swap(true, Ordering::Relaxed) {
        return;
    }
    let worker = Spi::get_one::<i32>(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'eventeum' LIMIT 1",
    )
    .ok()
    .flatten();
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, move || {
        ARMED.store(false, Ordering::Relaxed);
        if let Some(pid) = worker {
            // SIGUSR1 makes Postgres' own handler in the worker set its latch.
            // SAFETY: kill(2) has no memory-safety preconditions; a pid that
            // is gone by now makes it fail with ESRCH, which is harmless.
            unsafe { libc::kill(pid, libc::SIGUSR1) };
        }
    });
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Abort, || {
        ARMED.store(false, Ordering::Relaxed)
    });
}

// `\df+` and GUI tools show these; the Rust doc comments above are for readers of the code.
pgrx::extension_sql!(
    r#"
COMMENT ON FUNCTION add_node(text, text, jsonb) IS
  'Registers an Ethereum node (http(s) or ws(s) url). options: Eventeum''s camelCase node properties (pollingInterval, numBlocksToWait, numBlocksToReplay, blockStrategy, ...); missing keys take Eventeum''s defaults. Returns the name.';
COMMENT ON FUNCTION remove_node(text) IS
  'Removes a node. Its filters must be removed first; its events stay.';
COMMENT ON FUNCTION add_filter(jsonb) IS
  'Adds a contract-event filter given as Eventeum''s REST body (id, contractAddress, eventSpecification or an ABI event object, correlationIdStrategy) plus optional node, startBlock, addressSet (in place of contractAddress; contractAddress null or "*" follows any contract), indexedParameterFilters and view (its typed view: false, a name, or {name, schema, index}). Returns the filter id.';
COMMENT ON FUNCTION add_filter(text, text, text, bigint, text, text) IS
  'Adds a contract-event filter from a Solidity event signature, e.g. Transfer(address indexed from, address indexed to, uint256 value), for one contract, any contract (''*''), or the members of address_set (contract_address NULL). Returns the filter id.';
COMMENT ON FUNCTION create_address_set(text) IS
  'Creates an address set that filters follow by name ("addressSet"). Returns the name; an existing set is left as it is.';
COMMENT ON FUNCTION drop_address_set(text) IS
  'Drops an address set and its members; refused (2BP01) while a filter follows it.';
COMMENT ON FUNCTION watch(text, text, bigint) IS
  'Adds an address to a set. With start_block its events are backfilled from there for every filter following the set; without, it is followed from the block the worker is at when this commits. Returns false if it was a member already.';
COMMENT ON FUNCTION unwatch(text, text) IS
  'Removes an address from a set; it is no longer followed and its stored events stay. Returns false if it was not a member.';
COMMENT ON FUNCTION add_filters_from_abi(text, jsonb, text[], text, bigint) IS
  'Adds one contract-event filter per event of a contract ABI (a JSON array as solc and Foundry write it, or an artifact with an "abi" key): all its events or those named. Ids are <EventName>_<first 8 hex digits of the address>; each gets a typed view named after its id. Returns the ids.';
COMMENT ON FUNCTION make_partitions(text, text, bigint, bigint) IS
  'Makes the partitions of a kind table (eventeum.event_kinds.table_name) that a node''s blocks from_block..to_block need, at its partitionBlocks; returns how many it made. The worker makes its own: this is for rows loaded by hand.';
COMMENT ON FUNCTION event_tables_ddl() IS
  'The statements that make this database''s kind tables (plain, not partitioned) and the contract_events view over them on a logical-replication subscriber; each may run again when kinds are added.';
COMMENT ON FUNCTION set_view(text, jsonb) IS
  'Sets a filter''s typed view: false drops it; a name or {"name", "schema", "index": [column, ...]} creates it, moves it or changes its indexes. Returns the view as stored.';
COMMENT ON FUNCTION _filter_view_changed(text, jsonb, text, jsonb) IS
  'Internal: the typed_view trigger''s work on contract_event_filters (creates, changes and drops views and their indexes).';
COMMENT ON FUNCTION remove_filter(text) IS
  'Removes a contract-event filter. Events it stored stay.';
COMMENT ON FUNCTION add_transaction_monitor(jsonb) IS
  'Adds a transaction monitor given as Eventeum''s REST body (type HASH, FROM_ADDRESS or TO_ADDRESS; transactionIdentifierValue; nodeName; statuses; optional id). Returns the monitor id.';
COMMENT ON FUNCTION add_broadcaster(text, text, jsonb) IS
  'Adds a kafka, rabbitmq or http broadcaster; messages written from then on are relayed to it. Returns the name.';
COMMENT ON FUNCTION remove_broadcaster(text) IS
  'Removes a broadcaster or consumer group, and its undelivered messages.';
COMMENT ON FUNCTION list_broadcasters() IS
  'Every broadcaster and consumer group; passwords and URL credentials are hidden.';
COMMENT ON FUNCTION wake_relay_at_commit() IS
  'Internal: wakes the worker''s relay when the calling transaction commits (publish calls it).';
COMMENT ON FUNCTION replay_dead_letters(text) IS
  'Puts dead letters (of one broadcaster, or all) back in the outbox. Returns how many.';
COMMENT ON FUNCTION remove_transaction_monitor(text) IS
  'Removes a transaction monitor. Transactions it stored stay.';
COMMENT ON FUNCTION require_served_database() IS
  'Internal: raises 55000 unless the worker serves this database (eventeum.database).';
COMMENT ON FUNCTION require_consumer(text) IS
  'Internal: raises 42501 unless the calling role may poll and ack the consumer group.';
"#,
    name = "function_comments",
    requires = [
        add_node,
        remove_node,
        add_filter_json,
        add_filter_signature,
        remove_filter,
        add_transaction_monitor,
        remove_transaction_monitor,
        add_broadcaster,
        remove_broadcaster,
        list_broadcasters,
        replay_dead_letters,
        wake_relay_at_commit,
        require_served_database_sql,
        groups::require_consumer,
        sets::create_address_set,
        sets::drop_address_set,
        sets::watch,
        sets::unwatch,
        filters::add_filters_from_abi,
        views::set_view,
        views::_filter_view_changed
    ]
);
