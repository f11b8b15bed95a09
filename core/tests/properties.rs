//! Properties that must hold for any input: pieces partition a backfill
//! range, COPY's binary data reads back as written, and decoding whatever a
//! node sends never panics.

mod common;

use std::collections::BTreeMap;

use alloy::primitives::B256;
use common::*;
use eventeum_core::decode::{decode_log, RawLog, RenderOptions};
use eventeum_core::follow::{decode_logs, piece_ends, split_into_pieces};
use eventeum_core::rows::BinaryCopy;
use eventeum_core::spec::FilterDefinition;
use proptest::prelude::*;

/// A backfill range `from..=to` and the (block, logs in it) of its logs.
fn range_with_logs() -> impl Strategy<Value = (u64, u64, Vec<(u64, u64)>)> {
    (0u64..1_000, 0u64..200).prop_flat_map(|(from, len)| {
        let to = from + len;
        let blocks = prop::collection::btree_map(from..=to, 1u64..6, 0..40);
        blocks.prop_map(move |b| (from, to, b.into_iter().collect()))
    })
}

proptest! {
    #[test]
    fn every_decoded_event_lands_in_exactly_one_piece(
        (from, to, blocks) in range_with_logs(),
        size in 1usize..12,
    ) {
        let transfer = transfer_filter();
        let logs: Vec<_> = blocks
            .iter()
            .flat_map(|&(block, count)| (0..count).map(move |i| (block, i)))
            .map(|(block, i)| transfer_log(&transfer, block, i))
            .collect();
        let (events, failures) = decode_logs(
            std::slice::from_ref(&transfer),
            &logs,
            &BTreeMap::new(),
            RenderOptions::default(),
        );
        prop_assert_eq!(events.len(), logs.len());
        prop_assert!(failures.is_empty());
        let expected: Vec<_> = events
            .iter()
            .map(|e| (e.position.block_number, e.position.log_index))
            .collect();

        // A backfill cuts its raw logs where the decoded events would be cut.
        let raw_ends = piece_ends(to, logs.iter().filter_map(|l| l.block_number), size);

        let pieces = split_into_pieces(from, to, events, failures, size);
        prop_assert_eq!(raw_ends, pieces.iter().map(|p| p.to).collect::<Vec<_>>());
        // The pieces cover the range, in order, without gaps or overlaps.
        prop_assert_eq!(pieces.first().map(|p| p.from), Some(from));
        prop_assert_eq!(pieces.last().map(|p| p.to), Some(to));
        for pair in pieces.windows(2) {
            prop_assert_eq!(pair[1].from, pair[0].to + 1);
        }
        // Each event is in the piece of its block, once, in the order given.
        let mut seen = Vec::new();
        for piece in &pieces {
            prop_assert!(piece.from <= piece.to);
            for event in &piece.events {
                let block = event.position.block_number;
                prop_assert!(piece.from <= block && block <= piece.to);
                seen.push((block, event.position.log_index));
            }
            // A piece is cut only between blocks, after the block that brings
            // it to `size` logs: every piece but the last has at least that
            // many, and none has `size` before its last block.
            let mut per_block: BTreeMap<u64, usize> = BTreeMap::new();
            for event in &piece.events {
                *per_block.entry(event.position.block_number).or_default() += 1;
            }
            let without_last = piece.events.len() - per_block.values().last().copied().unwrap_or(0);
            prop_assert!(without_last < size);
            prop_assert!(piece.to == to || piece.events.len() >= size);
        }
        prop_assert_eq!(seen, expected);
    }
}

/// One field of a COPY row, with the bytes Postgres reads back.
#[derive(Debug, Clone)]
enum Field {
    Text(String),
    Jsonb(String),
    Bigint(i64),
    Integer(i32),
    Null,
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        any::<String>().prop_map(Field::Text),
        any::<String>().prop_map(|s| Field::Jsonb(serde_json::to_string(&s).unwrap())),
        any::<i64>().prop_map(Field::Bigint),
        any::<i32>().prop_map(Field::Integer),
        Just(Field::Null),
    ]
}

proptest! {
    #[test]
    fn binary_copy_reads_back_as_written(rows in prop::collection::vec(prop::collection::vec(field(), 0..16), 0..20)) {
        let mut copy = BinaryCopy::with_capacity(0);
        for row in &rows {
            copy.row(row.len());
            for f in row {
                match f {
                    Field::Text(s) => copy.text(s),
                    Field::Jsonb(s) => copy.jsonb(s),
                    Field::Bigint(v) => copy.bigint(*v),
                    Field::Integer(v) => copy.integer(*v),
                    Field::Null => copy.optional_text(None),
                };
            }
        }
        let read = read_binary_copy(&copy.finish());
        let expected: Vec<Vec<Option<Vec<u8>>>> = rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|f| match f {
                        Field::Text(s) => Some(s.as_bytes().to_vec()),
                        Field::Jsonb(s) => Some([&[1u8][..], s.as_bytes()].concat()),
                        Field::Bigint(v) => Some(v.to_be_bytes().to_vec()),
                        Field::Integer(v) => Some(v.to_be_bytes().to_vec()),
                        Field::Null => None,
                    })
                    .collect()
            })
            .collect();
        prop_assert_eq!(read, expected);
    }
}

/// Specifications with every kind of parameter Eventeum has: static and
/// dynamic, indexed and not, arrays.
fn specifications() -> Vec<FilterDefinition> {
    [
        "Transfer(address indexed from, address indexed to, uint256 value)",
        "E(int8 indexed a, bool indexed b, bytes4 c, string d, int256[] e, bool[] g)",
        "S(string indexed s, bytes32 indexed h, uint8[] xs, address[] who)",
        "N(uint256 a, uint256 b, string c, bytes32[] d)",
        "Z()",
    ]
    .iter()
    .map(|s| filter(s))
    .collect()
}

proptest! {
    #[test]
    fn decoding_any_topics_and_data_never_panics(
        spec in 0usize..5,
        use_topic0 in any::<bool>(),
        topics in prop::collection::vec(any::<[u8; 32]>(), 0..5),
        data in prop::collection::vec(any::<u8>(), 0..600),
        words in prop::collection::vec(any::<[u8; 32]>(), 0..12),
        bytes_to_ascii in any::<bool>(),
    ) {
        let specification = &specifications()[spec];
        let mut topics: Vec<B256> = topics.into_iter().map(B256::from).collect();
        if use_topic0 && !topics.is_empty() {
            topics[0] = specification.specification.topic0();
        }
        let options = RenderOptions { bytes_to_ascii };
        // Random bytes, and random 32-byte words (which look more like ABI:
        // offsets and lengths that point anywhere).
        let _ = decode_log(specification, RawLog { topics: &topics, data: &data }, options);
        let words: Vec<u8> = words.concat();
        let _ = decode_log(specification, RawLog { topics: &topics, data: &words }, options);
    }
}
