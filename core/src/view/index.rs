//! A typed view's indexes (any thread): each is a partial index on the
//! filter's rows in its kind table. On a partitioned kind table the index
//! builder makes it without ever making the worker's inserts wait for a
//! scan: an index on the kind table alone (`ON ONLY`, invalid, no rows
//! read), then one `CREATE INDEX CONCURRENTLY` per partition, each attached
//! to it; the last attach makes it valid.

use super::{ident, short_hash};
use crate::kind::STORE_SCHEMA;

/// One index a typed view asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewIndex {
    /// Its name in `eventeum_store` (see [`super::index_name`]).
    pub name: String,
    /// The filter and the view column it indexes, for progress reports.
    pub filter_id: String,
    pub view: String,
    pub column: String,
    /// The kind table's name in `eventeum_store`.
    pub table: String,
    /// The indexed expression over the kind table's row.
    pub expression: String,
    /// The filter's rows: `WHERE filter_key = …`.
    pub filter_key: i32,
}

impl ViewIndex {
    fn key_and_predicate(&self) -> String {
        format!(
            "({}, block_number) WHERE filter_key = {}",
            self.expression, self.filter_key
        )
    }

    fn qualified(name: &str) -> String {
        format!("{STORE_SCHEMA}.{}", ident(name))
    }

    /// The index on the kind table itself. On a partitioned table `ON ONLY`
    /// reads no rows: the index is invalid until every partition's is
    /// attached. On a plain table (a subscriber's) it is the whole index.
    pub fn create_on_table_sql(&self, partitioned: bool) -> String {
        format!(
            "CREATE INDEX {}IF NOT EXISTS {} ON {}{} {}",
            if partitioned { "" } else { "CONCURRENTLY " },
            ident(&self.name),
            if partitioned { "ONLY " } else { "" },
            Self::qualified(&self.table),
            self.key_and_predicate()
        )
    }

    /// Drops what an interrupted concurrent build on a plain table left.
    pub fn drop_on_table_sql(&self) -> String {
        format!(
            "DROP INDEX CONCURRENTLY IF EXISTS {}",
            Self::qualified(&self.name)
        )
    }

    /// The name of its index on `partition`: the partition's name and a hash
    /// of this index's, so that names stay within 63 bytes and an index
    /// left invalid by an interrupted build is found again by name.
    pub fn partition_index_name(&self, partition: &str) -> String {
        format!("{partition}_{}", short_hash(&self.name))
    }

    /// Builds its index on `partition` without blocking writes.
    pub fn create_on_partition_sql(&self, partition: &str) -> String {
        format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} {}",
            ident(&self.partition_index_name(partition)),
            Self::qualified(partition),
            self.key_and_predicate()
        )
    }

    /// Makes `partition`'s index a part of this one.
    pub fn attach_sql(&self, partition: &str) -> String {
        format!(
            "ALTER INDEX {} ATTACH PARTITION {}",
            Self::qualified(&self.name),
            Self::qualified(&self.partition_index_name(partition))
        )
    }

    /// Drops what an interrupted build left of `partition`'s index.
    pub fn drop_on_partition_sql(&self, partition: &str) -> String {
        format!(
            "DROP INDEX CONCURRENTLY IF EXISTS {}",
            Self::qualified(&self.partition_index_name(partition))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ViewIndex {
        ViewIndex {
            name: "transfers_to_0a1b2c3d".into(),
            filter_id: "t".into(),
            view: "eventeum.transfers".into(),
            column: "to".into(),
            table: "events_0123456789ab".into(),
            expression: "p2".into(),
            filter_key: 7,
        }
    }

    #[test]
    fn a_partitioned_table_gets_an_index_on_only_itself_then_one_per_partition() {
        let index = index();
        assert_eq!(
            index.create_on_table_sql(true),
            "CREATE INDEX IF NOT EXISTS \"transfers_to_0a1b2c3d\" ON ONLY \
             eventeum_store.\"events_0123456789ab\" (p2, block_number) WHERE filter_key = 7"
        );
        let partition = "events_0123456789ab_3_1000000";
        let child = index.partition_index_name(partition);
        assert!(child.starts_with(partition) && child.len() <= 63, "{child}");
        assert_eq!(
            index.create_on_partition_sql(partition),
            format!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"{child}\" ON \
                 eventeum_store.\"{partition}\" (p2, block_number) WHERE filter_key = 7"
            )
        );
        assert_eq!(
            index.attach_sql(partition),
            format!(
                "ALTER INDEX eventeum_store.\"transfers_to_0a1b2c3d\" ATTACH PARTITION eventeum_store.\"{child}\""
            )
        );
        assert_eq!(
            index.drop_on_partition_sql(partition),
            format!("DROP INDEX CONCURRENTLY IF EXISTS eventeum_store.\"{child}\"")
        );
    }

    #[test]
    fn a_plain_table_gets_one_concurrent_build() {
        assert!(index().create_on_table_sql(false).starts_with(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS \"transfers_to_0a1b2c3d\" ON eventeum_store."
        ));
    }
}
