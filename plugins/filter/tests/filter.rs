use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, DictionaryArray, Float64Array, Int32Array,
    Int64Array, StringArray, StringViewArray, TimestampMicrosecondArray,
};
use arrow::datatypes::Int32Type;
use weir_plugin_filter::Filter;
use weir_sdk::testing::Rng;
use weir_sdk::testing::{Harness, run};
use weir_sdk::{Error, RecordBatch};

fn events() -> RecordBatch {
    // 2026-01-01T00:00:00Z = 1767225600 s.
    let day = 86_400_000_000i64;
    let t0 = 1_767_225_600_000_000i64;
    RecordBatch::try_from_iter([
        (
            "event_id",
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6])) as ArrayRef,
        ),
        (
            "is_bot",
            Arc::new(BooleanArray::from(vec![
                Some(false),
                Some(true),
                Some(false),
                None,
                Some(false),
                Some(false),
            ])),
        ),
        (
            "country",
            Arc::new(StringArray::from(vec![
                Some("US"),
                Some("US"),
                Some("FR"),
                Some("DE"),
                None,
                Some("DE"),
            ])),
        ),
        (
            "ts",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    t0 - day,
                    t0,
                    t0 + 1,
                    t0 + day,
                    t0 - 1,
                    t0 + 2 * day,
                ])
                .with_timezone("UTC"),
            ),
        ),
        (
            "event_date",
            Arc::new(Date32Array::from(vec![
                20453, 20454, 20454, 20455, 20453, 20456,
            ])),
        ),
        (
            "cost",
            Arc::new(Float64Array::from(vec![
                Some(0.5),
                Some(0.0),
                None,
                Some(2.25),
                Some(1.0),
                Some(-1.0),
            ])),
        ),
        (
            "campaign",
            Arc::new(StringArray::from(vec![
                Some("promo-spring"),
                Some("brand"),
                Some("promo-fall"),
                None,
                Some("retarget-promo"),
                Some("brand"),
            ])),
        ),
    ])
    .unwrap()
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let ids = b
                .column_by_name("event_id")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            ids.values().to_vec()
        })
        .collect()
}

fn filter_ids(config: &str) -> Vec<i64> {
    let out = run::<Filter>(config, &[events()]).unwrap();
    for b in &out {
        assert_eq!(b.schema(), events().schema());
    }
    ids(&out)
}

fn config_error(config: &str) -> String {
    config_error_on(config, events())
}

fn config_error_on(config: &str, batch: RecordBatch) -> String {
    match Harness::<Filter>::open(config, batch.schema()) {
        Err(Error::InvalidConfig(message)) => message,
        Err(other) => panic!("expected a config error, got {other:?}"),
        Ok(_) => panic!("config {config} was accepted"),
    }
}

#[test]
fn realistic_and_of_predicates() {
    let config = r#"{"predicates": [
        {"column": "is_bot", "op": "eq", "value": false},
        {"column": "country", "op": "in", "value": ["US", "DE"]}
    ]}"#;
    // Row 4 has a null is_bot, row 5 a null country: both are dropped.
    assert_eq!(filter_ids(config), vec![1, 6]);
}

#[test]
fn or_combine_and_nested_forms() {
    let config = r#"{"combine": "or", "predicates": [
        {"column": "country", "op": "eq", "value": "FR"},
        {"all": [
            {"column": "cost", "op": "gt", "value": 1},
            {"not": {"column": "campaign", "op": "is_null"}}
        ]},
        {"any": [{"column": "event_id", "op": "eq", "value": 2}]}
    ]}"#;
    // 3 is FR; 4 has cost 2.25 but a null campaign; 2 by id.
    assert_eq!(filter_ids(config), vec![2, 3]);
}

#[test]
fn three_valued_logic() {
    // ne with a null: null, dropped.
    assert_eq!(
        filter_ids(r#"{"predicates": [{"column": "is_bot", "op": "ne", "value": true}]}"#),
        vec![1, 3, 5, 6]
    );
    // NOT (cost > 0): null cost stays null, dropped.
    assert_eq!(
        filter_ids(r#"{"predicates": [{"not": {"column": "cost", "op": "gt", "value": 0}}]}"#),
        vec![2, 6]
    );
    // null OR true = true: row 3 (null cost, FR) kept.
    assert_eq!(
        filter_ids(
            r#"{"predicates": [{"any": [
                {"column": "cost", "op": "gt", "value": 100},
                {"column": "country", "op": "eq", "value": "FR"}
            ]}]}"#
        ),
        vec![3]
    );
    // Row 3: NOT (null AND false) = NOT false = true, kept.
    // Row 5: NOT (true AND null) = NOT null = null, dropped.
    assert_eq!(
        filter_ids(
            r#"{"predicates": [{"not": {"all": [
                {"column": "cost", "op": "gt", "value": 0.1},
                {"column": "country", "op": "eq", "value": "US"}
            ]}}]}"#
        ),
        vec![2, 3, 4, 6]
    );
    assert_eq!(
        filter_ids(r#"{"predicates": [{"column": "country", "op": "is_null"}]}"#),
        vec![5]
    );
    assert_eq!(
        filter_ids(r#"{"predicates": [{"column": "is_bot", "op": "is_not_null"}]}"#),
        vec![1, 2, 3, 5, 6]
    );
}

#[test]
fn in_and_not_in_with_nulls_in_the_list() {
    assert_eq!(
        filter_ids(r#"{"predicates": [{"column": "country", "op": "not_in", "value": ["US"]}]}"#),
        vec![3, 4, 6]
    );
    // x IN ('US', NULL): true for US, null otherwise.
    assert_eq!(
        filter_ids(r#"{"predicates": [{"column": "country", "op": "in", "value": ["US", null]}]}"#),
        vec![1, 2]
    );
    // x NOT IN ('US', NULL) is never true.
    assert_eq!(
        filter_ids(
            r#"{"predicates": [{"column": "country", "op": "not_in", "value": ["US", null]}]}"#
        ),
        Vec::<i64>::new()
    );
}

#[test]
fn temporal_literals_are_cast_to_the_column_type() {
    assert_eq!(
        filter_ids(
            r#"{"predicates": [{"column": "ts", "op": "ge", "value": "2026-01-01T00:00:00Z"}]}"#
        ),
        vec![2, 3, 4, 6]
    );
    assert_eq!(
        filter_ids(r#"{"predicates": [{"column": "ts", "op": "lt", "value": "2026-01-01"}]}"#),
        vec![1, 5]
    );
    assert_eq!(
        filter_ids(
            r#"{"predicates": [{"column": "event_date", "op": "eq", "value": "2026-01-01"}]}"#
        ),
        vec![2, 3]
    );
    assert_eq!(
        filter_ids(
            r#"{"predicates": [{"column": "event_date", "op": "in", "value": ["2025-12-31", "2026-01-03"]}]}"#
        ),
        vec![1, 5, 6]
    );
}

#[test]
fn string_ops() {
    assert_eq!(
        filter_ids(
            r#"{"predicates": [{"column": "campaign", "op": "starts_with", "value": "promo-"}]}"#
        ),
        vec![1, 3]
    );
    assert_eq!(
        filter_ids(
            r#"{"predicates": [{"column": "campaign", "op": "contains", "value": "promo"}]}"#
        ),
        vec![1, 3, 5]
    );
    assert_eq!(
        filter_ids(r#"{"predicates": [{"column": "country", "op": "lt", "value": "E"}]}"#),
        vec![4, 6]
    );
}

#[test]
fn numeric_literal_against_float_and_int32_columns() {
    assert_eq!(
        filter_ids(r#"{"predicates": [{"column": "cost", "op": "le", "value": 0.5}]}"#),
        vec![1, 2, 6]
    );
    let batch = RecordBatch::try_from_iter([(
        "n",
        Arc::new(Int32Array::from(vec![Some(1), None, Some(3), Some(-7)])) as ArrayRef,
    )])
    .unwrap();
    let out = run::<Filter>(
        r#"{"predicates": [{"column": "n", "op": "gt", "value": 0}]}"#,
        &[batch],
    )
    .unwrap();
    let n = out[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap();
    assert_eq!(n.values().to_vec(), vec![1, 3]);
}

#[test]
fn dictionary_and_view_columns() {
    let dict: DictionaryArray<Int32Type> = vec![Some("a"), None, Some("b"), Some("a")]
        .into_iter()
        .collect();
    let view = StringViewArray::from(vec![
        Some("a long string over twelve bytes"),
        Some("x"),
        None,
        Some("another long string value"),
    ]);
    let batch = RecordBatch::try_from_iter([
        ("d", Arc::new(dict) as ArrayRef),
        ("v", Arc::new(view) as ArrayRef),
        ("i", Arc::new(Int64Array::from(vec![0, 1, 2, 3]))),
    ])
    .unwrap();
    let out = run::<Filter>(
        r#"{"predicates": [{"column": "d", "op": "in", "value": ["a", "zzz"]}]}"#,
        std::slice::from_ref(&batch),
    )
    .unwrap();
    let i = out[0]
        .column(2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(i.values().to_vec(), vec![0, 3]);
    let out = run::<Filter>(
        r#"{"predicates": [{"column": "d", "op": "starts_with", "value": "b"}]}"#,
        std::slice::from_ref(&batch),
    )
    .unwrap();
    let i = out[0]
        .column(2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(i.values().to_vec(), vec![2]);
    let out = run::<Filter>(
        r#"{"predicates": [{"column": "v", "op": "contains", "value": "long"}]}"#,
        &[batch],
    )
    .unwrap();
    let i = out[0]
        .column(2)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(i.values().to_vec(), vec![0, 3]);
}

#[test]
fn multiple_batches_empty_batches_and_nothing_kept() {
    let batch = events();
    let empty = batch.slice(0, 0);
    let out = run::<Filter>(
        r#"{"predicates": [{"column": "country", "op": "eq", "value": "US"}]}"#,
        &[batch.clone(), empty.clone(), batch.slice(1, 5), empty],
    )
    .unwrap();
    assert_eq!(ids(&out), vec![1, 2, 2]);
    assert!(out.iter().all(|b| b.num_rows() > 0));

    let out = run::<Filter>(
        r#"{"predicates": [{"column": "country", "op": "eq", "value": "JP"}]}"#,
        &[batch.clone(), batch],
    )
    .unwrap();
    assert!(out.is_empty());
}

#[test]
fn all_rows_kept_returns_the_batch() {
    let out = run::<Filter>(
        r#"{"predicates": [{"column": "event_id", "op": "ge", "value": 0}]}"#,
        &[events()],
    )
    .unwrap();
    assert_eq!(out, vec![events()]);
}

#[test]
fn input_columns_are_the_tested_columns_at_any_depth() {
    use weir_sdk::Transform;
    let config = weir_sdk::parse_config::<Filter>(
        r#"{"predicates": [
            {"column": "a", "op": "is_null"},
            {"any": [{"column": "b", "op": "eq", "value": 1}, {"not": {"column": "c", "op": "is_null"}}]},
            {"column": "a", "op": "is_not_null"}
        ]}"#,
    )
    .unwrap();
    assert_eq!(
        Filter::input_columns(&config),
        Some(vec!["a".to_string(), "b".to_string(), "c".to_string()])
    );
}

#[test]
fn config_errors_name_the_field_and_column() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"{"predicates": [{"column": "nope", "op": "eq", "value": 1}]}"#,
            &["predicates[0]", "\"nope\"", "not found"],
        ),
        (
            r#"{"predicates": [{"column": "event_id", "op": "eq", "value": "abc"}]}"#,
            &["predicates[0]", "\"event_id\"", "abc", "Int64"],
        ),
        (
            r#"{"predicates": [{"column": "event_id", "op": "gt", "value": 1.5}]}"#,
            &["\"event_id\"", "1.5", "not an integer"],
        ),
        (
            r#"{"predicates": [{"column": "country", "op": "eq", "value": true}]}"#,
            &["\"country\"", "boolean"],
        ),
        (
            r#"{"predicates": [{"column": "country", "op": "eq", "value": 7}]}"#,
            &["\"country\"", "number 7"],
        ),
        (
            r#"{"predicates": [{"column": "ts", "op": "ge", "value": "yesterday"}]}"#,
            &["\"ts\"", "yesterday", "Timestamp"],
        ),
        (
            r#"{"predicates": [{"column": "event_date", "op": "eq", "value": "2026-13-45"}]}"#,
            &["\"event_date\"", "Date32"],
        ),
        (
            r#"{"predicates": [{"column": "cost", "op": "eq"}]}"#,
            &["\"cost\"", "non-null value", "is_null"],
        ),
        (
            r#"{"predicates": [{"column": "cost", "op": "eq", "value": null}]}"#,
            &["\"cost\"", "non-null value"],
        ),
        (
            r#"{"predicates": [{"column": "cost", "op": "eq", "value": [1]}]}"#,
            &["\"cost\"", "scalar"],
        ),
        (
            r#"{"predicates": [{"column": "country", "op": "in", "value": "US"}]}"#,
            &["\"country\"", "op in", "non-empty list"],
        ),
        (
            r#"{"predicates": [{"column": "country", "op": "in", "value": []}]}"#,
            &["\"country\"", "non-empty list"],
        ),
        (
            r#"{"predicates": [{"column": "event_id", "op": "in", "value": [1, "x"]}]}"#,
            &["\"event_id\"", "value[1]"],
        ),
        (
            r#"{"predicates": [{"column": "country", "op": "is_null", "value": 1}]}"#,
            &["\"country\"", "takes no value"],
        ),
        (
            r#"{"predicates": [{"column": "event_id", "op": "starts_with", "value": "1"}]}"#,
            &["\"event_id\"", "string column"],
        ),
        (
            r#"{"predicates": [{"column": "country", "op": "contains", "value": 1}]}"#,
            &["\"country\"", "must be a string"],
        ),
        (r#"{"predicates": []}"#, &["predicates must not be empty"]),
        (
            r#"{"predicates": [{"any": []}]}"#,
            &["predicates[0].any must not be empty"],
        ),
        (
            r#"{"predicates": [{"column": "country", "op": "eq", "value": "US", "not": {"column": "cost", "op": "is_null"}}]}"#,
            &["predicates[0]", "exactly one"],
        ),
        (r#"{"predicates": [{}]}"#, &["predicates[0]", "exactly one"]),
        (
            r#"{"predicates": [{"op": "eq", "value": 1}]}"#,
            &["predicates[0]", "missing \"column\""],
        ),
        (
            r#"{"predicates": [{"column": "cost"}]}"#,
            &["predicates[0]", "missing \"op\"", "\"cost\""],
        ),
        (
            r#"{"predicates": [{"all": [{"column": "a"}, {"not": {"column": "cost", "op": "gt", "value": "x"}}]}]}"#,
            &["predicates[0].all[0]"],
        ),
        (
            r#"{"predicates": [{"all": [{"column": "cost", "op": "is_null"}, {"not": {"column": "cost", "op": "gt", "value": "x"}}]}]}"#,
            &["predicates[0].all[1].not", "\"cost\""],
        ),
        // Parse errors from serde name the field.
        (
            r#"{"predicates": [{"column": "cost", "op": "between", "value": 1}]}"#,
            &["between"],
        ),
        (
            r#"{"predicates": [{"column": "cost", "op": "eq", "valeu": 1}]}"#,
            &["valeu"],
        ),
        (r#"{"combine": "xor", "predicates": []}"#, &["xor"]),
        (r#"{}"#, &["predicates"]),
    ];
    for (config, needles) in cases {
        let message = config_error(config);
        for needle in *needles {
            assert!(
                message.contains(needle),
                "error for {config} should mention {needle}: {message}"
            );
        }
    }
}

// ---- Random differential test against a row-by-row reference ----

const WORDS: [&str; 6] = ["", "a", "ab", "abc", "b", "ba"];

/// A predicate, as JSON and as a row-by-row evaluator over (a, s).
enum P {
    A(&'static str, Option<i64>),
    AIn(Vec<Option<i64>>, bool),
    ANull(bool),
    S(&'static str, &'static str),
    Any(Vec<P>),
    All(Vec<P>),
    Not(Box<P>),
}

fn json_i(v: Option<i64>) -> String {
    v.map_or("null".into(), |v| v.to_string())
}

impl P {
    fn random(rng: &mut Rng, depth: u32) -> P {
        let leaf = depth == 0 || rng.below(3) > 0;
        if leaf {
            match rng.below(4) {
                0 => {
                    let ops = ["eq", "ne", "lt", "le", "gt", "ge"];
                    P::A(ops[rng.below(6) as usize], Some(rng.below(7) as i64 - 3))
                }
                1 => {
                    let n = 1 + rng.below(3);
                    let list = (0..n)
                        .map(|_| (rng.below(5) > 0).then(|| rng.below(7) as i64 - 3))
                        .collect();
                    P::AIn(list, rng.below(2) == 0)
                }
                2 => P::ANull(rng.below(2) == 0),
                _ => {
                    let ops = ["eq", "lt", "starts_with", "contains"];
                    P::S(
                        ops[rng.below(4) as usize],
                        WORDS[rng.below(WORDS.len() as u64) as usize],
                    )
                }
            }
        } else {
            let n = 1 + rng.below(3);
            let kids = (0..n).map(|_| P::random(rng, depth - 1)).collect();
            match rng.below(3) {
                0 => P::Any(kids),
                1 => P::All(kids),
                _ => P::Not(Box::new(P::random(rng, depth - 1))),
            }
        }
    }

    fn json(&self) -> String {
        match self {
            P::A(op, v) => format!(
                r#"{{"column": "a", "op": "{op}", "value": {}}}"#,
                json_i(*v)
            ),
            P::AIn(list, negate) => format!(
                r#"{{"column": "a", "op": "{}", "value": [{}]}}"#,
                if *negate { "not_in" } else { "in" },
                list.iter()
                    .map(|v| json_i(*v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            P::ANull(is) => format!(
                r#"{{"column": "a", "op": "{}"}}"#,
                if *is { "is_null" } else { "is_not_null" }
            ),
            P::S(op, v) => format!(r#"{{"column": "s", "op": "{op}", "value": "{v}"}}"#),
            P::Any(kids) => format!(r#"{{"any": [{}]}}"#, join(kids)),
            P::All(kids) => format!(r#"{{"all": [{}]}}"#, join(kids)),
            P::Not(kid) => format!(r#"{{"not": {}}}"#, kid.json()),
        }
    }

    fn eval(&self, a: Option<i64>, s: Option<&str>) -> Option<bool> {
        match self {
            P::A(op, v) => {
                let (a, v) = (a?, (*v)?);
                Some(match *op {
                    "eq" => a == v,
                    "ne" => a != v,
                    "lt" => a < v,
                    "le" => a <= v,
                    "gt" => a > v,
                    "ge" => a >= v,
                    _ => unreachable!(),
                })
            }
            P::AIn(list, negate) => {
                let any = list
                    .iter()
                    .map(|v| Some(a? == (*v)?))
                    .fold(Some(false), or3);
                if *negate { any.map(|b| !b) } else { any }
            }
            P::ANull(is) => Some(a.is_none() == *is),
            P::S(op, v) => {
                let s = s?;
                Some(match *op {
                    "eq" => s == *v,
                    "lt" => s < *v,
                    "starts_with" => s.starts_with(v),
                    "contains" => s.contains(v),
                    _ => unreachable!(),
                })
            }
            P::Any(kids) => kids.iter().map(|k| k.eval(a, s)).fold(Some(false), or3),
            P::All(kids) => kids.iter().map(|k| k.eval(a, s)).fold(Some(true), and3),
            P::Not(kid) => kid.eval(a, s).map(|b| !b),
        }
    }
}

fn join(kids: &[P]) -> String {
    kids.iter().map(P::json).collect::<Vec<_>>().join(", ")
}

fn or3(x: Option<bool>, y: Option<bool>) -> Option<bool> {
    match (x, y) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn and3(x: Option<bool>, y: Option<bool>) -> Option<bool> {
    match (x, y) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

#[test]
fn random_predicates_match_a_row_by_row_reference() {
    let mut rng = Rng(42);
    for round in 0..300 {
        let n = rng.below(40) as usize;
        let a: Vec<Option<i64>> = (0..n)
            .map(|_| (rng.below(5) > 0).then(|| rng.below(9) as i64 - 4))
            .collect();
        let s: Vec<Option<&str>> = (0..n)
            .map(|_| (rng.below(5) > 0).then(|| WORDS[rng.below(WORDS.len() as u64) as usize]))
            .collect();
        let batch = RecordBatch::try_from_iter([
            ("a", Arc::new(Int64Array::from(a.clone())) as ArrayRef),
            ("s", Arc::new(StringArray::from(s.clone()))),
            ("row", Arc::new(Int64Array::from_iter_values(0..n as i64))),
        ])
        .unwrap();
        let predicates: Vec<P> = (0..1 + rng.below(3))
            .map(|_| P::random(&mut rng, 3))
            .collect();
        let or = rng.below(2) == 0;
        let config = format!(
            r#"{{"combine": "{}", "predicates": [{}]}}"#,
            if or { "or" } else { "and" },
            join(&predicates)
        );
        let expected: Vec<i64> = (0..n)
            .filter(|&i| {
                let results = predicates.iter().map(|p| p.eval(a[i], s[i]));
                let result = if or {
                    results.fold(Some(false), or3)
                } else {
                    results.fold(Some(true), and3)
                };
                result == Some(true)
            })
            .map(|i| i as i64)
            .collect();
        let out = run::<Filter>(&config, &[batch]).unwrap();
        let got: Vec<i64> = out
            .iter()
            .flat_map(|b| {
                b.column(2)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(got, expected, "round {round}, config {config}");
    }
}

#[test]
fn timestamps_in_any_zone_compare_as_utc_instants() {
    let t0 = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z in ms.
    let batch = RecordBatch::try_from_iter([
        (
            "ts",
            Arc::new(
                arrow::array::TimestampMillisecondArray::from(vec![
                    Some(t0 - 3_600_000),
                    Some(t0),
                    None,
                    Some(t0 + 3_600_000),
                ])
                .with_timezone("Europe/Berlin"),
            ) as ArrayRef,
        ),
        ("event_id", Arc::new(Int64Array::from(vec![1, 2, 3, 4]))),
    ])
    .unwrap();
    let ids_for = |config: &str| ids(&run::<Filter>(config, std::slice::from_ref(&batch)).unwrap());
    // A naive string is UTC.
    assert_eq!(
        ids_for(
            r#"{"predicates": [{"column": "ts", "op": "ge", "value": "2026-01-01T00:00:00"}]}"#
        ),
        vec![2, 4]
    );
    // An explicit offset is honoured: 01:00+01:00 is 00:00Z.
    assert_eq!(
        ids_for(
            r#"{"predicates": [{"column": "ts", "op": "eq", "value": "2026-01-01T01:00:00+01:00"}]}"#
        ),
        vec![2]
    );
    // Numbers are raw values in the column's unit.
    assert_eq!(
        ids_for(&format!(
            r#"{{"predicates": [{{"column": "ts", "op": "lt", "value": {t0}}}]}}"#
        )),
        vec![1]
    );
}
