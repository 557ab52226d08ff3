//! What a finished job reports: the numbers behind `weir run`'s summary table and its JSON.

use serde::Serialize;

/// The outcome of a job.
#[derive(Clone, Debug, Serialize)]
pub struct JobReport {
    pub job: String,
    pub run_id: i64,
    pub status: JobStatus,
    /// The transaction id in the data file names and the commit.
    pub txn_id: String,
    pub source: String,
    pub sink: String,
    pub input: InputReport,
    pub steps: Vec<StepReport>,
    pub output: OutputReport,
    /// Rows rejected into the dead-letter table.
    pub quarantined_rows: u64,
    pub quarantine_table: Option<String>,
    pub quarantine_version: Option<i64>,
    /// The sink table version holding the commit (for `already-committed`, the current one).
    pub commit_version: Option<i64>,
    pub files_removed: u64,
    pub tasks: u64,
    /// Task attempts beyond the first (retries).
    pub retries: u64,
    pub parallelism: usize,
    pub wall_ms: u64,
}

/// How the job ended (failures are errors, not reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobStatus {
    /// The run's output is committed.
    Committed,
    /// The sink already holds this run (or a later one) of the job; nothing was written.
    AlreadyCommitted,
    /// The source had no rows to read after pruning, and nothing was produced.
    NoInput,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct InputReport {
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StepReport {
    pub index: usize,
    pub label: String,
    /// Plugin name and version.
    pub plugin: String,
    pub digest: String,
    pub scope: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub cpu_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct OutputReport {
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Distinct partitions written.
    pub partitions: u64,
}
