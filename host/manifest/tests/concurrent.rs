//! Two writer processes race for the same partition, over many randomised trials. The partition
//! never holds a mix of both jobs' rows, and the loser gets the lease (or ownership) error.
//!
//! Runs on `file://` and on `s3://` (moto), 100 trials each; not on `memory://`, which a child
//! process cannot open.

mod common;

use std::process::Stdio;
use std::time::Duration;

use rand::Rng;
use weir_manifest::Table;
use weir_store::Store;

const TRIALS: usize = 100;

weir_store::store_tests!(racing_writers_never_mix_a_partition in [file, s3]);

async fn racing_writers_never_mix_a_partition(store: &Store) {
    let mut rng = rand::rng();
    let (mut lease_losses, mut ownership_losses) = (0, 0);
    for trial in 0..TRIALS {
        let table = Table::create(store.child(&format!("t{trial}")))
            .schema(common::schema())
            .partition_by(["dt"])
            .owner("*", "etl")
            .await
            .unwrap();
        // Half the trials: both run as the owner (the lease decides). Otherwise one is not the owner.
        let intruder = if rng.random_bool(0.5) {
            Some(rng.random_range(0..2))
        } else {
            None
        };
        let mut children = Vec::new();
        for w in 0..2 {
            let delay = Duration::from_micros(rng.random_range(0..3000));
            let owner = if intruder == Some(w) { "fraud" } else { "etl" };
            let start = (w as i64) * 1000;
            let mode = if rng.random_bool(0.5) {
                "overwrite"
            } else {
                "append"
            };
            let child = common::writer(table.store())
                .args(["--job", &format!("job-{w}"), "--partition", "dt=d1"])
                .args([
                    "--rows",
                    "20",
                    "--files",
                    "2",
                    "--start",
                    &start.to_string(),
                ])
                .args(["--owner", owner, "--mode", mode])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            children.push((child, delay));
            std::thread::sleep(delay);
        }
        let outputs: Vec<_> = children
            .into_iter()
            .map(|(c, _)| c.wait_with_output().unwrap())
            .collect();
        let codes: Vec<i32> = outputs
            .iter()
            .map(|o| o.status.code().unwrap_or(-1))
            .collect();
        let winners: Vec<usize> = (0..2).filter(|&w| codes[w] == 0).collect();
        let stderr = |w: usize| String::from_utf8_lossy(&outputs[w].stderr).to_string();
        assert_eq!(
            winners.len(),
            1,
            "trial {trial}: exit codes {codes:?}: {} | {}",
            stderr(0),
            stderr(1)
        );
        let winner = winners[0];
        let loser = 1 - winner;
        match intruder {
            Some(w) => {
                assert_eq!(loser, w, "trial {trial}: the non-owner must lose");
                assert_eq!(codes[loser], 3, "trial {trial}: {}", stderr(loser));
                assert!(
                    stderr(loser).contains("is owned by etl; this job runs as fraud"),
                    "{}",
                    stderr(loser)
                );
                ownership_losses += 1;
            }
            None => {
                assert_eq!(codes[loser], 2, "trial {trial}: {}", stderr(loser));
                let message = stderr(loser);
                assert!(
                    message.contains(&format!("leased by job-{winner}/1"))
                        && message.contains("until"),
                    "trial {trial}: {message}"
                );
                lease_losses += 1;
            }
        }
        // The partition holds exactly the winner's rows.
        let rows = common::committed_rows(&table).await;
        let start = winner as i64 * 1000;
        let expected: Vec<_> = (start..start + 20).map(|i| ("d1".to_string(), i)).collect();
        assert_eq!(rows, expected, "trial {trial}");
    }
    assert_eq!(lease_losses + ownership_losses, TRIALS);
    assert!(lease_losses > 0 && ownership_losses > 0);
}
