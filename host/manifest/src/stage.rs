//! Staged commit bodies: a transaction's `add` lines, recorded as its tasks finish, so that the
//! job's commit is one O(1) step (DBIO's design, on a Delta log).
//!
//! A [`StagedAdds`] (from [`Transaction::stage`]) takes each finished task's files: it checks
//! them, writes their `add` lines and appends them to a staging object
//! `_weir/txn/<id>/adds-<uuid>.json` (on `file://` written and fsynced in place as they arrive; see
//! [`weir_store::StagingWriter`]), and keeps the lines and the snapshot's path table for them in
//! memory. Committing it ([`crate::CommitBuilder::staged`]) appends the attempt's other actions
//! (commitInfo with the transaction id, txn, removes, metadata) as the last piece, finishes the
//! object and copies it create-only to `_delta_log/<N>.json` (a hard link on `file://`, a clone on
//! `memory://`). Delta actions within a commit are unordered, so the adds may come first.
//!
//! Guarantees:
//! - The log entry is byte for byte what the single create-only PUT of the same attempt would
//!   write (adds, then the other actions); so self-identification, read-back after an ambiguous
//!   outcome, conflict detection, `txn` idempotency, ownership, lease and schema checks are
//!   exactly those of a PUT commit.
//! - When an attempt's other actions differ from those the object was finished with (a rebase
//!   changed the removes, epochs or metadata), or the store cannot copy create-only (S3 without a
//!   copy-if-not-exists configuration; such a store is not staged to at all), or staging failed,
//!   the commit falls back to that PUT from the lines kept in memory.
//! - The staging object is removed after the commit (or its failure), and by
//!   [`StagedAdds::abort`]; one left by a crash lies under `_weir/`, which readers ignore, and
//!   vacuum removes it once its transaction is no longer live and it is older than the
//!   retention period.

use bytes::Bytes;
use weir_store::{StagingWriter, Store};

use crate::commit::{Accumulated, AddFile, BACKGROUND_ADDS, now_ms};
use crate::error::{Error, Result};
use crate::snapshot::commit_key;
use crate::txn::{TXN_DIR, Transaction};

/// A fresh key for a staging object of transaction `txn_id` (unique: a transaction may be
/// staged more than once, and a `file://` staging file is never reused).
fn staging_key(txn_id: &str) -> String {
    let n = uuid::Uuid::new_v4().simple();
    format!("{TXN_DIR}/{txn_id}/adds-{n}.json")
}

/// The staging object's state.
#[derive(Debug)]
enum Object {
    /// Being appended to.
    Open(StagingWriter),
    /// Finished, ending with these header lines.
    Sealed(Bytes),
    /// Not usable (staging failed, or the store cannot copy create-only): commits PUT.
    Unusable,
}

/// A transaction's `add` lines, staged as tasks finish; see the module docs. Commit it with
/// [`crate::CommitBuilder::staged`], or [`StagedAdds::abort`] it.
#[derive(Debug)]
#[must_use = "staged adds commit nothing until passed to CommitBuilder::staged"]
pub struct StagedAdds {
    store: Store,
    txn_id: String,
    read_version: i64,
    key: String,
    /// Modification time of files that give none (when staging began).
    now: i64,
    adds: Accumulated,
    /// In a mutex only to make the adds `Sync` (a commit builder holding them is shared across
    /// awaits); it is only reached through `&mut self`, never locked.
    object: std::sync::Mutex<Object>,
}

/// The staging object of `object` (see [`StagedAdds::object`]).
fn object(object: &mut std::sync::Mutex<Object>) -> &mut Object {
    object
        .get_mut()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Transaction {
    /// Starts staging the transaction's `add` lines: hand each finished task's files to
    /// [`StagedAdds::add`], then commit with [`crate::CommitBuilder::staged`].
    pub async fn stage(&self) -> Result<StagedAdds> {
        let store = self.store().clone();
        let key = staging_key(self.id());
        // Staging is wasted where the object could not be published (S3 without
        // copy-if-not-exists): there the adds are kept in memory only and the commit PUTs.
        let staging = match store.may_copy_create() {
            true => store.stage(&key).await,
            false => Err(weir_store::Error::NotSupported {
                url: store.url_of(&key),
                operation: "create-only copy".into(),
            }),
        };
        let object = match staging {
            Ok(writer) => Object::Open(writer),
            Err(weir_store::Error::NotSupported { .. }) => Object::Unusable,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a staging object; the commit will PUT its log entry");
                Object::Unusable
            }
        };
        Ok(StagedAdds {
            store,
            txn_id: self.id().to_string(),
            read_version: self.read_version(),
            key,
            now: now_ms(),
            adds: Accumulated::default(),
            object: std::sync::Mutex::new(object),
        })
    }
}

impl StagedAdds {
    /// The transaction the adds belong to.
    pub fn txn_id(&self) -> &str {
        &self.txn_id
    }

    /// The table version the transaction began at.
    pub(crate) fn read_version(&self) -> i64 {
        self.read_version
    }

    /// How many files are staged.
    pub fn len(&self) -> usize {
        self.adds.len
    }

    pub fn is_empty(&self) -> bool {
        self.adds.len == 0
    }

    /// The key of the staging object, relative to the table root.
    pub fn staging_key(&self) -> &str {
        &self.key
    }

    /// Stages `files`: checks them (an invalid path is [`Error::Invalid`] and stages none of
    /// them), writes their `add` lines and appends them to the staging object. A failure of
    /// the staging object itself is not an error: it is logged, and the commit PUTs instead.
    pub async fn add(&mut self, files: impl IntoIterator<Item = AddFile>) -> Result<()> {
        let files: Vec<AddFile> = files.into_iter().collect();
        if files.is_empty() {
            return Ok(());
        }
        let now = self.now;
        let lines = if files.len() < BACKGROUND_ADDS {
            self.adds.push(files, now)
        } else {
            let mut adds = std::mem::take(&mut self.adds);
            let (adds, lines) = tokio::task::spawn_blocking(move || {
                let lines = adds.push(files, now);
                (adds, lines)
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            self.adds = adds;
            lines
        };
        let lines = lines.map_err(Error::Invalid)?;
        let staging = object(&mut self.object);
        if let Object::Open(writer) = staging
            && let Err(e) = writer.append(lines).await
        {
            tracing::warn!(error = %e, "staging failed; the commit will PUT its log entry");
            *staging = Object::Unusable;
        }
        Ok(())
    }

    /// Abandons the staged adds and removes the staging object.
    pub async fn abort(mut self) -> Result<()> {
        self.discard_object().await
    }

    /// The adds, for the commit (which keeps them for a PUT and the snapshot).
    pub(crate) fn take_adds(&mut self) -> Accumulated {
        std::mem::take(&mut self.adds)
    }

    /// Publishes the staging object as log version `version`, if it can be with these header
    /// lines: finishes it with `header` as its last piece (once), then copies it create-only.
    /// `None` means the caller must PUT; otherwise the result of the copy, to be judged like
    /// that of a create-only PUT.
    pub(crate) async fn publish(
        &mut self,
        header: &Bytes,
        version: i64,
    ) -> Option<weir_store::Result<()>> {
        let staging = object(&mut self.object);
        match std::mem::replace(staging, Object::Unusable) {
            Object::Open(mut writer) => {
                let sealed = match writer.append(header.clone()).await {
                    Ok(()) => writer.finish().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = sealed {
                    tracing::warn!(error = %e, "cannot finish the staging object; PUT instead");
                    return None;
                }
                *staging = Object::Sealed(header.clone());
                crate::failpoint::hit("after-stage-seal");
            }
            Object::Sealed(sealed) => {
                let same = sealed == *header;
                *staging = Object::Sealed(sealed);
                if !same {
                    return None;
                }
            }
            Object::Unusable => return None,
        }
        match self
            .store
            .copy_create(&self.key, &commit_key(version))
            .await
        {
            Err(weir_store::Error::NotSupported { .. }) => {
                tracing::debug!(url = %self.store.url(), "store cannot copy create-only; PUT instead");
                let _ = self.discard_object().await;
                None
            }
            Err(weir_store::Error::NotFound { url }) => {
                // Someone removed the staging object (a vacuum that judged the transaction dead).
                tracing::warn!(%url, "the staging object vanished; PUT instead");
                *object(&mut self.object) = Object::Unusable;
                None
            }
            result => Some(result),
        }
    }

    /// Removes the staging object (after the commit, or when abandoning it).
    pub(crate) async fn discard_object(&mut self) -> Result<()> {
        match std::mem::replace(object(&mut self.object), Object::Unusable) {
            Object::Open(writer) => writer.abort().await?,
            Object::Sealed(_) => self.store.delete(&self.key).await?,
            Object::Unusable => {}
        }
        Ok(())
    }
}
