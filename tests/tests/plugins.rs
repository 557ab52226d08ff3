//! The example plugins as components on the host runtime: each one's Wasm output must equal what
//! the same transform gives natively (through the SDK harness), on realistic data with nulls,
//! over several batches. A difference means the contract, the glue or the sandbox changed
//! behaviour.

use std::sync::{Arc, LazyLock};

use arrow_array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use weir_runtime::{Runtime, RuntimeConfig};
use weir_sdk::Transform;
use weir_sdk::testing::Harness;

static RUNTIME: LazyLock<Runtime> =
    LazyLock::new(|| Runtime::new(RuntimeConfig::default()).unwrap());

/// Three batches of clickstream-like rows, with nulls, repeated users and a few bots.
fn input() -> Vec<RecordBatch> {
    (0..3)
        .map(|b| {
            let n = 5_000;
            let base = b * n;
            let id = |i: usize| base + i;
            let users = StringArray::from_iter(
                (0..n).map(|i| (id(i) % 11 != 0).then(|| format!("user-{}", id(i) % 1_700))),
            );
            let bots = BooleanArray::from_iter(
                (0..n).map(|i| (id(i) % 13 != 0).then_some(id(i) % 7 == 0)),
            );
            let ts = TimestampMicrosecondArray::from_iter((0..n).map(|i| {
                (id(i) % 17 != 0).then_some(
                    1_767_225_600_000_000 + (id(i) as i64 * 37_000_000_007) % 604_800_000_000,
                )
            }))
            .with_timezone("UTC");
            let country = StringArray::from_iter(
                (0..n).map(|i| (id(i) % 19 != 0).then(|| ["US", "de", " Fr ", "JP"][id(i) % 4])),
            );
            let cost = Int64Array::from_iter(
                (0..n).map(|i| (id(i) % 23 != 0).then_some((id(i) as i64 * 7_919) % 2_000_000)),
            );
            RecordBatch::try_from_iter([
                (
                    "event_id",
                    Arc::new(Int64Array::from_iter_values(
                        (0..n).map(|i| (id(i) % 9_000) as i64),
                    )) as ArrayRef,
                ),
                ("user_id", Arc::new(users) as ArrayRef),
                ("is_bot", Arc::new(bots) as ArrayRef),
                ("ts", Arc::new(ts) as ArrayRef),
                ("country", Arc::new(country) as ArrayRef),
                ("cost_micros", Arc::new(cost) as ArrayRef),
            ])
            .unwrap()
        })
        .collect()
}

/// Runs `path` on the runtime and `T` natively with `config`; asserts identical output.
fn same_as_native<T: Transform>(path: &str, name: &str, config: &str) -> Vec<RecordBatch> {
    let input = input();
    let plugin = RUNTIME.load_file(path.as_ref()).unwrap();
    assert_eq!(plugin.metadata().name, name);
    assert_eq!(plugin.metadata().version, "0.1.0");
    let schema: serde_json::Value = serde_json::from_str(&plugin.metadata().config_schema).unwrap();
    assert!(schema.get("properties").is_some(), "{schema}");

    let mut instance = plugin.instantiate().unwrap();
    let wasm_schema = instance.open(config, input[0].schema()).unwrap();
    let mut wasm = Vec::new();
    for batch in &input {
        wasm.extend(instance.process(batch).unwrap());
    }
    wasm.extend(instance.finish().unwrap());

    let mut harness = Harness::<T>::open(config, input[0].schema()).unwrap();
    assert_eq!(harness.output_schema(), wasm_schema);
    let mut native = Vec::new();
    for batch in &input {
        native.extend(harness.process(batch).unwrap());
    }
    native.extend(harness.finish().unwrap());

    let concat = |batches: &[RecordBatch]| {
        arrow_select::concat::concat_batches(&wasm_schema, batches).unwrap()
    };
    let (wasm, native) = (concat(&wasm), concat(&native));
    assert_eq!(wasm, native, "{name}: Wasm and native outputs differ");
    assert!(
        wasm.num_rows() > 0,
        "{name}: the test data must produce output"
    );
    vec![wasm]
}

#[test]
fn filter() {
    let out = same_as_native::<weir_plugin_filter::Filter>(
        weir_tests::FILTER,
        "filter",
        r#"{"predicates": [{"column": "is_bot", "op": "eq", "value": false},
                           {"any": [{"column": "country", "op": "in", "value": ["US", "de"]},
                                    {"column": "cost_micros", "op": "gt", "value": 1000000}]}]}"#,
    );
    assert!(out[0].num_rows() < 15_000, "the filter removed rows");
}

#[test]
fn mask_with_every_algorithm() {
    for algorithm in ["blake3", "hmac-sha256", "sha256"] {
        let config = format!(
            r#"{{"key": "k3y", "algorithm": "{algorithm}", "columns": {{
                "user_id": {{"method": "hash"}}, "country": {{"method": "truncate", "keep": 1}},
                "event_id": {{"method": "hash"}}}}}}"#
        );
        same_as_native::<weir_plugin_mask::Mask>(weir_tests::MASK, "mask", &config);
    }
}

#[test]
fn derive() {
    same_as_native::<weir_plugin_derive::Derive>(
        weir_tests::DERIVE,
        "derive",
        r#"{"columns": [{"name": "event_date", "date_of": "ts"},
                        {"name": "country_norm", "trim": "country"},
                        {"name": "country_norm", "upper": "country_norm", "replace": true},
                        {"name": "cost_usd", "expr": {"op": "div", "left": "cost_micros", "right": 1000000}},
                        {"name": "cost_x2", "expr": {"op": "mul", "left": "cost_micros", "right": 2}}]}"#,
    );
}

#[test]
fn dedupe_across_batches() {
    let out = same_as_native::<weir_plugin_dedupe::Dedupe>(
        weir_tests::DEDUPE,
        "dedupe",
        r#"{"keys": ["event_id"]}"#,
    );
    assert_eq!(
        out[0].num_rows(),
        9_000,
        "one row per distinct event_id across all batches"
    );
}

#[test]
fn rollup_emits_at_finish() {
    let out = same_as_native::<weir_plugin_rollup::Rollup>(
        weir_tests::ROLLUP,
        "rollup",
        r#"{"group_by": ["country"], "aggregates": [
            {"fn": "count", "as": "events"},
            {"fn": "count", "column": "user_id", "as": "with_user"},
            {"fn": "sum", "column": "cost_micros", "as": "cost"},
            {"fn": "min", "column": "ts", "as": "first_seen"},
            {"fn": "max", "column": "user_id", "as": "last_user"}]}"#,
    );
    assert_eq!(out[0].num_rows(), 5, "four countries and null");
}
