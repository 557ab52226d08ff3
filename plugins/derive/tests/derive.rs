use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Date64Array, Float32Array, Float64Array, Int32Array,
    Int64Array, LargeStringArray, StringArray, StringViewArray, TimestampMicrosecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt8Array,
};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};
use weir_plugin_derive::Derive;
use weir_sdk::testing::Rng;
use weir_sdk::testing::{Harness, run};
use weir_sdk::{Error, RecordBatch};

fn one(config: &str, batch: RecordBatch) -> RecordBatch {
    let mut out = run::<Derive>(config, &[batch]).unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn dates(batch: &RecordBatch, name: &str) -> Vec<Option<i32>> {
    batch
        .column_by_name(name)
        .unwrap()
        .as_primitive::<Date32Type>()
        .iter()
        .collect()
}

fn floats(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    batch
        .column_by_name(name)
        .unwrap()
        .as_primitive::<Float64Type>()
        .iter()
        .collect()
}

fn ints(batch: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    batch
        .column_by_name(name)
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .collect()
}

fn strs(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let c = batch.column_by_name(name).unwrap();
    match c.data_type() {
        DataType::Utf8 => c
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(String::from))
            .collect(),
        DataType::LargeUtf8 => c
            .as_string::<i64>()
            .iter()
            .map(|v| v.map(String::from))
            .collect(),
        DataType::Utf8View => c
            .as_string_view()
            .iter()
            .map(|v| v.map(String::from))
            .collect(),
        other => panic!("{other}"),
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// 2026-01-01T00:00:00Z in seconds; day 20454.
const T0: i64 = 1_767_225_600;

fn events() -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "ts",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    Some(T0 * 1_000_000 + 3 * 3_600_000_000),
                    None,
                    Some(-1),
                    Some(T0 * 1_000_000 - 1),
                ])
                .with_timezone("America/New_York"),
            ) as ArrayRef,
        ),
        (
            "country_raw",
            Arc::new(StringArray::from(vec![
                Some("US"),
                Some("De"),
                None,
                Some("ÉIRE"),
            ])),
        ),
        (
            "campaign",
            Arc::new(StringArray::from(vec![
                Some("  promo "),
                Some("\tbrand\n"),
                None,
                Some("x"),
            ])),
        ),
        (
            "cost_micros",
            Arc::new(Int64Array::from(vec![
                Some(1_500_000),
                Some(0),
                None,
                Some(-250_000),
            ])),
        ),
        (
            "clicks",
            Arc::new(Int32Array::from(vec![Some(3), Some(0), Some(1), None])),
        ),
        ("bonus", Arc::new(UInt8Array::from(vec![1, 2, 3, 4]))),
    ])
    .unwrap()
}

#[test]
fn realistic_derivation_with_chaining_and_replace() {
    let config = r#"{"columns": [
        {"name": "event_date", "date_of": "ts"},
        {"name": "country", "lower": "country_raw"},
        {"name": "campaign", "trim": "campaign", "replace": true},
        {"name": "cost_usd", "expr": {"op": "div", "left": "cost_micros", "right": 1000000}},
        {"name": "cost_eur", "expr": {"op": "mul", "left": "cost_usd", "right": 0.5}},
        {"name": "actions", "expr": {"op": "add", "left": "clicks", "right": "bonus"}},
        {"name": "remaining", "expr": {"op": "sub", "left": 10, "right": "clicks"}}
    ]}"#;
    let mut harness = Harness::<Derive>::open(config, events().schema()).unwrap();
    let schema = harness.output_schema();
    let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        vec![
            "ts",
            "country_raw",
            "campaign",
            "cost_micros",
            "clicks",
            "bonus",
            "event_date",
            "country",
            "cost_usd",
            "cost_eur",
            "actions",
            "remaining"
        ]
    );
    let types: Vec<_> = schema.fields()[6..]
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        vec![
            DataType::Date32,
            DataType::Utf8,
            DataType::Float64,
            DataType::Float64,
            DataType::Int64,
            DataType::Int64
        ]
    );
    let out = harness.process(&events()).unwrap().remove(0);
    // 03:00Z on Jan 1 is still Dec 31 in New York, but the date is taken in UTC.
    assert_eq!(
        dates(&out, "event_date"),
        vec![Some(20454), None, Some(-1), Some(20453)]
    );
    assert_eq!(
        strs(&out, "country"),
        vec![s("us"), s("de"), None, s("éire")]
    );
    assert_eq!(
        strs(&out, "campaign"),
        vec![s("promo"), s("brand"), None, s("x")]
    );
    assert_eq!(
        floats(&out, "cost_usd"),
        vec![Some(1.5), Some(0.0), None, Some(-0.25)]
    );
    assert_eq!(
        floats(&out, "cost_eur"),
        vec![Some(0.75), Some(0.0), None, Some(-0.125)]
    );
    assert_eq!(ints(&out, "actions"), vec![Some(4), Some(2), Some(4), None]);
    assert_eq!(
        ints(&out, "remaining"),
        vec![Some(7), Some(10), Some(9), None]
    );
}

#[test]
fn date_of_every_unit_and_date_types() {
    let batch = RecordBatch::try_from_iter([
        (
            "s",
            Arc::new(TimestampSecondArray::from(vec![T0, T0 - 1, 0])) as ArrayRef,
        ),
        (
            "ns",
            Arc::new(
                TimestampNanosecondArray::from(vec![
                    T0 * 1_000_000_000 + 86_399_999_999_999,
                    -1,
                    0,
                ])
                .with_timezone("+05:00"),
            ),
        ),
        (
            "d64",
            Arc::new(Date64Array::from(vec![T0 * 1000, -86_400_000, 1])),
        ),
        (
            "d32",
            Arc::new(Date32Array::from(vec![Some(5), None, Some(-3)])),
        ),
    ])
    .unwrap();
    let out = one(
        r#"{"columns": [
            {"name": "a", "date_of": "s"}, {"name": "b", "date_of": "ns"},
            {"name": "c", "date_of": "d64"}, {"name": "d", "date_of": "d32"}]}"#,
        batch,
    );
    assert_eq!(dates(&out, "a"), vec![Some(20454), Some(20453), Some(0)]);
    assert_eq!(dates(&out, "b"), vec![Some(20454), Some(-1), Some(0)]);
    assert_eq!(dates(&out, "c"), vec![Some(20454), Some(-1), Some(0)]);
    assert_eq!(dates(&out, "d"), vec![Some(5), None, Some(-3)]);
}

#[test]
fn case_and_trim_on_every_string_type() {
    let values = vec![
        Some("MiXeD Case"),
        None,
        Some("straße ÉCOLE"),
        Some("  ΣΑΣ  "),
    ];
    let batch = RecordBatch::try_from_iter([
        ("u", Arc::new(StringArray::from(values.clone())) as ArrayRef),
        ("l", Arc::new(LargeStringArray::from(values.clone()))),
        ("v", Arc::new(StringViewArray::from(values.clone()))),
        (
            "ascii",
            Arc::new(LargeStringArray::from(vec![
                Some("AbC"),
                None,
                Some(""),
                Some(" z "),
            ])),
        ),
    ])
    .unwrap();
    let config = r#"{"columns": [
        {"name": "u_lower", "lower": "u"}, {"name": "u_upper", "upper": "u"}, {"name": "u_trim", "trim": "u"},
        {"name": "l_lower", "lower": "l"}, {"name": "l_upper", "upper": "l"}, {"name": "l_trim", "trim": "l"},
        {"name": "v_lower", "lower": "v"}, {"name": "v_upper", "upper": "v"}, {"name": "v_trim", "trim": "v"},
        {"name": "a_lower", "lower": "ascii"}, {"name": "a_upper", "upper": "ascii"}
    ]}"#;
    let out = one(config, batch);
    for prefix in ["u", "l", "v"] {
        let expected = |f: fn(&str) -> String| values.iter().map(|v| v.map(f)).collect::<Vec<_>>();
        assert_eq!(
            strs(&out, &format!("{prefix}_lower")),
            expected(|v| v.to_lowercase())
        );
        assert_eq!(
            strs(&out, &format!("{prefix}_upper")),
            expected(|v| v.to_uppercase())
        );
        assert_eq!(
            strs(&out, &format!("{prefix}_trim")),
            expected(|v| v.trim().to_string())
        );
    }
    assert_eq!(strs(&out, "l_upper")[2], s("STRASSE ÉCOLE"));
    assert_eq!(strs(&out, "u_lower")[3], s("  σας  "));
    assert_eq!(
        out.schema().field_with_name("l_lower").unwrap().data_type(),
        &DataType::LargeUtf8
    );
    assert_eq!(
        out.schema().field_with_name("v_trim").unwrap().data_type(),
        &DataType::Utf8View
    );
    assert_eq!(strs(&out, "a_lower"), vec![s("abc"), None, s(""), s(" z ")]);
    assert_eq!(strs(&out, "a_upper"), vec![s("ABC"), None, s(""), s(" Z ")]);
}

#[test]
fn sliced_ascii_input_uses_the_right_values() {
    let batch = RecordBatch::try_from_iter([(
        "x",
        Arc::new(StringArray::from(vec!["AA", "Bb", "cC", "DD"])) as ArrayRef,
    )])
    .unwrap()
    .slice(1, 2);
    let out = one(r#"{"columns": [{"name": "y", "lower": "x"}]}"#, batch);
    assert_eq!(strs(&out, "y"), vec![s("bb"), s("cc")]);
}

#[test]
fn division_by_zero_is_null_and_floats_mix() {
    let batch = RecordBatch::try_from_iter([
        (
            "a",
            Arc::new(Int64Array::from(vec![Some(1), Some(6), None, Some(-9)])) as ArrayRef,
        ),
        (
            "b",
            Arc::new(Float32Array::from(vec![
                Some(0.0),
                Some(2.0),
                Some(1.0),
                Some(-0.0),
            ])),
        ),
    ])
    .unwrap();
    let out = one(
        r#"{"columns": [
            {"name": "q", "expr": {"op": "div", "left": "a", "right": "b"}},
            {"name": "p", "expr": {"op": "add", "left": "a", "right": "b"}},
            {"name": "h", "expr": {"op": "div", "left": "a", "right": 4}},
            {"name": "r", "expr": {"op": "div", "left": 12, "right": "a"}}
        ]}"#,
        batch,
    );
    assert_eq!(floats(&out, "q"), vec![None, Some(3.0), None, None]);
    assert_eq!(
        floats(&out, "p"),
        vec![Some(1.0), Some(8.0), None, Some(-9.0)]
    );
    assert_eq!(
        floats(&out, "h"),
        vec![Some(0.25), Some(1.5), None, Some(-2.25)]
    );
    assert_eq!(
        floats(&out, "r"),
        vec![Some(12.0), Some(2.0), None, Some(-12.0 / 9.0)]
    );
}

#[test]
fn integer_overflow_names_the_row() {
    let batch = RecordBatch::try_from_iter([(
        "a",
        Arc::new(Int64Array::from(vec![
            Some(1),
            None,
            Some(i64::MAX - 1),
            Some(i64::MAX),
        ])) as ArrayRef,
    )])
    .unwrap();
    let err = run::<Derive>(
        r#"{"columns": [{"name": "b", "expr": {"op": "add", "left": "a", "right": 1}}]}"#,
        std::slice::from_ref(&batch),
    )
    .unwrap_err();
    match err {
        Error::InvalidInput {
            row,
            column,
            message,
        } => {
            assert_eq!(row, Some(3));
            assert_eq!(column.as_deref(), Some("b"));
            assert!(message.contains("overflow"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let err = run::<Derive>(
        r#"{"columns": [{"name": "b", "expr": {"op": "mul", "left": "a", "right": "a"}}]}"#,
        &[batch],
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { row: Some(2), .. }),
        "{err:?}"
    );
}

#[test]
fn multiple_and_empty_batches() {
    let batch = events();
    let out = run::<Derive>(
        r#"{"columns": [{"name": "country", "upper": "country_raw"}]}"#,
        &[batch.clone(), batch.slice(0, 0), batch.slice(1, 3)],
    )
    .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        strs(&out[0], "country"),
        vec![s("US"), s("DE"), None, s("ÉIRE")]
    );
    assert_eq!(strs(&out[1], "country"), vec![s("DE"), None, s("ÉIRE")]);
}

#[test]
fn config_errors_name_the_entry_and_column() {
    let cases: &[(&str, &[&str])] = &[
        (r#"{"columns": []}"#, &["columns"]),
        (
            r#"{"columns": [{"name": "x"}]}"#,
            &["columns[0]", "\"x\"", "exactly one"],
        ),
        (
            r#"{"columns": [{"name": "x", "lower": "country_raw", "upper": "country_raw"}]}"#,
            &["columns[0]", "exactly one"],
        ),
        (
            r#"{"columns": [{"name": "d", "date_of": "nope"}]}"#,
            &["columns[0]", "date_of", "\"nope\"", "not found"],
        ),
        (
            r#"{"columns": [{"name": "d", "date_of": "campaign"}]}"#,
            &["date_of", "\"campaign\"", "Utf8", "Timestamp"],
        ),
        (
            r#"{"columns": [{"name": "d", "lower": "clicks"}]}"#,
            &["lower", "\"clicks\"", "Int32"],
        ),
        (
            r#"{"columns": [{"name": "d", "trim": "ts"}]}"#,
            &["trim", "\"ts\""],
        ),
        (
            r#"{"columns": [{"name": "x", "expr": {"op": "add", "left": "campaign", "right": 1}}]}"#,
            &["expr.left", "\"campaign\"", "numeric"],
        ),
        (
            r#"{"columns": [{"name": "x", "expr": {"op": "add", "left": 1, "right": "missing"}}]}"#,
            &["expr.right", "\"missing\"", "not found"],
        ),
        (
            r#"{"columns": [{"name": "x", "expr": {"op": "add", "left": 1, "right": 2}}]}"#,
            &["columns[0]", "at least one"],
        ),
        (
            r#"{"columns": [{"name": "x", "expr": {"op": "div", "left": "clicks", "right": 0}}]}"#,
            &["expr.right", "division by zero"],
        ),
        (
            r#"{"columns": [{"name": "x", "expr": {"op": "pow", "left": "clicks", "right": 2}}]}"#,
            &["pow"],
        ),
        (
            r#"{"columns": [{"name": "x", "expr": {"op": "add", "left": true, "right": 2}}]}"#,
            &["column name (string) or a number"],
        ),
        (
            r#"{"columns": [{"name": "campaign", "trim": "campaign"}]}"#,
            &["columns[0]", "\"campaign\"", "already exists", "replace"],
        ),
        (
            r#"{"columns": [{"name": "y", "lower": "country_raw"}, {"name": "y", "upper": "country_raw"}]}"#,
            &["columns[1]", "\"y\"", "already exists"],
        ),
        (
            r#"{"columns": [{"name": "", "lower": "country_raw"}]}"#,
            &["columns[0]", "name"],
        ),
        (
            r#"{"columns": [{"name": "y", "lowercase": "country_raw"}]}"#,
            &["lowercase"],
        ),
    ];
    for (config, needles) in cases {
        weir_sdk::testing::assert_config_error::<Derive>(config, events().schema(), needles);
    }
}

#[test]
fn later_entries_see_earlier_ones_but_not_the_reverse() {
    let err = Harness::<Derive>::open(
        r#"{"columns": [{"name": "b", "upper": "a"}, {"name": "a", "lower": "country_raw"}]}"#,
        events().schema(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(err, Error::InvalidConfig(m) if m.contains("\"a\"") && m.contains("columns[0]"))
    );
}

#[test]
fn random_data_matches_a_row_by_row_reference() {
    let mut rng = Rng(99);
    let alphabet: Vec<char> = "aZ Ü\tß.Σx".chars().collect();
    for round in 0..100 {
        let n = 1 + rng.below(60) as usize;
        let a: Vec<Option<i64>> = (0..n)
            .map(|_| (rng.below(6) > 0).then(|| rng.below(2_000_001) as i64 - 1_000_000))
            .collect();
        let b: Vec<Option<i32>> = (0..n)
            .map(|_| (rng.below(6) > 0).then(|| rng.below(21) as i32 - 10))
            .collect();
        let f: Vec<Option<f64>> = (0..n)
            .map(|_| (rng.below(6) > 0).then(|| (rng.below(2001) as f64 - 1000.0) / 8.0))
            .collect();
        let ts: Vec<Option<i64>> = (0..n)
            .map(|_| (rng.below(6) > 0).then(|| rng.next_u64() as i64 % 4_000_000_000_000_000))
            .collect();
        let text: Vec<Option<String>> = (0..n)
            .map(|_| {
                (rng.below(6) > 0).then(|| {
                    (0..rng.below(8))
                        .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                        .collect()
                })
            })
            .collect();
        let batch = RecordBatch::try_from_iter([
            ("a", Arc::new(Int64Array::from(a.clone())) as ArrayRef),
            ("b", Arc::new(Int32Array::from(b.clone()))),
            ("f", Arc::new(Float64Array::from(f.clone()))),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from(ts.clone()).with_timezone("UTC")),
            ),
            ("t", Arc::new(StringArray::from(text.clone()))),
        ])
        .unwrap();
        let ops = ["add", "sub", "mul", "div"];
        let int_op = ops[rng.below(4) as usize];
        let float_op = ops[rng.below(4) as usize];
        let config = format!(
            r#"{{"columns": [
                {{"name": "ab", "expr": {{"op": "{int_op}", "left": "a", "right": "b"}}}},
                {{"name": "af", "expr": {{"op": "{float_op}", "left": "a", "right": "f"}}}},
                {{"name": "day", "date_of": "ts"}},
                {{"name": "lo", "lower": "t"}}, {{"name": "up", "upper": "t"}}, {{"name": "tr", "trim": "t"}}
            ]}}"#
        );
        let out = one(&config, batch);
        let arith = |op: &str, x: f64, y: f64| match op {
            "add" => Some(x + y),
            "sub" => Some(x - y),
            "mul" => Some(x * y),
            _ => (y != 0.0).then(|| x / y),
        };
        for i in 0..n {
            let ab = match (a[i], b[i]) {
                (Some(x), Some(y)) if int_op != "div" => Some(match int_op {
                    "add" => x + y as i64,
                    "sub" => x - y as i64,
                    _ => x * y as i64,
                } as f64),
                (Some(x), Some(y)) => arith("div", x as f64, y as f64),
                _ => None,
            };
            let got_ab = if int_op == "div" {
                floats(&out, "ab")[i]
            } else {
                ints(&out, "ab")[i].map(|v| v as f64)
            };
            assert_eq!(got_ab, ab, "round {round} row {i} ab {int_op}");
            let af = match (a[i], f[i]) {
                (Some(x), Some(y)) => arith(float_op, x as f64, y),
                _ => None,
            };
            assert_eq!(
                floats(&out, "af")[i],
                af,
                "round {round} row {i} af {float_op}"
            );
            let day = ts[i].map(|t| t.div_euclid(86_400_000_000) as i32);
            assert_eq!(dates(&out, "day")[i], day, "round {round} row {i}");
            assert_eq!(
                strs(&out, "lo")[i],
                text[i].as_ref().map(|t| t.to_lowercase())
            );
            assert_eq!(
                strs(&out, "up")[i],
                text[i].as_ref().map(|t| t.to_uppercase())
            );
            assert_eq!(
                strs(&out, "tr")[i],
                text[i].as_ref().map(|t| t.trim().to_string())
            );
        }
    }
}

#[test]
fn input_columns_are_the_operands_and_the_names_written() {
    use weir_sdk::Transform;
    let config = weir_sdk::parse_config::<Derive>(
        r#"{"columns": [
            {"name": "day", "date_of": "ts"},
            {"name": "country", "replace": true, "lower": "country"},
            {"name": "usd", "expr": {"op": "div", "left": "micros", "right": 1000000}}
        ]}"#,
    )
    .unwrap();
    let columns = Derive::input_columns(&config).unwrap();
    assert_eq!(columns, ["ts", "day", "country", "micros", "usd"]);
}
