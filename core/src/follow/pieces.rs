//! Pieces (any thread): a fetched range's logs cut into block-aligned
//! pieces that commit on their own, so that no transaction grows with the
//! range and the first rows commit early.

use std::collections::BTreeMap;

use crate::rows::{DecodedEvent, UndecodableLog};

/// A block-aligned part of a fetched backfill range, committed on its own.
#[derive(Debug)]
pub struct Piece {
    /// Its first block.
    pub from: u64,
    /// Its last block.
    pub to: u64,
    /// The decoded events of its blocks, in block order.
    pub events: Vec<DecodedEvent>,
    /// The logs of its blocks that did not decode.
    pub failures: Vec<UndecodableLog>,
}

/// The last block of each piece of blocks `..=to` whose logs are in
/// `block_numbers` (ascending, a log each): pieces of about `size` logs, cut
/// only between blocks. The last piece ends at `to`.
pub fn piece_ends(to: u64, block_numbers: impl IntoIterator<Item = u64>, size: usize) -> Vec<u64> {
    let mut ends = Vec::new();
    let mut count = 0;
    let mut current: Option<u64> = None;
    for number in block_numbers {
        if current != Some(number) {
            // A new block: the last one closes a piece if that is full.
            if let Some(last) = current {
                if count >= size.max(1) && last < to {
                    ends.push(last);
                    count = 0;
                }
            }
            current = Some(number);
        }
        count += 1;
    }
    if let Some(last) = current {
        if count >= size.max(1) && last < to {
            ends.push(last);
        }
    }
    ends.push(to);
    ends
}

/// Splits the decoded logs of blocks `from..=to` into consecutive pieces of
/// about `size` logs each, cut only between blocks, so that no transaction
/// grows with the range and the first rows commit early. Every block of the
/// range is in exactly one piece; the last piece ends at `to`.
pub fn split_into_pieces(
    from: u64,
    to: u64,
    events: Vec<DecodedEvent>,
    failures: Vec<UndecodableLog>,
    size: usize,
) -> Vec<Piece> {
    let mut per_block: BTreeMap<u64, usize> = BTreeMap::new();
    for number in events
        .iter()
        .map(|e| e.position.block_number)
        .chain(failures.iter().map(|f| f.position.block_number))
    {
        *per_block.entry(number).or_default() += 1;
    }
    let numbers = per_block
        .iter()
        .flat_map(|(&number, &logs)| std::iter::repeat_n(number, logs));
    let ends = piece_ends(to, numbers, size);
    let mut events = events.into_iter().peekable();
    let mut failures = failures.into_iter().peekable();
    let mut start = from;
    ends.into_iter()
        .map(|end| {
            let mut piece = Piece {
                from: start,
                to: end,
                events: Vec::new(),
                failures: Vec::new(),
            };
            while let Some(event) = events.next_if(|e| e.position.block_number <= end) {
                piece.events.push(event);
            }
            while let Some(failure) = failures.next_if(|f| f.position.block_number <= end) {
                piece.failures.push(failure);
            }
            start = end + 1;
            piece
        })
        .collect()
}
