use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int8Array, Int64Array, LargeStringArray, StringArray,
    StringViewArray, UInt64Array,
};
use arrow::datatypes::DataType;
use sha2::{Digest, Sha256};
use weir_plugin_mask::Mask;
use weir_sdk::RecordBatch;
use weir_sdk::testing::Rng;
use weir_sdk::testing::{Harness, run};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// BLAKE3 through the incremental API (a different path from the plugin's `keyed_hash`).
fn ref_blake3(key: &str, value: &[u8]) -> String {
    let mut kdf = blake3::Hasher::new_derive_key("weir mask v1");
    kdf.update(key.as_bytes());
    let derived: [u8; 32] = *kdf.finalize().as_bytes();
    let mut h = blake3::Hasher::new_keyed(&derived);
    h.update(value);
    h.finalize().to_hex().to_string()
}

/// HMAC-SHA256 written out from RFC 2104 on top of plain SHA-256 (independent of the hmac crate).
fn ref_hmac(key: &str, value: &[u8]) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key.as_bytes()));
    } else {
        k[..key.len()].copy_from_slice(key.as_bytes());
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::digest([ipad.as_slice(), value].concat());
    hex(&Sha256::digest(
        [opad.as_slice(), inner.as_slice()].concat(),
    ))
}

fn ref_sha256(key: &str, value: &[u8]) -> String {
    hex(&Sha256::digest([key.as_bytes(), value].concat()))
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let column = batch.column_by_name(name).unwrap();
    match column.data_type() {
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(String::from))
            .collect(),
        DataType::LargeUtf8 => column
            .as_string::<i64>()
            .iter()
            .map(|v| v.map(String::from))
            .collect(),
        DataType::Utf8View => column
            .as_string_view()
            .iter()
            .map(|v| v.map(String::from))
            .collect(),
        other => panic!("{name} is {other}"),
    }
}

fn users() -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "user_id",
            Arc::new(StringArray::from(vec![
                Some("u-1001"),
                None,
                Some("u-1002"),
                Some(""),
            ])) as ArrayRef,
        ),
        (
            "email",
            Arc::new(StringArray::from(vec![
                Some("ada@example.com"),
                Some("bob@example.org"),
                None,
                Some(""),
            ])),
        ),
        (
            "ip",
            Arc::new(StringArray::from(vec![
                Some("192.168.10.23"),
                Some("10.0.0.1"),
                Some("::1"),
                None,
            ])),
        ),
        (
            "cost",
            Arc::new(Float64Array::from(vec![1.5, 2.0, 0.0, -3.0])),
        ),
    ])
    .unwrap()
}

const CONFIG: &str = r#"{
    "key": "s3cret",
    "columns": {
        "user_id": {"method": "hash"},
        "email": {"method": "redact", "replacement": "<redacted>"},
        "ip": {"method": "truncate", "keep": 7}
    }
}"#;

#[test]
fn hash_redact_truncate_with_defaults() {
    let out = run::<Mask>(CONFIG, &[users()]).unwrap();
    assert_eq!(out.len(), 1);
    let out = &out[0];
    assert_eq!(out.schema(), users().schema());
    let expected_hash = |v: &str| Some(ref_blake3("s3cret", v.as_bytes())[..32].to_string());
    assert_eq!(
        strings(out, "user_id"),
        vec![
            expected_hash("u-1001"),
            None,
            expected_hash("u-1002"),
            expected_hash("")
        ]
    );
    assert_eq!(
        strings(out, "email"),
        vec![
            Some("<redacted>".into()),
            Some("<redacted>".into()),
            None,
            Some("<redacted>".into())
        ]
    );
    assert_eq!(
        strings(out, "ip"),
        vec![
            Some("192.168".into()),
            Some("10.0.0.".into()),
            Some("::1".into()),
            None
        ]
    );
    // Untouched column.
    assert_eq!(out.column(3), users().column(3));
}

#[test]
fn redact_defaults_to_stars_and_truncate_counts_chars() {
    let batch = RecordBatch::try_from_iter([
        (
            "name",
            Arc::new(StringArray::from(vec![
                Some("Zoë Ünïcödé"),
                None,
                Some("ab"),
            ])) as ArrayRef,
        ),
        (
            "note",
            Arc::new(StringArray::from(vec![Some("x"), None, Some("y")])),
        ),
    ])
    .unwrap();
    let out = run::<Mask>(
        r#"{"columns": {"name": {"method": "truncate", "keep": 4}, "note": {"method": "redact"}}}"#,
        &[batch],
    )
    .unwrap();
    assert_eq!(
        strings(&out[0], "name"),
        vec![Some("Zoë ".into()), None, Some("ab".into())]
    );
    assert_eq!(
        strings(&out[0], "note"),
        vec![Some("***".into()), None, Some("***".into())]
    );
}

#[test]
fn known_answer_vectors() {
    // RFC 4231 test case 2.
    let batch = RecordBatch::try_from_iter([(
        "v",
        Arc::new(StringArray::from(vec!["what do ya want for nothing?"])) as ArrayRef,
    )])
    .unwrap();
    let out = run::<Mask>(
        r#"{"key": "Jefe", "algorithm": "hmac-sha256", "hash_length": 64, "columns": {"v": {"method": "hash"}}}"#,
        &[batch],
    )
    .unwrap();
    assert_eq!(
        strings(&out[0], "v"),
        vec![Some(
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843".into()
        )]
    );

    // sha256("a" || "bc") = SHA-256("abc") from FIPS 180-2.
    let batch =
        RecordBatch::try_from_iter([("v", Arc::new(StringArray::from(vec!["bc"])) as ArrayRef)])
            .unwrap();
    let out = run::<Mask>(
        r#"{"key": "a", "algorithm": "sha256", "hash_length": 64, "columns": {"v": {"method": "hash"}}}"#,
        &[batch],
    )
    .unwrap();
    assert_eq!(
        strings(&out[0], "v"),
        vec![Some(
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
        )]
    );
}

#[test]
fn integers_hash_their_decimal_string_into_utf8() {
    let batch = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from(vec![
                Some(-42),
                None,
                Some(0),
                Some(i64::MIN),
            ])) as ArrayRef,
        ),
        (
            "small",
            Arc::new(Int8Array::from(vec![Some(7), Some(-128), None, Some(127)])),
        ),
        (
            "big",
            Arc::new(UInt64Array::from(vec![
                Some(u64::MAX),
                Some(10),
                Some(0),
                None,
            ])),
        ),
    ])
    .unwrap();
    let config = r#"{"key": "k", "algorithm": "sha256", "hash_length": 64, "columns": {
        "id": {"method": "hash"}, "small": {"method": "hash"}, "big": {"method": "hash"}}}"#;
    let mut harness = Harness::<Mask>::open(config, batch.schema()).unwrap();
    let schema = harness.output_schema();
    for name in ["id", "small", "big"] {
        assert_eq!(
            schema.field_with_name(name).unwrap().data_type(),
            &DataType::Utf8
        );
    }
    let out = harness.process(&batch).unwrap();
    let h = |s: &str| Some(ref_sha256("k", s.as_bytes()));
    assert_eq!(
        strings(&out[0], "id"),
        vec![h("-42"), None, h("0"), h("-9223372036854775808")]
    );
    assert_eq!(
        strings(&out[0], "small"),
        vec![h("7"), h("-128"), None, h("127")]
    );
    assert_eq!(
        strings(&out[0], "big"),
        vec![h("18446744073709551615"), h("10"), h("0"), None]
    );
}

#[test]
fn large_and_view_strings_keep_their_type() {
    let batch = RecordBatch::try_from_iter([
        (
            "large",
            Arc::new(LargeStringArray::from(vec![Some("alpha"), None])) as ArrayRef,
        ),
        (
            "view",
            Arc::new(StringViewArray::from(vec![
                None,
                Some("a value longer than twelve"),
            ])),
        ),
    ])
    .unwrap();
    let config = r#"{"key": "k", "algorithm": "hmac-sha256", "hash_length": 7, "columns": {
        "large": {"method": "hash"}, "view": {"method": "truncate", "keep": 3}}}"#;
    let out = run::<Mask>(config, std::slice::from_ref(&batch)).unwrap();
    assert_eq!(out[0].schema(), batch.schema());
    assert_eq!(
        strings(&out[0], "large"),
        vec![Some(ref_hmac("k", b"alpha")[..7].to_string()), None]
    );
    assert_eq!(strings(&out[0], "view"), vec![None, Some("a v".into())]);

    let config = r#"{"key": "k", "columns": {"view": {"method": "hash"}}}"#;
    let out = run::<Mask>(config, &[batch]).unwrap();
    assert_eq!(
        strings(&out[0], "view"),
        vec![
            None,
            Some(ref_blake3("k", b"a value longer than twelve")[..32].to_string())
        ]
    );
}

#[test]
fn multiple_batches_and_empty_batches() {
    let batch = users();
    let out = run::<Mask>(
        CONFIG,
        &[batch.clone(), batch.slice(0, 0), batch.slice(2, 2)],
    )
    .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].num_rows(), 2);
    assert_eq!(
        strings(&out[1], "user_id"),
        strings(&out[0], "user_id")[2..].to_vec()
    );
}

#[test]
fn different_keys_and_algorithms_give_different_hashes() {
    let hash = |config: &str| strings(&run::<Mask>(config, &[users()]).unwrap()[0], "user_id");
    let a = hash(r#"{"key": "k1", "columns": {"user_id": {"method": "hash"}}}"#);
    let b = hash(r#"{"key": "k2", "columns": {"user_id": {"method": "hash"}}}"#);
    let c =
        hash(r#"{"key": "k1", "algorithm": "sha256", "columns": {"user_id": {"method": "hash"}}}"#);
    assert_ne!(a[0], b[0]);
    assert_ne!(a[0], c[0]);
    assert_eq!(a[0].as_ref().unwrap().len(), 32);
}

#[test]
fn config_errors_name_the_field_or_column() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"{"columns": {"user_id": {"method": "hash"}}}"#,
            &["key", "\"user_id\""],
        ),
        (
            r#"{"key": "", "columns": {"user_id": {"method": "hash"}}}"#,
            &["key"],
        ),
        (
            r#"{"key": "k", "hash_length": 0, "columns": {"user_id": {"method": "hash"}}}"#,
            &["hash_length", "0"],
        ),
        (
            r#"{"key": "k", "hash_length": 65, "columns": {"user_id": {"method": "hash"}}}"#,
            &["hash_length", "65"],
        ),
        (
            r#"{"key": "k", "columns": {"phone": {"method": "hash"}}}"#,
            &["\"phone\"", "not found"],
        ),
        (
            r#"{"key": "k", "columns": {"cost": {"method": "hash"}}}"#,
            &["\"cost\"", "Float64", "hash"],
        ),
        (
            r#"{"columns": {"cost": {"method": "redact"}}}"#,
            &["\"cost\"", "redact"],
        ),
        (
            r#"{"columns": {"cost": {"method": "truncate", "keep": 1}}}"#,
            &["\"cost\"", "truncate"],
        ),
        (r#"{"columns": {}}"#, &["columns"]),
        (r#"{"columns": {"ip": {"method": "truncate"}}}"#, &["keep"]),
        (
            r#"{"columns": {"ip": {"method": "scramble"}}}"#,
            &["scramble"],
        ),
        (
            r#"{"columns": {"ip": {"method": "redact", "keep": 2}}}"#,
            &["keep"],
        ),
        (
            r#"{"key": "k", "algorithm": "md5", "columns": {"ip": {"method": "hash"}}}"#,
            &["md5"],
        ),
        (r#"{"key": "k", "colums": {}}"#, &["colums"]),
    ];
    for (config, needles) in cases {
        weir_sdk::testing::assert_config_error::<Mask>(config, users().schema(), needles);
    }
}

#[test]
fn random_data_matches_reference_implementations() {
    let mut rng = Rng(7);
    let alphabet: Vec<char> = "abcXYZ019@.-_ éü中🙂".chars().collect();
    for round in 0..60 {
        let n = rng.below(200) as usize;
        let text: Vec<Option<String>> = (0..n)
            .map(|_| {
                (rng.below(6) > 0).then(|| {
                    (0..rng.below(90))
                        .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                        .collect()
                })
            })
            .collect();
        let ints: Vec<Option<i64>> = (0..n)
            .map(|_| (rng.below(6) > 0).then(|| rng.next_u64() as i64 >> rng.below(64)))
            .collect();
        let batch = RecordBatch::try_from_iter([
            (
                "text",
                Arc::new(StringArray::from(text.clone())) as ArrayRef,
            ),
            ("cut", Arc::new(StringArray::from(text.clone()))),
            ("ints", Arc::new(Int64Array::from(ints.clone()))),
        ])
        .unwrap();
        let algorithm = ["blake3", "hmac-sha256", "sha256"][round % 3];
        let length = 1 + rng.below(64) as usize;
        let keep = rng.below(10) as usize;
        let key: String = (0..1 + rng.below(100))
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let config = format!(
            r#"{{"key": "{key}", "algorithm": "{algorithm}", "hash_length": {length}, "columns": {{
                "text": {{"method": "hash"}}, "ints": {{"method": "hash"}},
                "cut": {{"method": "truncate", "keep": {keep}}}}}}}"#
        );
        let reference = |value: &[u8]| -> String {
            let full = match algorithm {
                "blake3" => ref_blake3(&key, value),
                "hmac-sha256" => ref_hmac(&key, value),
                _ => ref_sha256(&key, value),
            };
            full[..length].to_string()
        };
        let out = run::<Mask>(&config, &[batch]).unwrap();
        let got_text = if n == 0 {
            vec![]
        } else {
            strings(&out[0], "text")
        };
        let got_ints = if n == 0 {
            vec![]
        } else {
            strings(&out[0], "ints")
        };
        let got_cut = if n == 0 {
            vec![]
        } else {
            strings(&out[0], "cut")
        };
        for i in 0..n {
            assert_eq!(
                got_text[i],
                text[i].as_ref().map(|t| reference(t.as_bytes())),
                "round {round} row {i} ({algorithm})"
            );
            assert_eq!(
                got_ints[i],
                ints[i].map(|v| reference(v.to_string().as_bytes())),
                "round {round} row {i} ({algorithm})"
            );
            assert_eq!(
                got_cut[i],
                text[i]
                    .as_ref()
                    .map(|t| t.chars().take(keep).collect::<String>()),
                "round {round} row {i}"
            );
        }
    }
}

#[test]
fn null_count_is_preserved() {
    let out = run::<Mask>(CONFIG, &[users()]).unwrap();
    for (i, column) in out[0].columns().iter().enumerate() {
        assert_eq!(column.null_count(), users().column(i).null_count());
    }
}

#[test]
fn redact_keeps_nulls_in_every_string_type() {
    let batch = RecordBatch::try_from_iter([
        (
            "large",
            Arc::new(LargeStringArray::from(vec![Some("a"), None, Some("")])) as ArrayRef,
        ),
        (
            "sliced",
            Arc::new(StringArray::from(vec![Some("x"), Some("y"), None, Some("z")]).slice(1, 3)),
        ),
    ])
    .unwrap();
    let config = r#"{"columns": {"large": {"method": "redact", "replacement": "‽‽"},
        "sliced": {"method": "redact", "replacement": "‽‽"}}}"#;
    let out = run::<Mask>(config, &[batch]).unwrap();
    let large = out[0].column(0).as_string::<i64>();
    let expected = vec![Some("‽‽"), None, Some("‽‽")];
    assert_eq!(large.iter().collect::<Vec<_>>(), expected);
    assert_eq!(
        strings(&out[0], "sliced"),
        vec![Some("‽‽".into()), None, Some("‽‽".into())]
    );
}
