//! The SQL API: functions users call to configure nodes and filters.
//! Each validates fully before it writes, and reports errors with a SQLSTATE.

use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};
use serde_json::Value;

use crate::broadcast::{normalize_options, BroadcasterKind};
use crate::error::{ApiError, ApiResult};
use crate::monitor::TransactionMonitor;
use crate::node::{validate_name, validate_url, NodeOptions};
use crate::redact::redact_options;
use crate::spec::{FilterDefinition, DEFAULT_NODE};

/// Reports `error` as an SQL ERROR with its SQLSTATE. Never returns.
fn raise(error: ApiError) -> ! {
    let code = match error.sqlstate() {
        "22023" => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        "23505" => PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
        "42704" => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        "2BP01" => PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
        _ => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
    };
    let mut report = pgrx::pg_sys::panic::ErrorReport::new(code, error.to_string(), "eventeum");
    if let Some(hint) = error.hint() {
        report = report.set_hint(hint.to_string());
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

fn or_raise<T>(result: ApiResult<T>) -> T {
    result.unwrap_or_else(|e| raise(e))
}

fn exists(sql: &str, key: &str) -> bool {
    Spi::get_one_with_args::<bool>(sql, &[key.into()])
        .ok()
        .flatten()
        .unwrap_or(false)
}

fn node_exists(name: &str) -> bool {
    exists(
        "SELECT EXISTS (SELECT 1 FROM eventeum.nodes WHERE name = $1)",
        name,
    )
}

fn warn_if_worker_absent() {
    if !crate::worker_registered() {
        pgrx::warning!(
            "eventeum's background worker is not running: add eventeum to shared_preload_libraries and restart PostgreSQL"
        );
    }
}

/// Registers an Ethereum node for the worker to follow.
///
/// `options` takes Eventeum's node properties in camelCase (pollingInterval,
/// numBlocksToWait, blockStrategy, ...); missing keys take Eventeum's defaults.
/// Returns the node name.
#[pg_extern(volatile)]
fn add_node(name: &str, url: &str, options: default!(JsonB, "'{}'")) -> String {
    or_raise(validate_name(name));
    let options = or_raise(NodeOptions::from_json(&options.0));
    let url = or_raise(validate_url(url, options.block_strategy));
    if node_exists(name) {
        raise(ApiError::Duplicate {
            kind: "node",
            name: name.to_string(),
        });
    }
    let options = serde_json::to_value(&options).expect("node options serialize");
    Spi::run_with_args(
        "INSERT INTO eventeum.nodes (name, url, options) VALUES ($1, $2, $3)",
        &[name.into(), url.as_str().into(), JsonB(options).into()],
    )
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot add node: {e}"));
    warn_if_worker_absent();
    wake_worker_at_commit();
    name.to_string()
}

/// Removes a node. Its filters must be removed first; its events stay.
#[pg_extern(volatile)]
fn remove_node(name: &str) {
    if !node_exists(name) {
        raise(ApiError::not_found("node", name));
    }
    let users = Spi::get_one_with_args::<i64>(
        "SELECT (SELECT count(*) FROM eventeum.contract_event_filters WHERE node = $1)
              + (SELECT count(*) FROM eventeum.transaction_monitors WHERE node = $1)",
        &[name.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(0);
    if users > 0 {
        raise(ApiError::InUse {
            kind: "node",
            name: name.to_string(),
            detail: format!("{users} filter(s) or transaction monitor(s) belong to it"),
        });
    }
    Spi::run_with_args("DELETE FROM eventeum.nodes WHERE name = $1", &[name.into()])
        .unwrap_or_else(|e| pgrx::error!("eventeum: cannot remove node: {e}"));
    wake_worker_at_commit();
}

/// Adds a contract-event filter given as Eventeum's REST body, plus the optional
/// keys `node` (default `default`) and `startBlock`. Returns the filter id,
/// generated when the body has none.
#[pg_extern(volatile, name = "add_filter")]
fn add_filter_json(filter: JsonB) -> String {
    if !matches!(filter.0, Value::Object(_)) {
        raise(ApiError::invalid("the filter must be a JSON object"));
    }
    store_filter(or_raise(FilterDefinition::from_json(&filter.0)))
}

/// Adds a contract-event filter from a human-readable Solidity event signature,
/// e.g. `Transfer(address indexed from, address indexed to, uint256 value)`.
#[pg_extern(volatile, name = "add_filter")]
fn add_filter_signature(
    contract_address: &str,
    event_signature: &str,
    node: default!(&str, "'default'"),
    start_block: default!(Option<i64>, "NULL"),
    id: default!(Option<String>, "NULL"),
) -> String {
    store_filter(or_raise(FilterDefinition::from_signature(
        contract_address,
        event_signature,
        node,
        start_block,
        id,
    )))
}

/// Raises 42704 unless `node` exists, with a hint on how to add it.
fn require_node(node: &str) {
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

/// The caller's id, unless taken (23505), or a new UUID.
fn new_id(requested: Option<&str>, exists_sql: &str, kind: &'static str) -> String {
    match requested {
        Some(id) if exists(exists_sql, id) => raise(ApiError::Duplicate {
            kind,
            name: id.to_string(),
        }),
        Some(id) => id.to_string(),
        None => Spi::get_one::<String>("SELECT gen_random_uuid()::text")
            .ok()
            .flatten()
            .expect("gen_random_uuid returns a value"),
    }
}

/// Raises 42704 for a named broadcaster that does not exist.
fn require_broadcasters(names: Option<&Vec<String>>) {
    for name in names.into_iter().flatten() {
        if !exists(
            "SELECT EXISTS (SELECT 1 FROM eventeum.broadcasters WHERE name = $1)",
            name,
        ) {
            raise(ApiError::not_found("broadcaster", name));
        }
    }
}

fn store_filter(filter: FilterDefinition) -> String {
    require_node(&filter.node);
    require_broadcasters(filter.broadcasters.as_ref());
    let id = new_id(
        filter.id.as_deref(),
        "SELECT EXISTS (SELECT 1 FROM eventeum.contract_event_filters WHERE id = $1)",
        "filter",
    );
    let definition = filter.to_json(&id);
    Spi::run_with_args(
        "INSERT INTO eventeum.contract_event_filters
                (id, node, contract_address, event_name, event_signature, start_block, definition)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            id.as_str().into(),
            filter.node.as_str().into(),
            filter.contract_address.to_checksum(None).into(),
            filter.specification.event_name.as_str().into(),
            alloy::primitives::hex::encode_prefixed(filter.specification.topic0()).into(),
            filter.start_block.map(|b| b as i64).into(),
            JsonB(definition).into(),
        ],
    )
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot add filter: {e}"));
    warn_if_worker_absent();
    wake_worker_at_commit();
    id
}

/// Removes a contract-event filter. Events it already stored stay.
#[pg_extern(volatile)]
fn remove_filter(id: &str) {
    // A mutating statement goes through `update`: a read-only SPI call would
    // run the DELETE without its statement triggers seeing it.
    let deleted = Spi::connect_mut(|client| {
        client
            .update(
                "DELETE FROM eventeum.contract_event_filters WHERE id = $1",
                None,
                &[id.into()],
            )
            .map(|table| table.len())
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot remove filter: {e}"));
    if deleted == 0 {
        raise(ApiError::not_found("filter", id));
    }
    wake_worker_at_commit();
}

/// Adds a transaction monitor given as Eventeum's REST body: `type` (HASH,
/// FROM_ADDRESS or TO_ADDRESS), `transactionIdentifierValue`, `nodeName`
/// (default `default`), `statuses` (default FAILED and CONFIRMED), and an
/// optional `id`. Returns the monitor id.
#[pg_extern(volatile)]
fn add_transaction_monitor(monitor: JsonB) -> String {
    if !matches!(monitor.0, Value::Object(_)) {
        raise(ApiError::invalid(
            "the transaction monitor must be a JSON object",
        ));
    }
    let monitor = or_raise(TransactionMonitor::from_json(&monitor.0));
    require_node(&monitor.node);
    require_broadcasters(monitor.broadcasters.as_ref());
    let id = new_id(
        monitor.id.as_deref(),
        "SELECT EXISTS (SELECT 1 FROM eventeum.transaction_monitors WHERE id = $1)",
        "transaction monitor",
    );
    let statuses: Vec<String> = monitor
        .statuses
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    Spi::run_with_args(
        "INSERT INTO eventeum.transaction_monitors (id, node, type, value, statuses, definition)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            id.as_str().into(),
            monitor.node.as_str().into(),
            monitor.target.kind().into(),
            monitor.target.value().into(),
            statuses.into(),
            JsonB(monitor.to_json(&id)).into(),
        ],
    )
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot add transaction monitor: {e}"));
    warn_if_worker_absent();
    wake_worker_at_commit();
    id
}

/// Removes a transaction monitor. The transactions it stored stay.
#[pg_extern(volatile)]
fn remove_transaction_monitor(id: &str) {
    let deleted = Spi::connect_mut(|client| {
        client
            .update(
                "DELETE FROM eventeum.transaction_monitors WHERE id = $1",
                None,
                &[id.into()],
            )
            .map(|table| table.len())
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot remove transaction monitor: {e}"));
    if deleted == 0 {
        raise(ApiError::not_found("transaction monitor", id));
    }
    wake_worker_at_commit();
}

/// Adds a broadcaster: `kind` kafka, rabbitmq or http, with its options
/// (see the README). Messages written from then on go to it. Returns the name.
#[pg_extern(volatile)]
fn add_broadcaster(name: &str, kind: &str, options: default!(JsonB, "'{}'")) -> String {
    if name.trim().is_empty() {
        raise(ApiError::invalid("broadcaster name must not be empty"));
    }
    let kind = or_raise(BroadcasterKind::parse(kind));
    let options = or_raise(normalize_options(kind, &options.0));
    if exists(
        "SELECT EXISTS (SELECT 1 FROM eventeum.broadcasters WHERE name = $1)",
        name,
    ) {
        raise(ApiError::Duplicate {
            kind: "broadcaster",
            name: name.to_string(),
        });
    }
    Spi::run_with_args(
        "INSERT INTO eventeum.broadcasters (name, kind, options) VALUES ($1, $2, $3)",
        &[name.into(), kind.as_str().into(), JsonB(options).into()],
    )
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot add broadcaster: {e}"));
    wake_worker_at_commit();
    name.to_string()
}

/// Removes a broadcaster (or consumer group) and its undelivered messages.
#[pg_extern(volatile)]
fn remove_broadcaster(name: &str) {
    let deleted = Spi::connect_mut(|client| {
        // Wait for the worker's writes to the outbox to end, and hold off its
        // next ones until this commits: it marks rows delivered by id while
        // this deletes them in scan order, and the two could deadlock. Every
        // writer locks the outbox before its queue.
        client.update(
            "LOCK TABLE eventeum.outbox, eventeum.outbox_pending IN SHARE ROW EXCLUSIVE MODE",
            None,
            &[],
        )?;
        client.update(
            "WITH dequeued AS (DELETE FROM eventeum.outbox_pending WHERE broadcaster = $1 RETURNING id)
             DELETE FROM eventeum.outbox WHERE id IN (SELECT id FROM dequeued)",
            None,
            &[name.into()],
        )?;
        let deleted = client
            .update(
                "DELETE FROM eventeum.broadcasters WHERE name = $1",
                None,
                &[name.into()],
            )?
            .len();
        Ok::<_, pgrx::spi::SpiError>(deleted)
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot remove broadcaster: {e}"));
    if deleted == 0 {
        raise(ApiError::not_found("broadcaster", name));
    }
    wake_worker_at_commit();
}

/// Every broadcaster and consumer group, with passwords and URL credentials hidden.
#[pg_extern(stable)]
fn list_broadcasters() -> SetOfIterator<'static, JsonB> {
    let rows: Vec<JsonB> = Spi::connect(|client| {
        client
            .select("SELECT name, kind, options::text FROM eventeum.broadcasters ORDER BY name", None, &[])?
            .map(|row| {
                let name: String = row.get(1)?.unwrap_or_default();
                let kind: String = row.get(2)?.unwrap_or_default();
                let options: Value = serde_json::from_str(&row.get::<String>(3)?.unwrap_or_default()).unwrap_or_default();
                Ok(JsonB(serde_json::json!({"name": name, "kind": kind, "options": redact_options(&options)})))
            })
            .collect::<Result<Vec<_>, pgrx::spi::SpiError>>()
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot list broadcasters: {e}"));
    SetOfIterator::new(rows)
}

/// Puts dead letters (of one broadcaster, or all) back in the outbox for
/// another attempt. Returns how many.
#[pg_extern(volatile)]
fn replay_dead_letters(broadcaster: default!(Option<&str>, "NULL")) -> i64 {
    let replayed = Spi::connect_mut(|client| {
        let moved = client.update(
            "WITH dead AS (
                DELETE FROM eventeum.dead_letters WHERE $1::text IS NULL OR broadcaster = $1 RETURNING *
             ), added AS (
                INSERT INTO eventeum.outbox (id, message_id, type, broadcaster, destination, key, payload, created_at, attempts)
                SELECT id, message_id, type, broadcaster, destination, key, payload, created_at, 0 FROM dead
                ON CONFLICT DO NOTHING
                RETURNING broadcaster, id, created_at)
             INSERT INTO eventeum.outbox_pending (broadcaster, id, created_at)
             SELECT broadcaster, id, created_at FROM added",
            None,
            &[broadcaster.into()],
        )?;
        Ok::<_, pgrx::spi::SpiError>(moved.len() as i64)
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: cannot replay dead letters: {e}"));
    if replayed > 0 {
        wake_worker_at_commit();
    }
    replayed
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
fn wake_worker_at_commit() {
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
  'Adds a contract-event filter given as Eventeum''s REST body (id, contractAddress, eventSpecification, correlationIdStrategy) plus optional node and startBlock. Returns the filter id.';
COMMENT ON FUNCTION add_filter(text, text, text, bigint, text) IS
  'Adds a contract-event filter from a Solidity event signature, e.g. Transfer(address indexed from, address indexed to, uint256 value). Returns the filter id.';
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
        wake_relay_at_commit
    ]
);
