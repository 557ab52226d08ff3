//! Vacuum: deletes data files that the current snapshot does not reference, once they are older
//! than the retention period. It never deletes log or control records (`_delta_log/`, `_weir/`,
//! other hidden paths), files the snapshot references, or files whose name carries the id of a
//! live in-flight transaction (a writer may still be writing them).
//!
//! It also removes staging objects (`_weir/txn/<id>/...`, see [`crate::StagedAdds`]) of
//! transactions that are no longer live, once they are older than the retention period: their
//! commit has landed (a log entry never depends on its staging object) or never will.

use std::future::IntoFuture;
use std::time::Duration;

use serde::Serialize;

use crate::commit::now_ms;
use crate::error::Result;
use crate::table::Table;
use crate::txn::{TXN_DIR, live_transactions};

/// What a vacuum deleted (or would delete, in a dry run) and what it kept.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VacuumReport {
    pub version: i64,
    pub dry_run: bool,
    /// Unreferenced files deleted (or to delete), relative to the table root.
    pub deleted: Vec<String>,
    pub deleted_bytes: u64,
    /// Unreferenced files kept because a live transaction is writing them.
    pub kept_in_flight: Vec<String>,
    /// Unreferenced files kept because they are younger than the retention period.
    pub kept_recent: Vec<String>,
    /// Staging objects of transactions no longer live, deleted (or to delete).
    pub deleted_staging: Vec<String>,
}

/// Builder for [`Table::vacuum`].
#[must_use = "a builder does nothing until awaited"]
pub struct VacuumBuilder<'a> {
    table: &'a Table,
    retention: Duration,
    dry_run: bool,
}

impl<'a> VacuumBuilder<'a> {
    pub(crate) fn new(table: &'a Table) -> Self {
        Self {
            table,
            retention: Duration::from_secs(7 * 24 * 3600),
            dry_run: false,
        }
    }

    /// Only files unreferenced and older than this are deleted (default 7 days).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Report without deleting.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    async fn run(self) -> Result<VacuumReport> {
        let store = self.table.store();
        let snapshot = self.table.refresh().await?;
        let now = now_ms();
        let cutoff = now - self.retention.as_millis() as i64;
        let live = live_transactions(store, now).await?;
        let mut report = VacuumReport {
            version: snapshot.version(),
            dry_run: self.dry_run,
            ..Default::default()
        };
        for (key, meta) in store.list("").await? {
            if is_hidden(&key) || snapshot.contains_file(&key) {
                continue;
            }
            let name = key.rsplit('/').next().unwrap_or(&key);
            if live.iter().any(|id| name.contains(id.as_str())) {
                report.kept_in_flight.push(key);
                continue;
            }
            if meta.last_modified.timestamp_millis() > cutoff {
                report.kept_recent.push(key);
                continue;
            }
            if !self.dry_run {
                store.delete(&key).await?;
            }
            report.deleted_bytes += meta.size;
            report.deleted.push(key);
        }
        for (key, meta) in store.list(TXN_DIR).await? {
            // `_weir/txn/<id>.json` are registrations; `_weir/txn/<id>/...` staging objects.
            let Some(id) = key
                .strip_prefix(TXN_DIR)
                .and_then(|rest| rest.strip_prefix('/'))
                .and_then(|rest| rest.split_once('/'))
                .map(|(id, _)| id)
            else {
                continue;
            };
            if live.iter().any(|live| live == id) || meta.last_modified.timestamp_millis() > cutoff
            {
                continue;
            }
            if !self.dry_run {
                store.delete(&key).await?;
            }
            report.deleted_staging.push(key);
        }
        report.deleted.sort();
        report.kept_in_flight.sort();
        report.kept_recent.sort();
        report.deleted_staging.sort();
        tracing::info!(
            deleted = report.deleted.len(),
            dry_run = self.dry_run,
            "vacuum done"
        );
        Ok(report)
    }
}

/// Paths vacuum never touches: any segment starting with `_` or `.` that is not a partition
/// directory (`_delta_log/`, `_weir/`, `_temporary/`, `.crc` files...).
fn is_hidden(key: &str) -> bool {
    key.split('/')
        .any(|seg| (seg.starts_with('_') || seg.starts_with('.')) && !seg.contains('='))
}

impl<'a> IntoFuture for VacuumBuilder<'a> {
    type Output = Result<VacuumReport>;
    type IntoFuture =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<VacuumReport>> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
