//! Limits on what one plugin instance may use, and how the runtime is sized.
//!
//! Every limit is enforced by wasmtime itself (pooling allocator slots, `StoreLimits`, epoch
//! interruption, `max_wasm_stack`) or by the host's checks on what crosses the boundary; none
//! relies on the plugin's cooperation.

use std::path::PathBuf;
use std::time::Duration;

/// Per-instance limits. A plugin that exceeds one fails its task with an error naming it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest linear memory one instance may grow to, in bytes. A growth past it fails; Rust
    /// guests then abort, and the host reports `memory_bytes` as the limit hit. Default 512 MiB.
    pub memory_bytes: usize,
    /// Time one `process` or `finish` call may run inside the plugin. Measured in epoch ticks of
    /// wall time while the plugin runs, so a loaded machine counts against it. Default 10 s.
    #[serde(with = "duration_ms")]
    pub batch_cpu: Duration,
    /// Time all calls of one instance (one task) may run in total. Default 10 min.
    #[serde(with = "duration_ms")]
    pub task_cpu: Duration,
    /// Native stack that Wasm frames may use, in bytes. Unbounded recursion traps here (or on
    /// the guest's own shadow stack in linear memory, whichever fills first). Default 1 MiB.
    pub stack_bytes: usize,
    /// Rows one call may return across all its batches. Default 16 Mi rows.
    pub max_output_rows: u64,
    /// IPC bytes one call may return across all its batches. Default 256 MiB.
    pub max_output_bytes: u64,
    /// Bytes of stdout and of stderr kept per instance; the rest is dropped, not an error.
    /// Default 64 KiB.
    pub stdio_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            batch_cpu: Duration::from_secs(10),
            task_cpu: Duration::from_secs(600),
            stack_bytes: 1 << 20,
            max_output_rows: 16 << 20,
            max_output_bytes: 256 << 20,
            stdio_bytes: 64 << 10,
        }
    }
}

/// How the runtime is built.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Limits for every instance.
    pub limits: Limits,
    /// Where compiled components are cached; `None` disables the disk cache. The directory must
    /// be private to the host: cached code is loaded as trusted native code.
    pub cache_dir: Option<PathBuf>,
    /// Instances that may be live at once (pooling allocator slots). Default 64.
    pub max_instances: u32,
    /// Granularity of the CPU deadlines. Default 10 ms.
    pub epoch_tick: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            cache_dir: None,
            max_instances: 64,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
