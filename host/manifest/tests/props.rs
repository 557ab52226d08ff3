//! Property tests for log replay and conflict detection, against a model of the table.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use weir_manifest::{AddFile, Error, Mode, Table};
use weir_store::Store;

#[derive(Clone, Debug)]
struct Op {
    overwrite: bool,
    /// Partitions (0..4) this commit adds one file to.
    partitions: BTreeSet<u8>,
}

fn op() -> impl Strategy<Value = Op> {
    (any::<bool>(), proptest::collection::btree_set(0u8..4, 0..3)).prop_map(
        |(overwrite, partitions)| Op {
            overwrite,
            partitions,
        },
    )
}

fn file(name: String, partition: u8) -> AddFile {
    AddFile {
        path: format!("dt=p{partition}/{name}.parquet"),
        size: 100,
        partition_values: [("dt".to_string(), Some(format!("p{partition}")))].into(),
        num_records: Some(1),
        ..Default::default()
    }
}

/// Applies `op` to the model: partition -> file paths.
fn apply_model(model: &mut BTreeMap<u8, BTreeSet<String>>, op: &Op, files: &[AddFile]) {
    if op.overwrite {
        for p in &op.partitions {
            model.remove(p);
        }
    }
    for (p, f) in op.partitions.iter().zip(files) {
        model.entry(*p).or_default().insert(f.path.clone());
    }
}

fn live_files(table: &Table) -> BTreeMap<u8, BTreeSet<String>> {
    let mut out: BTreeMap<u8, BTreeSet<String>> = BTreeMap::new();
    for add in table.snapshot().files() {
        let dt = add.partition_values["dt"].clone().unwrap();
        let p: u8 = dt.trim_start_matches('p').parse().unwrap();
        out.entry(p).or_default().insert(add.path.clone());
    }
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

static CASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn fresh_url() -> String {
    let n = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("memory://props-{}/case{n}", std::process::id())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Replaying the log (through any checkpoint) gives the same state as the model, and the same
    /// state as the writer's incrementally maintained snapshot.
    #[test]
    fn replay_matches_model(ops in proptest::collection::vec(op(), 1..25), interval in 1u32..6) {
        runtime().block_on(async {
            let url = fresh_url();
            let table = Table::create(Store::from_url(&url).unwrap())
                .schema(common::schema())
                .partition_by(["dt"])
                .checkpoint_interval(interval)
                .await
                .unwrap();
            let mut model = BTreeMap::new();
            for (i, op) in ops.iter().enumerate() {
                let files: Vec<_> = op.partitions.iter().map(|p| file(format!("c{i}-{p}"), *p)).collect();
                let mode = if op.overwrite { Mode::OverwritePartitions } else { Mode::Append };
                let outcome = table.commit().mode(mode).job("j", i as i64).add_files(files.clone()).await.unwrap();
                prop_assert_eq!(outcome.version, i as i64 + 1);
                apply_model(&mut model, op, &files);
            }
            model.retain(|_, files| !files.is_empty());
            prop_assert_eq!(&live_files(&table), &model);
            let reopened = Table::open(Store::from_url(&url).unwrap()).await.unwrap();
            prop_assert_eq!(reopened.snapshot().version(), ops.len() as i64);
            prop_assert_eq!(&live_files(&reopened), &model);
            prop_assert_eq!(reopened.snapshot().app_version("j"), Some(ops.len() as i64 - 1));
            Ok(())
        })?;
    }

    /// Two commits from the same read version: the second conflicts exactly when it overwrites a
    /// partition the first touched; otherwise it rebases and both land.
    #[test]
    fn conflicts_exactly_when_an_overwrite_overlaps(first in op(), second in op()) {
        runtime().block_on(async {
            let url = fresh_url();
            let table = Table::create(Store::from_url(&url).unwrap())
                .schema(common::schema())
                .partition_by(["dt"])
                .await
                .unwrap();
            let seed: Vec<_> = (0..4).map(|p| file(format!("seed-{p}"), p)).collect();
            table.commit().add_files(seed.clone()).await.unwrap();
            let mut model = BTreeMap::new();
            apply_model(&mut model, &Op { overwrite: false, partitions: (0..4).collect() }, &seed);
            let base = table.snapshot().version();

            let other = Table::open(Store::from_url(&url).unwrap()).await.unwrap();
            let files1: Vec<_> = first.partitions.iter().map(|p| file(format!("a-{p}"), *p)).collect();
            let mode1 = if first.overwrite { Mode::OverwritePartitions } else { Mode::Append };
            other.commit().mode(mode1).add_files(files1.clone()).await.unwrap();
            apply_model(&mut model, &first, &files1);

            let files2: Vec<_> = second.partitions.iter().map(|p| file(format!("b-{p}"), *p)).collect();
            let mode2 = if second.overwrite { Mode::OverwritePartitions } else { Mode::Append };
            let result = table.commit().read_version(base).mode(mode2).add_files(files2.clone()).await;
            let overlaps = second.overwrite && !first.partitions.is_disjoint(&second.partitions);
            // An overwrite by the first commit also "touches" its partitions (removes), which only
            // matters if the second overwrites the same ones: covered by `overlaps`.
            match result {
                Err(Error::Conflict { .. }) => prop_assert!(overlaps, "unexpected conflict"),
                Err(e) => prop_assert!(false, "unexpected error {e}"),
                Ok(outcome) => {
                    prop_assert!(!overlaps, "missed conflict");
                    prop_assert_eq!(outcome.version, base + 2);
                    apply_model(&mut model, &second, &files2);
                }
            }
            model.retain(|_, files| !files.is_empty());
            let fresh = Table::open(Store::from_url(&url).unwrap()).await.unwrap();
            prop_assert_eq!(&live_files(&fresh), &model);
            Ok(())
        })?;
    }
}
