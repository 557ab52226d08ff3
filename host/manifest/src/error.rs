//! The public error type of the manifest: a small enum callers can match on.

/// Errors from table operations. Each variant names the table, partition, column or version involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another commit changed what this commit depends on (e.g. it wrote a partition this commit overwrites).
    #[error("commit conflict at version {version} of {url}: {reason}")]
    Conflict {
        url: String,
        version: i64,
        reason: String,
    },
    /// The commit touches a partition that belongs to another owner.
    #[error("partition {partition} is owned by {owner}; this job runs as {job_owner}")]
    OwnershipRefused {
        partition: String,
        owner: String,
        job_owner: String,
    },
    /// Another writer holds a live lease on the partition.
    #[error("partition {partition} is leased by {holder} (epoch {epoch}) until {expires}")]
    LeaseHeld {
        partition: String,
        holder: String,
        epoch: u64,
        expires: String,
    },
    /// The commit carries a lease epoch that is no longer current (a zombie writer).
    #[error("stale lease on partition {partition}: this writer holds epoch {epoch}, but {reason}")]
    StaleEpoch {
        partition: String,
        epoch: u64,
        reason: String,
    },
    /// The write's schema is incompatible with the table's.
    #[error("schema mismatch on column `{column}`: table has {table_type}, write has {write_type}")]
    SchemaMismatch {
        column: String,
        table_type: String,
        write_type: String,
    },
    /// The location holds no Delta table (no `_delta_log`).
    #[error("not a table: {url} (no _delta_log/ found)")]
    NotATable { url: String },
    /// `Table::create` found an existing table.
    #[error("a table already exists at {url}")]
    TableExists { url: String },
    /// A log entry or checkpoint could not be parsed.
    #[error("corrupt log at version {version} of {url}: {reason}")]
    CorruptLog {
        version: i64,
        url: String,
        reason: String,
    },
    /// The caller passed something invalid (bad schema spec, unknown partition column, ...).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The store accepted a second create-only write of one key (it ignores `If-None-Match`), so
    /// two writers could both "win" one log version. Nothing is committed to such a store.
    #[error(
        "this store does not honour conditional writes (If-None-Match); commits would not be \
         atomic: {url}: {detail}"
    )]
    ConditionalWritesNotHonoured { url: String, detail: String },
    /// Retries were exhausted because other writers kept winning.
    #[error("gave up committing to {url} after {attempts} attempts (other writers kept winning)")]
    TooManyRetries { url: String, attempts: u32 },
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] weir_store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Formats epoch milliseconds as an RFC 3339 UTC timestamp for messages.
pub(crate) fn fmt_millis(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => ms.to_string(),
    }
}
