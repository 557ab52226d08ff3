//! Plugin errors: a kind that callers match on, plus where it happened.
//!
//! Every error names the plugin (name, version and digest), the call and batch where known, and
//! for limits, which limit was hit and its value.

use std::fmt;
use std::time::Duration;

use crate::runtime::PluginId;

/// The call into the plugin that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Load,
    Metadata,
    InputColumns,
    Open,
    Process,
    Finish,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Call::Load => "load",
            Call::Metadata => "metadata",
            Call::InputColumns => "input-columns",
            Call::Open => "open",
            Call::Process => "process",
            Call::Finish => "finish",
        })
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file is not a valid component, or does not compile.
    #[error("not a loadable component: {0}")]
    InvalidComponent(String),
    /// The component imports something the host does not provide.
    #[error(
        "imports `{import}`, which the host does not provide (plugins may import only WASI interfaces)"
    )]
    ImportNotProvided { import: String },
    /// The component does not export the `weir:plugin/transform` interface it must.
    #[error("does not implement the weir:plugin contract: {0}")]
    NotAPlugin(String),
    /// The plugin rejected its config.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The plugin rejected a row of its input.
    #[error("invalid input{}{}: {message}", column.as_ref().map(|c| format!(" in column {c}")).unwrap_or_default(), row.map(|r| format!(" at row {r}")).unwrap_or_default())]
    InvalidInput {
        message: String,
        row: Option<u64>,
        column: Option<String>,
    },
    /// The plugin reported an internal error.
    #[error("plugin error: {0}")]
    Internal(String),
    /// The plugin panicked (Rust guests) or aborted.
    #[error("plugin panicked: {message}")]
    Panic { message: String },
    /// The plugin trapped for another reason.
    #[error("plugin trapped: {trap}")]
    Trap { trap: String },
    /// A CPU deadline passed.
    #[error("CPU limit exceeded: {limit} is {}", humanize(allowed))]
    CpuLimit {
        limit: &'static str,
        allowed: Duration,
    },
    /// The instance tried to grow its memory past the limit.
    #[error(
        "memory limit exceeded: tried to grow linear memory to {requested} bytes; limits.memory_bytes is {limit}"
    )]
    MemoryLimit { requested: usize, limit: usize },
    /// The Wasm stack overflowed.
    #[error("stack limit exceeded: unbounded recursion? limits.stack_bytes is {limit}")]
    StackOverflow { limit: usize },
    /// The plugin called a host function against its rules (bad arguments, over a per-call cap).
    #[error("host call refused: {function}: {rule}")]
    HostCall {
        function: &'static str,
        rule: String,
    },
    /// Output over a cap.
    #[error("output limit exceeded: one call returned {actual} {what}; {limit_name} is {limit}")]
    OutputLimit {
        what: &'static str,
        actual: u64,
        limit_name: &'static str,
        limit: u64,
    },
    /// Output that breaks the contract: malformed IPC, or a schema other than the declared one.
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    /// The calls came in an order the contract forbids (a host bug), or after a failure.
    #[error("{0}")]
    Protocol(String),
    /// Every instance slot is in use.
    #[error("no free instance slot (max_instances = {0}); try again when a task ends")]
    Capacity(u32),
}

/// A failure of one plugin, with where it happened.
#[derive(Debug)]
pub struct PluginError {
    /// Which plugin: `None` only when the component failed before it could say.
    pub plugin: Option<PluginId>,
    /// The call that failed.
    pub call: Call,
    /// The input batch (0-based) being processed, for `process`.
    pub batch: Option<u64>,
    /// What went wrong.
    pub kind: ErrorKind,
    /// The last lines the plugin wrote to stderr, if any.
    pub stderr: Option<String>,
}

impl PluginError {
    pub(crate) fn new(plugin: Option<PluginId>, call: Call, kind: ErrorKind) -> Self {
        Self {
            plugin,
            call,
            batch: None,
            kind,
            stderr: None,
        }
    }

    /// True when the plugin itself rejected the data or config (not a crash or limit).
    pub fn is_reported_by_plugin(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::InvalidConfig(_) | ErrorKind::InvalidInput { .. } | ErrorKind::Internal(_)
        )
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.plugin {
            Some(id) => write!(f, "plugin {id}")?,
            None => write!(f, "plugin component")?,
        }
        write!(f, " failed in {}", self.call)?;
        if let Some(batch) = self.batch {
            write!(f, " on batch {batch}")?;
        }
        write!(f, ": {}", self.kind)?;
        let stderr = self.stderr.as_deref().filter(|s| !s.trim().is_empty());
        if let Some(stderr) = stderr
            && !matches!(self.kind, ErrorKind::Panic { .. })
        {
            write!(f, "\nplugin stderr (last lines):\n{}", stderr.trim_end())?;
        }
        Ok(())
    }
}

/// No `source`: the message already ends with the kind's, and a report that walks the chain
/// (`{:#}`) would say it twice. Match on [`PluginError::kind`] instead.
impl std::error::Error for PluginError {}

fn humanize(d: &Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
