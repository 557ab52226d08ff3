//! The hostile-plugin suite: real components that misbehave, each contained with a clear error
//! naming the plugin and the limit or rule, after which the same runtime still runs a
//! well-behaved plugin. Every guest under `tests/guests/` must have an expectation here: the
//! `foreach_guest!` macro makes a missing one a compile error.
#![allow(clippy::result_large_err)] // PluginError is large by design; see weir-runtime.

use std::net::TcpListener;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use weir_runtime::{ErrorKind, Limits, PluginError, Runtime, RuntimeConfig};

/// Tight limits so that each hostile guest hits its limit quickly.
fn limits() -> Limits {
    Limits {
        memory_bytes: 256 << 20,
        batch_cpu: Duration::from_secs(5),
        task_cpu: Duration::from_secs(20),
        stack_bytes: 512 << 10,
        max_output_rows: 1 << 20,
        max_output_bytes: 16 << 20,
        stdio_bytes: 16 << 10,
    }
}

/// One runtime for the whole suite: every test's hostile guest runs in the same host.
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    Runtime::new(RuntimeConfig {
        limits: limits(),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
});

fn input() -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..1000));
    let names: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..1000).map(|i| format!("user-{i}")),
    ));
    RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap()
}

/// Runs a guest over one batch with `config`, returning its output or its error.
fn run(path: &str, config: &str) -> Result<Vec<RecordBatch>, PluginError> {
    let plugin = RUNTIME.load_file(path.as_ref())?;
    let mut instance = plugin.instantiate()?;
    instance.open(config, input().schema())?;
    let mut out = instance.process(&input())?;
    out.extend(instance.finish()?);
    Ok(out)
}

/// Runs `path`, expecting a failure; checks the error names the plugin and the batch, that the
/// failed instance is discarded, and that the runtime then serves a well-behaved plugin.
fn expect_failure(name: &str, path: &str, config: &str) -> PluginError {
    let plugin = RUNTIME
        .load_file(path.as_ref())
        .expect("hostile guests load");
    let mut instance = plugin.instantiate().unwrap();
    instance.open(config, input().schema()).unwrap();
    let error = instance
        .process(&input())
        .expect_err("the hostile guest must fail");
    let message = error.to_string();
    assert!(
        message.contains(&format!("plugin {name} 0.1.0 (sha256:")),
        "{message}"
    );
    assert!(message.contains("on batch 0"), "{message}");
    assert_eq!(error.batch, Some(0));

    let again = instance
        .process(&input())
        .expect_err("a failed instance is never reused");
    assert!(matches!(again.kind, ErrorKind::Protocol(_)), "{again}");
    assert!(again.to_string().contains("discarded"), "{again}");

    host_still_serves();
    error
}

fn host_still_serves() {
    let output = run(weir_tests::GUESTS_ECHO, "{}").expect("the host keeps serving");
    assert_eq!(output, vec![input()]);
}

mod expectations {
    use super::*;

    pub fn echo(path: &str) {
        assert_eq!(run(path, "{}").unwrap(), vec![input()]);
    }

    pub fn infinite_loop(path: &str) {
        let error = expect_failure("guest-infinite-loop", path, "{}");
        assert!(
            matches!(error.kind, ErrorKind::CpuLimit { limit, allowed } if limit.contains("batch_cpu") && allowed == limits().batch_cpu),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("CPU limit exceeded: limits.batch_cpu"),
            "{error}"
        );
    }

    pub fn memory(path: &str) {
        let error = expect_failure("guest-memory", path, "{}");
        assert!(
            matches!(error.kind, ErrorKind::MemoryLimit { requested, limit } if limit == limits().memory_bytes && requested > limit),
            "{error}"
        );
        assert!(error.to_string().contains("limits.memory_bytes"), "{error}");
    }

    pub fn recursion(path: &str) {
        let error = expect_failure("guest-recursion", path, "{}");
        assert!(
            matches!(error.kind, ErrorKind::StackOverflow { limit } if limit == limits().stack_bytes),
            "{error}"
        );
        assert!(error.to_string().contains("limits.stack_bytes"), "{error}");
    }

    pub fn panic(path: &str) {
        let error = expect_failure("guest-panic", path, "{}");
        let ErrorKind::Panic { message } = &error.kind else {
            panic!("expected a panic, got {error}");
        };
        assert!(
            message.contains("hostile plugin panicked on purpose after 1000 rows"),
            "{message}"
        );
        assert!(
            message.contains("src/lib.rs"),
            "the location is kept: {message}"
        );
    }

    pub fn escape(path: &str) {
        // A secret in the host's environment, and a live socket the guest is told about.
        unsafe { std::env::set_var("WEIR_TEST_SECRET", "hunter2") };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let config = format!(r#"{{"connect": "{addr}"}}"#);
        let error = expect_failure("guest-escape", path, &config);
        let message = error.to_string();
        assert!(!message.contains("ESCAPED"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(matches!(error.kind, ErrorKind::Internal(_)), "{error}");
        for attempt in [
            "file /etc/passwd",
            "file write",
            "env WEIR_TEST_SECRET",
            "env HOME",
            &format!("socket {addr}"),
            "udp bind",
            "dns lookup",
        ] {
            assert!(
                message.contains(&format!("{attempt}:")),
                "{attempt} not denied: {message}"
            );
        }
        assert!(
            listener.accept().is_err(),
            "the guest reached the host's socket"
        );
    }

    pub fn huge_output(path: &str) {
        let error = expect_failure("guest-huge-output", path, "{}");
        assert!(
            matches!(error.kind, ErrorKind::OutputLimit { limit_name, actual, limit, .. } if limit_name.starts_with("limits.max_output") && actual > limit),
            "{error}"
        );
    }

    pub fn noisy(path: &str) {
        let plugin = RUNTIME.load_file(path.as_ref()).unwrap();
        let mut instance = plugin.instantiate().unwrap();
        instance.open("{}", input().schema()).unwrap();
        assert_eq!(instance.process(&input()).unwrap(), vec![input()]);
        let stderr = instance.stderr();
        assert!(
            stderr.starts_with("0 noise"),
            "{}",
            &stderr[..80.min(stderr.len())]
        );
        assert!(
            stderr.len() < limits().stdio_bytes + 100,
            "capture is capped: {}",
            stderr.len()
        );
        assert!(
            stderr.ends_with("more bytes dropped]"),
            "drops are reported"
        );
    }

    pub fn bad_ipc(path: &str) {
        let error = expect_failure("guest-bad-ipc", path, "{}");
        assert!(matches!(error.kind, ErrorKind::InvalidOutput(_)), "{error}");
        assert!(error.to_string().contains("malformed IPC"), "{error}");
        // Passthrough frames that lie about the input they repeat.
        for (forge, expected) in [
            (
                "missing-column",
                "column `id` repeats input column 42, but the input has 2",
            ),
            (
                "wrong-type",
                "column `id` is declared Int64 but repeats input column 1 of type Utf8",
            ),
            (
                "rows",
                "1000000 rows repeat columns of an input batch of 1000 rows",
            ),
            (
                "selection-count",
                "says 999 rows are selected, its bitmap 1000",
            ),
        ] {
            let config = format!(r#"{{"forge": "{forge}"}}"#);
            let error = expect_failure("guest-bad-ipc", path, &config);
            assert!(matches!(error.kind, ErrorKind::InvalidOutput(_)), "{error}");
            assert!(error.to_string().contains(expected), "{forge}: {error}");
        }
    }

    pub fn hash_abuse(path: &str) {
        const RAW: &str = "weir:plugin/hash.digest-many";
        const HEX: &str = "weir:plugin/hash.digest-many-hex";
        for (abuse, called, expected) in [
            ("offsets", RAW, "offsets decrease at message 1 (2 then 1)"),
            ("key", RAW, "the blake3-keyed key must be 32 bytes, got 5"),
            (
                "messages",
                RAW,
                "65537 messages in one call, over the limit of 65536",
            ),
            ("digits-0", HEX, "0 hex digits asked for"),
            ("digits-65", HEX, "65 hex digits asked for"),
        ] {
            let config = format!(r#"{{"abuse": "{abuse}"}}"#);
            let error = expect_failure("guest-hash-abuse", path, &config);
            assert!(
                matches!(&error.kind, ErrorKind::HostCall { function, .. } if *function == called),
                "{abuse}: {error}"
            );
            assert!(error.to_string().contains(expected), "{abuse}: {error}");
        }
        // Host calls cannot be interrupted, but their time counts: a plugin that only calls the
        // host still meets its CPU deadline.
        let error = expect_failure("guest-hash-abuse", path, r#"{"abuse": "loop"}"#);
        assert!(matches!(error.kind, ErrorKind::CpuLimit { .. }), "{error}");
    }

    pub fn bad_schema(path: &str) {
        let error = expect_failure("guest-bad-schema", path, "{}");
        assert!(matches!(error.kind, ErrorKind::InvalidOutput(_)), "{error}");
        assert!(
            error.to_string().contains("declared output schema"),
            "{error}"
        );
    }

    pub fn bad_import(path: &str) {
        let error = RUNTIME
            .load_file(path.as_ref())
            .expect_err("refused at load");
        assert!(
            matches!(&error.kind, ErrorKind::ImportNotProvided { import } if import.starts_with("evil:backdoor/secrets")),
            "{error}"
        );
        assert!(
            error.to_string().contains("evil:backdoor/secrets"),
            "{error}"
        );
        host_still_serves();
    }
}

macro_rules! guest_test {
    ($name:ident, $path:expr) => {
        #[test]
        fn $name() {
            expectations::$name($path);
        }
    };
}

weir_tests::foreach_guest!(guest_test);
