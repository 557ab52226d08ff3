//! Write leases with fencing epochs.
//!
//! Before writing a partition a writer takes a lease: a create-only PUT of
//! `_weir/leases/<partition>/<epoch:020>.json` naming the holder and an expiry. Exactly one writer
//! can create each epoch, so of two writers racing for a partition one wins and the other gets
//! [`Error::LeaseHeld`] naming the holder and the expiry. An expired lease is taken over by
//! creating epoch + 1; a commit that carries an older epoch (a zombie writer) is then refused with
//! [`Error::StaleEpoch`]. The same holder (e.g. a retried task of the same job run) may take over
//! its own live lease, which fences its previous incarnation.

use std::future::IntoFuture;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use weir_store::Store;

use crate::commit::now_ms;
use crate::error::{Error, Result, fmt_millis};
use crate::partition::{display_partition, key_segment};
use crate::table::{Table, ensure_conditional_writes};

const LEASE_DIR: &str = "_weir/leases";

/// A lease on one partition at one epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The partition path (`dt=2026-01-01`).
    pub partition: String,
    pub epoch: u64,
    /// Who holds it (a job/task id); shown to writers that are refused.
    pub holder: String,
    /// The owner id the holder runs as, if any.
    #[serde(default)]
    pub owner: Option<String>,
    pub acquired_at_ms: i64,
    pub expires_at_ms: i64,
    /// A released lease is free for anyone to take.
    #[serde(default)]
    pub released: bool,
}

impl Lease {
    /// Whether the lease still excludes other writers at `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        !self.released && self.expires_at_ms > now_ms
    }

    /// The expiry as an RFC 3339 timestamp.
    pub fn expires(&self) -> String {
        fmt_millis(self.expires_at_ms)
    }

    /// Extends the lease by `ttl` from now. This takes epoch + 1 (so it also fences any other
    /// process using this holder's older epoch); fails with [`Error::StaleEpoch`] if someone
    /// else took the partition over.
    pub async fn renew(&self, table: &Table, ttl: Duration) -> Result<Lease> {
        let now = now_ms();
        let next = Lease {
            epoch: self.epoch + 1,
            acquired_at_ms: now,
            expires_at_ms: now + ttl.as_millis() as i64,
            released: false,
            ..self.clone()
        };
        self.successor(table.store(), next).await
    }

    /// Gives the partition up so another writer can lease it at once.
    pub async fn release(&self, table: &Table) -> Result<()> {
        let now = now_ms();
        let next = Lease {
            epoch: self.epoch + 1,
            acquired_at_ms: now,
            expires_at_ms: now,
            released: true,
            ..self.clone()
        };
        match self.successor(table.store(), next).await {
            // Someone took it over already: it is not ours to release.
            Ok(_) | Err(Error::StaleEpoch { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn successor(&self, store: &Store, next: Lease) -> Result<Lease> {
        ensure_conditional_writes(store).await?;
        match store
            .put_create(&lease_key(&self.partition, next.epoch), encode(&next))
            .await
        {
            Ok(_) => Ok(next),
            Err(weir_store::Error::AlreadyExists { .. }) => {
                let holder = latest_lease(store, &self.partition)
                    .await?
                    .map(|l| l.holder)
                    .unwrap_or_default();
                Err(Error::StaleEpoch {
                    partition: display_partition(&self.partition).to_string(),
                    epoch: self.epoch,
                    reason: format!("the lease was taken over by {holder}"),
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn encode(lease: &Lease) -> Bytes {
    Bytes::from(serde_json::to_vec(lease).expect("lease serialises"))
}

fn lease_dir(partition: &str) -> String {
    format!("{LEASE_DIR}/{}", key_segment(partition))
}

fn lease_key(partition: &str, epoch: u64) -> String {
    format!("{}/{epoch:020}.json", lease_dir(partition))
}

/// The newest lease record of `partition`, if any.
pub(crate) async fn latest_lease(store: &Store, partition: &str) -> Result<Option<Lease>> {
    let (_, objects) = store.list_dir(&lease_dir(partition)).await?;
    let newest = objects
        .iter()
        .filter_map(|(key, _)| {
            let epoch: u64 = key
                .rsplit('/')
                .next()?
                .strip_suffix(".json")?
                .parse()
                .ok()?;
            Some((epoch, key))
        })
        .max_by_key(|(epoch, _)| *epoch);
    let Some((epoch, key)) = newest else {
        return Ok(None);
    };
    let bytes = store.get(key).await?;
    let lease: Lease = serde_json::from_slice(&bytes).map_err(|e| Error::CorruptLog {
        version: epoch as i64,
        url: store.url_of(key),
        reason: format!("bad lease record: {e}"),
    })?;
    Ok(Some(lease))
}

/// Builder for [`Table::lease`]. Await it to take the lease.
#[must_use = "a builder does nothing until awaited"]
pub struct LeaseBuilder<'a> {
    table: &'a Table,
    partition: String,
    owner: Option<String>,
    holder: Option<String>,
    ttl: Duration,
}

impl<'a> LeaseBuilder<'a> {
    pub(crate) fn new(table: &'a Table, partition: String) -> Self {
        Self {
            table,
            partition,
            owner: None,
            holder: None,
            ttl: Duration::from_secs(600),
        }
    }

    /// The owner id the writer runs as: the lease is refused if another owner owns the partition.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// The holder id (default: a fresh random id). A holder may take over its own live lease.
    pub fn holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = Some(holder.into());
        self
    }

    /// How long the lease lasts unless renewed (default 10 minutes).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    async fn run(self) -> Result<Lease> {
        let store = self.table.store();
        let snapshot = self.table.refresh().await?;
        snapshot
            .ownership()
            .check(&self.partition, self.owner.as_deref())?;
        let holder = self
            .holder
            .unwrap_or_else(|| format!("writer-{}", uuid::Uuid::new_v4().simple()));
        ensure_conditional_writes(store).await?;
        for _ in 0..5 {
            let now = now_ms();
            let latest = latest_lease(store, &self.partition).await?;
            if let Some(l) = &latest
                && l.is_live(now)
                && l.holder != holder
            {
                return Err(Error::LeaseHeld {
                    partition: display_partition(&self.partition).to_string(),
                    holder: l.holder.clone(),
                    epoch: l.epoch,
                    expires: l.expires(),
                });
            }
            let lease = Lease {
                partition: self.partition.clone(),
                epoch: latest.map_or(1, |l| l.epoch + 1),
                holder: holder.clone(),
                owner: self.owner.clone(),
                acquired_at_ms: now,
                expires_at_ms: now + self.ttl.as_millis() as i64,
                released: false,
            };
            match store
                .put_create(&lease_key(&self.partition, lease.epoch), encode(&lease))
                .await
            {
                Ok(_) => {
                    tracing::debug!(partition = %self.partition, epoch = lease.epoch, %holder, "lease taken");
                    return Ok(lease);
                }
                // Someone created this epoch first: re-read and report them (or retry if released).
                Err(weir_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let latest = latest_lease(store, &self.partition).await?;
        let (holder, epoch, expires) =
            latest.map_or((String::from("unknown"), 0, String::new()), |l| {
                let expires = l.expires();
                (l.holder, l.epoch, expires)
            });
        Err(Error::LeaseHeld {
            partition: display_partition(&self.partition).to_string(),
            holder,
            epoch,
            expires,
        })
    }
}

impl<'a> IntoFuture for LeaseBuilder<'a> {
    type Output = Result<Lease>;
    type IntoFuture =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Lease>> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
