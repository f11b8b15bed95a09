//! COPY's binary format, written from memory: each field is the binary
//! input of its column's type, so Postgres parses no text but JSON.

/// Rows in COPY's binary format: a header, then per row its number of
/// fields and each field as a length and its bytes (the type's binary
/// input), then a trailer. Nothing is escaped, and Postgres parses no text
/// but the JSON.
#[derive(Debug)]
pub struct BinaryCopy {
    bytes: Vec<u8>,
}

/// COPY's binary signature, then the flags and the header extension length (both 0).
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// A field's length that stands for NULL.
const NULL_FIELD: i32 = -1;
/// The field count that ends the data.
const TRAILER: i16 = -1;
/// The jsonb binary format's version byte, before the JSON text.
const JSONB_VERSION: u8 = 1;

impl BinaryCopy {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buffer = Vec::with_capacity(BINARY_HEADER.len() + bytes + 2);
        buffer.extend_from_slice(BINARY_HEADER);
        BinaryCopy { bytes: buffer }
    }

    /// How many bytes are written: a mark to [`BinaryCopy::truncate`] to.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.len() == BINARY_HEADER.len()
    }

    /// Forgets what was written after `mark` (a row that could not be finished).
    pub fn truncate(&mut self, mark: usize) {
        self.bytes.truncate(mark.max(BINARY_HEADER.len()));
    }

    /// Starts a row of `fields` fields, which must follow.
    pub fn row(&mut self, fields: usize) -> &mut Self {
        let fields = i16::try_from(fields).expect("a table has at most 1,600 columns");
        self.bytes.extend_from_slice(&fields.to_be_bytes());
        self
    }

    /// A `text` field (or any type whose binary input is its text, such as an enum).
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.field(&[value.as_bytes()])
    }

    /// A `jsonb` field, from its JSON text.
    pub fn jsonb(&mut self, json: &str) -> &mut Self {
        self.field(&[&[JSONB_VERSION], json.as_bytes()])
    }

    pub fn bigint(&mut self, value: i64) -> &mut Self {
        self.field(&[&value.to_be_bytes()])
    }

    pub fn integer(&mut self, value: i32) -> &mut Self {
        self.field(&[&value.to_be_bytes()])
    }

    /// A `boolean` field.
    pub fn boolean(&mut self, value: bool) -> &mut Self {
        self.field(&[&[u8::from(value)]])
    }

    /// A `bytea` field, or one of the compact types (their binary input is
    /// their bytes).
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.field(&[value])
    }

    /// A `numeric` field from an integer's decimal digits (a leading `-`
    /// allowed), in numeric's binary form: the digits in base 10,000, most
    /// significant first. None, and nothing written, if `decimal` is not an
    /// integer.
    pub fn numeric(&mut self, decimal: &str) -> Option<&mut Self> {
        let (negative, digits) = match decimal.strip_prefix('-') {
            Some(digits) => (true, digits),
            None => (false, decimal),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = digits.trim_start_matches('0').as_bytes();
        // Base-10,000 groups, counted from the right.
        let mut groups: Vec<i16> = Vec::with_capacity(digits.len() / 4 + 1);
        let head = digits.len() % 4;
        if head > 0 {
            groups.push(decimal_value(&digits[..head]));
        }
        groups.extend(digits[head..].chunks(4).map(decimal_value));
        let weight = groups.len() as i16 - 1;
        // Trailing zero groups are implied by the weight.
        while groups.last() == Some(&0) {
            groups.pop();
        }
        let sign: u16 = if negative && !groups.is_empty() {
            0x4000
        } else {
            0
        };
        let mut field = Vec::with_capacity(8 + 2 * groups.len());
        field.extend_from_slice(&(groups.len() as i16).to_be_bytes());
        field.extend_from_slice(&(if groups.is_empty() { 0 } else { weight }).to_be_bytes());
        field.extend_from_slice(&sign.to_be_bytes());
        field.extend_from_slice(&0i16.to_be_bytes()); // display scale: an integer
        for group in groups {
            field.extend_from_slice(&group.to_be_bytes());
        }
        Some(self.field(&[&field]))
    }

    pub fn optional_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.text(value),
            None => self.null(),
        }
    }

    pub fn optional_bigint(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(value) => self.bigint(value),
            None => self.null(),
        }
    }

    /// The data, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&TRAILER.to_be_bytes());
        self.bytes
    }

    pub fn null(&mut self) -> &mut Self {
        self.bytes.extend_from_slice(&NULL_FIELD.to_be_bytes());
        self
    }

    /// A field made of `parts`, one after the other.
    fn field(&mut self, parts: &[&[u8]]) -> &mut Self {
        let length: usize = parts.iter().map(|part| part.len()).sum();
        // A field is at most 1 GB, and events are far smaller.
        let length = i32::try_from(length).expect("a field is under 1 GB");
        self.bytes.extend_from_slice(&length.to_be_bytes());
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
        self
    }
}

/// The value of up to four ASCII decimal digits.
fn decimal_value(digits: &[u8]) -> i16 {
    digits
        .iter()
        .fold(0i16, |value, digit| value * 10 + i16::from(digit - b'0'))
}

#[cfg(test)]
mod tests {
    use super::BinaryCopy;

    fn numeric(decimal: &str) -> Option<Vec<u8>> {
        let mut copy = BinaryCopy::with_capacity(0);
        let start = copy.bytes.len();
        copy.numeric(decimal)?;
        Some(copy.bytes[start + 4..].to_vec())
    }

    fn words(values: &[i16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    #[test]
    fn numerics_are_base_10000_digits() {
        // ndigits, weight, sign, dscale, digits
        assert_eq!(numeric("0"), Some(words(&[0, 0, 0, 0])));
        assert_eq!(numeric("7"), Some(words(&[1, 0, 0, 0, 7])));
        assert_eq!(numeric("12345"), Some(words(&[2, 1, 0, 0, 1, 2345])));
        assert_eq!(numeric("10000"), Some(words(&[1, 1, 0, 0, 1])));
        assert_eq!(numeric("-42"), Some(words(&[1, 0, 0x4000, 0, 42])));
        assert_eq!(numeric("000123"), Some(words(&[1, 0, 0, 0, 123])));
        let max = alloy::primitives::U256::MAX.to_string();
        assert_eq!(numeric(&max).map(|b| b.len()), Some(8 + 2 * 20));
        assert_eq!(numeric(""), None);
        assert_eq!(numeric("1.5"), None);
        assert_eq!(numeric("-"), None);
    }
}
