//! Kind tables (backends): the table of a filter's event kind is made when
//! the first filter of that kind is added, and `contract_events` is then
//! replaced to read it too. Called by the filter trigger, so `add_filter`,
//! the upgrade and a restore take one path.

use pgrx::prelude::Spi;

use super::{exists_with, leave_extension, run};
use crate::kind::{contract_events_view_sql, KindTable, STORE_SCHEMA};

/// Makes `table`, and the JSON table, when missing; replaces
/// `contract_events` when it does not read them yet (a table made now, or
/// restored from a dump into a fresh install's view).
pub(super) fn ensure_kind_table(table: &KindTable) {
    let mut stale = false;
    for table in [table, &KindTable::Json] {
        stale |= !exists_with(
            "SELECT pg_catalog.pg_get_viewdef('eventeum.contract_events'::regclass) LIKE '%' || $1 || '%'",
            &[table.qualified_name().as_str().into()],
        );
        if !table_exists(&table.name()) {
            for sql in table.create_sql() {
                run(&sql);
            }
            leave_extension("TABLE", &table.qualified_name());
            stale = true;
        }
    }
    if stale {
        rebuild_contract_events();
    }
}

/// Replaces `contract_events` with a branch per kind table.
pub(super) fn rebuild_contract_events() {
    let tables =
        Spi::connect(crate::store::kind_tables).unwrap_or_else(|e| pgrx::error!("eventeum: {e}"));
    run(&contract_events_view_sql(&tables));
}

/// Whether schema `eventeum_store` exists: not before the 0.8.0 update.
pub(super) fn store_exists() -> bool {
    exists_with(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
        &[STORE_SCHEMA.into()],
    )
}

fn table_exists(name: &str) -> bool {
    exists_with(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class
                         WHERE relnamespace = $1::regnamespace AND relname = $2)",
        &[STORE_SCHEMA.into(), name.into()],
    )
}

/// The key of `filter_id`'s events on `node`, made when missing.
pub(super) fn event_source(filter_id: &str, node: &str, event_name: &str, topic0: &str) -> i32 {
    Spi::get_one_with_args::<i32>(
        "SELECT eventeum._event_source($1, $2, $3, $4)",
        &[
            filter_id.into(),
            node.into(),
            event_name.into(),
            topic0.into(),
        ],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        pgrx::error!("eventeum: cannot register the events of filter \"{filter_id}\"")
    })
}

/// The key of `node`, which [`event_source`] registered.
pub(super) fn registered_node_key(node: &str) -> i32 {
    Spi::get_one_with_args::<i32>(
        "SELECT node_key FROM eventeum.event_nodes WHERE name = $1",
        &[node.into()],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| pgrx::error!("eventeum: node \"{node}\" has no key"))
}

/// The 0.7.0 → 0.8.0 update's move of `contract_events`' rows (renamed
/// `contract_events_0_7` by the update script) into the kind tables, one
/// filter at a time: the rows of a filter that is still configured go to its
/// kind's table, converted as its typed view read them; the rest keep their
/// JSON lists in the JSON table. Returns how many rows moved. Created by
/// the update script and dropped at its end (`sql = false`).
#[pgrx::pg_extern(volatile, sql = false)]
fn _move_events_0_7_0() -> i64 {
    use crate::spec::FilterDefinition;
    let groups = Spi::connect(|client| {
        let rows = client.select(
            "SELECT g.filter_id, g.node, g.name, g.event_specification_signature, f.definition::text
               FROM (SELECT DISTINCT filter_id, node, name, event_specification_signature
                       FROM eventeum.contract_events_0_7) g
               LEFT JOIN eventeum.contract_event_filters f
                      ON f.id = g.filter_id AND f.node = g.node AND f.event_signature = g.event_specification_signature",
            None,
            &[],
        )?;
        let mut groups = vec![];
        for row in rows {
            let text = |i: usize| row.get::<String>(i).map(Option::unwrap_or_default);
            groups.push((text(1)?, text(2)?, text(3)?, text(4)?, row.get::<String>(5)?));
        }
        Ok::<_, pgrx::spi::SpiError>(groups)
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: {e}"));
    let mut moved = 0;
    for (filter_id, node, name, topic0, definition) in groups {
        let filter = definition
            .and_then(|d| serde_json::from_str(&d).ok())
            .and_then(|d| FilterDefinition::from_json(&d).ok());
        let (table, values) = match &filter {
            Some(filter) => {
                let table = KindTable::of(&filter.specification);
                let values = match &table {
                    KindTable::Typed(_) => crate::view::Column::all(&filter.specification)
                        .iter()
                        .zip(table.value_columns())
                        .map(|(column, (_, ty))| format!("({})::{ty}", column.expression("e.")))
                        .collect::<Vec<_>>(),
                    KindTable::Json => vec![],
                };
                (table, values)
            }
            None => (KindTable::Json, vec![]),
        };
        let values = if values.is_empty() {
            "e.indexed_parameters, e.non_indexed_parameters".to_string()
        } else {
            values.join(", ")
        };
        ensure_kind_table(&table);
        let key = event_source(&filter_id, &node, &name, &topic0);
        make_partitions_for_0_7_0(&table.name(), &filter_id, &node, &topic0);
        let sql = format!(
            "WITH moved AS (INSERT INTO {} (node_key, filter_key, block_number, log_index, status, block_timestamp,
                            created_at, updated_at, block_hash, transaction_hash, address, correlation_id,
                            {})
             SELECT (SELECT node_key FROM eventeum.event_nodes WHERE name = $2), $3, e.block_number,
                    e.log_index, e.status, e.block_timestamp, e.created_at, e.updated_at,
                    e.block_hash::eventeum.hash, e.transaction_hash::eventeum.hash,
                    e.address::eventeum.address, e.correlation_id, {values}
               FROM eventeum.contract_events_0_7 e WHERE e.filter_id = $1 AND e.node = $2
                AND e.event_specification_signature = $4
             RETURNING 1)
             SELECT count(*) FROM moved",
            table.qualified_name(),
            table
                .value_columns()
                .into_iter()
                .map(|(column, _)| column)
                .collect::<Vec<_>>()
                .join(", ")
        );
        moved += Spi::connect_mut(|client| {
            client
                .update(
                    &sql,
                    None,
                    &[
                        filter_id.as_str().into(),
                        node.as_str().into(),
                        key.into(),
                        topic0.as_str().into(),
                    ],
                )
                .and_then(|t| t.first().get_one::<i64>())
                .map(Option::unwrap_or_default)
        })
        .unwrap_or_else(|e| {
            pgrx::error!("eventeum: cannot move the events of filter \"{filter_id}\": {e}")
        });
    }
    moved
}

/// Makes the partitions the 0.7.0 rows of a filter move into: one per
/// width of blocks that holds some, none for the blocks between.
fn make_partitions_for_0_7_0(table: &str, filter_id: &str, node: &str, topic0: &str) {
    Spi::connect_mut(|client| {
        let node_key = node_key(client, node)?;
        let width = partition_width(client, node)?;
        let rows = client.select(
            "SELECT min(block_number), max(block_number) FROM eventeum.contract_events_0_7
              WHERE filter_id = $1 AND node = $2 AND event_specification_signature = $3
              GROUP BY block_number / $4",
            None,
            &[
                filter_id.into(),
                node.into(),
                topic0.into(),
                (width as i64).into(),
            ],
        )?;
        let mut ranges = vec![];
        for row in rows {
            let low: i64 = row.get(1)?.unwrap_or_default();
            let high: i64 = row.get(2)?.unwrap_or_default();
            ranges.push((low.max(0) as u64, high.max(0) as u64));
        }
        for (low, high) in ranges {
            crate::store::ensure_range(client, table, node_key, low, high, width)?;
        }
        Ok::<_, pgrx::spi::SpiError>(())
    })
    .unwrap_or_else(|e| {
        pgrx::error!("eventeum: cannot make the partitions of filter \"{filter_id}\": {e}")
    });
}

/// Makes the partitions of kind table `kind_table` (a `table_name` of
/// `eventeum.event_kinds`) that node `node`'s blocks `from_block ..=
/// to_block` need, at the node's `partitionBlocks`; returns how many it
/// made. The worker makes its own; this is for rows loaded by hand.
#[pgrx::pg_extern(volatile)]
fn make_partitions(kind_table: &str, node: &str, from_block: i64, to_block: i64) -> i32 {
    use crate::error::ApiError;
    if from_block < 0 || to_block < from_block {
        super::raise(ApiError::invalid(format!(
            "blocks {from_block}..={to_block} are not a range of block numbers"
        )));
    }
    if !exists_with(
        "SELECT EXISTS (SELECT 1 FROM eventeum.event_kinds WHERE table_name = $1)",
        &[kind_table.into()],
    ) {
        super::raise(ApiError::not_found("kind table", kind_table));
    }
    let made = Spi::connect_mut(|client| {
        let node_key = node_key(client, node)?;
        let width = partition_width(client, node)?;
        let made = crate::store::ensure_range(
            client,
            kind_table,
            node_key,
            from_block as u64,
            to_block as u64,
            width,
        )?;
        Ok::<_, pgrx::spi::SpiError>(made.len())
    })
    .unwrap_or_else(|e| pgrx::error!("eventeum: {e}"));
    made as i32
}

/// Node `node`'s key for stored events, made when missing.
fn node_key(client: &mut pgrx::spi::SpiClient<'_>, node: &str) -> pgrx::spi::SpiResult<i32> {
    client.update(
        "INSERT INTO eventeum.event_nodes (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        None,
        &[node.into()],
    )?;
    Ok(client
        .select(
            "SELECT node_key FROM eventeum.event_nodes WHERE name = $1",
            None,
            &[node.into()],
        )?
        .first()
        .get_one::<i32>()?
        .unwrap_or_default())
}

/// Node `node`'s `partitionBlocks`; the default for a node that was removed.
fn partition_width(client: &pgrx::spi::SpiClient<'_>, node: &str) -> pgrx::spi::SpiResult<u64> {
    let options = client
        .select(
            "SELECT options FROM eventeum.nodes WHERE name = $1",
            None,
            &[node.into()],
        )?
        .first()
        .get_one::<pgrx::JsonB>()
        .ok()
        .flatten();
    Ok(options
        .and_then(|o| crate::node::NodeOptions::from_json(&o.0).ok())
        .map_or(crate::node::DEFAULT_PARTITION_BLOCKS, |o| {
            o.partition_blocks
        }))
}

/// The statements that make this database's kind tables, and the
/// `contract_events` view over them, on a logical-replication subscriber:
/// plain tables (no worker makes partitions there), each statement safe to
/// run again when kinds are added (docs/OPERATIONS.md, "Read replicas by
/// logical replication").
#[pgrx::pg_extern(stable)]
fn event_tables_ddl() -> pgrx::iter::SetOfIterator<'static, String> {
    let tables =
        Spi::connect(crate::store::kind_tables).unwrap_or_else(|e| pgrx::error!("eventeum: {e}"));
    let mut statements = vec![];
    for table in &tables {
        statements.extend(table.create_sql_as(crate::kind::Layout::Subscriber));
    }
    statements.push(contract_events_view_sql(&tables));
    pgrx::iter::SetOfIterator::new(statements)
}
