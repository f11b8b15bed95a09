//! The compact storage types (any thread): `eventeum.address` and
//! `eventeum.hash` hold 20 and 32 bytes, and read and print as the text
//! Eventeum shows, EIP-55 for an address and lower-case `0x` hex for a hash.
//! Their rules are here, without pgrx, so that they are tested without a
//! database; `api/compact_types.rs` is their Postgres side.

use std::cell::RefCell;

use alloy::primitives::{Address, B256};

use crate::error::ApiError;

/// Slots of [`CHECKSUMS`].
const CHECKSUM_SLOTS: usize = 256;

thread_local! {
    /// The EIP-55 text of addresses printed lately. A query prints the same
    /// few addresses row after row (the contract's, the account looked up),
    /// and each costs a keccak that a plain table's text does not. Direct-mapped on
    /// the last byte, so bounded (256 entries of 62 bytes) and without
    /// bookkeeping: a collision overwrites.
    static CHECKSUMS: RefCell<[Option<(Address, String)>; CHECKSUM_SLOTS]> =
        const { RefCell::new([const { None }; CHECKSUM_SLOTS]) };
}

/// `address` in EIP-55 text, through [`CHECKSUMS`].
fn checksummed(address: Address) -> String {
    let slot = address.0[19] as usize % CHECKSUM_SLOTS;
    CHECKSUMS.with_borrow_mut(|slots| match &slots[slot] {
        Some((cached, text)) if *cached == address => text.clone(),
        _ => {
            let text = address.to_checksum(None);
            slots[slot] = Some((address, text.clone()));
            text
        }
    })
}

/// The compact types, by the name SQL knows them by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactType {
    /// `eventeum.address`: 20 bytes.
    Address,
    /// `eventeum.hash`: 32 bytes.
    Hash,
}

impl CompactType {
    /// Its SQL name, schema included.
    pub fn sql_name(self) -> &'static str {
        match self {
            CompactType::Address => "eventeum.address",
            CompactType::Hash => "eventeum.hash",
        }
    }

    /// How many bytes a value holds.
    pub fn size(self) -> usize {
        match self {
            CompactType::Address => 20,
            CompactType::Hash => 32,
        }
    }

    /// A value's bytes from its text: `0x` and the hex digits, in any case.
    /// An address in mixed case must carry a valid EIP-55 checksum, as
    /// Eventeum's own addresses do: a mistyped digit is caught, not stored.
    pub fn parse(self, text: &str) -> Result<Vec<u8>, ApiError> {
        let invalid = |reason: &str| self.invalid_text(text, reason);
        let digits = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .ok_or_else(|| invalid("it must start with 0x"))?;
        if digits.len() != 2 * self.size() {
            return Err(invalid(&format!(
                "it must have {} hex digits after 0x, not {}",
                2 * self.size(),
                digits.len()
            )));
        }
        let bytes = alloy::hex::decode(digits).map_err(|_| invalid("it is not hex"))?;
        if self == CompactType::Address {
            let mixed = digits.bytes().any(|b| b.is_ascii_lowercase())
                && digits.bytes().any(|b| b.is_ascii_uppercase());
            if mixed && Address::parse_checksummed(text, None).is_err() {
                return Err(invalid(
                    "its mixed case is not its EIP-55 checksum (write it in lower case to skip the check)",
                ));
            }
        }
        Ok(bytes)
    }

    /// A value's text from its bytes, or None when there are not
    /// [`CompactType::size`] of them.
    pub fn format(self, bytes: &[u8]) -> Option<String> {
        if bytes.len() != self.size() {
            return None;
        }
        Some(match self {
            CompactType::Address => checksummed(Address::from_slice(bytes)),
            CompactType::Hash => format!("{:#x}", B256::from_slice(bytes)),
        })
    }

    /// The 22P02 error for `text`, quoted up to 80 characters.
    pub fn invalid_text(self, text: &str, reason: &str) -> ApiError {
        ApiError::InvalidText {
            type_name: self.sql_name(),
            input: text.chars().take(80).collect(),
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CompactType::{Address, Hash};
    use crate::error::ApiError;

    const WETH: &str = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2";

    #[test]
    fn an_address_reads_in_any_case_and_prints_eip55() {
        for text in [
            WETH,
            &WETH.to_lowercase(),
            &WETH.to_uppercase().replace("0X", "0x"),
        ] {
            let bytes = Address.parse(text).unwrap();
            assert_eq!(bytes.len(), 20);
            assert_eq!(Address.format(&bytes).unwrap(), WETH);
        }
    }

    #[test]
    fn addresses_that_share_a_cache_slot_print_their_own_checksum() {
        // The same last byte, so the same slot: each print is still its own.
        let one = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"; // EIP-55's own example
        let mut other = [0x11u8; 20];
        other[19] = 0xed;
        let other_text = alloy::primitives::Address::from(other).to_checksum(None);
        for _ in 0..3 {
            for text in [one, other_text.as_str(), WETH] {
                let bytes = Address.parse(&text.to_lowercase()).unwrap();
                assert_eq!(Address.format(&bytes).unwrap(), text);
            }
        }
    }

    #[test]
    fn a_mixed_case_address_with_a_wrong_checksum_is_refused() {
        let wrong = WETH.replacen('C', "c", 1).replacen('a', "A", 1);
        let error = Address.parse(&wrong).unwrap_err();
        assert!(matches!(error, ApiError::InvalidText { .. }), "{error:?}");
        assert!(error.to_string().contains("EIP-55"), "{error}");
    }

    #[test]
    fn malformed_text_is_refused_with_the_reason() {
        for (text, reason) in [
            ("C02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", "0x"),
            ("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc", "40 hex digits"),
            ("0xZ02aaa39b223fe8d0a0e5c4f27ead9083c756cc2", "not hex"),
            ("", "0x"),
        ] {
            let error = Address.parse(text).unwrap_err().to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn a_hash_prints_in_lower_case() {
        let text = format!("0x{}", "AB".repeat(32));
        let bytes = Hash.parse(&text).unwrap();
        assert_eq!(Hash.format(&bytes).unwrap(), text.to_lowercase());
        assert!(Hash.parse(&text[..65]).is_err());
    }

    #[test]
    fn only_values_of_the_right_length_print() {
        assert_eq!(Address.format(&[0; 19]), None);
        assert_eq!(Hash.format(&[0; 33]), None);
    }
}
