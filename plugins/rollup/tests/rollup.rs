use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, DictionaryArray, Float32Array, Float64Array, Int32Array,
    Int64Array, StringArray, TimestampMillisecondArray, UInt8Array,
};
use arrow::datatypes::{
    DataType, Date32Type, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMillisecondType,
};
use weir_plugin_rollup::{MAX_BATCH_ROWS, Rollup};
use weir_sdk::testing::Rng;
use weir_sdk::testing::{Harness, run};
use weir_sdk::{Error, RecordBatch};

fn events(
    date: Vec<i32>,
    advertiser: Vec<Option<i64>>,
    cost: Vec<Option<f64>>,
    micros: Vec<Option<i64>>,
    ts: Vec<Option<i64>>,
    click: Vec<Option<&str>>,
) -> RecordBatch {
    RecordBatch::try_from_iter_with_nullable([
        (
            "event_date",
            Arc::new(Date32Array::from(date)) as ArrayRef,
            false,
        ),
        (
            "advertiser_id",
            Arc::new(Int64Array::from(advertiser)),
            true,
        ),
        ("cost", Arc::new(Float64Array::from(cost)), true),
        ("cost_micros", Arc::new(Int64Array::from(micros)), true),
        (
            "ts",
            Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
            true,
        ),
        ("click_id", Arc::new(StringArray::from(click)), true),
    ])
    .unwrap()
}

const CONFIG: &str = r#"{
    "group_by": ["event_date", "advertiser_id"],
    "aggregates": [
        {"fn": "count", "as": "events"},
        {"fn": "count", "column": "click_id", "as": "clicks"},
        {"fn": "sum", "column": "cost", "as": "cost"},
        {"fn": "sum", "column": "cost_micros", "as": "cost_micros"},
        {"fn": "min", "column": "ts", "as": "first_seen"},
        {"fn": "max", "column": "ts", "as": "last_seen"},
        {"fn": "min", "column": "click_id", "as": "first_click"},
        {"fn": "max", "column": "click_id", "as": "last_click"}
    ]
}"#;

type Row = (
    Option<i32>,
    Option<i64>,
    i64,
    i64,
    Option<f64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn rows(out: &[RecordBatch]) -> Vec<Row> {
    let mut rows = Vec::new();
    for b in out {
        let date = b.column(0).as_primitive::<Date32Type>();
        let adv = b.column(1).as_primitive::<Int64Type>();
        let events = b.column(2).as_primitive::<Int64Type>();
        let clicks = b.column(3).as_primitive::<Int64Type>();
        let cost = b.column(4).as_primitive::<Float64Type>();
        let micros = b.column(5).as_primitive::<Int64Type>();
        let first = b.column(6).as_primitive::<TimestampMillisecondType>();
        let last = b.column(7).as_primitive::<TimestampMillisecondType>();
        let fc = b.column(8).as_string::<i32>();
        let lc = b.column(9).as_string::<i32>();
        for i in 0..b.num_rows() {
            assert!(events.is_valid(i) && clicks.is_valid(i));
            rows.push((
                date.is_valid(i).then(|| date.value(i)),
                adv.is_valid(i).then(|| adv.value(i)),
                events.value(i),
                clicks.value(i),
                cost.is_valid(i).then(|| cost.value(i)),
                micros.is_valid(i).then(|| micros.value(i)),
                first.is_valid(i).then(|| first.value(i)),
                last.is_valid(i).then(|| last.value(i)),
                fc.is_valid(i).then(|| fc.value(i).to_string()),
                lc.is_valid(i).then(|| lc.value(i).to_string()),
            ));
        }
    }
    rows
}

#[test]
fn realistic_rollup_across_batches() {
    let b1 = events(
        vec![20454, 20454, 20455, 20454],
        vec![Some(7), Some(8), Some(7), Some(7)],
        vec![Some(0.5), Some(1.0), None, Some(0.25)],
        vec![Some(500_000), Some(1_000_000), None, Some(250_000)],
        vec![Some(1_000), Some(2_000), Some(3_000), Some(500)],
        vec![Some("c-2"), None, None, Some("c-9")],
    );
    let b2 = events(
        vec![20455, 20454, 20454],
        vec![Some(7), None, Some(7)],
        vec![None, Some(3.0), Some(1.0)],
        vec![None, Some(3), Some(1)],
        vec![Some(9_000), None, Some(4_000)],
        vec![None, Some("c-1"), Some("c-1")],
    );
    let mut harness = Harness::<Rollup>::open(CONFIG, b1.schema()).unwrap();
    let schema = harness.output_schema();
    let types: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    assert_eq!(
        types,
        vec![
            DataType::Date32,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Float64,
            DataType::Int64,
            ts.clone(),
            ts,
            DataType::Utf8,
            DataType::Utf8
        ]
    );
    assert!(!schema.field(2).is_nullable() && !schema.field(3).is_nullable());
    assert!(harness.process(&b1).unwrap().is_empty());
    assert!(harness.process(&b2).unwrap().is_empty());
    let out = harness.finish().unwrap();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows(&out),
        vec![
            (
                Some(20454),
                Some(7),
                3,
                3,
                Some(1.75),
                Some(750_001),
                Some(500),
                Some(4_000),
                s("c-1"),
                s("c-9")
            ),
            (
                Some(20454),
                Some(8),
                1,
                0,
                Some(1.0),
                Some(1_000_000),
                Some(2_000),
                Some(2_000),
                None,
                None
            ),
            (
                Some(20455),
                Some(7),
                2,
                0,
                None,
                None,
                Some(3_000),
                Some(9_000),
                None,
                None
            ),
            (
                Some(20454),
                None,
                1,
                1,
                Some(3.0),
                Some(3),
                None,
                None,
                s("c-1"),
                s("c-1")
            ),
        ]
    );
}

#[test]
fn global_aggregate_emits_one_row_even_without_input() {
    let b = events(vec![], vec![], vec![], vec![], vec![], vec![]);
    let config = r#"{"aggregates": [{"fn": "count", "as": "n"}, {"fn": "sum", "column": "cost", "as": "cost"},
        {"fn": "max", "column": "click_id", "as": "top"}]}"#;
    let out = run::<Rollup>(config, &[b]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].num_rows(), 1);
    assert_eq!(out[0].column(0).as_primitive::<Int64Type>().value(0), 0);
    assert!(out[0].column(1).is_null(0));
    assert!(out[0].column(2).is_null(0));

    let b = events(
        vec![1, 2],
        vec![None, None],
        vec![Some(1.5), Some(2.0)],
        vec![None, None],
        vec![None, None],
        vec![Some("b"), Some("a")],
    );
    let out = run::<Rollup>(config, &[b.clone(), b]).unwrap();
    assert_eq!(out[0].column(0).as_primitive::<Int64Type>().value(0), 4);
    assert_eq!(out[0].column(1).as_primitive::<Float64Type>().value(0), 7.0);
    assert_eq!(out[0].column(2).as_string::<i32>().value(0), "b");
}

#[test]
fn grouped_rollup_of_no_rows_emits_nothing() {
    let b = events(vec![], vec![], vec![], vec![], vec![], vec![]);
    let out = run::<Rollup>(CONFIG, &[b.clone(), b]).unwrap();
    assert!(out.is_empty());
}

#[test]
fn output_is_split_into_bounded_batches() {
    let n = MAX_BATCH_ROWS as i64 + 4_500;
    let b = RecordBatch::try_from_iter([
        (
            "k",
            Arc::new(Int64Array::from_iter_values((0..n).rev())) as ArrayRef,
        ),
        (
            "v",
            Arc::new(Int32Array::from_iter_values(
                (0..n).map(|i| (i % 1000) as i32),
            )),
        ),
    ])
    .unwrap();
    let config = r#"{"group_by": ["k"], "aggregates": [{"fn": "sum", "column": "v", "as": "s"}, {"fn": "min", "column": "v", "as": "m"}]}"#;
    let out = run::<Rollup>(config, &[b.clone(), b]).unwrap();
    assert_eq!(
        out.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
        vec![MAX_BATCH_ROWS, 4_500]
    );
    let mut total = 0;
    for batch in &out {
        let k = batch.column(0).as_primitive::<Int64Type>();
        let s = batch.column(1).as_primitive::<Int64Type>();
        let m = batch.column(2).as_primitive::<Int32Type>();
        for i in 0..batch.num_rows() {
            // First-seen order: k descends.
            assert_eq!(k.value(i), n - 1 - total);
            // Group `total` was first seen at input row `total`.
            let v = (total % 1000) as i32;
            assert_eq!(s.value(i), 2 * v as i64);
            assert_eq!(m.value(i), v);
            total += 1;
        }
    }
    assert_eq!(total, n);
}

#[test]
fn types_are_kept_for_groups_and_extremes() {
    let dict: DictionaryArray<arrow::datatypes::Int16Type> =
        vec![Some("x"), Some("y"), None, Some("x")]
            .into_iter()
            .collect();
    let b = RecordBatch::try_from_iter([
        ("d", Arc::new(dict) as ArrayRef),
        (
            "f",
            Arc::new(Float32Array::from(vec![
                Some(1.5),
                Some(-0.0),
                Some(2.0),
                Some(f32::NAN),
            ])),
        ),
        (
            "u",
            Arc::new(UInt8Array::from(vec![
                Some(200),
                Some(100),
                None,
                Some(255),
            ])),
        ),
    ])
    .unwrap();
    let config = r#"{"group_by": ["d"], "aggregates": [
        {"fn": "sum", "column": "f", "as": "fs"}, {"fn": "max", "column": "f", "as": "fmax"},
        {"fn": "min", "column": "f", "as": "fmin"}, {"fn": "sum", "column": "u", "as": "us"},
        {"fn": "max", "column": "u", "as": "umax"}]}"#;
    let out = run::<Rollup>(config, std::slice::from_ref(&b)).unwrap();
    let out = &out[0];
    assert_eq!(
        out.schema().field(0).data_type(),
        b.schema().field(0).data_type()
    );
    assert_eq!(out.schema().field(2).data_type(), &DataType::Float32);
    assert_eq!(out.schema().field(4).data_type(), &DataType::Int64);
    assert_eq!(out.schema().field(5).data_type(), &DataType::UInt8);
    let d = out.column(0).as_dictionary::<arrow::datatypes::Int16Type>();
    let keys: Vec<_> = d
        .downcast_dict::<StringArray>()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(keys, vec![Some("x"), Some("y"), None]);
    let fs = out.column(1).as_primitive::<Float64Type>();
    assert!(fs.value(0).is_nan());
    let fmax = out
        .column(2)
        .as_primitive::<arrow::datatypes::Float32Type>();
    assert!(fmax.value(0).is_nan(), "NaN is the largest float");
    assert_eq!(fmax.value(1), -0.0);
    let fmin = out
        .column(3)
        .as_primitive::<arrow::datatypes::Float32Type>();
    assert_eq!(fmin.value(0), 1.5);
    let us: Vec<_> = out.column(4).as_primitive::<Int64Type>().iter().collect();
    assert_eq!(us, vec![Some(455), Some(100), None]);
    let umax: Vec<_> = out
        .column(5)
        .as_primitive::<arrow::datatypes::UInt8Type>()
        .iter()
        .collect();
    assert_eq!(umax, vec![Some(255), Some(100), None]);
}

#[test]
fn integer_sum_overflow_is_an_error_naming_the_row() {
    let b = RecordBatch::try_from_iter([
        ("k", Arc::new(Int64Array::from(vec![1, 2, 1])) as ArrayRef),
        ("v", Arc::new(Int64Array::from(vec![i64::MAX, 1, 1]))),
    ])
    .unwrap();
    let err = run::<Rollup>(
        r#"{"group_by": ["k"], "aggregates": [{"fn": "sum", "column": "v", "as": "s"}]}"#,
        &[b],
    )
    .unwrap_err();
    match err {
        Error::InvalidInput {
            row,
            column,
            message,
        } => {
            assert_eq!(row, Some(2));
            assert_eq!(column.as_deref(), Some("v"));
            assert!(message.contains("overflow"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_errors_name_the_field_and_column() {
    let schema = events(vec![], vec![], vec![], vec![], vec![], vec![]).schema();
    let cases: &[(&str, &[&str])] = &[
        (r#"{}"#, &["group_by", "aggregates"]),
        (
            r#"{"group_by": ["event_date", "nope"]}"#,
            &["group_by[1]", "\"nope\"", "not found"],
        ),
        (
            r#"{"group_by": ["event_date", "event_date"]}"#,
            &["group_by[1]", "\"event_date\"", "twice"],
        ),
        (
            r#"{"group_by": ["event_date"], "aggregates": [{"fn": "sum", "column": "nope", "as": "s"}]}"#,
            &["aggregates[0]", "\"nope\"", "not found"],
        ),
        (
            r#"{"aggregates": [{"fn": "sum", "as": "s"}]}"#,
            &["aggregates[0]", "sum", "column"],
        ),
        (
            r#"{"aggregates": [{"fn": "max", "as": "m"}]}"#,
            &["aggregates[0]", "max", "column"],
        ),
        (
            r#"{"aggregates": [{"fn": "sum", "column": "click_id", "as": "s"}]}"#,
            &["aggregates[0]", "\"click_id\"", "Utf8", "sum"],
        ),
        (
            r#"{"aggregates": [{"fn": "sum", "column": "ts", "as": "s"}]}"#,
            &["aggregates[0]", "\"ts\""],
        ),
        (
            r#"{"group_by": ["event_date"], "aggregates": [{"fn": "count", "as": "event_date"}]}"#,
            &["aggregates[0]", "\"event_date\"", "already used"],
        ),
        (
            r#"{"aggregates": [{"fn": "count", "as": "n"}, {"fn": "max", "column": "ts", "as": "n"}]}"#,
            &["aggregates[1]", "\"n\"", "already used"],
        ),
        (
            r#"{"aggregates": [{"fn": "count", "as": ""}]}"#,
            &["aggregates[0]", "as"],
        ),
        (
            r#"{"aggregates": [{"fn": "avg", "column": "cost", "as": "a"}]}"#,
            &["avg"],
        ),
        (r#"{"aggregates": [{"fn": "count"}]}"#, &["as"]),
        (r#"{"group": ["event_date"]}"#, &["group"]),
    ];
    for (config, needles) in cases {
        weir_sdk::testing::assert_config_error::<Rollup>(config, schema.clone(), needles);
    }
}

#[derive(Default, Clone, Debug, PartialEq)]
struct Acc {
    events: i64,
    clicks: i64,
    cost: Option<f64>,
    micros: Option<i64>,
    first: Option<i64>,
    last: Option<i64>,
    first_click: Option<String>,
    last_click: Option<String>,
}

#[test]
fn random_batches_match_a_row_by_row_reference() {
    let words = ["", "a", "b", "ab", "zz", "Ä"];
    let mut rng = Rng(11);
    for round in 0..30 {
        let mut order: Vec<(i32, Option<i64>)> = Vec::new();
        let mut groups: HashMap<(i32, Option<i64>), Acc> = HashMap::new();
        let mut batches = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let n = rng.below(400) as usize;
            let mut cols = (vec![], vec![], vec![], vec![], vec![], vec![]);
            for _ in 0..n {
                let date = 20450 + rng.below(3) as i32;
                let adv = (rng.below(6) > 0).then(|| rng.below(5) as i64);
                let cost = (rng.below(4) > 0).then(|| rng.below(1000) as f64 / 4.0);
                let micros = (rng.below(4) > 0).then(|| rng.next_u64() as i64 >> 20);
                let ts = (rng.below(4) > 0).then(|| rng.next_u64() as i64 >> 1);
                let click =
                    (rng.below(3) > 0).then(|| words[rng.below(words.len() as u64) as usize]);
                let key = (date, adv);
                let acc = groups.entry(key).or_insert_with(|| {
                    order.push(key);
                    Acc::default()
                });
                acc.events += 1;
                acc.clicks += i64::from(click.is_some());
                if let Some(c) = cost {
                    acc.cost = Some(acc.cost.unwrap_or(0.0) + c);
                }
                if let Some(m) = micros {
                    acc.micros = Some(acc.micros.unwrap_or(0) + m);
                }
                if let Some(t) = ts {
                    acc.first = Some(acc.first.map_or(t, |f| f.min(t)));
                    acc.last = Some(acc.last.map_or(t, |l| l.max(t)));
                }
                if let Some(c) = click {
                    let c = c.to_string();
                    if acc.first_click.as_ref().is_none_or(|f| c < *f) {
                        acc.first_click = Some(c.clone());
                    }
                    if acc.last_click.as_ref().is_none_or(|l| c > *l) {
                        acc.last_click = Some(c);
                    }
                }
                cols.0.push(date);
                cols.1.push(adv);
                cols.2.push(cost);
                cols.3.push(micros);
                cols.4.push(ts);
                cols.5.push(click);
            }
            batches.push(events(cols.0, cols.1, cols.2, cols.3, cols.4, cols.5));
        }
        let expected: Vec<Row> = order
            .iter()
            .map(|key| {
                let a = groups[key].clone();
                (
                    Some(key.0),
                    key.1,
                    a.events,
                    a.clicks,
                    a.cost,
                    a.micros,
                    a.first,
                    a.last,
                    a.first_click,
                    a.last_click,
                )
            })
            .collect();
        let out = run::<Rollup>(CONFIG, &batches).unwrap();
        assert_eq!(rows(&out), expected, "round {round}");
    }
}
