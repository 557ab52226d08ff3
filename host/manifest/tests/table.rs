//! Behaviour of the manifest on every store backend: create/open, append, overwrite, job
//! idempotency, conflicts, ownership, leases, schema enforcement, checkpoints, vacuum.
//!
//! Each test runs as `file::NAME`, `memory::NAME` and `s3::NAME` (on the moto server that
//! `scripts/with-s3.sh` starts; see `weir_store::testing`), each on a fresh store of its own.

mod common;

use std::time::Duration;

use common::{committed_rows, new_table, schema, write_file};
use weir_manifest::{
    Error, Lease, Mode, Ownership, Table, TableSchema, checkpoint_key, commit_key,
};
use weir_store::Store;

weir_store::store_tests!(
    create_open_and_errors,
    append_then_overwrite_replaces_only_written_partitions,
    job_runs_commit_exactly_once,
    a_commit_with_the_same_txn_id_is_never_applied_twice,
    overwrite_conflicts_with_a_concurrent_change_to_its_partition,
    concurrent_appends_to_disjoint_partitions_all_land,
    ownership_refuses_other_owners_and_changes_only_by_commit,
    leases_exclude_second_writers_and_fence_zombies,
    schema_is_enforced_and_evolves_only_on_request,
    checkpoints_make_old_log_versions_unnecessary,
    a_checkpoint_loads_the_state_that_replaying_the_json_gives,
    vacuum_keeps_live_and_in_flight_files,
);

fn rows(dt: &str, ids: std::ops::Range<i64>) -> Vec<(String, i64)> {
    ids.map(|i| (dt.to_string(), i)).collect()
}

async fn create_open_and_errors(store: &Store) {
    let table = Table::create(store.child("t"))
        .schema(schema())
        .partition_by(["dt"])
        .owner("*", "billing")
        .checkpoint_interval(5)
        .await
        .unwrap();
    assert_eq!(table.snapshot().version(), 0);
    let reopened = Table::open(store.child("t")).await.unwrap();
    let snap = reopened.snapshot();
    assert_eq!(snap.schema(), &schema());
    assert_eq!(snap.partition_columns(), ["dt".to_string()]);
    assert_eq!(snap.ownership().owner_of("dt=x"), Some("billing"));
    assert_eq!(snap.checkpoint_interval(), 5);
    assert_eq!(snap.protocol().min_reader_version, 1);
    assert_eq!(snap.protocol().min_writer_version, 2);

    let again = Table::create(store.child("t")).schema(schema()).await;
    assert!(matches!(again, Err(Error::TableExists { .. })), "{again:?}");

    let missing = store.child("missing");
    let err = Table::open(missing.clone()).await.unwrap_err();
    assert!(matches!(err, Error::NotATable { .. }));
    assert!(
        err.to_string()
            .contains(missing.url().as_str().trim_end_matches('/')),
        "{err}"
    );
    let bad = Table::create(store.child("bad"))
        .schema(schema())
        .partition_by(["nope"])
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("`nope`"), "{bad}");
    // Nothing but the one table was written (the conditional-write probe cleaned up too).
    let keys: Vec<String> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["t/_delta_log/00000000000000000000.json"]);
}

async fn append_then_overwrite_replaces_only_written_partitions(store: &Store) {
    let table = new_table(store).await;
    let store = table.store().clone();
    let a = write_file(&store, "d1", "a.parquet", &[1, 2]).await;
    let b = write_file(&store, "d1", "b.parquet", &[3]).await;
    let c = write_file(&store, "d2", "c.parquet", &[10, 11]).await;
    let v1 = table.commit().add_files([a, b, c]).await.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(committed_rows(&table).await.len(), 5);

    let d = write_file(&store, "d1", "d.parquet", &[100, 101, 102]).await;
    let v2 = table
        .commit()
        .mode(Mode::OverwritePartitions)
        .add_files([d])
        .await
        .unwrap();
    assert_eq!((v2.version, v2.files_removed, v2.files_added), (2, 2, 1));
    let mut expected = rows("d1", 100..103);
    expected.extend(rows("d2", 10..12));
    assert_eq!(committed_rows(&table).await, expected);

    // The overwrite is one log version holding both the removes and the add.
    let log = String::from_utf8(store.get(&commit_key(2)).await.unwrap().to_vec()).unwrap();
    assert_eq!(log.matches("\"remove\"").count(), 2, "{log}");
    assert_eq!(log.matches("\"add\"").count(), 1, "{log}");
    assert!(log.contains("weirTxnId"), "{log}");

    let history = table.history().await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[2].files_removed, 2);
    assert_eq!(history[2].partitions, vec!["dt=d1".to_string()]);
}

async fn job_runs_commit_exactly_once(store: &Store) {
    let table = new_table(store).await;
    let store = table.store().clone();
    let f1 = write_file(&store, "d1", "r1.parquet", &[1]).await;
    let first = table
        .commit()
        .job("daily", 1)
        .add_files([f1])
        .await
        .unwrap();
    assert!(!first.already_committed);
    let retry = write_file(&store, "d1", "r1-retry.parquet", &[1]).await;
    let second = table
        .commit()
        .job("daily", 1)
        .add_files([retry])
        .await
        .unwrap();
    assert!(second.already_committed);
    assert_eq!(second.version, first.version);
    assert_eq!(committed_rows(&table).await, rows("d1", 1..2));
    // An older run is also a no-op; the next run commits.
    let old = table.commit().job("daily", 0).await.unwrap();
    assert!(old.already_committed);
    let f2 = write_file(&store, "d1", "r2.parquet", &[2]).await;
    let next = table
        .commit()
        .job("daily", 2)
        .add_files([f2])
        .await
        .unwrap();
    assert!(!next.already_committed);
    assert_eq!(table.snapshot().app_version("daily"), Some(2));
}

async fn a_commit_with_the_same_txn_id_is_never_applied_twice(store: &Store) {
    let table = new_table(store).await;
    let store = table.store().clone();
    let f = write_file(&store, "d1", "x.parquet", &[7]).await;
    let read_version = table.snapshot().version();
    let first = table
        .commit()
        .txn_id("t-1")
        .add_files([f.clone()])
        .await
        .unwrap();
    // A writer unsure whether its PUT landed retries from the same read version: it must find
    // its own commit instead of committing again.
    let retry = table
        .commit()
        .txn_id("t-1")
        .read_version(read_version)
        .add_files([f])
        .await
        .unwrap();
    assert_eq!(retry.version, first.version);
    assert_eq!(table.refresh().await.unwrap().version(), first.version);
    assert_eq!(committed_rows(&table).await, rows("d1", 7..8));
}

async fn overwrite_conflicts_with_a_concurrent_change_to_its_partition(store: &Store) {
    let table = new_table(store).await;
    let other = Table::open(table.store().clone()).await.unwrap();
    let store = table.store().clone();
    let base = table.snapshot().version();

    let theirs = write_file(&store, "d1", "theirs.parquet", &[1]).await;
    other.commit().add_files([theirs]).await.unwrap();

    let ours = write_file(&store, "d1", "ours.parquet", &[2]).await;
    let err = table
        .commit()
        .read_version(base)
        .mode(Mode::OverwritePartitions)
        .add_files([ours])
        .await
        .unwrap_err();
    let Error::Conflict {
        reason, version, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*version, 1);
    assert!(reason.contains("dt=d1"), "{err}");
    assert_eq!(committed_rows(&table).await, rows("d1", 1..2));

    // A disjoint partition rebases and commits.
    let disjoint = write_file(&store, "d2", "ours2.parquet", &[3]).await;
    let ok = table
        .commit()
        .read_version(base)
        .mode(Mode::OverwritePartitions)
        .add_files([disjoint])
        .await
        .unwrap();
    assert_eq!(ok.version, 2);
}

async fn concurrent_appends_to_disjoint_partitions_all_land(store: &Store) {
    new_table(store).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Separate table handles, as separate hosts would have.
            let table = Table::open(store).await.unwrap();
            let f = write_file(table.store(), &format!("p{i}"), "f.parquet", &[i]).await;
            table
                .commit()
                .job(format!("job-{i}"), 1)
                .add_files([f])
                .await
                .unwrap()
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap().version);
    }
    versions.sort();
    assert_eq!(versions, (1..=8).collect::<Vec<_>>());
    let table = Table::open(store.clone()).await.unwrap();
    assert_eq!(committed_rows(&table).await.len(), 8);
}

async fn ownership_refuses_other_owners_and_changes_only_by_commit(store: &Store) {
    let table = Table::create(store.clone())
        .schema(schema())
        .partition_by(["dt"])
        .owner("dt=2026-01-*", "billing")
        .await
        .unwrap();
    let store = table.store().clone();
    let f = write_file(&store, "2026-01-01", "f.parquet", &[1]).await;
    let err = table
        .commit()
        .owner("fraud")
        .add_files([f.clone()])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "partition dt=2026-01-01 is owned by billing; this job runs as fraud"
    );
    assert!(matches!(err, Error::OwnershipRefused { .. }));
    let err = table
        .lease("dt=2026-01-01")
        .owner("fraud")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OwnershipRefused { .. }), "{err}");

    // Unowned partitions are open to anyone.
    let g = write_file(&store, "2026-02-01", "g.parquet", &[2]).await;
    table.commit().owner("fraud").add_files([g]).await.unwrap();

    let mut policy = table.snapshot().ownership().clone();
    policy.set("dt=2026-01-01", "fraud").unwrap();
    let changed = table.set_ownership(policy, Some("admin")).await.unwrap();
    table.commit().owner("fraud").add_files([f]).await.unwrap();
    let history = table.history().await.unwrap();
    let record = history
        .iter()
        .find(|r| r.version == changed.version)
        .unwrap();
    assert_eq!(record.operation.as_deref(), Some("SET OWNERSHIP"));
    assert!(record.metadata_changed);
    let reopened = Table::open(store).await.unwrap();
    assert_eq!(
        reopened.snapshot().ownership().owner_of("dt=2026-01-01"),
        Some("fraud")
    );
    assert_eq!(
        reopened.snapshot().ownership().owner_of("dt=2026-01-02"),
        Some("billing")
    );
    assert_ne!(reopened.snapshot().ownership(), &Ownership::default());
}

async fn leases_exclude_second_writers_and_fence_zombies(store: &Store) {
    let table = new_table(store).await;
    let store = table.store().clone();
    // Long enough for the next two steps on a slow S3 server, short enough to wait out.
    let a = table
        .lease("dt=d1")
        .holder("job-a")
        .ttl(Duration::from_millis(2000))
        .await
        .unwrap();
    assert_eq!(a.epoch, 1);
    let err = table.lease("dt=d1").holder("job-b").await.unwrap_err();
    let Error::LeaseHeld {
        holder, expires, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(holder, "job-a");
    assert_eq!(expires, &a.expires());
    assert!(
        err.to_string().contains("job-a") && err.to_string().contains("dt=d1"),
        "{err}"
    );

    // Committing into a leased partition without the lease is refused too.
    let f = write_file(&store, "d1", "nolease.parquet", &[0]).await;
    let err = table.commit().add_files([f]).await.unwrap_err();
    assert!(matches!(err, Error::LeaseHeld { .. }), "{err}");

    // A expires; B takes over at epoch 2; A's late commit is a zombie.
    let left = a.expires_at_ms - now_ms() + 50;
    tokio::time::sleep(Duration::from_millis(left.max(0) as u64)).await;
    let b = table.lease("dt=d1").holder("job-b").await.unwrap();
    assert_eq!(b.epoch, 2);
    let zombie = write_file(&store, "d1", "zombie.parquet", &[1]).await;
    let err = table
        .commit()
        .add_files([zombie])
        .epochs([a.clone()])
        .await
        .unwrap_err();
    let Error::StaleEpoch { epoch, reason, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*epoch, 1);
    assert!(reason.contains("job-b"), "{err}");

    // On a store whose create-only PUTs race, another writer may believe it created epoch 2
    // as well; the lease file names the real holder, so that writer's commit is refused.
    let racer = Lease {
        holder: "job-racer".into(),
        ..b.clone()
    };
    let raced = write_file(&store, "d1", "raced.parquet", &[9]).await;
    let err = table
        .commit()
        .add_files([raced])
        .epochs([racer])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::StaleEpoch { epoch: 2, reason, .. } if reason.contains("job-b")),
        "{err}"
    );

    let good = write_file(&store, "d1", "good.parquet", &[2]).await;
    table
        .commit()
        .add_files([good])
        .epochs([b.clone()])
        .await
        .unwrap();
    assert_eq!(table.snapshot().committed_epoch("dt=d1"), Some(2));
    assert_eq!(committed_rows(&table).await, rows("d1", 2..3));

    // Release frees the partition at once; renewal of a released lease is stale.
    b.release(&table).await.unwrap();
    let c = table.lease("dt=d1").holder("job-c").await.unwrap();
    assert_eq!(c.epoch, 4);
    assert!(matches!(
        b.renew(&table, Duration::from_secs(5)).await,
        Err(Error::StaleEpoch { .. })
    ));
    // A retried task of the same holder takes over its own live lease, fencing the old one.
    let c2 = table.lease("dt=d1").holder("job-c").await.unwrap();
    assert_eq!(c2.epoch, 5);
    let late = write_file(&store, "d1", "late.parquet", &[3]).await;
    assert!(matches!(
        table.commit().add_files([late]).epochs([c]).await,
        Err(Error::StaleEpoch { .. })
    ));
}

async fn schema_is_enforced_and_evolves_only_on_request(store: &Store) {
    let table = new_table(store).await;
    let store = table.store().clone();
    let f = write_file(&store, "d1", "f.parquet", &[1]).await;
    let narrow = TableSchema::parse_spec("id:integer,name:string,dt:string").unwrap();
    let err = table
        .commit()
        .schema(narrow)
        .add_files([f.clone()])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "schema mismatch on column `id`: table has long, write has integer"
    );
    let wider = TableSchema::parse_spec("id:long,name:string,dt:string,score:double").unwrap();
    let err = table
        .commit()
        .schema(wider.clone())
        .add_files([f.clone()])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::SchemaMismatch { column, .. } if column == "score"),
        "{err}"
    );
    table
        .commit()
        .schema(wider.clone())
        .schema_evolution(true)
        .add_files([f])
        .await
        .unwrap();
    let reopened = Table::open(store).await.unwrap();
    assert_eq!(reopened.snapshot().schema(), &wider);
}

async fn checkpoints_make_old_log_versions_unnecessary(store: &Store) {
    let table = Table::create(store.clone())
        .schema(schema())
        .partition_by(["dt"])
        .checkpoint_interval(3)
        .await
        .unwrap();
    let store = table.store().clone();
    for i in 0..7 {
        let f = write_file(
            &store,
            &format!("p{}", i % 3),
            &format!("f{i}.parquet"),
            &[i],
        )
        .await;
        let mode = if i == 5 {
            Mode::OverwritePartitions
        } else {
            Mode::Append
        };
        table
            .commit()
            .job("j", i)
            .mode(mode)
            .add_files([f])
            .await
            .unwrap();
    }
    assert!(store.head(&checkpoint_key(3)).await.is_ok());
    assert!(store.head(&checkpoint_key(6)).await.is_ok());
    let last = store.get("_delta_log/_last_checkpoint").await.unwrap();
    assert!(String::from_utf8_lossy(&last).contains("\"version\":6"));
    let expected = committed_rows(&table).await;

    // Drop the JSON versions the checkpoint covers: loading must not need them.
    for v in 0..=6 {
        store.delete(&commit_key(v)).await.unwrap();
    }
    let reopened = Table::open(store.clone()).await.unwrap();
    let snap = reopened.snapshot();
    assert_eq!(snap.version(), 7);
    assert_eq!(snap.app_version("j"), Some(6));
    assert_eq!(snap.schema(), &schema());
    assert_eq!(committed_rows(&reopened).await, expected);
    let tombstones: Vec<_> = snap.tombstones().unwrap().map(|r| r.path.clone()).collect();
    assert_eq!(tombstones, vec!["dt=p2/f2.parquet".to_string()]);
}

/// Everything a snapshot exposes, in a comparable form.
fn state(snap: &weir_manifest::Snapshot) -> String {
    let mut files: Vec<_> = snap.files().map(|a| format!("{a:?}")).collect();
    files.sort();
    let mut tombstones: Vec<_> = snap
        .tombstones()
        .unwrap()
        .map(|r| format!("{r:?}"))
        .collect();
    tombstones.sort();
    let mut txns: Vec<_> = snap.txns().map(|t| format!("{t:?}")).collect();
    txns.sort();
    format!(
        "{}\n{:?}\n{:?}\n{files:#?}\n{tombstones:#?}\n{txns:?}",
        snap.version(),
        snap.protocol(),
        snap.metadata()
    )
}

async fn a_checkpoint_loads_the_state_that_replaying_the_json_gives(store: &Store) {
    let table = Table::create(store.clone())
        .schema(schema())
        .partition_by(["dt"])
        .checkpoint_interval(4)
        .await
        .unwrap();
    let store = table.store().clone();
    for i in 0..10i64 {
        let files = (0..3).map(|n| weir_manifest::AddFile {
            path: format!("dt=p{}/f{i}-{n}.parquet", (i + n) % 4),
            size: 10 + i,
            partition_values: [("dt".to_string(), Some(format!("p{}", (i + n) % 4)))].into(),
            num_records: Some(i * 100 + n),
            ..Default::default()
        });
        let mode = if i % 3 == 2 {
            Mode::OverwritePartitions
        } else {
            Mode::Append
        };
        table
            .commit()
            .job(format!("job{}", i % 2), i)
            .mode(mode)
            .add_files(files)
            .await
            .unwrap();
    }
    assert!(store.head(&checkpoint_key(8)).await.is_ok());
    let via_checkpoint = Table::open(store.clone()).await.unwrap().snapshot();
    assert_eq!(via_checkpoint.version(), 10);
    assert!(via_checkpoint.tombstones().unwrap().count() > 0);
    // Stats (the record counts) come back from the checkpoint.
    let add = via_checkpoint.file("dt=p3/f7-0.parquet").unwrap();
    assert_eq!(add.stats.as_deref(), Some("{\"numRecords\":700}"));
    // Files of one partition (both from the checkpoint) share their partition values.
    let other = via_checkpoint.file("dt=p3/f6-1.parquet").unwrap();
    assert!(std::ptr::eq(
        &*add.partition_values,
        &*other.partition_values
    ));
    let owned: weir_manifest::PartitionValues = add.partition_values.clone();
    assert_eq!(owned["dt"].as_deref(), Some("p3"));
    assert_eq!(state(&via_checkpoint), state(&table.snapshot()));

    // `_last_checkpoint` names a checkpoint that is gone: the older one is found by listing.
    store.delete(&checkpoint_key(8)).await.unwrap();
    let via_older = Table::open(store.clone()).await.unwrap().snapshot();
    assert_eq!(state(&via_older), state(&via_checkpoint));

    // No checkpoint at all: the JSON log alone gives the same state.
    store.delete(&checkpoint_key(4)).await.unwrap();
    store.delete("_delta_log/_last_checkpoint").await.unwrap();
    let via_json = Table::open(store.clone()).await.unwrap().snapshot();
    assert_eq!(state(&via_json), state(&via_checkpoint));
}

async fn vacuum_keeps_live_and_in_flight_files(store: &Store) {
    let table = new_table(store).await;
    let store = table.store().clone();
    let old = write_file(&store, "d1", "old.parquet", &[1]).await;
    table.commit().add_files([old]).await.unwrap();
    let new = write_file(&store, "d1", "new.parquet", &[2]).await;
    table
        .commit()
        .mode(Mode::OverwritePartitions)
        .add_files([new])
        .await
        .unwrap();
    // A failed job's file, and a file of a transaction still writing.
    write_file(&store, "d1", "part-00000-deadbeef.parquet", &[3]).await;
    let txn = table.begin_transaction().await.unwrap();
    let in_flight = write_file(&store, "d1", &txn.data_file_name(0), &[4]).await;

    let dry = table
        .vacuum()
        .retention(Duration::ZERO)
        .dry_run(true)
        .await
        .unwrap();
    assert_eq!(
        dry.deleted,
        vec!["dt=d1/old.parquet", "dt=d1/part-00000-deadbeef.parquet"]
    );
    assert!(store.head("dt=d1/old.parquet").await.is_ok());
    let recent = table.vacuum().await.unwrap();
    assert!(recent.deleted.is_empty());
    assert_eq!(recent.kept_recent.len(), 2);

    let report = table.vacuum().retention(Duration::ZERO).await.unwrap();
    assert_eq!(report.deleted, dry.deleted);
    assert_eq!(report.kept_in_flight, vec![in_flight.path.clone()]);
    assert!(store.head("dt=d1/old.parquet").await.is_err());
    assert!(store.head(&in_flight.path).await.is_ok());
    assert_eq!(committed_rows(&table).await, rows("d1", 2..3));

    // Once the transaction commits, its file is live; its registration is gone.
    table
        .commit()
        .transaction(&txn)
        .add_files([in_flight])
        .await
        .unwrap();
    let after = table.vacuum().retention(Duration::ZERO).await.unwrap();
    assert!(
        after.deleted.is_empty() && after.kept_in_flight.is_empty(),
        "{after:?}"
    );
    assert_eq!(committed_rows(&table).await.len(), 2);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
