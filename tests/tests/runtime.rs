//! The runtime's own guarantees, on real components: the compiled-code cache, instance slots,
//! the call order of the contract, and refusal of things that are not plugins.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use weir_runtime::{ErrorKind, Runtime, RuntimeConfig};

fn batch() -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
    RecordBatch::try_from_iter([("id", ids)]).unwrap()
}

fn runtime_with_cache(dir: &std::path::Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.to_path_buf()),
        max_instances: 4,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

#[test]
fn a_second_load_from_the_disk_cache_does_no_compilation() {
    let cache = tempfile::tempdir().unwrap();
    let first = runtime_with_cache(cache.path());
    let plugin = first.load_file(weir_tests::GUESTS_ECHO.as_ref()).unwrap();
    assert_eq!(first.stats().compiled, 1);
    assert_eq!(first.stats().disk_cache_hits, 0);
    first.load_file(weir_tests::GUESTS_ECHO.as_ref()).unwrap();
    assert_eq!(
        first.stats().compiled,
        1,
        "the same process reuses the loaded plugin"
    );
    assert_eq!(first.stats().memory_cache_hits, 1);

    // A new runtime, as a restarted host would have: served from disk, not compiled.
    let second = runtime_with_cache(cache.path());
    let again = second.load_file(weir_tests::GUESTS_ECHO.as_ref()).unwrap();
    assert_eq!(second.stats().compiled, 0);
    assert_eq!(second.stats().disk_cache_hits, 1);
    assert_eq!(again.id(), plugin.id());
    let mut instance = again.instantiate().unwrap();
    instance.open("{}", batch().schema()).unwrap();
    assert_eq!(instance.process(&batch()).unwrap(), vec![batch()]);

    // The entry is keyed by the component digest and the engine's compatibility hash.
    let entries: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].starts_with(&plugin.id().digest), "{entries:?}");
}

#[test]
fn a_corrupt_cache_entry_is_recompiled_over() {
    let cache = tempfile::tempdir().unwrap();
    runtime_with_cache(cache.path())
        .load_file(weir_tests::GUESTS_ECHO.as_ref())
        .unwrap();
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"not compiled code").unwrap();
    }
    let runtime = runtime_with_cache(cache.path());
    runtime.load_file(weir_tests::GUESTS_ECHO.as_ref()).unwrap();
    assert_eq!(runtime.stats().compiled, 1);
    assert_eq!(
        runtime_with_cache(cache.path())
            .load_file(weir_tests::GUESTS_ECHO.as_ref())
            .map(|_| ())
            .ok(),
        Some(())
    );
}

#[test]
fn instance_slots_are_bounded_and_released() {
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: 2,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let plugin = runtime.load_file(weir_tests::GUESTS_ECHO.as_ref()).unwrap();
    let first = plugin.instantiate().unwrap();
    let _second = plugin.instantiate().unwrap();
    let error = plugin.instantiate().map(|_| ()).unwrap_err();
    assert!(matches!(error.kind, ErrorKind::Capacity(2)), "{error}");
    assert!(error.to_string().contains("max_instances = 2"), "{error}");
    drop(first);
    plugin.instantiate().expect("a slot is free again");
}

#[test]
fn instances_run_in_parallel_threads() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let plugin = runtime.load_file(weir_tests::GUESTS_ECHO.as_ref()).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let mut instance = plugin.instantiate().unwrap();
                instance.open("{}", batch().schema()).unwrap();
                for _ in 0..50 {
                    assert_eq!(instance.process(&batch()).unwrap(), vec![batch()]);
                }
                assert!(instance.finish().unwrap().is_empty());
            });
        }
    });
}

#[test]
fn the_call_order_is_enforced() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let plugin = runtime.load_file(weir_tests::GUESTS_ECHO.as_ref()).unwrap();

    let mut instance = plugin.instantiate().unwrap();
    let error = instance.process(&batch()).unwrap_err();
    assert!(matches!(error.kind, ErrorKind::Protocol(_)), "{error}");

    let mut instance = plugin.instantiate().unwrap();
    instance.open("{}", batch().schema()).unwrap();
    let names: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
    let other = RecordBatch::try_from_iter([("name", names)]).unwrap();
    let error = instance.process(&other).unwrap_err();
    assert!(matches!(error.kind, ErrorKind::Protocol(_)), "{error}");
    assert!(error.to_string().contains("declared schema"), "{error}");
}

#[test]
fn a_config_error_reaches_the_caller_with_the_plugin_name() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let plugin = runtime.load_file(weir_tests::GUESTS_ECHO.as_ref()).unwrap();
    let mut instance = plugin.instantiate().unwrap();
    let error = instance.open("{not json", batch().schema()).unwrap_err();
    assert!(matches!(error.kind, ErrorKind::InvalidConfig(_)), "{error}");
    assert!(error.is_reported_by_plugin());
    assert!(
        error
            .to_string()
            .starts_with("plugin guest-echo 0.1.0 (sha256:"),
        "{error}"
    );
}

#[test]
fn things_that_are_not_plugins_are_refused_at_load() {
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let error = runtime.load(b"definitely not wasm").unwrap_err();
    assert!(
        matches!(error.kind, ErrorKind::InvalidComponent(_)),
        "{error}"
    );

    // A valid core module is not a component.
    let module = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    let error = runtime.load(&module).unwrap_err();
    assert!(
        matches!(error.kind, ErrorKind::InvalidComponent(_)),
        "{error}"
    );

    let missing = std::path::Path::new("/nonexistent/plugin.wasm");
    let error = runtime.load_file(missing).unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/plugin.wasm"),
        "{error}"
    );
}

/// A wide batch of 65,536 rows (the default batch size) fits well within a 256 MiB instance
/// through two chained instances: the second gets the first's output, which the host decoded in
/// place from one payload. Encoding must size its buffer by the bytes the batch actually uses,
/// not by `get_array_memory_size`, which counts a shared payload once per column.
#[test]
fn wide_default_size_batches_fit_the_memory_limit_through_a_chain() {
    let columns: Vec<(String, ArrayRef)> = (0..16)
        .map(|c| {
            let values: StringArray = (0..65_536)
                .map(|row| Some(format!("column {c:02} row {row:08} of a wide batch")))
                .collect();
            (format!("c{c}"), Arc::new(values) as ArrayRef)
        })
        .collect();
    let input = RecordBatch::try_from_iter(columns).unwrap();
    let payload: usize = input
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap())
        .sum();
    let limits = weir_runtime::Limits {
        memory_bytes: 256 << 20,
        ..Default::default()
    };
    assert!(
        payload * 16 > limits.memory_bytes,
        "the batch is wide enough to tell"
    );
    let runtime = Runtime::new(RuntimeConfig {
        limits,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let plugin = runtime.load_file(weir_tests::GUESTS_ECHO.as_ref()).unwrap();
    let mut first = plugin.instantiate().unwrap();
    let mut second = plugin.instantiate().unwrap();
    first.open("{}", input.schema()).unwrap();
    second.open("{}", input.schema()).unwrap();
    for _ in 0..3 {
        let middle = first.process(&input).unwrap();
        assert_eq!(middle, vec![input.clone()]);
        assert_eq!(second.process(&middle[0]).unwrap(), vec![input.clone()]);
    }
}

#[test]
fn columns_a_plugin_passes_through_come_back_as_the_hosts_own_arrays() {
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..1000));
    let users: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..1000).map(|i| format!("user-{i}")),
    ));
    let countries: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..1000).map(|i| ["US", "DE"][i % 2]),
    ));
    let input =
        RecordBatch::try_from_iter([("id", ids), ("user_id", users), ("country", countries)])
            .unwrap();
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let mask = runtime.load_file(weir_tests::MASK.as_ref()).unwrap();
    let mut instance = mask.instantiate().unwrap();
    instance
        .open(
            r#"{"key": "k", "columns": {"user_id": {"method": "hash"}}}"#,
            input.schema(),
        )
        .unwrap();
    let output = instance.process(&input).unwrap();
    assert_eq!(output.len(), 1);
    let output = &output[0];
    assert_eq!(output.num_rows(), 1000);
    // Untouched columns are the arrays the host sent: not copied back, not re-validated.
    assert!(Arc::ptr_eq(output.column(0), input.column(0)));
    assert!(Arc::ptr_eq(output.column(2), input.column(2)));
    // The masked one crossed as data.
    assert!(!Arc::ptr_eq(output.column(1), input.column(1)));
    let masked = output
        .column(1)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert_eq!(masked.value(0).len(), 32, "the default hash length");
    assert_ne!(masked.value(0), "user-0");
}
