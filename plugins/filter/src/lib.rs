//! # filter: keep the rows that match predicates
//!
//! Evaluates a tree of predicates over each batch with SQL three-valued logic and keeps the rows
//! whose final result is `true`. Rows whose result is `false` **or null** are dropped. The output
//! schema is the input schema; columns are untouched.
//!
//! ## Config
//!
//! ```json
//! {
//!   "combine": "and",
//!   "predicates": [
//!     {"column": "is_bot", "op": "eq", "value": false},
//!     {"column": "country", "op": "in", "value": ["US", "DE"]},
//!     {"column": "ts", "op": "ge", "value": "2026-01-01T00:00:00Z"},
//!     {"any": [
//!       {"column": "cost", "op": "gt", "value": 0},
//!       {"column": "campaign", "op": "starts_with", "value": "promo-"}
//!     ]},
//!     {"not": {"column": "email", "op": "is_null"}}
//!   ]
//! }
//! ```
//!
//! * `combine`: `"and"` (default) or `"or"`: how the top-level `predicates` combine.
//! * `predicates`: a non-empty list. Each predicate is exactly one of these forms:
//!   * a comparison `{"column": NAME, "op": OP, "value": LITERAL}`;
//!   * `{"any": [PREDICATE, ...]}`: true when any is true (SQL `OR`), non-empty;
//!   * `{"all": [PREDICATE, ...]}`: true when all are true (SQL `AND`), non-empty;
//!   * `{"not": PREDICATE}`: SQL `NOT`.
//!
//! Ops:
//!
//! | op | value | meaning |
//! |----|-------|---------|
//! | `eq`, `ne`, `lt`, `le`, `gt`, `ge` | a literal | `=`, `<>`, `<`, `<=`, `>`, `>=` |
//! | `in`, `not_in` | a non-empty list of literals | SQL `IN` / `NOT IN` |
//! | `is_null`, `is_not_null` | none | null test (never null itself) |
//! | `starts_with`, `contains` | a string | prefix / substring test on string columns |
//!
//! ## Null semantics (SQL three-valued logic)
//! A comparison with a null column value is null; `and`/`or`/`not` follow Kleene logic
//! (`false AND null = false`, `true OR null = true`, `NOT null = null`). `x IN (a, b)` is
//! `x = a OR x = b`, so a null inside the list makes non-matching rows null (and `NOT IN` with a
//! null in the list keeps no rows, as in SQL). A literal `null` is not accepted for the comparison
//! ops: use `is_null` / `is_not_null`.
//!
//! ## Literals
//! Each literal is cast to the column's type once, when the plugin opens (for dictionary columns,
//! to the dictionary's value type), so `"2026-01-01"` compares against a `Date32` or `Timestamp`
//! column and `10` against a `Float32` column. A literal that does not cast is a config error
//! naming the predicate and column. JSON booleans only match `Boolean` columns, JSON numbers only
//! numeric, decimal or temporal columns (not strings), and a fractional number against an integer
//! column is an error rather than being truncated. Strings are parsed the way Arrow casts strings:
//! dates as `YYYY-MM-DD`, timestamps as RFC 3339 / ISO 8601 (`2026-01-01T12:00:00Z`,
//! `2026-01-01 12:00:00+02:00`, or a bare date meaning midnight). A timestamp string without an
//! offset is taken as UTC, whatever the column's time zone.
//!
//! Comparisons follow Arrow's ordering: strings compare bytewise (UTF-8 code point order), and
//! floats by IEEE total order, so `-0.0 < 0.0` (`eq 0` does not match `-0.0`) and NaN equals NaN
//! and is greater than every other value.
//!
//! Every config error names the predicate by its path (e.g. `predicates[3].any[1]`) and the column.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, Scalar, StringArray,
    UInt64Array, make_array, new_null_array,
};
use arrow::compute::kernels::cmp;
use arrow::compute::kernels::comparison::{contains, starts_with};
use arrow::compute::{CastOptions, and_kleene, cast_with_options, not, or_kleene};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use weir_sdk::{Error, RecordBatch, Transform};

/// How a list of predicates combines.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// All predicates must be true (SQL `AND`).
    #[default]
    And,
    /// At least one predicate must be true (SQL `OR`).
    Or,
}

/// The filter's config.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How the top-level predicates combine (default `and`).
    #[serde(default)]
    pub combine: Combine,
    /// The predicates; non-empty.
    pub predicates: Vec<Predicate>,
}

/// A comparison (`column` + `op` [+ `value`]) or one of `any`, `all`, `not`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    /// The column a comparison reads.
    pub column: Option<String>,
    /// The comparison.
    pub op: Option<Op>,
    /// The literal to compare with: a scalar, or a list for `in` / `not_in`.
    pub value: Option<Value>,
    /// True when any of these is true.
    pub any: Option<Vec<Predicate>>,
    /// True when all of these are true.
    pub all: Option<Vec<Predicate>>,
    /// True when this is false.
    pub not: Option<Box<Predicate>>,
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    IsNull,
    IsNotNull,
    StartsWith,
    Contains,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Lt => "lt",
            Op::Le => "le",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::IsNull => "is_null",
            Op::IsNotNull => "is_not_null",
            Op::StartsWith => "starts_with",
            Op::Contains => "contains",
        }
    }
}

/// A compiled predicate: column indices resolved, literals cast.
enum Node {
    Compare {
        column: usize,
        op: Op,
        literal: Scalar<ArrayRef>,
    },
    In {
        column: usize,
        list: Vec<Scalar<ArrayRef>>,
        negate: bool,
    },
    IsNull(usize),
    IsNotNull(usize),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

impl Node {
    fn eval(&self, batch: &RecordBatch) -> Result<BooleanArray, Error> {
        Ok(match self {
            Node::Compare {
                column,
                op,
                literal,
            } => {
                let array = batch.column(*column);
                match op {
                    Op::Eq => cmp::eq(array, literal)?,
                    Op::Ne => cmp::neq(array, literal)?,
                    Op::Lt => cmp::lt(array, literal)?,
                    Op::Le => cmp::lt_eq(array, literal)?,
                    Op::Gt => cmp::gt(array, literal)?,
                    Op::Ge => cmp::gt_eq(array, literal)?,
                    Op::StartsWith => starts_with(array, literal)?,
                    Op::Contains => contains_in_column(array, literal)?,
                    Op::In | Op::NotIn | Op::IsNull | Op::IsNotNull => {
                        return Err(Error::internal(
                            "compiled comparison with a non-comparison op",
                        ));
                    }
                }
            }
            Node::In {
                column,
                list,
                negate,
            } => {
                let array = batch.column(*column);
                let mut result: Option<BooleanArray> = None;
                for literal in list {
                    let eq = cmp::eq(array, literal)?;
                    result = Some(match result {
                        None => eq,
                        Some(acc) => or_kleene(&acc, &eq)?,
                    });
                }
                let result = result.ok_or_else(|| Error::internal("empty IN list"))?;
                if *negate { not(&result)? } else { result }
            }
            Node::IsNull(column) => arrow::compute::is_null(batch.column(*column))?,
            Node::IsNotNull(column) => arrow::compute::is_not_null(batch.column(*column))?,
            Node::And(nodes) => fold(nodes, batch, and_kleene)?,
            Node::Or(nodes) => fold(nodes, batch, or_kleene)?,
            Node::Not(node) => not(&node.eval(batch)?)?,
        })
    }
}

/// `contains` of a string literal: for `Utf8`/`LargeUtf8` columns, one substring search over
/// the column's whole values buffer, each hit mapped to its row by the offsets, instead of one
/// search per value (most values hold no match, and a search's setup costs more than a short
/// value's scan). A hit that runs past the end of its value means that value has no match: any
/// later occurrence starting in it would end even later. Same result as Arrow's kernel.
fn contains_in_column(array: &ArrayRef, literal: &Scalar<ArrayRef>) -> Result<BooleanArray, Error> {
    fn search<O: arrow::array::OffsetSizeTrait>(
        array: &arrow::array::GenericStringArray<O>,
        needle: &str,
    ) -> BooleanArray {
        let rows = array.len();
        let offsets = array.value_offsets();
        let mut found = arrow::array::BooleanBufferBuilder::new(rows);
        found.append_n(rows, needle.is_empty());
        let (first, last) = (offsets[0].as_usize(), offsets[rows].as_usize());
        let values = &array.value_data()[..last];
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        let (mut at, mut row) = (first, 0);
        while !needle.is_empty() && row < rows {
            let Some(hit) = finder.find(&values[at..]).map(|i| at + i) else {
                break;
            };
            // The row whose value holds the hit's first byte: the last one starting at or before it.
            row += offsets[row + 1..=rows].partition_point(|o| o.as_usize() <= hit);
            let end = offsets[row + 1].as_usize();
            if hit + needle.len() <= end {
                found.set_bit(row, true);
            }
            at = end;
            row += 1;
        }
        BooleanArray::new(found.finish(), array.nulls().cloned())
    }
    let (needle, _) = arrow::array::Datum::get(literal);
    let needle = match needle.data_type() {
        DataType::Utf8 => needle.as_string::<i32>().iter().next().flatten(),
        DataType::LargeUtf8 => needle.as_string::<i64>().iter().next().flatten(),
        _ => None,
    };
    Ok(match (array.data_type(), needle) {
        (DataType::Utf8, Some(needle)) => search(array.as_string::<i32>(), needle),
        (DataType::LargeUtf8, Some(needle)) => search(array.as_string::<i64>(), needle),
        _ => contains(array, literal)?,
    })
}

fn fold(
    nodes: &[Node],
    batch: &RecordBatch,
    combine: fn(&BooleanArray, &BooleanArray) -> Result<BooleanArray, arrow::error::ArrowError>,
) -> Result<BooleanArray, Error> {
    let mut nodes = nodes.iter();
    let first = nodes
        .next()
        .ok_or_else(|| Error::internal("empty predicate list"))?;
    let mut acc = first.eval(batch)?;
    for node in nodes {
        acc = combine(&acc, &node.eval(batch)?)?;
    }
    Ok(acc)
}

/// Keeps the rows that match the configured predicates.
pub struct Filter {
    root: Node,
    schema: SchemaRef,
}

impl Transform for Filter {
    type Config = Config;

    /// The columns the predicates test; the rest pass through untouched.
    fn input_columns(config: &Config) -> Option<Vec<String>> {
        fn collect(predicates: &[Predicate], columns: &mut Vec<String>) {
            for p in predicates {
                if let Some(c) = &p.column
                    && !columns.contains(c)
                {
                    columns.push(c.clone());
                }
                collect(p.any.as_deref().unwrap_or_default(), columns);
                collect(p.all.as_deref().unwrap_or_default(), columns);
                if let Some(not) = &p.not {
                    collect(std::slice::from_ref(not.as_ref()), columns);
                }
            }
        }
        let mut columns = Vec::new();
        collect(&config.predicates, &mut columns);
        Some(columns)
    }

    fn open(config: Config, input: SchemaRef) -> Result<Self, Error> {
        let nodes = compile_list(&config.predicates, "predicates", &input)?;
        let root = match config.combine {
            Combine::And => Node::And(nodes),
            Combine::Or => Node::Or(nodes),
        };
        Ok(Filter {
            root,
            schema: input,
        })
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The rows whose predicate is true; a null predicate drops its row. Only this selection
    /// leaves the plugin: the host filters the batch it holds (`Transform::process` applies it
    /// natively).
    fn select(&mut self, batch: &RecordBatch) -> Result<Option<BooleanArray>, Error> {
        let mask = self.root.eval(batch)?;
        debug_assert_eq!(mask.len(), batch.num_rows());
        Ok(Some(mask))
    }
}

fn compile_list(predicates: &[Predicate], path: &str, schema: &Schema) -> Result<Vec<Node>, Error> {
    if predicates.is_empty() {
        return Err(Error::config(format!("{path} must not be empty")));
    }
    predicates
        .iter()
        .enumerate()
        .map(|(i, p)| compile(p, &format!("{path}[{i}]"), schema))
        .collect()
}

fn compile(p: &Predicate, path: &str, schema: &Schema) -> Result<Node, Error> {
    let is_comparison = p.column.is_some() || p.op.is_some() || p.value.is_some();
    let forms = [
        is_comparison,
        p.any.is_some(),
        p.all.is_some(),
        p.not.is_some(),
    ];
    if forms.iter().filter(|f| **f).count() != 1 {
        return Err(Error::config(format!(
            "{path}: a predicate needs exactly one of column/op/value, any, all or not"
        )));
    }
    if let Some(list) = &p.any {
        return Ok(Node::Or(compile_list(
            list,
            &format!("{path}.any"),
            schema,
        )?));
    }
    if let Some(list) = &p.all {
        return Ok(Node::And(compile_list(
            list,
            &format!("{path}.all"),
            schema,
        )?));
    }
    if let Some(inner) = &p.not {
        return Ok(Node::Not(Box::new(compile(
            inner,
            &format!("{path}.not"),
            schema,
        )?)));
    }

    let Some(name) = &p.column else {
        return Err(Error::config(format!("{path}: missing \"column\"")));
    };
    let Some(op) = p.op else {
        return Err(Error::config(format!(
            "{path}: missing \"op\" for column {name:?}"
        )));
    };
    let column = weir_sdk::column_index(schema, name, &[])
        .map_err(|e| Error::config(format!("{path}: {}", message(e))))?;
    let data_type = schema.field(column).data_type();
    let at = |what: String| {
        Error::config(format!(
            "{path} (column {name:?}, op {}): {what}",
            op.name()
        ))
    };

    match op {
        Op::IsNull | Op::IsNotNull => {
            if p.value.is_some() {
                return Err(at("takes no value".into()));
            }
            Ok(if op == Op::IsNull {
                Node::IsNull(column)
            } else {
                Node::IsNotNull(column)
            })
        }
        Op::In | Op::NotIn => {
            let Some(Value::Array(values)) = &p.value else {
                return Err(at("value must be a non-empty list".into()));
            };
            if values.is_empty() {
                return Err(at("value must be a non-empty list".into()));
            }
            let list = values
                .iter()
                .enumerate()
                .map(|(i, v)| literal(v, data_type).map_err(|e| at(format!("value[{i}]: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Node::In {
                column,
                list,
                negate: op == Op::NotIn,
            })
        }
        Op::StartsWith | Op::Contains => {
            let value_type = value_type(data_type);
            if !matches!(
                value_type,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) {
                return Err(at(format!(
                    "needs a string column, the column is {data_type}"
                )));
            }
            let Some(Value::String(_)) = &p.value else {
                return Err(at("value must be a string".into()));
            };
            let literal =
                literal(p.value.as_ref().unwrap_or(&Value::Null), data_type).map_err(at)?;
            Ok(Node::Compare {
                column,
                op,
                literal,
            })
        }
        Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let value = match &p.value {
                None | Some(Value::Null) => {
                    return Err(at(
                        "needs a non-null value (use is_null / is_not_null to test for nulls)"
                            .into(),
                    ));
                }
                Some(Value::Array(_) | Value::Object(_)) => {
                    return Err(at(
                        "value must be a scalar (lists are for in / not_in)".into()
                    ));
                }
                Some(v) => v,
            };
            let literal = literal(value, data_type).map_err(at)?;
            Ok(Node::Compare {
                column,
                op,
                literal,
            })
        }
    }
}

/// The message of a config error, without the "invalid config" wrapper.
fn message(e: Error) -> String {
    match e {
        Error::InvalidConfig(m) | Error::Internal(m) => m,
        other => other.to_string(),
    }
}

fn value_type(data_type: &DataType) -> &DataType {
    match data_type {
        DataType::Dictionary(_, value) => value,
        other => other,
    }
}

/// Casts a JSON literal to a one-element array of the column's (value) type.
fn literal(value: &Value, column_type: &DataType) -> Result<Scalar<ArrayRef>, String> {
    let target = value_type(column_type);
    let source: ArrayRef = match value {
        Value::Null => return Ok(Scalar::new(new_null_array(target, 1))),
        Value::Bool(b) => {
            if target != &DataType::Boolean {
                return Err(format!("boolean literal {b} against a {target} column"));
            }
            Arc::new(BooleanArray::from(vec![*b]))
        }
        Value::Number(n) => {
            let numeric = target.is_numeric() || target.is_temporal();
            if !numeric {
                return Err(format!("number {n} against a {target} column"));
            }
            if let Some(i) = n.as_i64() {
                Arc::new(Int64Array::from(vec![i]))
            } else if let Some(u) = n.as_u64() {
                Arc::new(UInt64Array::from(vec![u]))
            } else {
                let f = n
                    .as_f64()
                    .ok_or_else(|| format!("number {n} is not representable"))?;
                if target.is_integer() && f.fract() != 0.0 {
                    return Err(format!("{n} is not an integer but the column is {target}"));
                }
                Arc::new(Float64Array::from(vec![f]))
            }
        }
        Value::String(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Value::Array(_) | Value::Object(_) => {
            return Err(format!("{value} is not a scalar literal"));
        }
    };
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    // Timestamps with a zone: parse as a zone-less instant (strings with an offset convert to
    // UTC, strings without one are taken as UTC), then label it with the column's zone; the
    // stored value is a UTC instant either way, and no time-zone database is needed.
    let parse_as = match target {
        DataType::Timestamp(unit, Some(_)) => DataType::Timestamp(*unit, None),
        other => other.clone(),
    };
    let cast = cast_with_options(&source, &parse_as, &options)
        .map_err(|e| format!("{value} does not cast to {target}: {e}"))?;
    let cast = if &parse_as == target {
        cast
    } else {
        let data = cast
            .to_data()
            .into_builder()
            .data_type(target.clone())
            .build()
            .map_err(|e| format!("{value} does not cast to {target}: {e}"))?;
        make_array(data)
    };
    if cast.null_count() > 0 {
        return Err(format!("{value} does not cast to {target}"));
    }
    Ok(Scalar::new(cast))
}

weir_sdk::export!(Filter);

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::LargeStringArray;
    use weir_sdk::testing::Rng;

    /// The bulk search agrees with Arrow's kernel on short values from a tiny alphabet (many
    /// hits, many spanning two values), nulls, empty values, slices and both offset widths.
    #[test]
    fn contains_in_column_matches_arrows_kernel() {
        let mut rng = Rng(7);
        for round in 0..300 {
            let rows = rng.below(40) as usize;
            let values: Vec<Option<String>> = (0..rows)
                .map(|_| {
                    (rng.below(6) != 0).then(|| {
                        let len = rng.below(6) as usize;
                        (0..len)
                            .map(|_| ['a', 'b', 'é'][rng.below(3) as usize])
                            .collect()
                    })
                })
                .collect();
            let needle: String = (0..rng.below(4))
                .map(|_| ['a', 'b', 'é'][rng.below(3) as usize])
                .collect();
            let skip = if rows > 0 {
                rng.below(rows as u64) as usize
            } else {
                0
            };
            let small: ArrayRef = Arc::new(StringArray::from(values.clone()));
            let large: ArrayRef = Arc::new(LargeStringArray::from(values));
            for array in [small, large] {
                let array = array.slice(skip, rows - skip);
                let literal = Scalar::new(
                    arrow::compute::cast(
                        &StringArray::from(vec![needle.as_str()]),
                        array.data_type(),
                    )
                    .unwrap(),
                );
                assert_eq!(
                    contains_in_column(&array, &literal).unwrap(),
                    contains(&array, &literal).unwrap(),
                    "round {round}: {needle:?} in {array:?}"
                );
            }
        }
    }
}
