//! The transactional table manifest: a Delta Lake log with enforced partition ownership and
//! write leases.
//!
//! A table is a directory of Parquet files plus a Delta transaction log (`_delta_log/`, protocol
//! reader 1 / writer 2), so any Delta reader (Spark, Trino, DuckDB, Polars, delta-rs) sees exactly
//! the committed snapshot. Weir's own control records (leases, in-flight transactions) live under
//! `_weir/`, which other engines ignore.
//!
//! Guarantees:
//! - A commit is one create-only write of the next log version: it either lands whole or not at
//!   all, and its cost does not depend on the number of files already in the table. Files can be
//!   staged as a job's tasks finish ([`Transaction::stage`], [`StagedAdds`]); the commit then
//!   publishes the staged body with a create-only copy (a hard link on `file://`), so its cost
//!   does not depend on the number of files it adds either. Where the store cannot copy
//!   create-only (S3 without a copy-if-not-exists configuration) it is one create-only PUT.
//! - Commits are optimistic: on losing the race for a version, a writer re-checks for conflicts
//!   (an overwrite of a partition another commit changed fails with [`Error::Conflict`]) and
//!   retries with backoff. Every commit carries its transaction id, so after an ambiguous PUT the
//!   writer reads the version back and never applies a commit twice.
//! - A job's commit carries a Delta `txn` (appId = job, version = run): re-running a committed run
//!   is a no-op.
//! - Create-only PUTs are only atomic if the store honours `If-None-Match`. Before a process
//!   first creates a table, commits, or takes a lease on a store, it checks that the store does
//!   (`weir_store::Store::ensure_conditional_writes`, once per process per store) and otherwise
//!   refuses with [`Error::ConditionalWritesNotHonoured`], having written nothing to the log.
//! - Partition ownership (recorded in the log) and fenced leases (`_weir/leases/`) refuse writes
//!   by non-owners, by a second concurrent writer and by zombie writers whose lease was taken over.
//!
//! ```no_run
//! # async fn demo() -> weir_manifest::Result<()> {
//! use weir_manifest::{Mode, Table, TableSchema};
//! let store = weir_store::Store::from_url("memory://demo/t")?;
//! let table = Table::create(store)
//!     .schema(TableSchema::parse_spec("id:long,dt:date")?)
//!     .partition_by(["dt"])
//!     .owner("*", "billing")
//!     .await?;
//! let txn = table.begin_transaction().await?;
//! let lease = table.lease("dt=2026-01-01").owner("billing").holder("job-1").await?;
//! // ... write Parquet files named with txn.data_file_name(n) ...
//! let outcome = table
//!     .commit()
//!     .transaction(&txn)
//!     .job("job-1", 7)
//!     .owner("billing")
//!     .mode(Mode::OverwritePartitions)
//!     .add_files(vec![])
//!     .epochs([lease])
//!     .await?;
//! # let _ = outcome; Ok(()) }
//! ```

mod actions;
mod checkpoint;
mod commit;
mod error;
pub mod failpoint;
mod lease;
mod ownership;
mod partition;
mod schema;
mod snapshot;
mod stage;
mod table;
mod txn;
mod vacuum;

pub use actions::{
    Action, Add, CommitInfo, Format, Metadata, PartitionValues, Protocol, Remove,
    SharedPartitionValues, Txn,
};
pub use checkpoint::checkpoint_schema;
pub use commit::{AddFile, CommitBuilder, CommitOutcome, Mode};
pub use error::{Error, Result};
pub use lease::{Lease, LeaseBuilder};
pub use ownership::{OWNERSHIP_KEY, Ownership, OwnershipRule, pattern_covers};
pub use partition::{NULL_PARTITION, display_partition, escape_hive, partition_path};
pub use schema::{DataType, Field, TableSchema};
pub use snapshot::{
    CHECKPOINT_INTERVAL_KEY, DEFAULT_CHECKPOINT_INTERVAL, PartitionSummary, Snapshot,
    checkpoint_key, commit_key,
};
pub use stage::StagedAdds;
pub use table::{CommitRecord, CreateBuilder, OpenBuilder, Table};
pub use txn::{Transaction, TransactionBuilder};
pub use vacuum::{VacuumBuilder, VacuumReport};
