//! # mask: hash, redact or truncate PII columns
//!
//! Replaces the values of the configured columns in place; every other column passes through
//! untouched and the column order is kept. Nulls stay null under every method.
//!
//! ## Config
//!
//! ```json
//! {
//!   "key": "a long random secret",
//!   "algorithm": "blake3",
//!   "hash_length": 32,
//!   "columns": {
//!     "user_id": {"method": "hash"},
//!     "email":   {"method": "redact", "replacement": "***"},
//!     "ip":      {"method": "truncate", "keep": 7}
//!   }
//! }
//! ```
//!
//! * `columns` (required, non-empty): column name → method:
//!   * `{"method": "hash"}`: a keyed hash of the value, as lowercase hex. Works on `Utf8`,
//!     `LargeUtf8` and `Utf8View` columns (output keeps the column's type) and on integer columns
//!     (`Int8`..`Int64`, `UInt8`..`UInt64`), whose output column becomes `Utf8`.
//!   * `{"method": "redact", "replacement": "***"}`: every non-null value becomes `replacement`
//!     (default `"***"`). String columns only.
//!   * `{"method": "truncate", "keep": N}`: keeps the first `N` Unicode scalar values (chars, not
//!     bytes) of each value, e.g. `"192.168.1.23"` with `keep: 7` → `"192.168"`. String columns
//!     only.
//! * `key`: the secret, required (non-empty) when any column is hashed.
//! * `algorithm`: `"blake3"` (default), `"hmac-sha256"` or `"sha256"`.
//! * `hash_length`: how many hex characters of the digest to keep, 1 to 64 (default 32;
//!   64 keeps the whole 256-bit digest). Odd lengths keep the first hex digit of the last byte.
//!
//! ## Algorithms, exactly (so other engines can reproduce them)
//! Let `K` be the UTF-8 bytes of `key` and `M` the bytes of the value: the UTF-8 bytes of a
//! string value, or for integer columns the ASCII decimal form of the integer (optional leading
//! `-`, no leading zeros, no `+`: `-42`, `0`, `18446744073709551615`). Then the digest is:
//!
//! * `blake3`: `BLAKE3-keyed_hash(key = BLAKE3-derive_key(context = "weir mask v1", K), M)`,
//!   a 32-byte digest. `derive_key` is BLAKE3's key-derivation mode with that exact context
//!   string.
//! * `hmac-sha256`: `HMAC-SHA256(key = K, message = M)` (RFC 2104).
//! * `sha256`: `SHA-256(K || M)`: the key bytes immediately followed by the value bytes. It is
//!   weaker than HMAC (length extension) but reproducible in plain SQL, e.g. DuckDB
//!   `left(sha256(key || value), 32)`.
//!
//! The output is the lowercase hexadecimal form of the digest, cut to its first `hash_length`
//! characters.
//!
//! ## Errors
//! Config errors name the column (not found, wrong type for its method) or the field
//! (`key`, `hash_length`, `columns`) at fault, before any data flows.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, GenericStringArray, GenericStringBuilder, OffsetSizeTrait,
    StringViewBuilder,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use schemars::JsonSchema;
use serde::Deserialize;
use weir_sdk::hash::{self, Hasher, Offset};
use weir_sdk::{Error, RecordBatch, Transform};

/// The BLAKE3 key-derivation context for the mask key.
pub const BLAKE3_CONTEXT: &str = "weir mask v1";

/// The keyed hash used by the `hash` method.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum Algorithm {
    /// BLAKE3 keyed hash with the key derived by `derive_key("weir mask v1", key)`.
    #[default]
    #[serde(rename = "blake3")]
    Blake3,
    /// HMAC-SHA256 keyed with the key bytes.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// SHA-256 of the key bytes followed by the value bytes.
    #[serde(rename = "sha256")]
    Sha256,
}

/// How one column is masked.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Method {
    /// Replace each value by its keyed hash, in lowercase hex.
    Hash,
    /// Replace each non-null value by `replacement`.
    Redact {
        /// The replacement text (default `***`).
        #[serde(default = "default_replacement")]
        replacement: String,
    },
    /// Keep the first `keep` characters of each value.
    Truncate {
        /// How many characters (Unicode scalar values) to keep.
        keep: usize,
    },
}

fn default_replacement() -> String {
    "***".to_string()
}

fn default_hash_length() -> usize {
    32
}

/// The mask config.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The secret key for `hash`; required when any column is hashed.
    pub key: Option<String>,
    /// The hash algorithm (default `blake3`).
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Hex characters of the digest to keep, 1 to 64 (default 32).
    #[serde(default = "default_hash_length")]
    pub hash_length: usize,
    /// Column name → masking method.
    pub columns: BTreeMap<String, Method>,
}

/// The host-computed hasher for `algorithm` keyed with `key` (see the algorithms above).
pub fn hasher(algorithm: Algorithm, key: &str) -> Result<Hasher, Error> {
    match algorithm {
        Algorithm::Blake3 => Hasher::new(
            hash::Algorithm::Blake3Keyed,
            &blake3::derive_key(BLAKE3_CONTEXT, key.as_bytes()),
        ),
        Algorithm::HmacSha256 => Hasher::new(hash::Algorithm::HmacSha256, key.as_bytes()),
        Algorithm::Sha256 => Hasher::new(hash::Algorithm::Sha256Prefixed, key.as_bytes()),
    }
}

/// What to do with one column.
enum Rule {
    Hash,
    Redact(String),
    Truncate(usize),
}

struct Plan {
    column: usize,
    name: String,
    rule: Rule,
}

/// Masks the configured columns.
pub struct Mask {
    plans: Vec<Plan>,
    hasher: Option<Hasher>,
    hash_length: usize,
    schema: SchemaRef,
}

const STRING_TYPES: [DataType; 3] = [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View];
const INTEGER_TYPES: [DataType; 8] = [
    DataType::Int8,
    DataType::Int16,
    DataType::Int32,
    DataType::Int64,
    DataType::UInt8,
    DataType::UInt16,
    DataType::UInt32,
    DataType::UInt64,
];

impl Transform for Mask {
    type Config = Config;

    /// The masked columns; the rest pass through untouched.
    fn input_columns(config: &Config) -> Option<Vec<String>> {
        Some(config.columns.keys().cloned().collect())
    }

    fn open(config: Config, input: SchemaRef) -> Result<Self, Error> {
        if config.columns.is_empty() {
            return Err(Error::config("columns must name at least one column"));
        }
        if !(1..=64).contains(&config.hash_length) {
            return Err(Error::config(format!(
                "hash_length must be between 1 and 64 hex characters, got {}",
                config.hash_length
            )));
        }
        let hashes = config.columns.values().any(|m| *m == Method::Hash);
        let hasher = match (&config.key, hashes) {
            (Some(key), true) if !key.is_empty() => Some(hasher(config.algorithm, key)?),
            (_, true) => {
                let hashed: Vec<_> = config
                    .columns
                    .iter()
                    .filter(|(_, m)| **m == Method::Hash)
                    .map(|(c, _)| format!("{c:?}"))
                    .collect();
                return Err(Error::config(format!(
                    "key is required (non-empty) to hash column {}",
                    hashed.join(", ")
                )));
            }
            (_, false) => None,
        };

        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut plans = Vec::with_capacity(config.columns.len());
        for (name, method) in config.columns {
            let column = weir_sdk::column_index(&input, &name, &[])?;
            let data_type = input.field(column).data_type().clone();
            let is_string = STRING_TYPES.contains(&data_type);
            let rule = match method {
                Method::Hash => {
                    if !is_string && !INTEGER_TYPES.contains(&data_type) {
                        return Err(Error::config(format!(
                            "column {name:?} is {data_type}; method hash needs a string \
                             (Utf8, LargeUtf8, Utf8View) or integer column"
                        )));
                    }
                    if !is_string {
                        fields[column] = fields[column].clone().with_data_type(DataType::Utf8);
                    }
                    Rule::Hash
                }
                Method::Redact { replacement } => {
                    if !is_string {
                        return Err(Error::config(format!(
                            "column {name:?} is {data_type}; method redact needs a string \
                             column (Utf8, LargeUtf8, Utf8View)"
                        )));
                    }
                    Rule::Redact(replacement)
                }
                Method::Truncate { keep } => {
                    if !is_string {
                        return Err(Error::config(format!(
                            "column {name:?} is {data_type}; method truncate needs a string \
                             column (Utf8, LargeUtf8, Utf8View)"
                        )));
                    }
                    Rule::Truncate(keep)
                }
            };
            plans.push(Plan { column, name, rule });
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()));
        Ok(Mask {
            plans,
            hasher,
            hash_length: config.hash_length,
            schema,
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, Error> {
        let mut columns = batch.columns().to_vec();
        for plan in &self.plans {
            let input = batch.column(plan.column);
            let output = match &plan.rule {
                Rule::Hash => {
                    let hasher = self
                        .hasher
                        .as_ref()
                        .ok_or_else(|| Error::internal("hash rule without a hasher"))?;
                    hash_column(input, hasher, self.hash_length)?
                }
                Rule::Redact(replacement) => redact(input, &plan.name, replacement)?,
                Rule::Truncate(keep) => {
                    let keep = *keep;
                    map_values(input, &plan.name, keep, |value, out| {
                        let end = value
                            .char_indices()
                            .nth(keep)
                            .map_or(value.len(), |(i, _)| i);
                        out.push_str(&value[..end])
                    })?
                }
            };
            columns[plan.column] = output;
        }
        Ok(vec![RecordBatch::try_new(self.schema.clone(), columns)?])
    }
}

/// A string array builder the mapped values go into.
trait Sink {
    fn push(&mut self, value: &str);
    fn push_null(&mut self);
    fn finish_array(self) -> ArrayRef;
}

impl<O: OffsetSizeTrait> Sink for GenericStringBuilder<O> {
    #[inline]
    fn push(&mut self, value: &str) {
        self.append_value(value);
    }
    #[inline]
    fn push_null(&mut self) {
        self.append_null();
    }
    fn finish_array(mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

impl Sink for StringViewBuilder {
    #[inline]
    fn push(&mut self, value: &str) {
        self.append_value(value);
    }
    #[inline]
    fn push_null(&mut self) {
        self.append_null();
    }
    fn finish_array(mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

/// Maps every non-null value of a string column through `f`, which appends the new value to a
/// scratch string. The column keeps its type.
fn map_values(
    array: &ArrayRef,
    column: &str,
    bytes_per_value: usize,
    f: impl FnMut(&str, &mut String),
) -> Result<ArrayRef, Error> {
    let rows = array.len();
    let data = rows.saturating_mul(bytes_per_value);
    Ok(match array.data_type() {
        DataType::Utf8 => map_strings(
            array.as_string::<i32>().iter(),
            GenericStringBuilder::<i32>::with_capacity(rows, data),
            f,
        ),
        DataType::LargeUtf8 => map_strings(
            array.as_string::<i64>().iter(),
            GenericStringBuilder::<i64>::with_capacity(rows, data),
            f,
        ),
        DataType::Utf8View => map_strings(
            array.as_string_view().iter(),
            StringViewBuilder::with_capacity(rows),
            f,
        ),
        other => {
            return Err(Error::internal(format!(
                "column {column:?} has unsupported type {other}"
            )));
        }
    })
}

/// `replacement` in every slot of a string column, nulls kept. `Utf8` and `LargeUtf8` values are
/// the replacement repeated, built in a few doubling copies rather than one append per row.
fn redact(array: &ArrayRef, column: &str, replacement: &str) -> Result<ArrayRef, Error> {
    fn repeated<O: Offset>(
        replacement: &str,
        rows: usize,
        nulls: Option<NullBuffer>,
        column: &str,
    ) -> Result<ArrayRef, Error> {
        let width = replacement.len();
        if rows.checked_mul(width).and_then(O::from_usize).is_none() {
            return Err(Error::internal(format!(
                "column {column:?}: {rows} copies of the {width}-byte replacement exceed the \
                 offset range of its type"
            )));
        }
        let offsets = (0..=rows).map(|i| O::usize_as(i * width)).collect();
        let values = Buffer::from_vec(replacement.as_bytes().repeat(rows));
        // SAFETY: the values are `rows` copies of a `str` and the offsets rise evenly from 0 to
        // their end (checked to fit `O` above), so each slot is that `str`; the nulls come from
        // an array of `rows` slots.
        let array = unsafe {
            GenericStringArray::<O>::new_unchecked(
                OffsetBuffer::new_unchecked(offsets),
                values,
                nulls,
            )
        };
        debug_assert!(array.to_data().validate_full().is_ok());
        Ok(Arc::new(array))
    }
    let (rows, nulls) = (array.len(), array.nulls().cloned());
    match array.data_type() {
        DataType::Utf8 => repeated::<i32>(replacement, rows, nulls, column),
        DataType::LargeUtf8 => repeated::<i64>(replacement, rows, nulls, column),
        _ => map_values(array, column, replacement.len(), |_, out| {
            out.push_str(replacement)
        }),
    }
}

/// Hashes every non-null value of a string or integer column into `hex_chars` hex digits.
/// `Utf8` and `LargeUtf8` go to the host as they are; other types are first cast to `Utf8`
/// (integers in decimal), and a `Utf8View` column gets its type back.
fn hash_column(input: &ArrayRef, hasher: &Hasher, hex_chars: usize) -> Result<ArrayRef, Error> {
    match input.data_type() {
        DataType::Utf8 => hash_strings(input.as_string::<i32>(), hasher, hex_chars),
        DataType::LargeUtf8 => hash_strings(input.as_string::<i64>(), hasher, hex_chars),
        DataType::Utf8View => {
            let text = cast(input, &DataType::Utf8)?;
            let hashed = hash_strings(text.as_string::<i32>(), hasher, hex_chars)?;
            Ok(cast(&hashed, &DataType::Utf8View)?)
        }
        _ => {
            let text = cast(input, &DataType::Utf8)?;
            hash_strings(text.as_string::<i32>(), hasher, hex_chars)
        }
    }
}

/// Hashes every value of a `Utf8`/`LargeUtf8` column into `hex_chars` hex digits. The host
/// returns the digits of every slot back to back, so its answer is the values buffer as it is:
/// slot `i` is `values[i * hex_chars..(i + 1) * hex_chars]` (null slots keep their nulls and
/// the digits of whatever bytes they held).
fn hash_strings<O: Offset>(
    array: &GenericStringArray<O>,
    hasher: &Hasher,
    hex_chars: usize,
) -> Result<ArrayRef, Error> {
    let rows = array.len();
    let mut values = Vec::new();
    hasher.digest_many_hex(
        array.values(),
        array.value_offsets(),
        hex_chars,
        &mut values,
    )?;
    if values.len() != rows * hex_chars || O::from_usize(values.len()).is_none() {
        return Err(Error::internal(format!(
            "{} bytes of hex digits for {rows} values of {hex_chars} digits, or over the offset range",
            values.len()
        )));
    }
    let offsets = (0..=rows).map(|i| O::usize_as(i * hex_chars)).collect();
    // SAFETY: `offsets` rise evenly from 0 to the length of `values` (checked to fit `O` above),
    // `values` are ASCII hex digits (what `digest_many_hex` returns), and the nulls come from an
    // array of the same length. `try_new` would spend a UTF-8 pass over the digits proving it.
    let hashed = unsafe {
        GenericStringArray::<O>::new_unchecked(
            OffsetBuffer::new_unchecked(offsets),
            Buffer::from_vec(values),
            array.nulls().cloned(),
        )
    };
    debug_assert!(hashed.to_data().validate_full().is_ok());
    Ok(Arc::new(hashed))
}

fn map_strings<'a, S: Sink>(
    values: impl Iterator<Item = Option<&'a str>>,
    mut sink: S,
    mut f: impl FnMut(&str, &mut String),
) -> ArrayRef {
    let mut scratch = String::with_capacity(128);
    for value in values {
        match value {
            Some(value) => {
                scratch.clear();
                f(value, &mut scratch);
                sink.push(&scratch);
            }
            None => sink.push_null(),
        }
    }
    sink.finish_array()
}

weir_sdk::export!(Mask);
