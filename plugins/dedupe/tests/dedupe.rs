use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, DictionaryArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{Int8Type, Int64Type};
use weir_plugin_dedupe::Dedupe;
use weir_sdk::RecordBatch;
use weir_sdk::testing::Rng;
use weir_sdk::testing::{Harness, run};

fn batch(ids: Vec<Option<i64>>, tags: Vec<Option<&str>>, seq: std::ops::Range<i64>) -> RecordBatch {
    RecordBatch::try_from_iter_with_nullable([
        (
            "event_id",
            Arc::new(Int64Array::from(ids)) as ArrayRef,
            true,
        ),
        ("tag", Arc::new(StringArray::from(tags)), true),
        ("seq", Arc::new(Int64Array::from_iter_values(seq)), false),
    ])
    .unwrap()
}

fn seqs(out: &[RecordBatch]) -> Vec<i64> {
    out.iter()
        .flat_map(|b| {
            b.column_by_name("seq")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

#[test]
fn keeps_the_first_row_per_key_within_and_across_batches() {
    let b1 = batch(
        vec![Some(10), Some(11), Some(10), Some(12), Some(11)],
        vec![Some("a"), Some("b"), Some("c"), Some("d"), Some("e")],
        0..5,
    );
    let b2 = batch(
        vec![Some(12), Some(13), Some(10), Some(13)],
        vec![Some("f"), Some("g"), Some("h"), Some("i")],
        5..9,
    );
    let b3 = batch(vec![Some(11), Some(12)], vec![None, None], 9..11);
    let mut harness = Harness::<Dedupe>::open(r#"{"keys": ["event_id"]}"#, b1.schema()).unwrap();
    assert_eq!(harness.output_schema(), b1.schema());
    let out1 = harness.process(&b1).unwrap();
    assert_eq!(seqs(&out1), vec![0, 1, 3]);
    // The kept rows are whole rows, unchanged.
    let tags: Vec<_> = out1[0].column(1).as_string::<i32>().iter().collect();
    assert_eq!(tags, vec![Some("a"), Some("b"), Some("d")]);
    assert_eq!(seqs(&harness.process(&b2).unwrap()), vec![6]);
    // A batch of only seen keys emits nothing.
    assert!(harness.process(&b3).unwrap().is_empty());
    assert!(harness.finish().unwrap().is_empty());
}

#[test]
fn null_keys_are_equal() {
    let b1 = batch(
        vec![None, Some(1), None, Some(1)],
        vec![Some("x"), None, Some("x"), None],
        0..4,
    );
    let b2 = batch(vec![None, Some(2)], vec![None, None], 4..6);
    let out = run::<Dedupe>(r#"{"keys": ["event_id"]}"#, &[b1.clone(), b2.clone()]).unwrap();
    assert_eq!(seqs(&out), vec![0, 1, 5]);

    // Two key columns: (null, "x") == (null, "x"), (1, null) == (1, null), (null, null) is new.
    let out = run::<Dedupe>(r#"{"keys": ["event_id", "tag"]}"#, &[b1, b2]).unwrap();
    assert_eq!(seqs(&out), vec![0, 1, 4, 5]);
}

#[test]
fn string_and_dictionary_keys_compare_by_value() {
    let d1: DictionaryArray<Int8Type> = vec!["us", "de", "us"].into_iter().collect();
    // Same values, different dictionary layout.
    let d2: DictionaryArray<Int8Type> = vec!["fr", "de", "us"].into_iter().collect();
    let make = |d: DictionaryArray<Int8Type>, seq: std::ops::Range<i64>| {
        RecordBatch::try_from_iter([
            ("country", Arc::new(d) as ArrayRef),
            ("seq", Arc::new(Int64Array::from_iter_values(seq))),
        ])
        .unwrap()
    };
    let out = run::<Dedupe>(
        r#"{"keys": ["country"]}"#,
        &[make(d1, 0..3), make(d2, 3..6)],
    )
    .unwrap();
    assert_eq!(seqs(&out), vec![0, 1, 3]);
}

#[test]
fn float_keys_follow_total_order() {
    let b = RecordBatch::try_from_iter([
        (
            "x",
            Arc::new(Float64Array::from(vec![0.0, -0.0, f64::NAN, f64::NAN, 0.0])) as ArrayRef,
        ),
        ("seq", Arc::new(Int64Array::from_iter_values(0..5))),
    ])
    .unwrap();
    let out = run::<Dedupe>(r#"{"keys": ["x"]}"#, &[b]).unwrap();
    assert_eq!(seqs(&out), vec![0, 1, 2]);
}

#[test]
fn empty_batches_pass_without_output() {
    let b = batch(vec![Some(1)], vec![Some("a")], 0..1);
    let out = run::<Dedupe>(
        r#"{"keys": ["event_id"]}"#,
        &[b.slice(0, 0), b.clone(), b.slice(0, 0), b],
    )
    .unwrap();
    assert_eq!(seqs(&out), vec![0]);
    assert_eq!(out.len(), 1);
}

#[test]
fn config_errors_name_the_key() {
    let schema = batch(vec![], vec![], 0..0).schema();
    let cases: &[(&str, &[&str])] = &[
        (r#"{"keys": []}"#, &["keys"]),
        (
            r#"{"keys": ["event_id", "nope"]}"#,
            &["keys[1]", "\"nope\"", "not found"],
        ),
        (
            r#"{"keys": ["tag", "tag"]}"#,
            &["keys[1]", "\"tag\"", "twice"],
        ),
        (r#"{}"#, &["keys"]),
        (r#"{"keys": ["tag"], "keep": "last"}"#, &["keep"]),
        (r#"{"keys": "tag"}"#, &["sequence"]),
    ];
    for (config, needles) in cases {
        weir_sdk::testing::assert_config_error::<Dedupe>(config, schema.clone(), needles);
    }
}

#[test]
fn random_batches_match_a_hash_set_reference() {
    let words = ["", "a", "b", "ab", "ba", "longer word"];
    let mut rng = Rng(3);
    for round in 0..40 {
        let mut seen: HashSet<(Option<i64>, Option<&str>)> = HashSet::new();
        let mut expected = Vec::new();
        let mut batches = Vec::new();
        let mut seq = 0i64;
        for _ in 0..1 + rng.below(5) {
            let n = rng.below(300) as usize;
            let ids: Vec<Option<i64>> = (0..n)
                .map(|_| (rng.below(8) > 0).then(|| rng.below(40) as i64 - 20))
                .collect();
            let tags: Vec<Option<&str>> = (0..n)
                .map(|_| (rng.below(8) > 0).then(|| words[rng.below(words.len() as u64) as usize]))
                .collect();
            for i in 0..n {
                if seen.insert((ids[i], tags[i])) {
                    expected.push(seq + i as i64);
                }
            }
            batches.push(batch(ids, tags, seq..seq + n as i64));
            seq += n as i64;
        }
        let out = run::<Dedupe>(r#"{"keys": ["event_id", "tag"]}"#, &batches).unwrap();
        assert_eq!(seqs(&out), expected, "round {round}");
        for b in &out {
            assert_eq!(b.schema(), batches[0].schema());
            assert!(b.num_rows() > 0);
        }
    }
}

#[test]
fn distinct_keys_counts_state() {
    use weir_sdk::Transform;
    let b = batch(
        vec![Some(1), Some(2), Some(1)],
        vec![None, None, None],
        0..3,
    );
    let mut dedupe = Dedupe::open(
        weir_sdk::parse_config::<Dedupe>(r#"{"keys": ["event_id"]}"#).unwrap(),
        b.schema(),
    )
    .unwrap();
    dedupe.process(b.clone()).unwrap();
    dedupe.process(b).unwrap();
    assert_eq!(dedupe.distinct_keys(), 2);
    assert!(dedupe.finish().unwrap().is_empty());
}
