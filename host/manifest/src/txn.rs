//! In-flight transactions. A writer registers `_weir/txn/<id>.json` (with an expiry it extends by
//! heartbeats) before writing data files, and names its files with the id. Vacuum never deletes a
//! file whose name carries the id of a live transaction; a commit made with the transaction
//! removes the registration.

use std::future::IntoFuture;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use weir_store::Store;

use crate::commit::now_ms;
use crate::error::Result;
use crate::table::Table;

pub(crate) const TXN_DIR: &str = "_weir/txn";

pub(crate) fn txn_key(id: &str) -> String {
    format!("{TXN_DIR}/{id}.json")
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TxnRecord {
    pub id: String,
    #[serde(default)]
    pub job: Option<String>,
    pub read_version: i64,
    pub started_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A registered in-flight transaction.
#[derive(Clone, Debug)]
pub struct Transaction {
    store: Store,
    record: TxnRecord,
}

impl Transaction {
    /// The transaction id (32 hex characters); put it in every data file name.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The table version when the transaction began (its commit's read version).
    pub fn read_version(&self) -> i64 {
        self.record.read_version
    }

    pub fn expires_at_ms(&self) -> i64 {
        self.record.expires_at_ms
    }

    /// A data file name carrying the transaction id: `part-00003-<id>.parquet`.
    pub fn data_file_name(&self, n: usize) -> String {
        format!("part-{n:05}-{}.parquet", self.record.id)
    }

    /// Extends the registration to `ttl` from now.
    pub async fn heartbeat(&mut self, ttl: Duration) -> Result<()> {
        self.record.expires_at_ms = now_ms() + ttl.as_millis() as i64;
        self.store
            .put(&txn_key(&self.record.id), encode(&self.record))
            .await?;
        Ok(())
    }

    /// Removes the registration (after a commit, or when abandoning the transaction; files of an
    /// abandoned transaction become garbage for vacuum).
    pub async fn finish(self) -> Result<()> {
        self.store.delete(&txn_key(&self.record.id)).await?;
        Ok(())
    }
}

fn encode(record: &TxnRecord) -> Bytes {
    Bytes::from(serde_json::to_vec(record).expect("txn record serialises"))
}

/// Ids of transactions whose registration has not expired at `now_ms`.
pub(crate) async fn live_transactions(store: &Store, now_ms: i64) -> Result<Vec<String>> {
    let (_, objects) = store.list_dir(TXN_DIR).await?;
    let mut live = Vec::new();
    for (key, _) in objects {
        let record: Option<TxnRecord> = match store.get(&key).await {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(weir_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        match record {
            Some(r) if r.expires_at_ms > now_ms => live.push(r.id),
            Some(_) => {}
            // An unreadable record: keep its files safe, judging the id by the key.
            None => {
                if let Some(id) = key.rsplit('/').next().and_then(|n| n.strip_suffix(".json")) {
                    live.push(id.to_string());
                }
            }
        }
    }
    Ok(live)
}

/// Builder for [`Table::begin_transaction`].
#[must_use = "a builder does nothing until awaited"]
pub struct TransactionBuilder<'a> {
    table: &'a Table,
    ttl: Duration,
    job: Option<String>,
}

impl<'a> TransactionBuilder<'a> {
    pub(crate) fn new(table: &'a Table) -> Self {
        Self {
            table,
            ttl: Duration::from_secs(3600),
            job: None,
        }
    }

    /// How long the registration lasts without a heartbeat (default 1 hour).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The job the transaction belongs to (informational).
    pub fn job(mut self, job: impl Into<String>) -> Self {
        self.job = Some(job.into());
        self
    }

    async fn run(self) -> Result<Transaction> {
        let snapshot = self.table.refresh().await?;
        let now = now_ms();
        let record = TxnRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            job: self.job,
            read_version: snapshot.version(),
            started_at_ms: now,
            expires_at_ms: now + self.ttl.as_millis() as i64,
        };
        let store = self.table.store().clone();
        store
            .put_create(&txn_key(&record.id), encode(&record))
            .await?;
        Ok(Transaction { store, record })
    }
}

impl<'a> IntoFuture for TransactionBuilder<'a> {
    type Output = Result<Transaction>;
    type IntoFuture =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Transaction>> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
