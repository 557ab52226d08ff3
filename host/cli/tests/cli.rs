//! Behaviour every `weir` command shares.

use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_ends_the_command_quietly_without_a_panic() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["pipeline", "schema"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the command writes, as `| head -c 0` would.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(output.status.code(), Some(101), "no panic exit: {stderr}");
}

#[test]
fn unknown_subcommands_are_usage_errors() {
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("frobnicate"));
}
