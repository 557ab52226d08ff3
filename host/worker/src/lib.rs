//! Runs one pipeline task: Parquet scan tasks → a chain of plugin instances → a hive-partitioned
//! Parquet writer. The coordinator hands tasks to workers through the [`Worker`] trait;
//! [`InProcessWorker`] runs them in this process (a remote worker over gRPC will implement the
//! same trait, which is why a [`TaskSpec`] is plain serialisable data).
//!
//! Guarantees:
//! - Each task runs a fresh instance of every plugin, on a blocking thread (never on an async
//!   worker thread); the scan and the writer stay on the async runtime, with bounded channels in
//!   between, so memory per task is a few batches plus the writer's open files.
//! - Files are named with (transaction, task, attempt). A task that fails deletes every file it
//!   wrote before returning the error; a task that succeeds returns exactly the files it wrote.
//! - Dead letters: with a [`DeadLetterPolicy`], a row a plugin rejects as invalid input (naming
//!   the row) is recorded as a [`RejectedRow`] and the task re-runs from the start without that
//!   row (plugins may hold state across batches, so the chain is replayed rather than patched).
//!   Without one, the task fails with an error naming the plugin, the source file and the row.

mod chain;
mod task;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use weir_runtime::PluginError;

pub use task::InProcessWorker;
pub use weir_lake::{Projection, ScanTask, WrittenFile};

/// One unit of work, as plain data (ships to remote workers).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The job name and run id (for logs).
    pub job: String,
    pub run: i64,
    /// The manifest transaction id: every file name carries it.
    pub txn: String,
    /// Task number within the job (unique across stages).
    pub task: u64,
    /// Attempt number (0 for the first); part of every file name.
    pub attempt: u32,
    pub input: TaskInput,
    /// The plugin chain, in order.
    pub steps: Vec<StepSpec>,
    pub output: OutputSpec,
    /// Where rejected rows go; `None` fails the task on the first rejected row.
    pub dead_letter: Option<DeadLetterPolicy>,
}

/// What a task reads.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskInput {
    /// The store the scan tasks' paths are relative to.
    pub store_url: String,
    pub scans: Vec<ScanTask>,
    pub projection: Projection,
    /// The schema every scanned batch must have (the first step is opened with it).
    pub schema: arrow_schema::Schema,
    /// Whether to count this input in the job's input totals (false for intermediate files).
    pub is_source: bool,
}

/// One step of the chain: which plugin (by digest) with which config.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepSpec {
    /// Position in the pipeline's steps.
    pub index: usize,
    pub label: String,
    /// Hex sha256 of the component.
    pub digest: String,
    /// JSON config.
    pub config: String,
}

/// Where a task writes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputSpec {
    /// The table (or staging) root the files go under.
    pub store_url: String,
    pub partition_by: Vec<String>,
    pub target_file_size: u64,
    /// The job's intermediate output (for a job-scope step), not its sink: its rows are not
    /// reported as written.
    #[serde(default)]
    pub intermediate: bool,
}

/// Dead-letter handling for a task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeadLetterPolicy {
    /// The task fails once it has rejected more rows than this.
    pub max_rows: u64,
}

/// What a task did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TaskResult {
    pub task: u64,
    pub attempt: u32,
    pub files: Vec<WrittenFile>,
    /// Rows read from the input.
    pub input_rows: u64,
    /// Bytes of input files (each file counted once across its row-group tasks).
    pub input_bytes: u64,
    /// Input files started by this task (row-group tasks count a file at its first group).
    pub input_files: u64,
    pub rows_written: u64,
    pub bytes_written: u64,
    /// Per step, in chain order.
    pub steps: Vec<StepStats>,
    pub rejected: Vec<RejectedRow>,
    /// How many times the chain ran (1 + rejected rows).
    pub passes: u32,
}

/// Counters of one step within a task (of the final pass).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepStats {
    pub index: usize,
    pub label: String,
    /// The plugin's name and version as it reports them.
    pub plugin: String,
    pub batches_in: u64,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Time spent inside the plugin.
    pub cpu_ms: u64,
}

/// A row a plugin rejected, for the quarantine table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RejectedRow {
    pub step: usize,
    pub step_label: String,
    /// Plugin name, version and digest.
    pub plugin: String,
    pub error: String,
    pub column: Option<String>,
    /// The input file the row came from (URL), when the batch came from one.
    pub source_file: Option<String>,
    /// The batch (0-based, as fed to the step) and row within it.
    pub batch: u64,
    pub row: u64,
    /// The row as the step saw it, as a JSON object.
    pub record: String,
}

/// Progress reports, for progress bars. Counts are deltas.
#[derive(Clone, Debug)]
pub enum ProgressEvent {
    /// Rows read from the input of a task.
    InputRows { rows: u64 },
    /// A step consumed and produced rows.
    StepRows {
        step: usize,
        rows_in: u64,
        rows_out: u64,
    },
    /// Rows handed to the sink's writer.
    RowsWritten { rows: u64 },
    /// A task finished (successfully).
    TaskDone {
        task: u64,
        input_files: u64,
        input_bytes: u64,
    },
    /// A task re-runs its chain without a rejected row.
    RowRejected { task: u64, step: usize },
    /// A pass over a task's input was thrown away (a row was rejected, or the attempt failed):
    /// the counts it reported are to be taken back, since the rows are read again.
    PassDiscarded(PassCounts),
}

/// What one pass over a task's input reported, summed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassCounts {
    pub task: u64,
    /// Rows read from the job's source (not from a job-scope step's intermediate input).
    pub input_rows: u64,
    /// Rows in and out per step, by step index.
    pub steps: Vec<(u64, u64)>,
    pub rows_written: u64,
}

/// Receives progress reports; called from async and blocking threads alike.
pub trait Progress: Send + Sync {
    fn report(&self, event: ProgressEvent);
}

/// Ignores progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _: ProgressEvent) {}
}

/// Runs tasks. In-process now; remote workers later.
pub trait Worker: Send + Sync {
    fn run(
        &self,
        task: TaskSpec,
        progress: Arc<dyn Progress>,
    ) -> BoxFuture<'static, Result<TaskResult, TaskError>>;
}

/// Why a task failed. [`TaskError::is_retryable`] tells the coordinator whether another attempt
/// could succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// A plugin failed (rejected its config or a row, trapped, hit a limit, ...).
    #[error(
        "step {step} ({label}){} failed: {error}{}",
        source_file.as_ref().map(|f| format!(" on input {f}")).unwrap_or_default(),
        row.as_ref().map(|r| format!("\n  rejected row: {r}")).unwrap_or_default()
    )]
    Plugin {
        step: usize,
        label: String,
        source_file: Option<String>,
        /// The rejected row as JSON, for invalid-input errors that name a row.
        row: Option<String>,
        #[source]
        error: Box<PluginError>,
    },
    /// Reading the input or writing the output failed.
    #[error(transparent)]
    Lake(#[from] weir_lake::Error),
    /// An input batch does not have the schema the job was planned with.
    #[error("input {file} does not match the job's input schema: {reason}")]
    SchemaDrift { file: String, reason: String },
    /// More rows were rejected than the dead-letter policy allows.
    #[error(
        "more than {limit} rows rejected (dead_letter.max_rows); the last: step {step} ({label}): {error}"
    )]
    TooManyRejected {
        limit: u64,
        step: usize,
        label: String,
        error: String,
    },
    /// The task names a plugin the worker does not have.
    #[error("worker has no plugin with digest sha256:{digest}")]
    UnknownPlugin { digest: String },
    /// Anything else (a worker thread died, a bad store URL, ...).
    #[error("{0}")]
    Other(String),
}

impl TaskError {
    /// Whether a new attempt might succeed: I/O failures, CPU limits (the machine may have been
    /// busy) and instance-slot exhaustion. A plugin's own verdict on its config or input, a
    /// crash, a memory limit or bad data are deterministic and not retried.
    pub fn is_retryable(&self) -> bool {
        use weir_runtime::ErrorKind as K;
        match self {
            TaskError::Plugin { error, .. } => {
                matches!(error.kind, K::CpuLimit { .. } | K::Capacity(_))
            }
            TaskError::Lake(e) => matches!(
                e,
                weir_lake::Error::Store(_) | weir_lake::Error::Parquet { .. }
            ),
            TaskError::Other(_) => true,
            _ => false,
        }
    }
}
