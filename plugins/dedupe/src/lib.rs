//! # dedupe: keep the first row per key
//!
//! Drops every row whose key was already seen earlier in the task: earlier in the same batch or in
//! any earlier batch. The first row with a given key is kept unchanged, rows keep their order, and
//! the output schema is the input schema.
//!
//! ## Config
//!
//! ```json
//! {"keys": ["event_id"]}
//! ```
//!
//! * `keys` (required, non-empty, no duplicates): the key columns. A row's key is the tuple of
//!   these columns' values. Any type Arrow's row format supports works (numbers, strings, binary,
//!   booleans, dates, timestamps, decimals, dictionaries, structs, lists).
//!
//! ## Semantics
//! * Nulls are equal to each other (as in SQL `DISTINCT`): among rows whose key is null (or,
//!   for multi-column keys, that match column by column with nulls matching nulls) the first is
//!   kept.
//! * Keys are compared by value in Arrow's row format: floats compare by their bits in total order,
//!   so `-0.0` and `0.0` are different keys and all NaNs with the same bits are one key.
//!   Dictionary columns compare by their values, not their keys.
//!
//! ## State
//! The plugin holds every distinct key seen during the task in memory (the row-format bytes of the
//! key, typically a few bytes more than the raw values), so memory grows with the number of
//! distinct keys in the task's input. Deduplication is per task: rows in different tasks
//! (partitions handled by different hosts) are not compared.

use std::collections::HashSet;

use arrow::array::BooleanArray;
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use schemars::JsonSchema;
use serde::Deserialize;
use weir_sdk::{Error, RecordBatch, Transform};

/// The dedupe config.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The key columns; the first row per distinct key is kept.
    pub keys: Vec<String>,
}

/// Keeps the first row per key.
pub struct Dedupe {
    keys: Vec<usize>,
    converter: RowConverter,
    seen: HashSet<Box<[u8]>>,
    schema: SchemaRef,
}

impl Dedupe {
    /// How many distinct keys have been seen so far.
    pub fn distinct_keys(&self) -> usize {
        self.seen.len()
    }
}

impl Transform for Dedupe {
    type Config = Config;

    /// The key columns; the rest pass through untouched.
    fn input_columns(config: &Config) -> Option<Vec<String>> {
        Some(config.keys.clone())
    }

    fn open(config: Config, input: SchemaRef) -> Result<Self, Error> {
        if config.keys.is_empty() {
            return Err(Error::config("keys must name at least one column"));
        }
        let mut keys = Vec::with_capacity(config.keys.len());
        let mut fields = Vec::with_capacity(config.keys.len());
        for (i, name) in config.keys.iter().enumerate() {
            if config.keys[..i].contains(name) {
                return Err(Error::config(format!(
                    "keys[{i}]: column {name:?} is listed twice"
                )));
            }
            let index = weir_sdk::column_index(&input, name, &[])
                .map_err(|e| Error::config(format!("keys[{i}]: {}", message(e))))?;
            let field = SortField::new(input.field(index).data_type().clone());
            if !RowConverter::supports_fields(std::slice::from_ref(&field)) {
                return Err(Error::config(format!(
                    "keys[{i}]: column {name:?} has type {}, which cannot be a key",
                    input.field(index).data_type()
                )));
            }
            keys.push(index);
            fields.push(field);
        }
        let converter = RowConverter::new(fields)?;
        Ok(Dedupe {
            keys,
            converter,
            seen: HashSet::new(),
            schema: input,
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The rows whose key was not seen before (in this batch or an earlier one). Only this
    /// selection leaves the plugin: the host filters the batch it holds.
    fn select(&mut self, batch: &RecordBatch) -> Result<Option<BooleanArray>, Error> {
        let key_columns: Vec<_> = self.keys.iter().map(|&i| batch.column(i).clone()).collect();
        let rows = self.converter.convert_columns(&key_columns)?;
        self.seen.reserve(rows.num_rows().min(1 << 16));
        let keep: BooleanArray = rows
            .iter()
            .map(|row| {
                let bytes = row.as_ref();
                Some(!self.seen.contains(bytes) && self.seen.insert(bytes.into()))
            })
            .collect();
        Ok(Some(keep))
    }
}

fn message(e: Error) -> String {
    match e {
        Error::InvalidConfig(m) | Error::Internal(m) => m,
        other => other.to_string(),
    }
}

weir_sdk::export!(Dedupe);
