//! Partitions of a kind table (any thread): each kind table is partitioned
//! by range of `(node_key, block_number)`, so that every partition holds one
//! node's events of a block range, and retention removes a node's old
//! blocks by dropping whole partitions, never by a `DELETE`.

use super::STORE_SCHEMA;

/// A partition's blocks: `from ..= to`, on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockSpan {
    pub from: u64,
    pub to: u64,
}

impl BlockSpan {
    pub fn contains(&self, block: u64) -> bool {
        (self.from..=self.to).contains(&block)
    }

    /// The blocks' middle: a live step past it makes the next partition.
    pub fn middle(&self) -> u64 {
        self.from + (self.to - self.from) / 2
    }
}

/// The span of the partition to make for `block`, which no span of
/// `existing` holds: aligned to `width` (so that the same blocks make the
/// same partitions on every node and in every kind), then cut where it
/// would overlap a partition made with another width.
pub fn span_for(block: u64, width: u64, existing: &[BlockSpan]) -> BlockSpan {
    let width = width.max(1);
    let mut from = block - block % width;
    let mut to = from.saturating_add(width - 1);
    for span in existing {
        debug_assert!(!span.contains(block));
        if span.to < block {
            from = from.max(span.to + 1);
        } else if span.from > block {
            to = to.min(span.from - 1);
        }
    }
    BlockSpan { from, to }
}

/// The name of `table`'s partition of node `node_key` that starts at `from`.
pub fn partition_name(table: &str, node_key: i32, from: u64) -> String {
    format!("{table}_{node_key}_{from}")
}

/// The statements that make `table`'s partition for `span` of node
/// `node_key`: a table of its own first, then `ATTACH PARTITION`, which
/// takes a lock on the kind table that neither its readers nor its writers
/// wait for (`CREATE TABLE … PARTITION OF` would take one both wait for).
/// Attaching builds the kind table's indexes on the new, empty partition.
pub fn create_partition_sql(table: &str, node_key: i32, span: BlockSpan) -> [String; 2] {
    let partition = partition_name(table, node_key, span.from);
    // The upper bound is exclusive; past the last bigint it is MAXVALUE.
    let end = match i64::try_from(span.to).ok().and_then(|to| to.checked_add(1)) {
        Some(end) => end.to_string(),
        None => "MAXVALUE".to_string(),
    };
    [
        format!(
            "CREATE TABLE {STORE_SCHEMA}.{partition} (LIKE {STORE_SCHEMA}.{table} INCLUDING DEFAULTS)"
        ),
        format!(
            "ALTER TABLE {STORE_SCHEMA}.{table} ATTACH PARTITION {STORE_SCHEMA}.{partition} \
             FOR VALUES FROM ({node_key}, {}) TO ({node_key}, {end})",
            span.from,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(from: u64, to: u64) -> BlockSpan {
        BlockSpan { from, to }
    }

    #[test]
    fn spans_are_aligned_to_the_width() {
        assert_eq!(span_for(0, 10, &[]), span(0, 9));
        assert_eq!(span_for(9, 10, &[]), span(0, 9));
        assert_eq!(span_for(10, 10, &[]), span(10, 19));
        assert_eq!(
            span_for(1_234_567, 1_000_000, &[]),
            span(1_000_000, 1_999_999)
        );
    }

    #[test]
    fn spans_stop_at_partitions_made_with_another_width() {
        // Made with width 10, now 100: the new one fills the gap only.
        let existing = [span(0, 9), span(30, 39)];
        assert_eq!(span_for(12, 100, &existing), span(10, 29));
        assert_eq!(span_for(45, 100, &existing), span(40, 99));
        // Made with width 100, now 10.
        assert_eq!(span_for(105, 10, &[span(0, 99)]), span(100, 109));
    }

    #[test]
    fn the_last_blocks_fit() {
        let top = i64::MAX as u64;
        let made = span_for(top, 1_000_000, &[]);
        assert!(made.contains(top));
        let sql = create_partition_sql("events_json", 1, made);
        assert!(sql[1].ends_with("TO (1, MAXVALUE)"), "{}", sql[1]);
    }

    #[test]
    fn names_say_the_node_and_first_block() {
        assert_eq!(
            partition_name("events_json", 3, 2_000_000),
            "events_json_3_2000000"
        );
        let sql = create_partition_sql("events_json", 3, span(20, 29));
        assert!(sql[1].ends_with("FOR VALUES FROM (3, 20) TO (3, 30)"));
    }
}
