//! Where each filter's events are stored (main thread): the kind tables in
//! `eventeum_store`, the filters' and nodes' small keys, and the indexes
//! typed views ask for, which the index builder makes.

use std::collections::HashMap;
use std::sync::Arc;

use alloy::primitives::hex;
use pgrx::spi::{SpiClient, SpiResult};

use pgrx::datum::DatumWithOid;

use super::records_of;
use crate::config::{ConfigSnapshot, FilterConfig, FilterStorage};
use crate::kind::{KindTable, STORE_SCHEMA};
use crate::message::ContractEventRecord;
use crate::states::EventStatus;
use crate::view::{ViewIndex, ViewRequest, ViewSource};

/// Every kind table in `eventeum_store`, read back from its name and comment.
pub fn kind_tables(client: &SpiClient<'_>) -> SpiResult<Vec<Arc<KindTable>>> {
    let rows = client.select(
        "SELECT c.relname::text, pg_catalog.obj_description(c.oid, 'pg_class')
           FROM pg_catalog.pg_class c
          WHERE c.relnamespace = $1::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          ORDER BY c.relname",
        None,
        &[STORE_SCHEMA.into()],
    )?;
    let mut tables = vec![];
    for row in rows {
        let name: String = row.get(1)?.unwrap_or_default();
        let comment: String = row.get(2)?.unwrap_or_default();
        if let Some(table) = KindTable::from_comment(&name, &comment) {
            tables.push(Arc::new(table));
        }
    }
    Ok(tables)
}

/// The kind tables and keys, read with the snapshot.
pub(super) struct StorageKeys {
    pub tables: Vec<Arc<KindTable>>,
    /// `(filter id, node, event name, topic0)` → `filter_key`.
    sources: HashMap<(String, String, String, String), i32>,
    nodes: HashMap<String, i32>,
    bytes_to_ascii: bool,
}

impl StorageKeys {
    pub fn load(client: &SpiClient<'_>, bytes_to_ascii: bool) -> SpiResult<Self> {
        let tables = kind_tables(client)?;
        let mut sources = HashMap::new();
        let rows = client.select(
            "SELECT s.filter_id, s.node, s.event_name, s.topic0, s.source_key
               FROM eventeum.event_sources s
               JOIN eventeum.contract_event_filters f ON f.id = s.filter_id AND f.node = s.node",
            None,
            &[],
        )?;
        for row in rows {
            let key = (
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<String>(3)?.unwrap_or_default(),
                row.get::<String>(4)?.unwrap_or_default(),
            );
            sources.insert(key, row.get::<i32>(5)?.unwrap_or_default());
        }
        let mut nodes = HashMap::new();
        for row in client.select("SELECT name, node_key FROM eventeum.event_nodes", None, &[])? {
            nodes.insert(
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<i32>(2)?.unwrap_or_default(),
            );
        }
        Ok(StorageKeys {
            tables,
            sources,
            nodes,
            bytes_to_ascii,
        })
    }

    /// Where `filter`'s events go: its kind's table, or the JSON table when
    /// bytesToAscii renders one of its values as text. None when its table
    /// or keys are missing.
    pub fn of(&self, filter: &FilterConfig) -> Option<FilterStorage> {
        let spec = &filter.definition.specification;
        let mut wanted = KindTable::of(spec);
        if let KindTable::Typed(kind) = &wanted {
            if self.bytes_to_ascii && kind.has_fixed_bytes() {
                wanted = KindTable::Json;
            }
        }
        let table = self.tables.iter().find(|t| ***t == wanted)?.clone();
        let node = &filter.definition.node;
        let source = (
            filter.id.clone(),
            node.clone(),
            spec.event_name.clone(),
            hex::encode_prefixed(filter.topic0),
        );
        Some(FilterStorage {
            table,
            filter_key: *self.sources.get(&source)?,
            node_key: *self.nodes.get(node)?,
        })
    }
}

/// The indexes the typed views of `snapshot`'s filters ask for. The index
/// builder (`crate::indexer`) makes those that do not exist yet.
pub fn view_indexes(snapshot: &ConfigSnapshot) -> Vec<ViewIndex> {
    let mut wanted = vec![];
    for node in snapshot.nodes.values() {
        for filter in &node.filters {
            // Resolving a view's columns costs: only for views with indexes.
            let wants_index = matches!(&filter.definition.view,
                ViewRequest::On { index, .. } if !index.is_empty());
            if !wants_index {
                continue;
            }
            let (Some(view), Some(storage)) =
                (filter.definition.typed_view(&filter.id), &filter.storage)
            else {
                continue;
            };
            let source = ViewSource {
                table: KindTable::of(&filter.definition.specification),
                filter_key: storage.filter_key,
                node_key: storage.node_key,
                node: node.name.clone(),
            };
            wanted.extend(view.indexes(&source));
        }
    }
    wanted
}

/// Sets `status` on the rows of node `$1` that `condition` selects (over
/// `e`, with the parameters `args` gives), in every kind table; returns them
/// as `contract_events` rows, in chain order.
pub(super) fn set_status<'a>(
    client: &mut SpiClient<'_>,
    tables: &[Arc<KindTable>],
    status: EventStatus,
    condition: &str,
    args: impl Fn() -> Vec<DatumWithOid<'a>>,
) -> SpiResult<Vec<ContractEventRecord>> {
    let mut rows = vec![];
    for table in tables {
        let sql = format!(
            "WITH changed AS (
                 UPDATE {} e SET status = '{}', updated_at = now()
                  WHERE e.node_key = (SELECT node_key FROM eventeum.event_nodes WHERE name = $1)
                    AND {condition}
                 RETURNING e.*)
             {}",
            table.qualified_name(),
            status.as_str(),
            table.rendered_rows_sql("changed")
        );
        let changed = client.update(&sql, None, &args())?;
        rows.extend(records_of::<ContractEventRecord>(changed)?);
    }
    rows.sort_by_key(|r| (r.block_number, r.log_index));
    Ok(rows)
}
