//! `weir plugin` as a new user runs it: scaffold a plugin, test and build it, inspect it, and run
//! it over Parquet on the host runtime, comparing with expected output.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .env("WEIR_CACHE_DIR", cache_dir())
        .output()
        .expect("running weir")
}

fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("weir-code-cache")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn write_parquet(path: &Path, names: &[Option<&str>]) {
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..names.len() as i64));
    let names: ArrayRef = Arc::new(StringArray::from(names.to_vec()));
    let batch = RecordBatch::try_from_iter([("id", ids), ("name", names)]).unwrap();
    let mut writer =
        ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn scaffold_build_inspect_and_test_a_new_plugin() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("shout");
    let dir_str = dir.to_str().unwrap();

    let created = weir(&["plugin", "new", "shout", "--dir", dir_str]);
    assert!(created.status.success(), "{}", text(&created));
    assert!(dir.join("src/lib.rs").exists());

    // The scaffold's own tests pass natively. Share a target dir so reruns are cheap.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target");
    let tested = Command::new(env!("CARGO"))
        .args(["test", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(tested.status.success(), "scaffold tests: {}", text(&tested));

    let built = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["plugin", "build", dir_str, "--output", "json"])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", text(&built));
    let report: serde_json::Value = serde_json::from_slice(&built.stdout).unwrap();
    let wasm = PathBuf::from(report["path"].as_str().unwrap());
    let digest = report["digest"].as_str().unwrap().to_string();
    use sha2::Digest;
    let actual = hex::encode(sha2::Sha256::digest(std::fs::read(&wasm).unwrap()));
    assert_eq!(
        digest,
        format!("sha256:{actual}"),
        "the printed digest is the file's"
    );
    let wasm_str = wasm.to_str().unwrap();

    let inspected = weir(&["plugin", "inspect", wasm_str]);
    let shown = text(&inspected);
    assert!(inspected.status.success(), "{shown}");
    assert!(shown.contains("name:          shout"), "{shown}");
    assert!(shown.contains(&digest), "{shown}");
    assert!(shown.contains("weir:plugin/transform@0.1.0"), "{shown}");
    assert!(
        shown.contains("\"column\""),
        "the config schema is shown: {shown}"
    );

    let input = work.path().join("in.parquet");
    write_parquet(&input, &[Some("ada"), None, Some("grace")]);
    let input_str = input.to_str().unwrap();
    let ran = weir(&[
        "plugin",
        "test",
        wasm_str,
        "--input",
        input_str,
        "--config",
        r#"{"column": "name"}"#,
    ]);
    let shown = text(&ran);
    assert!(ran.status.success(), "{shown}");
    assert!(
        shown.contains("GRACE") && !shown.contains("grace"),
        "{shown}"
    );
    assert!(shown.contains("3 rows in, 3 rows out"), "{shown}");

    let expected = work.path().join("expected.parquet");
    write_parquet(&expected, &[Some("ADA"), None, Some("GRACE")]);
    let matched = weir(&[
        "plugin",
        "test",
        wasm_str,
        "--input",
        input_str,
        "--config",
        r#"{"column": "name"}"#,
        "--expect",
        expected.to_str().unwrap(),
    ]);
    assert!(matched.status.success(), "{}", text(&matched));

    let wrong = work.path().join("wrong.parquet");
    write_parquet(&wrong, &[Some("ADA"), None, Some("Grace")]);
    let mismatched = weir(&[
        "plugin",
        "test",
        wasm_str,
        "--input",
        input_str,
        "--config",
        r#"{"column": "name"}"#,
        "--expect",
        wrong.to_str().unwrap(),
    ]);
    let shown = text(&mismatched);
    assert!(
        !mismatched.status.success(),
        "a mismatch exits non-zero: {shown}"
    );
    assert!(
        shown.contains("row 2, column name: got GRACE, expected Grace"),
        "{shown}"
    );

    let bad_config = weir(&[
        "plugin",
        "test",
        wasm_str,
        "--input",
        input_str,
        "--config",
        r#"{"column": "nope"}"#,
    ]);
    let shown = text(&bad_config);
    assert!(!bad_config.status.success());
    assert!(
        shown.contains("plugin shout 0.1.0") && shown.contains("nope"),
        "{shown}"
    );
    assert_eq!(
        shown.matches("invalid config").count(),
        1,
        "the reason is said once: {shown}"
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let work = tempfile::tempdir().unwrap();
    let taken = work.path().join("taken");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("x"), "x").unwrap();
    let out = weir(&["plugin", "new", "taken", "--dir", taken.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("already exists"), "{}", text(&out));

    let out = weir(&["plugin", "new", "Bad_Name"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("lowercase"), "{}", text(&out));

    let not_parquet = work.path().join("in.parquet");
    std::fs::write(&not_parquet, "id,name\n1,a\n").unwrap();
    let out = weir(&[
        "plugin",
        "test",
        weir_tests::GUESTS_ECHO,
        "--input",
        not_parquet.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("in.parquet"),
        "names the file: {}",
        text(&out)
    );

    let out = weir(&["plugin", "inspect", "/nonexistent.wasm"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("/nonexistent.wasm"), "{}", text(&out));
}

#[test]
fn inspect_and_test_an_example_plugin() {
    let out = weir(&["plugin", "inspect", weir_tests::FILTER, "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["name"], "filter");
    assert_eq!(info["contract"], "weir:plugin/transform@0.1.0");
    assert!(
        info["imports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.as_str().unwrap().starts_with("wasi:"))
    );

    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in.parquet");
    write_parquet(&input, &[Some("keep"), Some("drop"), None, Some("keep")]);
    let out = weir(&[
        "plugin",
        "test",
        weir_tests::FILTER,
        "--input",
        input.to_str().unwrap(),
        "--output",
        "json",
        "--config",
        r#"{"predicates": [{"column": "name", "op": "eq", "value": "keep"}]}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rows_in"], 4);
    assert_eq!(summary["rows_out"], 2);
}
