//! Crash-test hooks. When the environment variable `WEIR_FAILPOINT` names a point the process
//! reaches, it prints `WEIR_FAILPOINT reached: <name>` to stderr and stops forever, so a test can
//! SIGKILL it exactly there. Points: `before-log-put`, `after-log-put` (in commits); writers may
//! define their own (the test writer uses `before-data` and `after-data`).

/// The environment variable naming the failpoint to stop at.
pub const ENV: &str = "WEIR_FAILPOINT";

/// Stops the process forever if `WEIR_FAILPOINT` is `name`.
pub fn hit(name: &str) {
    if std::env::var(ENV).as_deref() != Ok(name) {
        return;
    }
    eprintln!("WEIR_FAILPOINT reached: {name}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
