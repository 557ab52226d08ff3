//! The sandboxed Wasm plugin runtime.
//!
//! A [`Runtime`] owns one wasmtime [`Engine`](wasmtime::Engine) for the process: the pooling
//! instance allocator, copy-on-write memory images, epoch interruption, and an on-disk cache of
//! compiled components. [`Runtime::load`] turns a component into a [`Plugin`] (compiled once,
//! pre-linked); [`Plugin::instantiate`] makes a fresh [`PluginInstance`] per task in microseconds.
//!
//! What the sandbox guarantees (see [`Limits`] for the numbers):
//! - **No ambient capabilities.** The WASI interfaces a Rust `std` component imports are linked,
//!   but grant nothing: no preopened directories, no environment variables, no arguments, every
//!   socket address denied, no name lookups. Clocks and randomness work. stdout and stderr are
//!   captured and capped. A component importing anything else is refused at load, naming the
//!   import.
//! - **Hard limits.** Memory per instance, CPU time per batch and per task (epoch interruption),
//!   Wasm stack depth, output rows and bytes per call.
//! - **Nothing unchecked crosses back.** Every output payload must be well-formed IPC holding one
//!   batch of exactly the schema the plugin declared, within the output caps.
//! - **Failures are contained.** A trap or limit fails the task with a [`PluginError`] naming the
//!   plugin (name, version, digest), the batch and the limit or rule; the instance is discarded,
//!   and the runtime keeps serving other instances.
//!
//! Calls into plugins are synchronous and may block for up to the CPU limit: run them on a
//! blocking thread (`tokio::task::spawn_blocking`), never on an async executor's worker.

// `PluginError` carries the plugin's identity and the tail of its stderr so that every failure
// explains itself; it is built only when a task fails, never on the per-batch path.
#![allow(clippy::result_large_err)]

mod cache;
mod error;
mod gather;
mod imports;
mod instance;
mod limits;
mod runtime;
mod sandbox;

pub use error::{Call, ErrorKind, PluginError};
pub use instance::PluginInstance;
pub use limits::{Limits, RuntimeConfig};
pub use runtime::{PERFMAP_VAR, Plugin, PluginId, Runtime, RuntimeStats};
pub use weir_sdk::Metadata;

/// Host bindings for the `weir:plugin` world.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "plugin",
    });
}
