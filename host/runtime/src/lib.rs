//! The sandboxed Wasm plugin runtime
