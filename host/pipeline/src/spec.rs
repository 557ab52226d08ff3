//! The pipeline spec model: what a `PIPELINE.toml` may contain, exactly. Every struct denies
//! unknown keys, so a typo is an error naming the key and its line.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, Duration};

/// A pipeline: read a source, run it through plugin steps, commit the result to a sink table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Weir pipeline")]
pub struct PipelineSpec {
    /// The job name: 1-100 letters, digits, `-` or `_`. It identifies the job in the sink
    /// table's log (the Delta `txn` appId, so re-running a committed run is a no-op) and in
    /// lease records.
    pub name: String,
    /// What the pipeline is for (shown by `weir pipeline validate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Directory holding plugin components, for steps that name a plugin by `sha256:` digest.
    /// Relative to this file. `WEIR_PLUGIN_PATH` (colon-separated directories) is searched too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins_dir: Option<String>,
    /// Where the rows come from.
    pub source: Source,
    /// The plugin steps, in order. None: the source is copied to the sink unchanged.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Where the rows go.
    pub sink: Sink,
    /// Where rows a plugin rejects as invalid input go. Without it, such a row fails the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetter>,
    /// Resource limits and parallelism.
    #[serde(default)]
    pub limits: Limits,
}

/// The input: a Delta table (its latest committed snapshot) or a prefix of Parquet files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// A table URL or Parquet prefix: `file:///abs/path`, `s3://bucket/prefix`, or a local path
    /// (relative paths are relative to this file).
    pub url: String,
    /// `auto` (default): a table if the location has a `_delta_log/`, else a prefix of Parquet
    /// files (hive `key=value/` directories become partition columns).
    #[serde(default)]
    pub kind: SourceKind,
    /// Only these columns (file or partition columns), in this order. Default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Partition filters, ANDed. Files in other partitions are never opened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter: Vec<PartitionFilter>,
    /// Rows per batch handed to the first step (default 65536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Files larger than this are split into row-group tasks (default 128MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_size: Option<ByteSize>,
}

/// How to read the source location.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A table if `_delta_log/` exists, else files.
    #[default]
    Auto,
    /// A Delta table: reads exactly the files of its latest snapshot.
    Table,
    /// Every Parquet file below the prefix (skipping `_` and `.` names).
    Files,
}

/// A predicate on a partition column: `column op value`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionFilter {
    pub column: String,
    pub op: FilterOp,
    /// A literal (parsed as the column's type), or a list for `in`. Omit for `is_null` and
    /// `is_not_null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<FilterValue>,
}

/// A partition filter operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    IsNull,
    IsNotNull,
}

/// A filter literal: a string, number or boolean, or a list of them for `in`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FilterValue {
    One(Scalar),
    Many(Vec<Scalar>),
}

/// One literal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

impl Scalar {
    /// The literal as partition values are written (`true`, `42`, `2026-01-01`).
    pub fn to_partition_string(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::String(s) => s.clone(),
        }
    }
}

/// One plugin step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// A label for progress and reports (default: the plugin's own name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The component: a path to a `.wasm` file (relative to this file), or `sha256:<hex>` to
    /// find it by digest in `plugins_dir` / `WEIR_PLUGIN_PATH`.
    pub plugin: String,
    /// Pins the component: `sha256:<64 hex digits>`. Validation fails if the file at `plugin`
    /// has another digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// `task` (default): one instance per task, in parallel; right for row-wise plugins.
    /// `job`: one instance sees every row of the job (needed by aggregations and global
    /// dedupes). This step and every later step then run in a final single-instance stage
    /// over the merged output of the task stage.
    #[serde(default)]
    pub scope: Scope,
    /// The plugin's config (a TOML table, passed to the plugin as JSON). See the plugin's docs
    /// or `weir plugin inspect` for its schema.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub config: serde_json::Map<String, serde_json::Value>,
}

/// Where a step runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// One instance per task; tasks run in parallel.
    #[default]
    Task,
    /// One instance over every row of the job.
    Job,
}

/// The output table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sink {
    /// The table URL (created on the first run if missing). Local paths are relative to this
    /// file.
    pub url: String,
    /// Partition columns, outermost first; each must be in the last step's output.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// `append` (default) adds files; `overwrite-partitions` atomically replaces every
    /// partition the run writes (re-runs are idempotent).
    #[serde(default)]
    pub mode: SinkMode,
    /// The owner id the job writes as; checked against the table's partition ownership. A table
    /// the job creates is owned by it (`*` → owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Roll output files at about this size (default 128MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_file_size: Option<ByteSize>,
}

/// How the sink commit treats existing data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SinkMode {
    #[default]
    Append,
    OverwritePartitions,
}

/// The quarantine table for rows plugins reject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    /// The quarantine table URL (created if missing). Each rejected row is stored with the
    /// job, run, step, plugin, error, source file and the row itself as JSON.
    pub url: String,
    /// The job fails when more rows than this are rejected (default 1000). Each rejected row
    /// costs a re-run of its task, so keep this small.
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
}

fn default_max_rows() -> u64 {
    1000
}

/// Limits per plugin instance, and parallelism.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory one plugin instance may use (default 512MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// Time one plugin call (one batch) may take (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_cpu: Option<Duration>,
    /// Time one plugin instance may take over a whole task (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_cpu: Option<Duration>,
    /// Tasks run at once (default: one per core). `weir run --parallelism` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<usize>,
    /// Attempts per task before the job fails (default 3). A plugin's own rejection of its
    /// config or input is never retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}
