//! The transactional table manifest: a Delta Lake log with enforced partition ownership and write leases
