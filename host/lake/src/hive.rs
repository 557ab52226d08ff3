//! Hive-style partition paths (`key=value/`) and partition filters.
//!
//! - Keys and values in paths are percent-escaped with Hive's escape set (plus a few characters
//!   object stores dislike); readers decode any `%XX`. A null value is written
//!   `__HIVE_DEFAULT_PARTITION__`, and so is the empty string (as in Hive and Spark).
//! - Partition values have a string form (Delta's `partitionValues` form: `2026-01-01`, `42`,
//!   `true`) and a typed form used for pruning and for the synthesized columns.
//! - Type inference is lossless: a column is Int64 only if every value is the canonical
//!   rendering of an i64 (so `007` stays a string), Date32 only if every value is a valid
//!   `YYYY-MM-DD` date, else Utf8.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Date32Array, Int32Array, Int64Array, StringArray};
use arrow::datatypes::DataType;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The path value Hive, Spark and Delta use for a null partition value.
pub const HIVE_DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Escapes a partition key or value for use in a path segment (the manifest's hive escaping,
/// so the directories written here are the partition names ownership rules and leases use).
pub use weir_manifest::escape_hive as escape;

/// Decodes `%XX` escapes. Fails if the result is not UTF-8.
pub fn unescape(text: &str) -> Result<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|e| Error::partition(text, format!("escaped value is not UTF-8: {e}")))
}

/// The directory segment `key=value` for one partition value (null -> the Hive default).
pub fn partition_segment(key: &str, value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => format!("{}={}", escape(key), escape(v)),
        _ => format!("{}={HIVE_DEFAULT_PARTITION}", escape(key)),
    }
}

/// Parses the `key=value` directory segments of a path relative to the scanned prefix.
/// Segments without `=` are plain directories and carry no value; the last segment (the file
/// name) is ignored.
pub fn parse_partition_path(relative: &str) -> Result<Vec<(String, Option<String>)>> {
    let mut segments: Vec<&str> = relative.split('/').filter(|s| !s.is_empty()).collect();
    segments.pop();
    let mut values = Vec::new();
    for segment in segments {
        let Some((key, value)) = segment.split_once('=') else {
            continue;
        };
        if key.is_empty() {
            return Err(Error::partition(
                relative,
                format!("directory {segment:?} has an empty partition key"),
            ));
        }
        let key = unescape(key)?;
        if values.iter().any(|(k, _)| *k == key) {
            return Err(Error::partition(
                relative,
                format!("partition key {key:?} appears twice"),
            ));
        }
        let value = match value {
            HIVE_DEFAULT_PARTITION | "" => None,
            v => Some(unescape(v)?),
        };
        values.push((key, value));
    }
    Ok(values)
}

/// A partition value parsed as its column's type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TypedValue {
    Bool(bool),
    Int(i64),
    Date(i32),
    Str(String),
}

/// The partition column types a scan supports.
pub fn is_supported_partition_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int32 | DataType::Int64 | DataType::Date32 | DataType::Utf8 | DataType::Boolean
    )
}

fn parse_date(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    i32::try_from((date - epoch).num_days()).ok()
}

fn parse_canonical_i64(text: &str) -> Option<i64> {
    let v: i64 = text.parse().ok()?;
    (v.to_string() == text).then_some(v)
}

/// Parses `text` as `data_type` (one of [`is_supported_partition_type`]).
pub(crate) fn parse_typed(text: &str, data_type: &DataType) -> Option<TypedValue> {
    match data_type {
        DataType::Int64 => text.trim().parse().ok().map(TypedValue::Int),
        DataType::Int32 => text
            .trim()
            .parse::<i32>()
            .ok()
            .map(|v| TypedValue::Int(v.into())),
        DataType::Date32 => parse_date(text.trim()).map(TypedValue::Date),
        DataType::Boolean => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Some(TypedValue::Bool(true)),
            "false" => Some(TypedValue::Bool(false)),
            _ => None,
        },
        DataType::Utf8 => Some(TypedValue::Str(text.to_string())),
        _ => None,
    }
}

/// Infers a partition column's type from its non-null values: Int64, Date32, else Utf8.
pub fn infer_type<'a>(values: impl IntoIterator<Item = &'a str> + Clone) -> DataType {
    let mut any = false;
    let all_int = values.clone().into_iter().all(|v| {
        any = true;
        parse_canonical_i64(v).is_some()
    });
    if !any {
        return DataType::Utf8;
    }
    if all_int {
        return DataType::Int64;
    }
    if values.into_iter().all(|v| parse_date(v).is_some()) {
        return DataType::Date32;
    }
    DataType::Utf8
}

/// A column of `rows` copies of one typed partition value (or nulls).
pub(crate) fn constant_array(
    data_type: &DataType,
    value: Option<&TypedValue>,
    rows: usize,
) -> ArrayRef {
    match (data_type, value) {
        (DataType::Int64, Some(TypedValue::Int(v))) => Arc::new(Int64Array::from_value(*v, rows)),
        (DataType::Int32, Some(TypedValue::Int(v))) => {
            // Values were range-checked when parsed as Int32.
            Arc::new(Int32Array::from_value(*v as i32, rows))
        }
        (DataType::Date32, Some(TypedValue::Date(v))) => {
            Arc::new(Date32Array::from_value(*v, rows))
        }
        (DataType::Boolean, Some(TypedValue::Bool(v))) => {
            Arc::new(BooleanArray::from(vec![*v; rows]))
        }
        (DataType::Utf8, Some(TypedValue::Str(v))) => {
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(v, rows)))
        }
        (data_type, _) => arrow::array::new_null_array(data_type, rows),
    }
}

/// A comparison operator of a [`PartitionFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// The value equals one of the filter's values.
    In,
    /// The value is null (the filter has no values).
    IsNull,
    /// The value is not null (the filter has no values).
    IsNotNull,
}

/// A predicate on one partition column: `column op literal`. A scan's filters are a
/// conjunction. Literals are strings parsed as the column's type. As in SQL, a null partition
/// value satisfies only `IsNull` (every comparison with null is false).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionFilter {
    pub column: String,
    pub op: FilterOp,
    pub values: Vec<String>,
}

impl PartitionFilter {
    pub fn new(column: impl Into<String>, op: FilterOp, value: impl Into<String>) -> Self {
        Self {
            column: column.into(),
            op,
            values: vec![value.into()],
        }
    }
    pub fn eq(column: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(column, FilterOp::Eq, value)
    }
    pub fn ne(column: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(column, FilterOp::Ne, value)
    }
    pub fn lt(column: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(column, FilterOp::Lt, value)
    }
    pub fn le(column: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(column, FilterOp::Le, value)
    }
    pub fn gt(column: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(column, FilterOp::Gt, value)
    }
    pub fn ge(column: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(column, FilterOp::Ge, value)
    }
    pub fn in_list<S: Into<String>>(
        column: impl Into<String>,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            column: column.into(),
            op: FilterOp::In,
            values: values.into_iter().map(Into::into).collect(),
        }
    }
    pub fn is_null(column: impl Into<String>) -> Self {
        Self {
            column: column.into(),
            op: FilterOp::IsNull,
            values: vec![],
        }
    }
    pub fn is_not_null(column: impl Into<String>) -> Self {
        Self {
            column: column.into(),
            op: FilterOp::IsNotNull,
            values: vec![],
        }
    }
}

/// A filter bound to a partition column index, with its literals parsed.
#[derive(Debug)]
pub(crate) struct CompiledFilter {
    index: usize,
    op: FilterOp,
    literals: Vec<TypedValue>,
}

impl CompiledFilter {
    /// Binds `filter` to `columns` (name, type).
    pub(crate) fn compile(
        filter: &PartitionFilter,
        columns: &[(String, DataType)],
    ) -> Result<Self> {
        let Some(index) = columns.iter().position(|(name, _)| *name == filter.column) else {
            let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::partition(
                &filter.column,
                format!(
                    "filter on column {:?}, which is not a partition column (partition columns: {names:?})",
                    filter.column
                ),
            ));
        };
        let data_type = &columns[index].1;
        let expected = match filter.op {
            FilterOp::IsNull | FilterOp::IsNotNull => Some(0),
            FilterOp::In => None,
            _ => Some(1),
        };
        if let Some(n) = expected
            && filter.values.len() != n
        {
            return Err(Error::partition(
                &filter.column,
                format!(
                    "filter {:?} takes {n} value(s), got {}",
                    filter.op,
                    filter.values.len()
                ),
            ));
        }
        let literals = filter
            .values
            .iter()
            .map(|v| {
                parse_typed(v, data_type).ok_or_else(|| {
                    Error::partition(
                        &filter.column,
                        format!("filter value {v:?} is not a valid {data_type}"),
                    )
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            index,
            op: filter.op,
            literals,
        })
    }

    /// Whether a file with these typed partition values (in column order) may match.
    pub(crate) fn matches(&self, values: &[Option<TypedValue>]) -> bool {
        let value = values[self.index].as_ref();
        let Some(value) = value else {
            return self.op == FilterOp::IsNull;
        };
        let first = self.literals.first();
        match self.op {
            FilterOp::IsNull => false,
            FilterOp::IsNotNull => true,
            FilterOp::In => self.literals.contains(value),
            FilterOp::Eq => first == Some(value),
            FilterOp::Ne => first.is_some_and(|l| value != l),
            FilterOp::Lt => first.is_some_and(|l| value < l),
            FilterOp::Le => first.is_some_and(|l| value <= l),
            FilterOp::Gt => first.is_some_and(|l| value > l),
            FilterOp::Ge => first.is_some_and(|l| value >= l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_awkward_values() {
        for v in [
            "a/b",
            "100%",
            "x=y",
            "sp ace",
            "ünï",
            "a#b?c",
            "..",
            "tab\there",
            "{}[]",
        ] {
            let seg = partition_segment("k", Some(v));
            assert_eq!(seg.matches('/').count(), 0, "{seg}");
            assert_eq!(seg.matches('=').count(), 1, "{seg}");
            let parsed = parse_partition_path(&format!("{seg}/f.parquet")).unwrap();
            assert_eq!(parsed, vec![("k".to_string(), Some(v.to_string()))]);
        }
        assert_eq!(partition_segment("dt", Some("2026-01-01")), "dt=2026-01-01");
        assert_eq!(partition_segment("k", None), "k=__HIVE_DEFAULT_PARTITION__");
        assert_eq!(
            partition_segment("k", Some("")),
            "k=__HIVE_DEFAULT_PARTITION__"
        );
    }

    #[test]
    fn parses_nested_and_plain_directories() {
        let parsed = parse_partition_path("year=2026/raw/month=01/part-0.parquet").unwrap();
        assert_eq!(
            parsed,
            vec![
                ("year".to_string(), Some("2026".to_string())),
                ("month".to_string(), Some("01".to_string()))
            ]
        );
        assert!(parse_partition_path("f.parquet").unwrap().is_empty());
        let err = parse_partition_path("=x/f.parquet").unwrap_err();
        assert!(err.to_string().contains("=x/f.parquet"), "{err}");
        let err = parse_partition_path("a=1/a=2/f.parquet").unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }

    #[test]
    fn infers_types_losslessly() {
        assert_eq!(infer_type(["1", "-20", "300"]), DataType::Int64);
        assert_eq!(infer_type(["1", "007"]), DataType::Utf8);
        assert_eq!(infer_type(["2026-01-01", "1999-12-31"]), DataType::Date32);
        assert_eq!(infer_type(["2026-02-30"]), DataType::Utf8);
        assert_eq!(infer_type(["2026-1-1"]), DataType::Utf8);
        assert_eq!(infer_type(["2026-01-01", "x"]), DataType::Utf8);
        assert_eq!(infer_type(Vec::<&str>::new()), DataType::Utf8);
        assert_eq!(
            parse_typed("1970-01-02", &DataType::Date32),
            Some(TypedValue::Date(1))
        );
    }

    #[test]
    fn filters_compare_typed_values_and_nulls() {
        let cols = vec![
            ("n".to_string(), DataType::Int64),
            ("s".to_string(), DataType::Utf8),
        ];
        let vals = |n: Option<i64>| vec![n.map(TypedValue::Int), Some(TypedValue::Str("b".into()))];
        // Typed: 9 < 10 numerically although "9" > "10" as strings.
        let lt = CompiledFilter::compile(&PartitionFilter::lt("n", "10"), &cols).unwrap();
        assert!(lt.matches(&vals(Some(9))));
        assert!(!lt.matches(&vals(Some(10))));
        assert!(!lt.matches(&vals(None)));
        let ne = CompiledFilter::compile(&PartitionFilter::ne("n", "1"), &cols).unwrap();
        assert!(!ne.matches(&vals(None)));
        let isnull = CompiledFilter::compile(&PartitionFilter::is_null("n"), &cols).unwrap();
        assert!(isnull.matches(&vals(None)));
        let inl =
            CompiledFilter::compile(&PartitionFilter::in_list("s", ["a", "b"]), &cols).unwrap();
        assert!(inl.matches(&vals(None)));
        let err = CompiledFilter::compile(&PartitionFilter::eq("n", "x"), &cols).unwrap_err();
        assert!(err.to_string().contains("\"x\""), "{err}");
        let err = CompiledFilter::compile(&PartitionFilter::eq("zzz", "1"), &cols).unwrap_err();
        assert!(err.to_string().contains("zzz"), "{err}");
    }
}
