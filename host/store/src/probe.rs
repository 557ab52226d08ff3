//! The conditional-write probe: does this store refuse a second create-only write?
//!
//! Weir's commit protocol is only as safe as `put_create`. An S3-compatible server that
//! ignores `If-None-Match: *` (Garage does) answers 200 to both of two racing commits, and the
//! table is silently corrupted. So before a process first commits to a store it writes a probe
//! key twice with create-only PUTs: the second must be refused with "already exists", and the
//! object must still hold the first write. The outcome (honoured or not) is cached per process
//! for the store's server and bucket; transport errors are not cached, so the next call retries.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::{Error, Result, Store};

/// Probe objects are written (and deleted again) below this prefix of the store's root.
pub const PROBE_PREFIX: &str = "_weir/probe";

#[derive(Debug, Clone)]
enum Outcome {
    Honoured,
    Ignored { detail: String },
}

type ProbeCell = Arc<OnceCell<Outcome>>;

static PROBES: LazyLock<Mutex<HashMap<String, ProbeCell>>> = LazyLock::new(Default::default);

pub(crate) async fn ensure(store: &Store) -> Result<()> {
    let cell = PROBES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(store.probe_scope.to_string())
        .or_default()
        .clone();
    let outcome = cell.get_or_try_init(|| run(store)).await?;
    into_result(store, outcome.clone())
}

/// Runs the probe now, without the per-process cache. Prefer
/// [`Store::ensure_conditional_writes`].
pub async fn probe_conditional_writes(store: &Store) -> Result<()> {
    let outcome = run(store).await?;
    into_result(store, outcome)
}

fn into_result(store: &Store, outcome: Outcome) -> Result<()> {
    match outcome {
        Outcome::Honoured => Ok(()),
        Outcome::Ignored { detail } => Err(Error::ConditionalWritesNotHonoured {
            url: store.url().to_string(),
            detail,
        }),
    }
}

async fn run(store: &Store) -> Result<Outcome> {
    let key = format!("{PROBE_PREFIX}/{}", uuid::Uuid::new_v4());
    let first = Bytes::from_static(b"weir conditional-write probe: first write");
    let second = Bytes::from_static(b"weir conditional-write probe: second write");
    match store.put_create(&key, first.clone()).await {
        Ok(_) => {}
        Err(Error::AlreadyExists { .. }) => {
            return Ok(Outcome::Ignored {
                detail: format!("it refused a create-only PUT of a new key {key}"),
            });
        }
        Err(e) => return Err(e),
    }
    let outcome = match store.put_create(&key, second).await {
        Ok(_) => Outcome::Ignored {
            detail: format!("it accepted a second create-only PUT of {key}"),
        },
        Err(Error::AlreadyExists { .. }) => match store.get(&key).await {
            Ok(bytes) if bytes == first => Outcome::Honoured,
            Ok(_) => Outcome::Ignored {
                detail: format!("it refused a second create-only PUT of {key} but overwrote it"),
            },
            Err(e) => {
                cleanup(store, &key).await;
                return Err(e);
            }
        },
        Err(e) => {
            cleanup(store, &key).await;
            return Err(e);
        }
    };
    cleanup(store, &key).await;
    match &outcome {
        Outcome::Honoured => {
            tracing::debug!(url = %store.url(), "store honours conditional writes")
        }
        Outcome::Ignored { detail } => {
            tracing::error!(url = %store.url(), %detail, "store does not honour conditional writes")
        }
    }
    Ok(outcome)
}

async fn cleanup(store: &Store, key: &str) {
    if let Err(e) = store.delete(key).await {
        tracing::warn!(url = %store.url_of(key), error = %e, "could not delete conditional-write probe");
    }
}
