//! Per-file column statistics in the Delta `add.stats` JSON form:
//! `{"numRecords":N,"minValues":{..},"maxValues":{..},"nullCount":{..}}`.
//!
//! - Min/max for integers, floats, strings, Date32 (`YYYY-MM-DD`) and microsecond timestamps
//!   (ISO-8601 UTC with `Z`). Booleans, binary and decimals get a null count only; nested
//!   columns (struct, list, map) are skipped entirely.
//! - Every bound is exact or safely wide: string minimums are truncated to a 32-character
//!   prefix (still a lower bound); a string maximum longer than 32 characters is omitted, as
//!   are float bounds of a column holding NaN or infinities (readers treat a missing bound as
//!   unknown).

use arrow::array::{Array, ArrayRef, AsArray, GenericStringArray, OffsetSizeTrait};
use arrow::compute::{cast, kernels::aggregate};
use arrow::datatypes::{
    DataType, Date32Type, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType, UInt64Type,
};
use arrow::record_batch::RecordBatch;
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

#[derive(Debug)]
struct ColumnStats {
    name: String,
    kind: Kind,
    min: Option<Bound>,
    max: Option<Bound>,
    /// Bounds are unusable (NaN or infinite floats seen).
    poisoned: bool,
    null_count: u64,
}

/// Accumulates statistics over the batches written to one file.
#[derive(Debug)]
pub(crate) struct StatsCollector {
    num_records: u64,
    columns: Vec<ColumnStats>,
}

impl StatsCollector {
    pub(crate) fn new(schema: &arrow::datatypes::Schema) -> Self {
        let columns = schema
            .fields()
            .iter()
            .map(|f| ColumnStats {
                name: f.name().clone(),
                kind: kind_of(f.data_type()),
                min: None,
                max: None,
                poisoned: false,
                null_count: 0,
            })
            .collect();
        Self {
            num_records: 0,
            columns,
        }
    }

    pub(crate) fn num_records(&self) -> u64 {
        self.num_records
    }

    pub(crate) fn update(&mut self, batch: &RecordBatch) {
        self.num_records += batch.num_rows() as u64;
        for (stats, array) in self.columns.iter_mut().zip(batch.columns()) {
            if stats.kind == Kind::Skip {
                continue;
            }
            stats.null_count += array.null_count() as u64;
            if stats.kind != Kind::Ordered || stats.poisoned {
                continue;
            }
            match min_max(array) {
                MinMax::Poisoned => stats.poisoned = true,
                MinMax::Empty => {}
                MinMax::Some(lo, hi) => {
                    if stats.min.as_ref().is_none_or(|m| lo < *m) {
                        stats.min = Some(lo);
                    }
                    if stats.max.as_ref().is_none_or(|m| hi > *m) {
                        stats.max = Some(hi);
                    }
                }
            }
        }
    }

    /// The Delta stats JSON string.
    pub(crate) fn to_json(&self) -> String {
        let mut min_values = Map::new();
        let mut max_values = Map::new();
        let mut null_count = Map::new();
        for stats in &self.columns {
            if stats.kind == Kind::Skip {
                continue;
            }
            null_count.insert(stats.name.clone(), Value::from(stats.null_count));
            if stats.poisoned {
                continue;
            }
            if let Some(v) = stats.min.as_ref().and_then(|b| bound_json(b, true)) {
                min_values.insert(stats.name.clone(), v);
            }
            if let Some(v) = stats.max.as_ref().and_then(|b| bound_json(b, false)) {
                max_values.insert(stats.name.clone(), v);
            }
        }
        let mut root = Map::new();
        root.insert("numRecords".into(), Value::from(self.num_records));
        root.insert("minValues".into(), Value::Object(min_values));
        root.insert("maxValues".into(), Value::Object(max_values));
        root.insert("nullCount".into(), Value::Object(null_count));
        Value::Object(root).to_string()
    }
}

enum MinMax {
    Empty,
    Poisoned,
    Some(Bound, Bound),
}

fn min_max(array: &ArrayRef) -> MinMax {
    let pair = |lo: Option<Bound>, hi: Option<Bound>| match (lo, hi) {
        (Some(lo), Some(hi)) => MinMax::Some(lo, hi),
        _ => MinMax::Empty,
    };
    match array.data_type() {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let Ok(a) = cast(array, &DataType::Int64) else {
                return MinMax::Poisoned;
            };
            let a = a.as_primitive::<Int64Type>();
            pair(
                aggregate::min(a).map(Bound::Int),
                aggregate::max(a).map(Bound::Int),
            )
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let Ok(a) = cast(array, &DataType::UInt64) else {
                return MinMax::Poisoned;
            };
            let a = a.as_primitive::<UInt64Type>();
            pair(
                aggregate::min(a).map(Bound::UInt),
                aggregate::max(a).map(Bound::UInt),
            )
        }
        DataType::Float32 | DataType::Float64 => {
            let Ok(a) = cast(array, &DataType::Float64) else {
                return MinMax::Poisoned;
            };
            let mut lo = f64::INFINITY;
            let mut hi = f64::NEG_INFINITY;
            let mut any = false;
            for v in a.as_primitive::<Float64Type>().iter().flatten() {
                if !v.is_finite() {
                    return MinMax::Poisoned;
                }
                any = true;
                lo = lo.min(v);
                hi = hi.max(v);
            }
            if !any {
                return MinMax::Empty;
            }
            MinMax::Some(Bound::Float(lo), Bound::Float(hi))
        }
        DataType::Utf8 => string_min_max(array.as_string::<i32>()),
        DataType::LargeUtf8 => string_min_max(array.as_string::<i64>()),
        DataType::Utf8View => {
            let a = array.as_string_view();
            let s = |v: Option<&str>| v.map(|v| Bound::Str(v.to_string()));
            pair(
                s(aggregate::min_string_view(a)),
                s(aggregate::max_string_view(a)),
            )
        }
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            pair(
                aggregate::min(a).map(Bound::Date),
                aggregate::max(a).map(Bound::Date),
            )
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let a = array.as_primitive::<TimestampMicrosecondType>();
            pair(
                aggregate::min(a).map(Bound::Micros),
                aggregate::max(a).map(Bound::Micros),
            )
        }
        _ => MinMax::Empty,
    }
}

fn string_min_max<O: OffsetSizeTrait>(array: &GenericStringArray<O>) -> MinMax {
    match string_bounds(array) {
        Some((lo, hi)) => MinMax::Some(
            Bound::Str(array.value(lo).to_string()),
            Bound::Str(array.value(hi).to_string()),
        ),
        None => MinMax::Empty,
    }
}

/// The rows of the smallest and the largest non-null value (byte order, as Rust orders `str`),
/// in one pass.
///
/// Each value is first compared by its leading 8 bytes as a big-endian integer (zero-padded),
/// which decides almost every comparison without a call to `memcmp`; equal keys fall back to
/// comparing the whole values.
fn string_bounds<O: OffsetSizeTrait>(array: &GenericStringArray<O>) -> Option<(usize, usize)> {
    let offsets = array.value_offsets();
    let data = array.value_data();
    let value = |i: usize| &data[offsets[i].as_usize()..offsets[i + 1].as_usize()];
    let key = |v: &[u8]| {
        if let Some(head) = v.first_chunk::<8>() {
            return u64::from_be_bytes(*head);
        }
        let mut head = [0u8; 8];
        let n = v.len().min(8);
        head[..n].copy_from_slice(&v[..n]);
        u64::from_be_bytes(head)
    };
    let nulls = array.nulls().filter(|n| n.null_count() > 0);
    let mut rows = (0..array.len()).filter(|&i| nulls.is_none_or(|n| n.is_valid(i)));
    let first = rows.next()?;
    let (mut lo, mut hi) = (first, first);
    let (mut lo_key, mut hi_key) = (key(value(first)), key(value(first)));
    for i in rows {
        let v = value(i);
        let k = key(v);
        if k < lo_key || (k == lo_key && v < value(lo)) {
            (lo, lo_key) = (i, k);
        }
        if k > hi_key || (k == hi_key && v > value(hi)) {
            (hi, hi_key) = (i, k);
        }
    }
    Some((lo, hi))
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

#[cfg(test)]
mod tests {
    use arrow::array::{LargeStringArray, StringArray};
    use arrow::compute::kernels::aggregate::{max_string, min_string};
    use proptest::prelude::*;

    use super::*;

    fn check<O: OffsetSizeTrait>(array: &GenericStringArray<O>) {
        let got = string_bounds(array).map(|(lo, hi)| (array.value(lo), array.value(hi)));
        let want = min_string(array).zip(max_string(array));
        assert_eq!(got, want, "{array:?}");
    }

    proptest! {
        /// Agrees with Arrow's kernels on short values over a tiny alphabet (so 8-byte keys
        /// tie often), with NULs (zero padding must not confuse "a" and "a\0"), nulls, and
        /// slices.
        #[test]
        fn string_bounds_agree_with_arrow(
            values in prop::collection::vec(
                prop::option::weighted(0.8, prop::collection::vec(
                    prop::sample::select(vec!['\0', 'a', 'b', 'é']), 0..12)),
                0..40),
            start in 0usize..5,
        ) {
            let strings: Vec<Option<String>> = values
                .into_iter()
                .map(|v| v.map(|chars| chars.into_iter().collect()))
                .collect();
            let small: StringArray = strings.iter().map(|s| s.as_deref()).collect();
            let large: LargeStringArray = strings.iter().map(|s| s.as_deref()).collect();
            check(&small);
            check(&large);
            let start = start.min(strings.len());
            check(&small.slice(start, strings.len() - start));
            check(&large.slice(start, strings.len() - start));
        }
    }
}
