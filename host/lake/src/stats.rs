//! Per-file column statistics in the Delta `add.stats` JSON form:
//! `{"numRecords":N,"minValues":{..},"maxValues":{..},"nullCount":{..}}`.
//!
//! The bounds come from the Parquet writer's own column-chunk statistics, read from the footer
//! it returns on close, so no value is compared twice: the writer already computes them for
//! every chunk. The only pass of our own looks for NaN in float columns, which Parquet's
//! statistics skip.
//!
//! - Min/max for integers, floats, strings, Date32 (`YYYY-MM-DD`) and microsecond timestamps
//!   (ISO-8601 UTC with `Z`). Booleans, binary and decimals get a null count only; nested
//!   columns (struct, list, map) are skipped entirely.
//! - Every bound is exact or safely wide: string minimums are truncated to a 32-character
//!   prefix (still a lower bound); a string maximum longer than 32 characters, or one the
//!   writer truncated, is omitted; so are the bounds of a float column holding NaN, and an
//!   infinite bound (readers treat a missing bound as unknown).

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;
use serde_json::{Map, Value};

const STRING_PREFIX_CHARS: usize = 32;

#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Bound {
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Date(i32),
    Micros(i64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Min, max and null count.
    Ordered,
    /// Null count only.
    NullsOnly,
    /// Skipped (nested).
    Skip,
}

fn kind_of(data_type: &DataType) -> Kind {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Date32
        | DataType::Timestamp(TimeUnit::Microsecond, _) => Kind::Ordered,
        DataType::Struct(_)
        | DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(..)
        | DataType::Map(..)
        | DataType::Union(..)
        | DataType::Dictionary(..)
        | DataType::RunEndEncoded(..) => Kind::Skip,
        _ => Kind::NullsOnly,
    }
}

/// What one file's statistics need beyond the Parquet footer: which float columns held NaN.
/// Feed it every batch written to the file, then turn the footer into JSON with
/// [`to_json`](Self::to_json).
#[derive(Debug)]
pub(crate) struct FileStats {
    /// Per top-level column: a float column that has seen NaN.
    nan_seen: Vec<bool>,
}

impl FileStats {
    pub(crate) fn new(schema: &Schema) -> Self {
        Self {
            nan_seen: vec![false; schema.fields().len()],
        }
    }

    /// Notes NaN in the batch's float columns (the batch has the file's schema).
    pub(crate) fn observe(&mut self, batch: &RecordBatch) {
        for (seen, array) in self.nan_seen.iter_mut().zip(batch.columns()) {
            if *seen {
                continue;
            }
            *seen = match array.data_type() {
                DataType::Float32 => has_nan(array.as_primitive::<Float32Type>(), f32::is_nan),
                DataType::Float64 => has_nan(array.as_primitive::<Float64Type>(), f64::is_nan),
                _ => false,
            };
        }
    }

    /// The Delta stats JSON string of the file whose schema is `schema` and whose footer is
    /// `footer`.
    pub(crate) fn to_json(&self, schema: &Schema, footer: &ParquetMetaData) -> String {
        debug_assert_eq!(schema.fields().len(), self.nan_seen.len());
        let leaves = footer.file_metadata().schema_descr();
        let mut min_values = Map::new();
        let mut max_values = Map::new();
        let mut null_count = Map::new();
        for (field, &nan_seen) in schema.fields().iter().zip(&self.nan_seen) {
            let kind = kind_of(field.data_type());
            if kind == Kind::Skip {
                continue;
            }
            // A top-level primitive column is the one leaf whose path is just its name.
            let Some(leaf) = (0..leaves.num_columns()).find(|&i| {
                let column = leaves.column(i);
                let parts = column.path().parts();
                parts.len() == 1 && parts[0] == *field.name()
            }) else {
                continue;
            };
            let column = merge_row_groups(field.data_type(), footer, leaf);
            if let Some(nulls) = column.null_count {
                null_count.insert(field.name().clone(), Value::from(nulls));
            }
            if kind != Kind::Ordered || nan_seen {
                continue;
            }
            if let Some(v) = column.min.as_ref().and_then(|b| bound_json(b, true)) {
                min_values.insert(field.name().clone(), v);
            }
            if let Some(v) = column.max.as_ref().and_then(|b| bound_json(b, false)) {
                max_values.insert(field.name().clone(), v);
            }
        }
        let num_records = u64::try_from(footer.file_metadata().num_rows()).unwrap_or(0);
        let mut root = Map::new();
        root.insert("numRecords".into(), Value::from(num_records));
        root.insert("minValues".into(), Value::Object(min_values));
        root.insert("maxValues".into(), Value::Object(max_values));
        root.insert("nullCount".into(), Value::Object(null_count));
        Value::Object(root).to_string()
    }
}

fn has_nan<T: arrow::datatypes::ArrowPrimitiveType>(
    array: &arrow::array::PrimitiveArray<T>,
    is_nan: fn(T::Native) -> bool,
) -> bool {
    match array.nulls().filter(|n| n.null_count() > 0) {
        None => array.values().iter().any(|&v| is_nan(v)),
        Some(_) => array.iter().flatten().any(is_nan),
    }
}

/// One column's bounds and null count over a whole file. A bound is `None` when unknown.
struct ColumnBounds {
    min: Option<Bound>,
    max: Option<Bound>,
    null_count: Option<u64>,
}

/// Merges leaf `leaf`'s statistics over the file's row groups. A row group with values but no
/// usable bound makes the file's bound unknown; one holding only nulls has none to give.
fn merge_row_groups(data_type: &DataType, footer: &ParquetMetaData, leaf: usize) -> ColumnBounds {
    let mut merged = ColumnBounds {
        min: None,
        max: None,
        null_count: Some(0),
    };
    let (mut min_known, mut max_known) = (true, true);
    for row_group in footer.row_groups() {
        let Some(stats) = row_group.column(leaf).statistics() else {
            return ColumnBounds {
                min: None,
                max: None,
                null_count: None,
            };
        };
        let nulls = stats.null_count_opt();
        merged.null_count = merged.null_count.zip(nulls).map(|(a, b)| a + b);
        let all_null = nulls.is_some_and(|n| n == row_group.num_rows() as u64);
        if all_null {
            continue;
        }
        let (lo, hi) = chunk_bounds(data_type, stats);
        match lo {
            Some(lo) if merged.min.as_ref().is_none_or(|m| lo < *m) => merged.min = Some(lo),
            Some(_) => {}
            None => min_known = false,
        }
        match hi {
            Some(hi) if merged.max.as_ref().is_none_or(|m| hi > *m) => merged.max = Some(hi),
            Some(_) => {}
            None => max_known = false,
        }
    }
    if !min_known {
        merged.min = None;
    }
    if !max_known {
        merged.max = None;
    }
    merged
}

/// One column chunk's bounds as Delta values; `None` where the chunk has none that is safe.
fn chunk_bounds(data_type: &DataType, stats: &Statistics) -> (Option<Bound>, Option<Bound>) {
    fn both<T>(
        s: &parquet::file::statistics::ValueStatistics<T>,
        f: impl Fn(&T) -> Option<Bound>,
    ) -> (Option<Bound>, Option<Bound>) {
        (s.min_opt().and_then(&f), s.max_opt().and_then(&f))
    }
    let finite = |v: f64| v.is_finite().then_some(Bound::Float(v));
    match (data_type, stats) {
        (DataType::Int8 | DataType::Int16 | DataType::Int32, Statistics::Int32(s)) => {
            both(s, |v| Some(Bound::Int(i64::from(*v))))
        }
        // Unsigned columns are stored in signed physical types and ordered as unsigned.
        (DataType::UInt8 | DataType::UInt16 | DataType::UInt32, Statistics::Int32(s)) => {
            both(s, |v| Some(Bound::UInt(u64::from(*v as u32))))
        }
        (DataType::Int64, Statistics::Int64(s)) => both(s, |v| Some(Bound::Int(*v))),
        (DataType::UInt64, Statistics::Int64(s)) => both(s, |v| Some(Bound::UInt(*v as u64))),
        (DataType::Float32, Statistics::Float(s)) => both(s, |v| finite(f64::from(*v))),
        (DataType::Float64, Statistics::Double(s)) => both(s, |v| finite(*v)),
        (DataType::Date32, Statistics::Int32(s)) => both(s, |v| Some(Bound::Date(*v))),
        (DataType::Timestamp(TimeUnit::Microsecond, _), Statistics::Int64(s)) => {
            both(s, |v| Some(Bound::Micros(*v)))
        }
        (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, Statistics::ByteArray(s)) => {
            let text = |v: &parquet::data_type::ByteArray| {
                std::str::from_utf8(v.data())
                    .ok()
                    .map(|v| Bound::Str(v.to_owned()))
            };
            // A truncated minimum is a prefix, still a lower bound; a truncated maximum is not
            // the value, so it is dropped.
            let max = if s.max_is_exact() {
                s.max_opt().and_then(text)
            } else {
                None
            };
            (s.min_opt().and_then(text), max)
        }
        _ => (None, None),
    }
}

fn bound_json(bound: &Bound, is_min: bool) -> Option<Value> {
    Some(match bound {
        Bound::Int(v) => Value::from(*v),
        Bound::UInt(v) => Value::from(*v),
        Bound::Float(v) => Value::from(*v),
        Bound::Str(s) => {
            if s.chars().count() <= STRING_PREFIX_CHARS {
                Value::from(s.as_str())
            } else if is_min {
                Value::from(s.chars().take(STRING_PREFIX_CHARS).collect::<String>())
            } else {
                return None;
            }
        }
        Bound::Date(days) => {
            let date = chrono::DateTime::from_timestamp(i64::from(*days) * 86_400, 0)?;
            Value::from(date.format("%Y-%m-%d").to_string())
        }
        Bound::Micros(micros) => {
            let ts = chrono::DateTime::from_timestamp_micros(*micros)?;
            Value::from(ts.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        }
    })
}
