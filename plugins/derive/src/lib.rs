//! # derive: add computed columns
//!
//! Appends new columns (or replaces existing ones) computed from the batch with vectorised Arrow
//! kernels. Entries run in order, and later entries may read columns derived by earlier ones.
//! Input columns pass through unchanged; new columns are appended at the end in config order,
//! replaced columns keep their position.
//!
//! ## Config
//!
//! ```json
//! {
//!   "columns": [
//!     {"name": "event_date", "date_of": "ts"},
//!     {"name": "country", "lower": "country_raw"},
//!     {"name": "code", "upper": "code_raw"},
//!     {"name": "campaign", "trim": "campaign", "replace": true},
//!     {"name": "cost_usd", "expr": {"op": "div", "left": "cost_micros", "right": 1000000}},
//!     {"name": "cost_eur", "expr": {"op": "mul", "left": "cost_usd", "right": 0.92}}
//!   ]
//! }
//! ```
//!
//! Each entry of `columns` (non-empty) has a `name`, an optional `replace` (default `false`) and
//! exactly one of:
//!
//! * `"date_of": COLUMN`: the UTC calendar date of a `Timestamp` column (any unit; with or without
//!   a time zone, the date is always taken in UTC, since Arrow timestamps store UTC instants), or of
//!   a `Date32`/`Date64` column. Output `Date32`.
//! * `"lower": COLUMN`, `"upper": COLUMN`: Unicode lower/upper case (Rust's `str::to_lowercase`
//!   / `to_uppercase`) of a `Utf8`, `LargeUtf8` or `Utf8View` column. Output keeps the type.
//! * `"trim": COLUMN`: strips leading and trailing Unicode whitespace (`str::trim`). Same types.
//! * `"expr": {"op": OP, "left": OPERAND, "right": OPERAND}`: arithmetic, `OP` one of `add`,
//!   `sub`, `mul`, `div`; each operand is a column name (a JSON string) or a number, and at least
//!   one must be a column. Numeric columns only (integers, floats, decimals).
//!   * If both operands are integers (integer columns of any width, or integer literals) and the
//!     op is not `div`, the result is `Int64`, and an overflow is an error naming the row.
//!   * Otherwise operands are converted to `Float64` and the result is `Float64`.
//!   * `div` is always `Float64`; division by zero gives null (a literal `0` divisor is a config
//!     error).
//!
//! Nulls propagate: any null operand gives a null result.
//!
//! A `name` that already exists (in the input or derived earlier) is an error unless
//! `"replace": true`, which overwrites that column in place (its type may change); with
//! `"replace": true` and no such column, the column is appended as usual. Config errors name the entry (`columns[2]`) and the column at fault.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, GenericStringArray,
    GenericStringBuilder, Int64Array, OffsetSizeTrait, Scalar, StringViewBuilder,
};
use arrow::buffer::Buffer;
use arrow::compute::kernels::numeric;
use arrow::compute::{CastOptions, cast_with_options, nullif};
use arrow::datatypes::{
    DataType, Field, FieldRef, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit,
};
use schemars::JsonSchema;
use serde::Deserialize;
use weir_sdk::{Error, RecordBatch, Transform};

/// The derive config.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The columns to derive, in order.
    pub columns: Vec<DerivedColumn>,
}

/// One derived column: a name and exactly one of `date_of`, `lower`, `upper`, `trim`, `expr`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DerivedColumn {
    /// The output column's name.
    pub name: String,
    /// Allow overwriting an existing column of that name.
    #[serde(default)]
    pub replace: bool,
    /// The UTC date of a Timestamp or Date column.
    pub date_of: Option<String>,
    /// Lower-cases a string column.
    pub lower: Option<String>,
    /// Upper-cases a string column.
    pub upper: Option<String>,
    /// Trims whitespace from both ends of a string column.
    pub trim: Option<String>,
    /// Arithmetic on two operands.
    pub expr: Option<Expr>,
}

/// A binary arithmetic expression.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expr {
    pub op: ArithOp,
    pub left: Operand,
    pub right: Operand,
}

/// An arithmetic operator.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl ArithOp {
    fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
        }
    }
}

/// A column name or a number.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a column name (string) or a number")]
pub enum Operand {
    Column(String),
    Int(i64),
    Float(f64),
}

/// A resolved operand.
#[derive(Clone, Copy, Debug)]
enum Arg {
    Column(usize),
    Int(i64),
    Float(f64),
}

#[derive(Clone, Copy, Debug)]
enum Case {
    Lower,
    Upper,
}

#[derive(Debug)]
enum Kind {
    /// Per-day divisor of the source's raw i64 values (1 for Date32 input, which is passed on).
    DateOf {
        source: usize,
        per_day: i64,
    },
    Case(usize, Case),
    Trim(usize),
    Expr {
        op: ArithOp,
        left: Arg,
        right: Arg,
        integer: bool,
    },
}

#[derive(Debug)]
struct Step {
    kind: Kind,
    /// Where the result goes in the working column list.
    target: usize,
    field: FieldRef,
}

/// Adds computed columns.
pub struct Derive {
    steps: Vec<Step>,
    schema: SchemaRef,
}

const STRING_TYPES: [DataType; 3] = [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View];

fn find(fields: &[FieldRef], name: &str, path: &str, key: &str) -> Result<usize, Error> {
    fields.iter().position(|f| f.name() == name).ok_or_else(|| {
        let names: Vec<_> = fields.iter().map(|f| f.name().as_str()).collect();
        Error::config(format!(
            "{path}.{key}: column {name:?} not found; available: {}",
            names.join(", ")
        ))
    })
}

impl Transform for Derive {
    type Config = Config;

    /// The columns the derivations read, and the names they write (a derivation may replace an
    /// input column); every other column passes through untouched.
    fn input_columns(config: &Config) -> Option<Vec<String>> {
        let mut columns = Vec::new();
        for c in &config.columns {
            let operands = c.expr.iter().flat_map(|e| [&e.left, &e.right]);
            let read = [&c.date_of, &c.lower, &c.upper, &c.trim]
                .into_iter()
                .flatten()
                .chain(operands.filter_map(|o| match o {
                    Operand::Column(name) => Some(name),
                    _ => None,
                }))
                .chain([&c.name]);
            for name in read {
                if !columns.contains(name) {
                    columns.push(name.clone());
                }
            }
        }
        Some(columns)
    }

    fn open(config: Config, input: SchemaRef) -> Result<Self, Error> {
        if config.columns.is_empty() {
            return Err(Error::config(
                "columns must list at least one column to derive",
            ));
        }
        let mut fields: Vec<FieldRef> = input.fields().iter().cloned().collect();
        let mut steps = Vec::with_capacity(config.columns.len());
        for (i, entry) in config.columns.iter().enumerate() {
            let path = format!("columns[{i}] ({:?})", entry.name);
            if entry.name.is_empty() {
                return Err(Error::config(format!(
                    "columns[{i}]: name must not be empty"
                )));
            }
            let kinds = [
                entry.date_of.is_some(),
                entry.lower.is_some(),
                entry.upper.is_some(),
                entry.trim.is_some(),
                entry.expr.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(Error::config(format!(
                    "{path}: needs exactly one of date_of, lower, upper, trim or expr"
                )));
            }
            let (kind, data_type, nullable) = if let Some(source) = &entry.date_of {
                let index = find(&fields, source, &path, "date_of")?;
                let field = &fields[index];
                let per_day = match field.data_type() {
                    DataType::Timestamp(unit, _) => match unit {
                        TimeUnit::Second => 86_400,
                        TimeUnit::Millisecond => 86_400_000,
                        TimeUnit::Microsecond => 86_400_000_000,
                        TimeUnit::Nanosecond => 86_400_000_000_000,
                    },
                    DataType::Date32 => 1,
                    DataType::Date64 => 86_400_000,
                    other => {
                        return Err(Error::config(format!(
                            "{path}.date_of: column {source:?} is {other}, expected a Timestamp, \
                             Date32 or Date64"
                        )));
                    }
                };
                let kind = Kind::DateOf {
                    source: index,
                    per_day,
                };
                (kind, DataType::Date32, field.is_nullable())
            } else if let Some((key, source, case)) = entry
                .lower
                .as_ref()
                .map(|s| ("lower", s, Some(Case::Lower)))
                .or(entry
                    .upper
                    .as_ref()
                    .map(|s| ("upper", s, Some(Case::Upper))))
                .or(entry.trim.as_ref().map(|s| ("trim", s, None)))
            {
                let index = find(&fields, source, &path, key)?;
                let field = &fields[index];
                if !STRING_TYPES.contains(field.data_type()) {
                    return Err(Error::config(format!(
                        "{path}.{key}: column {source:?} is {}, expected Utf8, LargeUtf8 or Utf8View",
                        field.data_type()
                    )));
                }
                let kind = match case {
                    Some(case) => Kind::Case(index, case),
                    None => Kind::Trim(index),
                };
                (kind, field.data_type().clone(), field.is_nullable())
            } else if let Some(expr) = &entry.expr {
                let resolve = |operand: &Operand, side: &str| -> Result<(Arg, bool, bool), Error> {
                    Ok(match operand {
                        Operand::Int(v) => (Arg::Int(*v), true, false),
                        Operand::Float(v) => (Arg::Float(*v), false, false),
                        Operand::Column(name) => {
                            let index = find(&fields, name, &path, &format!("expr.{side}"))?;
                            let t = fields[index].data_type();
                            if !t.is_numeric() {
                                return Err(Error::config(format!(
                                    "{path}.expr.{side}: column {name:?} is {t}, expected a \
                                     numeric column"
                                )));
                            }
                            (
                                Arg::Column(index),
                                t.is_integer(),
                                fields[index].is_nullable(),
                            )
                        }
                    })
                };
                let (left, left_int, left_null) = resolve(&expr.left, "left")?;
                let (right, right_int, right_null) = resolve(&expr.right, "right")?;
                if !matches!(left, Arg::Column(_)) && !matches!(right, Arg::Column(_)) {
                    return Err(Error::config(format!(
                        "{path}.expr: at least one of left and right must be a column name"
                    )));
                }
                if expr.op == ArithOp::Div && matches!(right, Arg::Int(0)) {
                    return Err(Error::config(format!(
                        "{path}.expr.right: division by zero"
                    )));
                }
                if expr.op == ArithOp::Div && matches!(right, Arg::Float(v) if v == 0.0) {
                    return Err(Error::config(format!(
                        "{path}.expr.right: division by zero"
                    )));
                }
                let integer = left_int && right_int && expr.op != ArithOp::Div;
                let data_type = if integer {
                    DataType::Int64
                } else {
                    DataType::Float64
                };
                let nullable = left_null || right_null || expr.op == ArithOp::Div;
                let kind = Kind::Expr {
                    op: expr.op,
                    left,
                    right,
                    integer,
                };
                (kind, data_type, nullable)
            } else {
                return Err(Error::internal("derive entry without a kind"));
            };

            let field: FieldRef = Arc::new(Field::new(&entry.name, data_type, nullable));
            let target = match fields.iter().position(|f| f.name() == &entry.name) {
                Some(_) if !entry.replace => {
                    return Err(Error::config(format!(
                        "{path}: column {:?} already exists; set \"replace\": true to overwrite it",
                        entry.name
                    )));
                }
                Some(existing) => {
                    fields[existing] = field.clone();
                    existing
                }
                None => {
                    fields.push(field.clone());
                    fields.len() - 1
                }
            };
            steps.push(Step {
                kind,
                target,
                field,
            });
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()));
        Ok(Derive { steps, schema })
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, Error> {
        let mut columns = batch.columns().to_vec();
        for step in &self.steps {
            let array = match &step.kind {
                Kind::DateOf { source, per_day } => date_of(&columns[*source], *per_day, step)?,
                Kind::Case(source, case) => change_case(&columns[*source], *case),
                Kind::Trim(source) => trim(&columns[*source]),
                Kind::Expr {
                    op,
                    left,
                    right,
                    integer,
                } => {
                    let n = batch.num_rows();
                    if *integer {
                        int_expr(&columns, *op, *left, *right, n, step)?
                    } else {
                        float_expr(&columns, *op, *left, *right, step)?
                    }
                }
            };
            debug_assert_eq!(array.data_type(), step.field.data_type());
            if step.target == columns.len() {
                columns.push(array);
            } else {
                columns[step.target] = array;
            }
        }
        Ok(vec![RecordBatch::try_new(self.schema.clone(), columns)?])
    }
}

fn strict() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        ..Default::default()
    }
}

fn date_of(source: &ArrayRef, per_day: i64, step: &Step) -> Result<ArrayRef, Error> {
    if source.data_type() == &DataType::Date32 {
        return Ok(source.clone());
    }
    // Timestamps and Date64 are UTC offsets from the epoch whatever the zone: take the raw values
    // (the same buffer, not a copy).
    let raw = Int64Array::from(
        source
            .to_data()
            .into_builder()
            .data_type(DataType::Int64)
            .build()?,
    );
    let reciprocal = 1.0 / per_day as f64;
    let days: Result<Date32Array, _> =
        raw.try_unary(|v| i32::try_from(floor_div(v, per_day, reciprocal)).map_err(|_| ()));
    match days {
        Ok(days) => Ok(Arc::new(days)),
        Err(()) => {
            let row = raw
                .iter()
                .position(|v| v.is_some_and(|v| i32::try_from(v.div_euclid(per_day)).is_err()));
            Err(Error::input(
                "date out of the Date32 range",
                row.map(|r| r as u64),
                Some(step.field.name()),
            ))
        }
    }
}

/// `v.div_euclid(divisor)` for a `divisor` of at least 2^11, with `reciprocal = 1.0 / divisor`.
///
/// Wasm has only a trapping 64-bit division, which Cranelift guards on every call; a float
/// estimate and one exact correction is several times faster there.
/// The estimate is within one of the quotient: its relative error is a few ulps, and the
/// quotient's magnitude is below 2^63 / 2^11 = 2^52. The remainder against it is then in
/// `-divisor..2 * divisor`, so the wrapping arithmetic computes it exactly.
fn floor_div(v: i64, divisor: i64, reciprocal: f64) -> i64 {
    debug_assert!(divisor >= 1 << 11);
    let estimate = (v as f64 * reciprocal).floor() as i64;
    let rest = v.wrapping_sub(estimate.wrapping_mul(divisor));
    estimate - i64::from(rest < 0) + i64::from(rest >= divisor)
}

/// A string builder that derived strings go into.
trait Sink {
    fn push(&mut self, value: &str);
    fn push_null(&mut self);
    fn finish_array(self) -> ArrayRef;
}

impl<O: OffsetSizeTrait> Sink for GenericStringBuilder<O> {
    fn push(&mut self, value: &str) {
        self.append_value(value);
    }
    fn push_null(&mut self) {
        self.append_null();
    }
    fn finish_array(mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

impl Sink for StringViewBuilder {
    fn push(&mut self, value: &str) {
        self.append_value(value);
    }
    fn push_null(&mut self) {
        self.append_null();
    }
    fn finish_array(mut self) -> ArrayRef {
        Arc::new(self.finish())
    }
}

/// Applies `f` to every non-null string of `array` (a string array of any kind), keeping its type.
fn map_strings(
    array: &ArrayRef,
    data_capacity: usize,
    f: impl FnMut(&str, &mut dyn Sink),
) -> ArrayRef {
    fn run<'a, S: Sink>(
        values: impl Iterator<Item = Option<&'a str>>,
        mut sink: S,
        mut f: impl FnMut(&str, &mut dyn Sink),
    ) -> ArrayRef {
        for value in values {
            match value {
                Some(value) => f(value, &mut sink),
                None => sink.push_null(),
            }
        }
        sink.finish_array()
    }
    let rows = array.len();
    match array.data_type() {
        DataType::LargeUtf8 => run(
            array.as_string::<i64>().iter(),
            GenericStringBuilder::<i64>::with_capacity(rows, data_capacity),
            f,
        ),
        DataType::Utf8View => run(
            array.as_string_view().iter(),
            StringViewBuilder::with_capacity(rows),
            f,
        ),
        _ => run(
            array.as_string::<i32>().iter(),
            GenericStringBuilder::<i32>::with_capacity(rows, data_capacity),
            f,
        ),
    }
}

fn string_bytes(array: &ArrayRef) -> usize {
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().values().len(),
        DataType::LargeUtf8 => array.as_string::<i64>().values().len(),
        _ => 0,
    }
}

/// Lower/upper-cases an all-ASCII Utf8/LargeUtf8 array in one pass over its value buffer.
fn ascii_case<O: OffsetSizeTrait>(array: &GenericStringArray<O>, case: Case) -> Option<ArrayRef> {
    let values = array.values();
    if !values.is_ascii() {
        return None;
    }
    let changed = match case {
        Case::Lower => values.to_ascii_lowercase(),
        Case::Upper => values.to_ascii_uppercase(),
    };
    // SAFETY: ASCII case mapping keeps every byte ASCII and in place, so the source's valid
    // offsets and nulls hold for the changed values too. (`try_new` would re-check every offset
    // and the UTF-8, which in Wasm costs more than the case change.)
    let array = unsafe {
        GenericStringArray::<O>::new_unchecked(
            array.offsets().clone(),
            Buffer::from_vec(changed),
            array.nulls().cloned(),
        )
    };
    debug_assert!(array.to_data().validate_full().is_ok());
    Some(Arc::new(array))
}

fn change_case(array: &ArrayRef, case: Case) -> ArrayRef {
    let fast = match array.data_type() {
        DataType::Utf8 => ascii_case(array.as_string::<i32>(), case),
        DataType::LargeUtf8 => ascii_case(array.as_string::<i64>(), case),
        _ => None,
    };
    if let Some(fast) = fast {
        return fast;
    }
    let mut scratch = String::new();
    map_strings(array, string_bytes(array), |value, sink| {
        if value.is_ascii() {
            scratch.clear();
            scratch.push_str(value);
            match case {
                Case::Lower => scratch.make_ascii_lowercase(),
                Case::Upper => scratch.make_ascii_uppercase(),
            }
            sink.push(&scratch);
        } else {
            match case {
                Case::Lower => sink.push(&value.to_lowercase()),
                Case::Upper => sink.push(&value.to_uppercase()),
            }
        }
    })
}

fn trim(array: &ArrayRef) -> ArrayRef {
    map_strings(array, string_bytes(array), |value, sink| {
        sink.push(value.trim())
    })
}

/// An operand as an Arrow datum of `data_type`.
fn datum(columns: &[ArrayRef], arg: Arg, data_type: &DataType) -> Result<Datum, Error> {
    Ok(match arg {
        Arg::Column(index) => {
            Datum::Array(cast_with_options(&columns[index], data_type, &strict())?)
        }
        Arg::Int(v) if data_type == &DataType::Int64 => {
            Datum::Scalar(Scalar::new(Arc::new(Int64Array::from(vec![v]))))
        }
        Arg::Int(v) => Datum::Scalar(Scalar::new(Arc::new(Float64Array::from(vec![v as f64])))),
        Arg::Float(v) => Datum::Scalar(Scalar::new(Arc::new(Float64Array::from(vec![v])))),
    })
}

enum Datum {
    Array(ArrayRef),
    Scalar(Scalar<ArrayRef>),
}

impl Datum {
    fn as_datum(&self) -> &dyn arrow::array::Datum {
        match self {
            Datum::Array(a) => a,
            Datum::Scalar(s) => s,
        }
    }

    /// The i64 value at `row`, for the integer path's error reporting.
    fn int_at(&self, row: usize) -> Option<i64> {
        match self {
            Datum::Array(a) => {
                let a = a.as_primitive::<Int64Type>();
                a.is_valid(row).then(|| a.value(row))
            }
            Datum::Scalar(s) => Some(s.clone().into_inner().as_primitive::<Int64Type>().value(0)),
        }
    }
}

fn apply(op: ArithOp, left: &Datum, right: &Datum) -> Result<ArrayRef, arrow::error::ArrowError> {
    let (l, r) = (left.as_datum(), right.as_datum());
    match op {
        ArithOp::Add => numeric::add(l, r),
        ArithOp::Sub => numeric::sub(l, r),
        ArithOp::Mul => numeric::mul(l, r),
        ArithOp::Div => numeric::div(l, r),
    }
}

fn int_expr(
    columns: &[ArrayRef],
    op: ArithOp,
    left: Arg,
    right: Arg,
    rows: usize,
    step: &Step,
) -> Result<ArrayRef, Error> {
    let name = step.field.name();
    let operand = |arg| {
        datum(columns, arg, &DataType::Int64).map_err(|e| {
            Error::input(
                format!("an operand does not fit Int64: {e}"),
                None,
                Some(name),
            )
        })
    };
    let (l, r) = (operand(left)?, operand(right)?);
    match apply(op, &l, &r) {
        Ok(result) => Ok(result),
        Err(e) => {
            // Find the first row that overflows, to name it.
            let row = (0..rows).find(|&row| {
                let (Some(a), Some(b)) = (l.int_at(row), r.int_at(row)) else {
                    return false;
                };
                match op {
                    ArithOp::Add => a.checked_add(b).is_none(),
                    ArithOp::Sub => a.checked_sub(b).is_none(),
                    ArithOp::Mul => a.checked_mul(b).is_none(),
                    ArithOp::Div => false,
                }
            });
            let detail = match row {
                Some(row) => format!(
                    "Int64 overflow: {} {} {}",
                    l.int_at(row).unwrap_or_default(),
                    op.symbol(),
                    r.int_at(row).unwrap_or_default()
                ),
                None => e.to_string(),
            };
            Err(Error::input(detail, row.map(|r| r as u64), Some(name)))
        }
    }
}

fn float_expr(
    columns: &[ArrayRef],
    op: ArithOp,
    left: Arg,
    right: Arg,
    step: &Step,
) -> Result<ArrayRef, Error> {
    let name = step.field.name();
    let operand = |arg| {
        datum(columns, arg, &DataType::Float64).map_err(|e| {
            Error::input(
                format!("an operand does not convert to Float64: {e}"),
                None,
                Some(name),
            )
        })
    };
    let l = operand(left)?;
    let mut r = operand(right)?;
    if op == ArithOp::Div
        && let Datum::Array(divisor) = &r
    {
        // Division by zero (either sign) gives null rather than ±inf/NaN.
        let is_zero = BooleanArray::from_unary(divisor.as_primitive::<Float64Type>(), |v| v == 0.0);
        if is_zero.true_count() > 0 {
            r = Datum::Array(nullif(divisor, &is_zero)?);
        }
    }
    Ok(apply(op, &l, &r)?)
}

weir_sdk::export!(Derive);

#[cfg(test)]
mod tests {
    use super::floor_div;

    #[test]
    fn floor_div_is_div_euclid() {
        let divisors = [
            86_400,
            86_400_000,
            86_400_000_000,
            86_400_000_000_000,
            1 << 11,
        ];
        let mut state = 0x2545f4914f6cdd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as i64
        };
        for divisor in divisors {
            let reciprocal = 1.0 / divisor as f64;
            let mut values = vec![0, 1, -1, i64::MIN, i64::MAX, i64::MIN + 1, i64::MAX - 1];
            for k in [
                -3,
                -2,
                -1,
                0,
                1,
                2,
                3,
                1 << 20,
                -(1 << 20),
                i64::MAX / divisor,
            ] {
                let edge = divisor.saturating_mul(k);
                values.extend([edge, edge.saturating_sub(1), edge.saturating_add(1)]);
            }
            values.extend((0..100_000).map(|_| next()));
            values.extend((0..100_000).map(|_| next() >> (next() & 63)));
            for v in values {
                assert_eq!(
                    floor_div(v, divisor, reciprocal),
                    v.div_euclid(divisor),
                    "{v} / {divisor}"
                );
            }
        }
    }
}
