//! Helpers the integration tests share: logs as a node returns them, filters,
//! and a reader for COPY's binary format.

#![allow(dead_code)] // each test file uses some of them

use std::sync::Arc;

use alloy::dyn_abi::DynSolValue;
use alloy::primitives::{address, Address, Bytes, Log as PrimitiveLog, LogData, B256, U256};
use alloy::rpc::types::Log;
use eventeum_core::config::{FilterConfig, FilterStorage};
use eventeum_core::kind::KindTable;
use eventeum_core::spec::FilterDefinition;

pub const CONTRACT: Address = address!("5FbDB2315678afecb367f032d93F642f64180aa3");
pub const ALICE: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

pub fn filter(signature: &str) -> FilterDefinition {
    FilterDefinition::from_signature(
        &CONTRACT.to_string(),
        signature,
        "default",
        None,
        Some("f".into()),
    )
    .unwrap()
}

pub fn topic(value: DynSolValue) -> B256 {
    B256::from_slice(&value.abi_encode())
}

pub fn rpc_log(topics: Vec<B256>, data: Vec<u8>, block: u64, index: u64) -> Log {
    Log {
        inner: PrimitiveLog {
            address: CONTRACT,
            data: LogData::new_unchecked(topics, Bytes::from(data)),
        },
        block_hash: Some(B256::repeat_byte(block as u8)),
        block_number: Some(block),
        block_timestamp: None,
        transaction_hash: Some(B256::repeat_byte(0xaa)),
        transaction_index: Some(0),
        log_index: Some(index),
        removed: false,
    }
}

/// Its rows are stored in its kind's table under filter key 11 and node key 3.
pub fn filter_config(id: &str, signature: &str) -> Arc<FilterConfig> {
    let mut config = FilterConfig::new(id.into(), filter(signature), 0, None, &Default::default());
    config.storage = Some(FilterStorage {
        table: Arc::new(KindTable::of(&config.definition.specification)),
        filter_key: 11,
        node_key: 3,
    });
    Arc::new(config)
}

pub fn transfer_filter() -> Arc<FilterConfig> {
    filter_config(
        "t",
        "Transfer(address indexed from, address indexed to, uint256 value)",
    )
}

/// A Transfer of 5 from ALICE to ALICE at `block`, log `index`.
pub fn transfer_log(transfer: &FilterConfig, block: u64, index: u64) -> Log {
    let topics = vec![
        transfer.topic0,
        topic(DynSolValue::Address(ALICE)),
        topic(DynSolValue::Address(ALICE)),
    ];
    let data = DynSolValue::Tuple(vec![DynSolValue::Uint(U256::from(5), 256)]).abi_encode_params();
    rpc_log(topics, data, block, index)
}

/// Reads COPY's binary format back: the rows, each a list of fields (None for NULL).
pub fn read_binary_copy(data: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
    let (header, mut rest) = data.split_at(19);
    assert_eq!(&header[..11], b"PGCOPY\n\xff\r\n\0");
    assert_eq!(&header[11..], [0; 8], "no flags, no header extension");
    let mut take = |n: usize| {
        let (bytes, tail) = rest.split_at(n);
        rest = tail;
        bytes.to_vec()
    };
    let mut rows = vec![];
    loop {
        let count = i16::from_be_bytes(take(2).try_into().unwrap());
        if count == -1 {
            break;
        }
        let row = (0..count)
            .map(|_| {
                let length = i32::from_be_bytes(take(4).try_into().unwrap());
                (length >= 0).then(|| take(length as usize))
            })
            .collect();
        rows.push(row);
    }
    assert!(take(0).is_empty());
    rows
}
