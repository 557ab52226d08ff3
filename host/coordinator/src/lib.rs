//! Runs a pipeline as one job: plan, run tasks on workers, commit once.
//!
//! [`Job`] takes a validated [`Pipeline`], and when awaited:
//! 1. loads the plugins, plans the source scan (partition pruning, projection pushdown: the
//!    columns the first step reads, per its `input_columns`, and those it passes through), and
//!    opens the whole plugin chain once on the source schema to learn the output schema, so bad
//!    configs and missing partition columns fail before any data is read;
//! 2. runs the **task stage**: every scan task through the steps of `scope = "task"`, on up to
//!    `parallelism` workers at once, retrying failed attempts that might succeed (never a
//!    plugin's own rejection of its config or input);
//! 3. runs the **job stage**, if any step has `scope = "job"`: that step and every later one run
//!    in a single task over the merged output of the task stage (written to
//!    `<sink>/_weir/staging/<txn>/`, deleted afterwards), so aggregations and global dedupes
//!    see every row of the job instead of emitting per-task partial results;
//! 4. commits every written file in one manifest commit, carrying the Delta `txn`
//!    (appId = job name, version = run id) so re-running a committed run is a no-op; with
//!    `overwrite-partitions` it first takes a lease on each partition it replaces.
//!
//! Guarantees: a job that fails at any point commits nothing to the sink and deletes every file
//! it wrote (tasks delete their own on failure; the coordinator deletes the rest). Rows rejected
//! into a dead-letter table are committed there (with the same job/run `txn`) after ownership is
//! checked and leases are taken, just before the sink commit; if the sink commit then fails (a
//! conflict), re-running with the same run id completes the run without quarantining the rows
//! twice.

mod job;
mod quarantine;
mod report;

pub use job::{Job, Plan, PlannedStep};
pub use report::{InputReport, JobReport, JobStatus, OutputReport, StepReport};
pub use weir_worker::{NoProgress, Progress, ProgressEvent};

use weir_runtime::{ErrorKind, PluginError};
use weir_worker::TaskError;

/// What kind of failure ended a job; each maps to a distinct exit code of `weir run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The spec, a plugin's config, or the sink table's schema/partitioning is wrong. Exit 2.
    Config,
    /// The input has rows or files that cannot be processed. Exit 3.
    BadData,
    /// A plugin crashed, hit a limit or broke the contract. Exit 4.
    Plugin,
    /// Another writer changed what the commit depends on. Exit 5.
    Conflict,
    /// The job does not own, or cannot lease, a partition it writes. Exit 6.
    Ownership,
    /// Anything else (I/O, ...). Exit 1.
    Other,
}

impl FailureKind {
    /// The process exit code for this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            FailureKind::Other => 1,
            FailureKind::Config => 2,
            FailureKind::BadData => 3,
            FailureKind::Plugin => 4,
            FailureKind::Conflict => 5,
            FailureKind::Ownership => 6,
        }
    }
}

/// Why a job failed. Every variant names what it is about (step, plugin, file, partition).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The spec file is invalid.
    #[error(transparent)]
    Spec(#[from] weir_pipeline::Error),
    /// A check against plugins, data or the sink table failed before any data was written.
    #[error("{0}")]
    Config(String),
    /// A plugin could not be loaded or refused its config.
    #[error("step {step} ({label}): {error}")]
    Plugin {
        step: usize,
        label: String,
        #[source]
        error: Box<PluginError>,
    },
    /// Reading the source failed while planning.
    #[error("reading the source: {0}")]
    Source(#[source] weir_lake::Error),
    /// A task failed (after its retries).
    #[error("task {task} failed after {attempts} attempt(s): {error}")]
    Task {
        task: u64,
        attempts: u32,
        #[source]
        error: Box<TaskError>,
    },
    /// The manifest refused or failed the commit (or the table could not be opened/created).
    #[error("{context}: {error}")]
    Manifest {
        context: String,
        #[source]
        error: weir_manifest::Error,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl JobError {
    /// The kind of failure, for exit codes.
    pub fn kind(&self) -> FailureKind {
        match self {
            JobError::Spec(_) | JobError::Config(_) => FailureKind::Config,
            JobError::Plugin { error, .. } => plugin_kind(error, true),
            JobError::Source(e) => lake_kind(e),
            JobError::Task { error, .. } => match error.as_ref() {
                TaskError::Plugin { error, .. } => plugin_kind(error, false),
                TaskError::Lake(e) => lake_kind(e),
                TaskError::SchemaDrift { .. } | TaskError::TooManyRejected { .. } => {
                    FailureKind::BadData
                }
                TaskError::UnknownPlugin { .. } => FailureKind::Config,
                _ => FailureKind::Other,
            },
            JobError::Manifest { error, .. } => {
                use weir_manifest::Error as M;
                match error {
                    M::Conflict { .. } | M::TooManyRetries { .. } => FailureKind::Conflict,
                    M::OwnershipRefused { .. } | M::LeaseHeld { .. } | M::StaleEpoch { .. } => {
                        FailureKind::Ownership
                    }
                    M::SchemaMismatch { .. }
                    | M::NotATable { .. }
                    | M::Invalid(_)
                    | M::ConditionalWritesNotHonoured { .. } => FailureKind::Config,
                    _ => FailureKind::Other,
                }
            }
            JobError::Other(_) => FailureKind::Other,
        }
    }
}

fn plugin_kind(error: &PluginError, planning: bool) -> FailureKind {
    match error.kind {
        ErrorKind::InvalidConfig(_)
        | ErrorKind::InvalidComponent(_)
        | ErrorKind::ImportNotProvided { .. }
        | ErrorKind::NotAPlugin(_) => FailureKind::Config,
        ErrorKind::InvalidInput { .. } if !planning => FailureKind::BadData,
        _ => FailureKind::Plugin,
    }
}

fn lake_kind(error: &weir_lake::Error) -> FailureKind {
    match error {
        weir_lake::Error::Parquet { .. }
        | weir_lake::Error::Schema { .. }
        | weir_lake::Error::InvalidPartition { .. } => FailureKind::BadData,
        weir_lake::Error::InvalidArgument(_) => FailureKind::Config,
        _ => FailureKind::Other,
    }
}
