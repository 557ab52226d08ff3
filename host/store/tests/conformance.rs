//! The store conformance suite against every backend: `file::*`, `memory::*` and `s3::*`.
//!
//! The `s3::*` tests need an S3-compatible server: run under `scripts/with-s3.sh` (which sets
//! `WEIR_TEST_S3_ENDPOINT`); without it they fail, unless `WEIR_SKIP_S3=1`.

use weir_store::conformance::*;

macro_rules! suite {
    ($($name:ident),+ $(,)?) => {
        weir_store::store_tests!($($name),+);
        const RUN: &[&str] = &[$(stringify!($name)),+];
    };
}

suite!(
    put_get_head_delete,
    create_only_race_has_one_winner,
    already_exists_keeps_the_first_write,
    missing_objects_are_not_found,
    put_if_match_is_compare_and_swap,
    list_with_prefix,
    list_with_delimiter,
    list_after_offset,
    ranged_reads,
    multipart_upload_large_object,
    multipart_abort_leaves_nothing,
    multipart_dropped_writer_aborts,
    put_file_and_buf_writer_above_threshold,
    child_stores_share_objects,
    conditional_write_probe_passes,
);

#[test]
fn every_conformance_function_runs() {
    assert_eq!(
        RUN, ALL,
        "tests/conformance.rs must run every function in conformance::ALL"
    );
}
