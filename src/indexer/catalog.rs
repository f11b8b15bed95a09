//! What the index builder reads and records (main thread, SPI): how far a
//! view's index is in the catalog, and `eventeum.view_indexes`, where users
//! see it.

use pgrx::prelude::Spi;
use pgrx::spi::SpiResult;

use crate::kind::STORE_SCHEMA;
use crate::states::IndexState;
use crate::view::ViewIndex;

/// A view's index as the catalog has it.
#[derive(Debug)]
pub struct Built {
    /// Whether the kind table is partitioned (a subscriber's is not).
    pub partitioned: bool,
    /// The index on the kind table: absent (None), invalid or valid.
    pub valid: Option<bool>,
    /// The kind table's partitions.
    pub partitions: i64,
    /// Those without an index attached to this one.
    pub missing: Vec<String>,
}

/// Where `index` is, or None when its kind table does not exist.
pub fn built(index: &ViewIndex) -> SpiResult<Option<Built>> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT t.relkind = 'p',
                    (SELECT x.indisvalid FROM pg_catalog.pg_class i
                       JOIN pg_catalog.pg_index x ON x.indexrelid = i.oid
                      WHERE i.relnamespace = t.relnamespace AND i.relname = $2),
                    (SELECT count(*) FROM pg_catalog.pg_inherits h WHERE h.inhparent = t.oid),
                    ARRAY(SELECT p.relname::text
                            FROM pg_catalog.pg_inherits h JOIN pg_catalog.pg_class p ON p.oid = h.inhrelid
                           WHERE h.inhparent = t.oid
                             AND NOT EXISTS (
                                 SELECT FROM pg_catalog.pg_inherits hi
                                   JOIN pg_catalog.pg_class i ON i.oid = hi.inhparent
                                   JOIN pg_catalog.pg_index x ON x.indexrelid = hi.inhrelid
                                  WHERE i.relnamespace = t.relnamespace AND i.relname = $2
                                    AND x.indrelid = p.oid)
                           ORDER BY p.relname)
               FROM pg_catalog.pg_class t
              WHERE t.relnamespace = $3::regnamespace AND t.relname = $1",
            None,
            &[
                index.table.as_str().into(),
                index.name.as_str().into(),
                STORE_SCHEMA.into(),
            ],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(Built {
            partitioned: row.get::<bool>(1)?.unwrap_or(false),
            valid: row.get::<bool>(2)?,
            partitions: row.get::<i64>(3)?.unwrap_or(0),
            missing: row.get::<Vec<String>>(4)?.unwrap_or_default(),
        }))
    })
}

/// Whether `name` in `eventeum_store` is an index: absent (None), invalid
/// (an interrupted concurrent build's) or valid.
pub fn index_validity(name: &str) -> SpiResult<Option<bool>> {
    Spi::get_one_with_args::<bool>(
        "SELECT (SELECT x.indisvalid FROM pg_catalog.pg_class c
                   JOIN pg_catalog.pg_index x ON x.indexrelid = c.oid
                  WHERE c.relnamespace = $2::regnamespace AND c.relname = $1)",
        &[name.into(), STORE_SCHEMA.into()],
    )
}

/// Records how far `index` is: its row in `eventeum.view_indexes`.
pub fn record(
    index: &ViewIndex,
    state: IndexState,
    done: i64,
    total: i64,
    error: Option<&str>,
) -> SpiResult<()> {
    Spi::run_with_args(
        "INSERT INTO eventeum.view_indexes AS v
                (index_name, filter_id, view_name, column_name, kind_table, state,
                 partitions_done, partitions_total, builder_pid, error, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                 CASE WHEN $6 = 'BUILDING' THEN pg_catalog.pg_backend_pid() END, $9, now())
         ON CONFLICT (index_name) DO UPDATE
            SET filter_id = excluded.filter_id, view_name = excluded.view_name,
                column_name = excluded.column_name, kind_table = excluded.kind_table,
                state = excluded.state, partitions_done = excluded.partitions_done,
                partitions_total = excluded.partitions_total, builder_pid = excluded.builder_pid,
                error = excluded.error,
                updated_at = CASE WHEN (v.state, v.partitions_done) IS DISTINCT FROM
                                       (excluded.state, excluded.partitions_done)
                                  THEN now() ELSE v.updated_at END",
        &[
            index.name.as_str().into(),
            index.filter_id.as_str().into(),
            index.view.as_str().into(),
            index.column.as_str().into(),
            index.table.as_str().into(),
            state.as_str().into(),
            i32::try_from(done).unwrap_or(i32::MAX).into(),
            i32::try_from(total).unwrap_or(i32::MAX).into(),
            error.into(),
        ],
    )
}

/// Makes `eventeum.view_indexes` list exactly the `wanted` indexes: rows of
/// indexes no view asks for any more go, new ones come in as PENDING.
pub fn list(wanted: &[ViewIndex]) -> SpiResult<()> {
    let names: Vec<String> = wanted.iter().map(|i| i.name.clone()).collect();
    Spi::run_with_args(
        "DELETE FROM eventeum.view_indexes WHERE index_name <> ALL($1)",
        &[names.into()],
    )?;
    for index in wanted {
        Spi::run_with_args(
            "INSERT INTO eventeum.view_indexes
                    (index_name, filter_id, view_name, column_name, kind_table, state)
             VALUES ($1, $2, $3, $4, $5, 'PENDING')
             ON CONFLICT (index_name) DO NOTHING",
            &[
                index.name.as_str().into(),
                index.filter_id.as_str().into(),
                index.view.as_str().into(),
                index.column.as_str().into(),
                index.table.as_str().into(),
            ],
        )?;
    }
    Ok(())
}
