//! Crash-test hooks, compiled only with the `failpoints` cargo feature (which the crate's own
//! tests turn on through a dev-dependency on itself; production builds carry none of it and
//! never read the environment). With the feature, when the environment variable
//! `WEIR_FAILPOINT` names a point the process reaches, it prints
//! `WEIR_FAILPOINT reached: <name>` to stderr and stops forever, so a test can SIGKILL it
//! exactly there. Points: `before-log-put`, `after-log-put` (in commits); writers may define
//! their own (the test writer uses `before-data`, `mid-data` and `after-data`).

/// The environment variable naming the failpoint to stop at.
pub const ENV: &str = "WEIR_FAILPOINT";

/// Stops the process forever if `WEIR_FAILPOINT` is `name`.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    if std::env::var(ENV).as_deref() != Ok(name) {
        return;
    }
    eprintln!("WEIR_FAILPOINT reached: {name}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Does nothing: built without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
