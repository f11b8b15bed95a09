//! `eventeum.address` and `eventeum.hash` in Postgres (any backend): their
//! text and binary input and their text output. A value is a bytea of 20 or
//! 32 bytes, so the types, their operators and their operator classes are
//! SQL in `sql/current/schema.sql`, on bytea's own comparison and hash
//! functions; these functions are declared there (`sql = false` here) and
//! their rules are `compact::CompactType`'s.

use std::ffi::{CStr, CString};

use pgrx::datum::Internal;
use pgrx::pg_sys;
use pgrx::prelude::pg_extern;

use super::{or_raise, raise};
use crate::compact::CompactType;
use crate::error::ApiError;

/// Input: the value's bytes from its text, or 22P02 with the reason.
fn text_in(ty: CompactType, input: &CStr) -> Vec<u8> {
    match input.to_str() {
        Ok(text) => or_raise(ty.parse(text)),
        Err(_) => raise(ty.invalid_text(&input.to_string_lossy(), "it is not UTF-8")),
    }
}

/// Output: the value's text. A value of another length can only come from
/// outside the types' own input (a binary-coercible cast from bytea does not
/// exist), so it is an error, not a guess.
fn text_out(ty: CompactType, value: &[u8]) -> CString {
    let text = ty.format(value).unwrap_or_else(|| {
        raise(ApiError::InvalidBinary {
            type_name: ty.sql_name(),
            reason: format!("{} bytes stored, not {}", value.len(), ty.size()),
        })
    });
    CString::new(text).expect("hex text has no NUL")
}

/// Binary input (COPY BINARY, the worker's COPY data, a client's binary
/// parameter): the message's remaining bytes, exactly the type's length.
fn binary_in(ty: CompactType, mut buffer: Internal) -> Vec<u8> {
    // SAFETY: Postgres calls a type's receive function with a StringInfo
    // holding the value's bytes as its `internal` argument.
    let Some(message) = (unsafe { buffer.get_mut::<pg_sys::StringInfoData>() }) else {
        raise(ApiError::InvalidBinary {
            type_name: ty.sql_name(),
            reason: "no message".into(),
        })
    };
    let remaining = (message.len - message.cursor).max(0) as usize;
    if remaining != ty.size() {
        raise(ApiError::InvalidBinary {
            type_name: ty.sql_name(),
            reason: format!("{remaining} bytes, not {}", ty.size()),
        });
    }
    let mut bytes = vec![0u8; remaining];
    // SAFETY: `message` is a valid StringInfo with `remaining` unread bytes
    // (checked above); pq_copymsgbytes copies them and moves the cursor.
    unsafe {
        pg_sys::pq_copymsgbytes(message, bytes.as_mut_ptr().cast(), remaining as i32);
    }
    bytes
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn address_in(input: &CStr) -> Vec<u8> {
    text_in(CompactType::Address, input)
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn address_out(value: &[u8]) -> CString {
    text_out(CompactType::Address, value)
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn address_recv(buffer: Internal) -> Vec<u8> {
    binary_in(CompactType::Address, buffer)
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn hash_in(input: &CStr) -> Vec<u8> {
    text_in(CompactType::Hash, input)
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn hash_out(value: &[u8]) -> CString {
    text_out(CompactType::Hash, value)
}

#[pg_extern(immutable, strict, parallel_safe, sql = false)]
fn hash_recv(buffer: Internal) -> Vec<u8> {
    binary_in(CompactType::Hash, buffer)
}
