//! The SQL of kind tables: their `CREATE TABLE`, the columns COPY fills,
//! and the rendering of a row as Eventeum's `contract_events` row, which
//! the `contract_events` view, confirmations and forks share.

use std::sync::Arc;

use super::{KindParameter, KindTable, StorageType, COMMENT_PREFIX};

/// The columns every kind table has before its values, in COPY's order.
pub const KEY_COLUMNS: [&str; 10] = [
    "node_key",
    "filter_key",
    "block_number",
    "log_index",
    "status",
    "block_timestamp",
    "block_hash",
    "transaction_hash",
    "address",
    "correlation_id",
];

/// How a kind table is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Partitioned by node and block range, as the worker writes it.
    Partitioned,
    /// One plain table, as a logical-replication subscriber receives it.
    Subscriber,
}

/// Joins a kind table `e` to the filter its rows came from.
pub const SOURCES_JOIN: &str = "JOIN eventeum.event_sources s ON s.source_key = e.filter_key";

/// `contract_events`' columns, as the view has them when no kind exists.
const EMPTY_VIEW: &str = "SELECT NULL::text AS id, NULL::text AS filter_id, NULL::text AS node, \
     NULL::text AS name, NULL::text AS address, NULL::bigint AS block_number, \
     NULL::text AS block_hash, NULL::text AS transaction_hash, NULL::integer AS log_index, \
     NULL::jsonb AS indexed_parameters, NULL::jsonb AS non_indexed_parameters, \
     NULL::text AS event_specification_signature, NULL::text AS correlation_id, \
     NULL::eventeum.event_status AS status, NULL::bigint AS block_timestamp, \
     NULL::timestamptz AS created_at, NULL::timestamptz AS updated_at WHERE false";

impl KindTable {
    /// Every column COPY fills, in order.
    pub fn copy_columns(&self) -> Vec<String> {
        KEY_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .chain(self.value_columns().into_iter().map(|(name, _)| name))
            .collect()
    }

    /// The statements that create the table, its indexes and its comment.
    /// Columns are in an order that packs without padding. The table is
    /// partitioned by node and block range ([`super::partition`]); the
    /// worker makes the partitions.
    pub fn create_sql(&self) -> Vec<String> {
        self.create_sql_as(Layout::Partitioned)
    }

    /// [`Self::create_sql`] in `layout`: a logical-replication subscriber
    /// gets plain tables (no worker makes partitions there), each statement
    /// idempotent so that it can be run again when kinds are added.
    pub fn create_sql_as(&self, layout: Layout) -> Vec<String> {
        let (create, partitioned_by) = match layout {
            Layout::Partitioned => (
                "CREATE TABLE",
                " PARTITION BY RANGE (node_key, block_number)",
            ),
            Layout::Subscriber => ("CREATE TABLE IF NOT EXISTS", ""),
        };
        let index = match layout {
            Layout::Partitioned => "CREATE INDEX",
            Layout::Subscriber => "CREATE INDEX IF NOT EXISTS",
        };
        let table = self.qualified_name();
        let name = self.name();
        let values: String = self
            .value_columns()
            .iter()
            .map(|(column, ty)| format!(",\n    {column} {ty} NOT NULL"))
            .collect();
        let comment = match self {
            KindTable::Typed(kind) => format!("{COMMENT_PREFIX}{}", kind.key()),
            KindTable::Json => format!("{COMMENT_PREFIX}(values as Eventeum's JSON lists)"),
        };
        vec![
            format!(
                "{create} {table} (
    node_key integer NOT NULL,
    filter_key integer NOT NULL,
    block_number bigint NOT NULL,
    log_index integer NOT NULL,
    status eventeum.event_status NOT NULL DEFAULT 'UNCONFIRMED',
    block_timestamp bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    block_hash eventeum.hash NOT NULL,
    transaction_hash eventeum.hash NOT NULL,
    address eventeum.address NOT NULL,
    correlation_id text{values},
    PRIMARY KEY (node_key, block_number, log_index, block_hash, filter_key)
){partitioned_by}"
            ),
            format!(
                "{index} {name}_unconfirmed ON {table} (node_key, block_number) WHERE status = 'UNCONFIRMED'"
            ),
            format!("{index} {name}_by_filter ON {table} (filter_key, block_number)"),
            format!("COMMENT ON TABLE {table} IS '{}'", comment.replace('\'', "''")),
            format!("GRANT SELECT ON {table} TO eventeum_reader"),
        ]
    }

    /// The select list that renders row `e` (joined to its source `s`) as a
    /// row of `contract_events`, with Eventeum's JSON lists.
    pub fn render_columns(&self) -> String {
        let (indexed, non_indexed) = match self {
            KindTable::Json => (
                "e.indexed_parameters".to_string(),
                "e.non_indexed_parameters".to_string(),
            ),
            KindTable::Typed(kind) => {
                let list = |indexed: bool| {
                    let items: Vec<String> = kind
                        .parameters
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.indexed == indexed)
                        .map(|(i, p)| render_parameter(p, &format!("e.p{}", i + 1)))
                        .collect();
                    if items.is_empty() {
                        "'[]'::jsonb".to_string()
                    } else {
                        format!("jsonb_build_array({})", items.join(", "))
                    }
                };
                (list(true), list(false))
            }
        };
        format!(
            "e.transaction_hash::text || '-' || e.block_hash::text || '-' || e.log_index AS id, \
             s.filter_id, s.node, s.event_name AS name, e.address::text AS address, e.block_number, \
             e.block_hash::text AS block_hash, e.transaction_hash::text AS transaction_hash, \
             e.log_index, {indexed} AS indexed_parameters, {non_indexed} AS non_indexed_parameters, \
             s.topic0 AS event_specification_signature, e.correlation_id, e.status, \
             e.block_timestamp, e.created_at, e.updated_at"
        )
    }

    /// A query over `from` (rows of this table, as `e`) that returns each as
    /// the JSON of its `contract_events` row.
    pub fn rendered_rows_sql(&self, from: &str) -> String {
        format!(
            "SELECT to_jsonb(r)::text FROM (SELECT {} FROM {from} e {SOURCES_JOIN}) r",
            self.render_columns()
        )
    }
}

/// One `{"type", "value"}` of Eventeum's lists, as `decode::render` writes it.
fn render_parameter(parameter: &KindParameter, column: &str) -> String {
    let value = match parameter.storage {
        StorageType::Numeric | StorageType::Text => column.to_string(),
        StorageType::Boolean => format!("{column}::integer"),
        StorageType::Address => format!("{column}::text"),
        StorageType::Bytea => format!("'0x' || encode({column}, 'hex')"),
        // Not in a typed table.
        StorageType::Array(_) | StorageType::Json => "NULL".to_string(),
    };
    format!(
        "jsonb_build_object('type', '{}', 'value', {value})",
        parameter.message_type().replace('\'', "''")
    )
}

/// `CREATE OR REPLACE VIEW eventeum.contract_events` over `tables`: one
/// `UNION ALL` branch per kind table, each row as Eventeum's.
pub fn contract_events_view_sql(tables: &[Arc<KindTable>]) -> String {
    let branches: Vec<String> = tables
        .iter()
        .map(|table| {
            format!(
                "SELECT {} FROM {} e {SOURCES_JOIN}",
                table.render_columns(),
                table.qualified_name()
            )
        })
        .collect();
    let body = if branches.is_empty() {
        EMPTY_VIEW.to_string()
    } else {
        branches.join("\nUNION ALL\n")
    };
    format!("CREATE OR REPLACE VIEW eventeum.contract_events AS\n{body}")
}

#[cfg(test)]
mod tests {
    use super::super::{EventKind, KindTable};
    use crate::spec::FilterDefinition;

    fn table(signature: &str) -> KindTable {
        let filter =
            FilterDefinition::from_signature("*", signature, "default", None, None).unwrap();
        KindTable::of(&filter.specification)
    }

    #[test]
    fn a_key_reads_back_as_its_kind_and_names_its_table() {
        let t = table("E(string indexed key, (address,uint256) pair, bool flag)");
        assert_eq!(t, KindTable::Json);
        let t = table("Transfer(address indexed from, address indexed to, uint256 value)");
        let KindTable::Typed(kind) = &t else {
            panic!("Transfer is flat")
        };
        assert_eq!(EventKind::from_key(&kind.key()).as_ref(), Some(kind));
        let comment = format!("{}{}", super::COMMENT_PREFIX, kind.key());
        assert_eq!(
            KindTable::from_comment(&t.name(), &comment),
            Some(t.clone())
        );
        assert_eq!(KindTable::from_comment("events_other", &comment), None);
        assert!(t.name().starts_with("events_") && t.name().len() == 19);
    }

    #[test]
    fn a_subscriber_gets_plain_tables_it_may_make_again() {
        let t = table("Transfer(address indexed from, address indexed to, uint256 value)");
        let primary = t.create_sql().join(";\n");
        assert!(primary.contains("PARTITION BY RANGE (node_key, block_number)"));
        let subscriber = t.create_sql_as(super::Layout::Subscriber);
        assert!(subscriber[0].starts_with("CREATE TABLE IF NOT EXISTS eventeum_store.events_"));
        assert!(subscriber.iter().all(|sql| !sql.contains("PARTITION")));
        assert!(subscriber[1..3]
            .iter()
            .all(|sql| sql.starts_with("CREATE INDEX IF NOT EXISTS")));
    }

    #[test]
    fn rendering_follows_eventeums_json() {
        let t = table("E(string indexed key, address who, bool ok, bytes4 tag)");
        let sql = t.render_columns();
        assert!(sql.contains(
            "jsonb_build_array(jsonb_build_object('type', 'bytes32', 'value', '0x' || encode(e.p1, 'hex')))"
        ));
        assert!(sql.contains("jsonb_build_object('type', 'address', 'value', e.p2::text)"));
        assert!(sql.contains("jsonb_build_object('type', 'bool', 'value', e.p3::integer)"));
        assert_eq!(
            t.copy_columns().last().map(String::as_str),
            Some("p4"),
            "values follow the key columns"
        );
    }
}
