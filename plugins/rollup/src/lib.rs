//! # rollup: group-by with count, sum, min and max
//!
//! Aggregates every row of the task by the `group_by` columns and emits one row per group at
//! `finish`, in batches of at most [`MAX_BATCH_ROWS`] rows. `process` returns nothing.
//!
//! ## Config
//!
//! ```json
//! {
//!   "group_by": ["event_date", "advertiser_id"],
//!   "aggregates": [
//!     {"fn": "count", "as": "events"},
//!     {"fn": "count", "column": "click_id", "as": "clicks"},
//!     {"fn": "sum", "column": "cost_micros", "as": "cost_micros"},
//!     {"fn": "min", "column": "ts", "as": "first_seen"},
//!     {"fn": "max", "column": "ts", "as": "last_seen"}
//!   ]
//! }
//! ```
//!
//! * `group_by` (default `[]`): the grouping columns, no duplicates. Any type Arrow's row format
//!   supports. Nulls form one group (as in SQL `GROUP BY`). With no group columns the whole input
//!   is one group and exactly one row is emitted, even for empty input.
//! * `aggregates` (default `[]`; `group_by` and `aggregates` cannot both be empty): each has
//!   `fn`, `as` (the output column name) and, except for `count`, a `column`:
//!   * `count` without `column`: the number of rows. `Int64`, never null.
//!   * `count` with `column`: the number of non-null values of the column. `Int64`, never null.
//!   * `sum`: integer columns (any width, signed or unsigned) sum to `Int64`, and an overflow is an
//!     error naming the row; float columns sum to `Float64` (in input order, no compensation).
//!     Null when the group had no non-null value. Decimals are not supported.
//!   * `min` / `max`: the smallest / largest non-null value; the output keeps the column's type.
//!     Works for every orderable type (numbers, strings, binary, booleans, dates, timestamps,
//!     decimals). Floats order by IEEE total order (`-0.0 < 0.0`, NaN greater than everything).
//!     Null when the group had no non-null value.
//!
//! ## Output
//! The group columns (with their input types and nullability) followed by the aggregates, in
//! config order. Output names must be unique. Groups appear in the order they were first seen.
//!
//! ## State
//! Every group (its row-format key and its accumulators) is held in memory until `finish`, so
//! memory grows with the number of distinct groups in the task.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, new_null_array};
use arrow::compute::{CastOptions, cast, cast_with_options};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use schemars::JsonSchema;
use serde::Deserialize;
use weir_sdk::{Error, RecordBatch, Transform};

/// The most rows one emitted batch holds.
pub const MAX_BATCH_ROWS: usize = 65_536;

/// The rollup config.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The grouping columns.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// The aggregates to compute per group.
    #[serde(default)]
    pub aggregates: Vec<Aggregate>,
}

/// One aggregate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// The aggregate function.
    #[serde(rename = "fn")]
    pub function: Function,
    /// The input column (optional for `count`).
    pub column: Option<String>,
    /// The output column name.
    #[serde(rename = "as")]
    pub name: String,
}

/// An aggregate function.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    Count,
    Sum,
    Min,
    Max,
}

impl Function {
    fn name(self) -> &'static str {
        match self {
            Function::Count => "count",
            Function::Sum => "sum",
            Function::Min => "min",
            Function::Max => "max",
        }
    }
}

/// Per-group state of one aggregate.
enum Accumulator {
    CountRows(Vec<i64>),
    CountValid {
        column: usize,
        counts: Vec<i64>,
    },
    SumInt {
        column: usize,
        sums: Vec<i64>,
        seen: Vec<bool>,
    },
    SumFloat {
        column: usize,
        sums: Vec<f64>,
        seen: Vec<bool>,
    },
    /// The best value per group in row format (empty = no value yet).
    Extreme {
        column: usize,
        max: bool,
        converter: RowConverter,
        best: Vec<Vec<u8>>,
        data_type: DataType,
    },
}

impl Accumulator {
    fn grow(&mut self, groups: usize) {
        match self {
            Accumulator::CountRows(counts) | Accumulator::CountValid { counts, .. } => {
                counts.resize(groups, 0)
            }
            Accumulator::SumInt { sums, seen, .. } => {
                sums.resize(groups, 0);
                seen.resize(groups, false);
            }
            Accumulator::SumFloat { sums, seen, .. } => {
                sums.resize(groups, 0.0);
                seen.resize(groups, false);
            }
            Accumulator::Extreme { best, .. } => best.resize_with(groups, Vec::new),
        }
    }

    fn update(
        &mut self,
        batch: &RecordBatch,
        groups: &[u32],
        column_name: &str,
    ) -> Result<(), Error> {
        match self {
            Accumulator::CountRows(counts) => {
                for &g in groups {
                    counts[g as usize] += 1;
                }
            }
            Accumulator::CountValid { column, counts } => {
                let array = batch.column(*column);
                for (row, &g) in groups.iter().enumerate() {
                    counts[g as usize] += i64::from(array.is_valid(row));
                }
            }
            Accumulator::SumInt { column, sums, seen } => {
                let strict = CastOptions {
                    safe: false,
                    ..Default::default()
                };
                let values = cast_with_options(batch.column(*column), &DataType::Int64, &strict)
                    .map_err(|e| {
                        Error::input(
                            format!("a value does not fit Int64: {e}"),
                            None,
                            Some(column_name),
                        )
                    })?;
                let values = values.as_primitive::<Int64Type>();
                for (row, &g) in groups.iter().enumerate() {
                    if values.is_null(row) {
                        continue;
                    }
                    let g = g as usize;
                    sums[g] = sums[g].checked_add(values.value(row)).ok_or_else(|| {
                        Error::input(
                            format!("the sum of {column_name:?} overflows Int64"),
                            Some(row as u64),
                            Some(column_name),
                        )
                    })?;
                    seen[g] = true;
                }
            }
            Accumulator::SumFloat { column, sums, seen } => {
                let values = cast(batch.column(*column), &DataType::Float64)?;
                let values = values.as_primitive::<Float64Type>();
                for (row, &g) in groups.iter().enumerate() {
                    if values.is_null(row) {
                        continue;
                    }
                    sums[g as usize] += values.value(row);
                    seen[g as usize] = true;
                }
            }
            Accumulator::Extreme {
                column,
                max,
                converter,
                best,
                ..
            } => {
                let array = batch.column(*column);
                let rows = converter.convert_columns(std::slice::from_ref(array))?;
                for (row, &g) in groups.iter().enumerate() {
                    if array.is_null(row) {
                        continue;
                    }
                    let candidate = rows.row(row);
                    let candidate = candidate.as_ref();
                    let current = &mut best[g as usize];
                    let better = current.is_empty()
                        || if *max {
                            candidate > current.as_slice()
                        } else {
                            candidate < current.as_slice()
                        };
                    if better {
                        current.clear();
                        current.extend_from_slice(candidate);
                    }
                }
            }
        }
        Ok(())
    }

    /// The values for groups `range`, in group order.
    fn emit(&self, range: std::ops::Range<usize>) -> Result<ArrayRef, Error> {
        Ok(match self {
            Accumulator::CountRows(counts) | Accumulator::CountValid { counts, .. } => {
                Arc::new(Int64Array::from(counts[range].to_vec()))
            }
            Accumulator::SumInt { sums, seen, .. } => Arc::new(
                range
                    .map(|g| seen[g].then_some(sums[g]))
                    .collect::<Int64Array>(),
            ),
            Accumulator::SumFloat { sums, seen, .. } => Arc::new(
                range
                    .map(|g| seen[g].then_some(sums[g]))
                    .collect::<Float64Array>(),
            ),
            Accumulator::Extreme {
                converter,
                best,
                data_type,
                ..
            } => {
                // Groups without a value decode from the row encoding of a null.
                let null = converter.convert_columns(&[new_null_array(data_type, 1)])?;
                let null = null.row(0);
                let parser = converter.parser();
                let rows = range.map(|g| {
                    if best[g].is_empty() {
                        null
                    } else {
                        parser.parse(&best[g])
                    }
                });
                let mut arrays = converter.convert_rows(rows)?;
                let array = arrays
                    .pop()
                    .ok_or_else(|| Error::internal("row conversion returned no column"))?;
                restore_type(array, data_type)?
            }
        })
    }
}

/// Row conversion turns dictionaries into their values; cast back to the declared type.
fn restore_type(array: ArrayRef, data_type: &DataType) -> Result<ArrayRef, Error> {
    if array.data_type() == data_type {
        return Ok(array);
    }
    Ok(cast(&array, data_type)?)
}

/// Groups rows by key: a dense group id per distinct key, in first-seen order.
struct Groups {
    columns: Vec<usize>,
    /// `None` when there are no group columns (one global group).
    converter: Option<RowConverter>,
    ids: HashMap<Box<[u8]>, u32>,
    count: usize,
}

impl Groups {
    fn assign(&mut self, batch: &RecordBatch) -> Result<Vec<u32>, Error> {
        let Some(converter) = &self.converter else {
            return Ok(vec![0; batch.num_rows()]);
        };
        let columns: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let rows = converter.convert_columns(&columns)?;
        let mut groups = Vec::with_capacity(rows.num_rows());
        for row in rows.iter() {
            let key = row.as_ref();
            let id = match self.ids.get(key) {
                Some(&id) => id,
                None => {
                    let id = u32::try_from(self.count)
                        .map_err(|_| Error::internal("more than 4 billion groups"))?;
                    self.ids.insert(key.into(), id);
                    self.count += 1;
                    id
                }
            };
            groups.push(id);
        }
        Ok(groups)
    }
}

/// Group-by aggregation.
pub struct Rollup {
    groups: Groups,
    accumulators: Vec<(Accumulator, String)>,
    schema: SchemaRef,
    group_types: Vec<DataType>,
    finished: bool,
}

const INTEGERS: [DataType; 8] = [
    DataType::Int8,
    DataType::Int16,
    DataType::Int32,
    DataType::Int64,
    DataType::UInt8,
    DataType::UInt16,
    DataType::UInt32,
    DataType::UInt64,
];
const FLOATS: [DataType; 3] = [DataType::Float16, DataType::Float32, DataType::Float64];

impl Transform for Rollup {
    type Config = Config;

    fn input_columns(config: &Config) -> Option<Vec<String>> {
        let mut columns = config.group_by.clone();
        for a in &config.aggregates {
            if let Some(c) = &a.column
                && !columns.contains(c)
            {
                columns.push(c.clone());
            }
        }
        Some(columns)
    }

    fn open(config: Config, input: SchemaRef) -> Result<Self, Error> {
        if config.group_by.is_empty() && config.aggregates.is_empty() {
            return Err(Error::config("group_by and aggregates are both empty"));
        }
        let mut fields: Vec<Field> = Vec::new();
        let mut group_columns = Vec::new();
        let mut sort_fields = Vec::new();
        for (i, name) in config.group_by.iter().enumerate() {
            if config.group_by[..i].contains(name) {
                return Err(Error::config(format!(
                    "group_by[{i}]: column {name:?} is listed twice"
                )));
            }
            let index = weir_sdk::column_index(&input, name, &[])
                .map_err(|e| Error::config(format!("group_by[{i}]: {}", message(e))))?;
            let field = input.field(index);
            let sort_field = SortField::new(field.data_type().clone());
            if !RowConverter::supports_fields(std::slice::from_ref(&sort_field)) {
                return Err(Error::config(format!(
                    "group_by[{i}]: column {name:?} has type {}, which cannot be grouped",
                    field.data_type()
                )));
            }
            group_columns.push(index);
            sort_fields.push(sort_field);
            fields.push(field.clone());
        }
        let group_types = fields.iter().map(|f| f.data_type().clone()).collect();

        let mut accumulators = Vec::new();
        for (i, aggregate) in config.aggregates.iter().enumerate() {
            let path = format!("aggregates[{i}] ({:?})", aggregate.name);
            if aggregate.name.is_empty() {
                return Err(Error::config(format!(
                    "aggregates[{i}]: \"as\" must not be empty"
                )));
            }
            if fields.iter().any(|f| f.name() == &aggregate.name) {
                return Err(Error::config(format!(
                    "{path}: output column {:?} is already used by an earlier group column or \
                     aggregate",
                    aggregate.name
                )));
            }
            let column = match &aggregate.column {
                Some(name) => {
                    let index = weir_sdk::column_index(&input, name, &[])
                        .map_err(|e| Error::config(format!("{path}: {}", message(e))))?;
                    Some((index, name, input.field(index).data_type()))
                }
                None => None,
            };
            let (accumulator, field) = match (aggregate.function, column) {
                (Function::Count, None) => (
                    Accumulator::CountRows(Vec::new()),
                    Field::new(&aggregate.name, DataType::Int64, false),
                ),
                (Function::Count, Some((column, _, _))) => (
                    Accumulator::CountValid {
                        column,
                        counts: Vec::new(),
                    },
                    Field::new(&aggregate.name, DataType::Int64, false),
                ),
                (function, None) => {
                    return Err(Error::config(format!(
                        "{path}: fn {} needs a \"column\"",
                        function.name()
                    )));
                }
                (Function::Sum, Some((column, name, t))) => {
                    if INTEGERS.contains(t) {
                        (
                            Accumulator::SumInt {
                                column,
                                sums: Vec::new(),
                                seen: Vec::new(),
                            },
                            Field::new(&aggregate.name, DataType::Int64, true),
                        )
                    } else if FLOATS.contains(t) {
                        (
                            Accumulator::SumFloat {
                                column,
                                sums: Vec::new(),
                                seen: Vec::new(),
                            },
                            Field::new(&aggregate.name, DataType::Float64, true),
                        )
                    } else {
                        return Err(Error::config(format!(
                            "{path}: sum needs an integer or float column, column {name:?} is {t}"
                        )));
                    }
                }
                (function @ (Function::Min | Function::Max), Some((column, name, t))) => {
                    let sort_field = SortField::new(t.clone());
                    if !RowConverter::supports_fields(std::slice::from_ref(&sort_field)) {
                        return Err(Error::config(format!(
                            "{path}: column {name:?} has type {t}, which has no order"
                        )));
                    }
                    (
                        Accumulator::Extreme {
                            column,
                            max: function == Function::Max,
                            converter: RowConverter::new(vec![sort_field])?,
                            best: Vec::new(),
                            data_type: t.clone(),
                        },
                        Field::new(&aggregate.name, t.clone(), true),
                    )
                }
            };
            let column_name = aggregate.column.clone().unwrap_or_default();
            accumulators.push((accumulator, column_name));
            fields.push(field);
        }

        let converter = if sort_fields.is_empty() {
            None
        } else {
            Some(RowConverter::new(sort_fields)?)
        };
        let global = converter.is_none();
        let mut rollup = Rollup {
            groups: Groups {
                columns: group_columns,
                converter,
                ids: HashMap::new(),
                count: usize::from(global),
            },
            accumulators,
            schema: Arc::new(Schema::new(fields)),
            group_types,
            finished: false,
        };
        rollup.grow();
        Ok(rollup)
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, Error> {
        if self.finished {
            return Err(Error::internal("process after finish"));
        }
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let groups = self.groups.assign(&batch)?;
        self.grow();
        for (accumulator, column) in &mut self.accumulators {
            accumulator.update(&batch, &groups, column)?;
        }
        Ok(Vec::new())
    }

    fn finish(&mut self) -> Result<Vec<RecordBatch>, Error> {
        if self.finished {
            return Ok(Vec::new());
        }
        self.finished = true;
        let count = self.groups.count;
        // Group keys in first-seen order.
        let mut keys: Vec<(Box<[u8]>, u32)> =
            std::mem::take(&mut self.groups.ids).into_iter().collect();
        keys.sort_unstable_by_key(|(_, id)| *id);
        debug_assert!(self.groups.converter.is_none() || keys.len() == count);

        let mut out = Vec::with_capacity(count.div_ceil(MAX_BATCH_ROWS));
        let mut start = 0;
        while start < count {
            let end = (start + MAX_BATCH_ROWS).min(count);
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
            if let Some(converter) = &self.groups.converter {
                let parser = converter.parser();
                let rows = keys[start..end].iter().map(|(key, _)| parser.parse(key));
                for (array, data_type) in converter
                    .convert_rows(rows)?
                    .into_iter()
                    .zip(&self.group_types)
                {
                    columns.push(restore_type(array, data_type)?);
                }
            }
            for (accumulator, _) in &self.accumulators {
                columns.push(accumulator.emit(start..end)?);
            }
            out.push(RecordBatch::try_new(self.schema.clone(), columns)?);
            start = end;
        }
        Ok(out)
    }
}

impl Rollup {
    fn grow(&mut self) {
        let count = self.groups.count;
        for (accumulator, _) in &mut self.accumulators {
            accumulator.grow(count);
        }
    }
}

fn message(e: Error) -> String {
    match e {
        Error::InvalidConfig(m) | Error::Internal(m) => m,
        other => other.to_string(),
    }
}

weir_sdk::export!(Rollup);
