//! Delta Lake log actions (protocol, metaData, add, remove, txn, commitInfo) and their JSON form.
//!
//! A log version is newline-delimited JSON, one action per line (`{"add": {...}}`). Unknown action
//! kinds (written by other engines, e.g. `cdc` or `domainMetadata`) are skipped when reading.
//!
//! In memory, `add.path` and `remove.path` are object keys relative to the table root (what a
//! reader fetches); in the log (JSON and checkpoints) they are URI-encoded as the Delta protocol
//! requires ([`encode_path`] on write, [`decode_path`] on read), so hive-escaped directories
//! (`dt=a%2Fb`), spaces and non-ASCII names mean the same file to every engine.
//!
//! `add` and `remove` (all but a handful of lines of a large commit) are written by a direct
//! writer into one buffer; it produces exactly what serde would (tested), only faster.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Partition values of a file: column name to value (`None` is the null partition).
pub type PartitionValues = BTreeMap<String, Option<String>>;

/// The partition values of an `add` or `remove`, shared between the files of one partition: a
/// table of 10,000 files in 10 partitions holds 10 maps, not 10,000 (loading a checkpoint or
/// committing many files interns them).
///
/// Reads as a [`PartitionValues`] (it derefs to one: `values["dt"]`, `values.get(..)`,
/// `&values` where a `&PartitionValues` is wanted). It deliberately does not implement
/// `Clone`, so `values.clone()` gives an owned [`PartitionValues`] as it did when this field was
/// one; [`SharedPartitionValues::share`] is the cheap copy.
#[derive(PartialEq, Eq, Hash, Default)]
pub struct SharedPartitionValues(Arc<PartitionValues>);

impl SharedPartitionValues {
    /// Another handle on the same values (no copy).
    pub fn share(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl Deref for SharedPartitionValues {
    type Target = PartitionValues;
    fn deref(&self) -> &PartitionValues {
        &self.0
    }
}

impl From<PartitionValues> for SharedPartitionValues {
    fn from(values: PartitionValues) -> Self {
        Self(Arc::new(values))
    }
}

impl From<Arc<PartitionValues>> for SharedPartitionValues {
    fn from(values: Arc<PartitionValues>) -> Self {
        Self(values)
    }
}

impl<const N: usize> From<[(String, Option<String>); N]> for SharedPartitionValues {
    fn from(entries: [(String, Option<String>); N]) -> Self {
        Self(Arc::new(entries.into()))
    }
}

/// Hands out one [`SharedPartitionValues`] per distinct set of partition values.
#[derive(Default)]
pub(crate) struct ValuesInterner {
    table: hashbrown::HashTable<(u64, Arc<PartitionValues>)>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl ValuesInterner {
    /// Order-independent: the sum of the entries' hashes.
    fn hash<'a>(&self, entries: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> u64 {
        use std::hash::BuildHasher;
        entries.fold(0u64, |sum, entry| {
            sum.wrapping_add(self.hasher.hash_one(entry))
        })
    }

    /// The shared values with exactly these entries (given in any order).
    pub fn intern<'a, I>(&mut self, entries: I) -> SharedPartitionValues
    where
        I: Iterator<Item = (&'a str, Option<&'a str>)> + Clone,
    {
        let hash = self.hash(entries.clone());
        let count = entries.clone().count();
        let same = |map: &PartitionValues| {
            map.len() == count
                && entries
                    .clone()
                    .all(|(k, v)| map.get(k).is_some_and(|have| have.as_deref() == v))
        };
        if let Some((_, found)) = self.table.find(hash, |(h, map)| *h == hash && same(map)) {
            return SharedPartitionValues(Arc::clone(found));
        }
        let map: PartitionValues = entries
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        // From the map itself (a repeated key counts once there).
        let hash = self.hash(map.iter().map(|(k, v)| (k.as_str(), v.as_deref())));
        let map = Arc::new(map);
        self.table
            .insert_unique(hash, (hash, Arc::clone(&map)), |(h, _)| *h);
        SharedPartitionValues(map)
    }
}

impl fmt::Debug for SharedPartitionValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for SharedPartitionValues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SharedPartitionValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        PartitionValues::deserialize(deserializer).map(Self::from)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Protocol {
    pub min_reader_version: i32,
    pub min_writer_version: i32,
}

impl Default for Protocol {
    fn default() -> Self {
        Self {
            min_reader_version: 1,
            min_writer_version: 2,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Format {
    pub provider: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Default for Format {
    fn default() -> Self {
        Self {
            provider: "parquet".into(),
            options: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub format: Format,
    pub schema_string: String,
    #[serde(default)]
    pub partition_columns: Vec<String>,
    #[serde(default)]
    pub configuration: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<i64>,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Add {
    /// The object key relative to the table root (URI-encoded only in the log).
    #[serde(with = "uri_path")]
    pub path: String,
    #[serde(default)]
    pub partition_values: SharedPartitionValues,
    pub size: i64,
    pub modification_time: i64,
    pub data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remove {
    /// The object key relative to the table root (URI-encoded only in the log).
    #[serde(with = "uri_path")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<i64>,
    pub data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_file_metadata: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_values: Option<SharedPartitionValues>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

// By hand: the partition values are shared, not copied.
impl Clone for Add {
    fn clone(&self) -> Self {
        Self {
            path: self.path.clone(),
            partition_values: self.partition_values.share(),
            size: self.size,
            modification_time: self.modification_time,
            data_change: self.data_change,
            stats: self.stats.clone(),
            tags: self.tags.clone(),
        }
    }
}

impl Clone for Remove {
    fn clone(&self) -> Self {
        Self {
            path: self.path.clone(),
            deletion_timestamp: self.deletion_timestamp,
            data_change: self.data_change,
            extended_file_metadata: self.extended_file_metadata,
            partition_values: self
                .partition_values
                .as_ref()
                .map(SharedPartitionValues::share),
            size: self.size,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Txn {
    pub app_id: String,
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<i64>,
}

/// Provenance of a commit. Delta lets writers put anything here; Weir records its transaction id
/// (so a writer can recognise its own commit after an ambiguous PUT), job, owner and lease epochs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub operation_parameters: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_blind_append: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_info: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weir_txn_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weir_job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weir_run: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weir_owner: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weir_epochs: BTreeMap<String, u64>,
    /// Fields written by other engines, kept so they round-trip.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// One line of a Delta log version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Protocol(Protocol),
    MetaData(Metadata),
    Add(Add),
    Remove(Remove),
    Txn(Txn),
    CommitInfo(CommitInfo),
}

/// Bytes left as they are in a log path: ASCII letters and digits, the RFC 2396 marks that need
/// no escaping anywhere (`-_.~`), the path separator and `=` (hive directories). Every other byte,
/// `%` included, is `%XX`-encoded (non-ASCII as its UTF-8 bytes).
static PATH_KEEP: [bool; 256] = {
    let mut keep = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        keep[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~' | b'/' | b'=');
        b += 1;
    }
    keep
};

/// The log form of an object key: URI-encoded (`dt=a%2Fb/x y.parquet` -> `dt=a%252Fb/x%20y.parquet`).
pub fn encode_path(key: &str) -> Cow<'_, str> {
    if key.bytes().all(|b| PATH_KEEP[b as usize]) {
        return Cow::Borrowed(key);
    }
    let mut out = Vec::with_capacity(key.len() * 3 / 2);
    write_encoded_path(&mut out, key);
    // Only ASCII is written.
    Cow::Owned(String::from_utf8(out).expect("encoded paths are ASCII"))
}

/// The object key of a log path (URI-decoded). Fails if the decoded bytes are not UTF-8.
pub fn decode_path(path: &str) -> Result<Cow<'_, str>, String> {
    // A plain byte loop: paths are short, and this runs for every file of a checkpoint.
    if !path.bytes().any(|b| b == b'%') {
        return Ok(Cow::Borrowed(path));
    }
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|e| format!("path {path:?} is not URI-encoded UTF-8: {e}"))
}

/// Serde form of `add.path` / `remove.path`: encoded in the log, decoded in memory.
mod uri_path {
    use super::*;

    pub fn serialize<S: Serializer>(key: &str, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&encode_path(key))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        let raw = String::deserialize(deserializer)?;
        match decode_path(&raw).map_err(serde::de::Error::custom)? {
            Cow::Borrowed(_) => Ok(raw),
            Cow::Owned(key) => Ok(key),
        }
    }
}

/// Serialises actions as newline-delimited JSON.
pub fn to_ndjson(actions: &[Action]) -> Vec<u8> {
    let mut out = Vec::with_capacity(actions.iter().map(size_hint).sum());
    write_ndjson(&mut out, actions);
    out
}

/// Appends actions as newline-delimited JSON to `out`.
pub fn write_ndjson(out: &mut Vec<u8>, actions: &[Action]) {
    for action in actions {
        match action {
            Action::Add(add) => write_add(out, add),
            Action::Remove(remove) => write_remove(out, remove),
            // Serialising these plain structs into a Vec cannot fail.
            other => serde_json::to_writer(&mut *out, other).expect("actions serialise"),
        }
        out.push(b'\n');
    }
}

/// Bytes an action takes in the log, roughly (for pre-sizing buffers).
pub(crate) fn size_hint(action: &Action) -> usize {
    match action {
        Action::Add(a) => add_size_hint(a),
        Action::Remove(r) => {
            160 + r.path.len() * 3 / 2 + r.partition_values.as_deref().map_or(0, values_size_hint)
        }
        _ => 512,
    }
}

/// Bytes an `add` line takes, roughly.
pub(crate) fn add_size_hint(add: &Add) -> usize {
    120 + add.path.len() * 3 / 2
        + values_size_hint(&add.partition_values)
        + add.stats.as_ref().map_or(0, |s| s.len() * 5 / 4)
}

fn values_size_hint(values: &PartitionValues) -> usize {
    values
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(4, String::len) + 8)
        .sum()
}

/// Writes one `add` line body, field for field what serde writes.
pub(crate) fn write_add(out: &mut Vec<u8>, add: &Add) {
    write_add_line(
        out,
        &AddLine {
            path: &add.path,
            partition_values: &add.partition_values,
            size: add.size,
            modification_time: add.modification_time,
            data_change: add.data_change,
            stats: match &add.stats {
                Some(stats) => Stats::Json(stats),
                None => Stats::None,
            },
            tags: add.tags.as_ref(),
        },
    );
}

/// The `stats` of an `add` line.
pub(crate) enum Stats<'a> {
    None,
    /// The stats JSON as given.
    Json(&'a str),
    /// `{"numRecords":n}`.
    NumRecords(i64),
}

/// The fields of an `add` line, borrowed from wherever they are (a committer writes lines
/// before it has built its [`Add`]s).
pub(crate) struct AddLine<'a> {
    pub path: &'a str,
    pub partition_values: &'a PartitionValues,
    pub size: i64,
    pub modification_time: i64,
    pub data_change: bool,
    pub stats: Stats<'a>,
    pub tags: Option<&'a BTreeMap<String, Option<String>>>,
}

/// Writes one `add` line body from its fields, exactly as [`write_add`] writes the [`Add`]
/// with those fields.
pub(crate) fn write_add_line(out: &mut Vec<u8>, add: &AddLine<'_>) {
    out.extend_from_slice(b"{\"add\":{\"path\":\"");
    write_encoded_path(out, add.path);
    out.extend_from_slice(b"\",\"partitionValues\":");
    write_string_map(out, add.partition_values);
    out.extend_from_slice(b",\"size\":");
    write_int(out, add.size);
    out.extend_from_slice(b",\"modificationTime\":");
    write_int(out, add.modification_time);
    out.extend_from_slice(b",\"dataChange\":");
    write_bool(out, add.data_change);
    match add.stats {
        Stats::None => {}
        Stats::Json(stats) => {
            out.extend_from_slice(b",\"stats\":");
            write_str(out, stats);
        }
        Stats::NumRecords(n) => {
            // The JSON string of `{"numRecords":n}` (digits and '-' need no escaping).
            out.extend_from_slice(b",\"stats\":\"{\\\"numRecords\\\":");
            write_int(out, n);
            out.extend_from_slice(b"}\"");
        }
    }
    if let Some(tags) = add.tags {
        out.extend_from_slice(b",\"tags\":");
        write_string_map(out, tags);
    }
    out.extend_from_slice(b"}}");
}

/// Writes one `remove` line body, field for field what serde writes.
pub(crate) fn write_remove(out: &mut Vec<u8>, remove: &Remove) {
    out.extend_from_slice(b"{\"remove\":{\"path\":\"");
    write_encoded_path(out, &remove.path);
    out.push(b'"');
    if let Some(ts) = remove.deletion_timestamp {
        out.extend_from_slice(b",\"deletionTimestamp\":");
        write_int(out, ts);
    }
    out.extend_from_slice(b",\"dataChange\":");
    write_bool(out, remove.data_change);
    if let Some(extended) = remove.extended_file_metadata {
        out.extend_from_slice(b",\"extendedFileMetadata\":");
        write_bool(out, extended);
    }
    if let Some(values) = &remove.partition_values {
        out.extend_from_slice(b",\"partitionValues\":");
        write_string_map(out, values);
    }
    if let Some(size) = remove.size {
        out.extend_from_slice(b",\"size\":");
        write_int(out, size);
    }
    out.extend_from_slice(b"}}");
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Writes the URI-encoded form of `key`. It is plain ASCII without quotes or backslashes, so it
/// needs no JSON escaping either.
fn write_encoded_path(out: &mut Vec<u8>, key: &str) {
    let bytes = key.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if PATH_KEEP[b as usize] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(&[
            b'%',
            HEX_UPPER[(b >> 4) as usize],
            HEX_UPPER[(b & 15) as usize],
        ]);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

fn write_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn write_string_map(out: &mut Vec<u8>, map: &BTreeMap<String, Option<String>>) {
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        match value {
            Some(v) => write_str(out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

/// How each byte is escaped in a JSON string: 0 = as is, `u` = `\\u00XX`, else `\\` + that byte
/// (serde_json's table).
static JSON_ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// Writes a JSON string, escaping exactly as serde_json does (`"`, `\\`, control characters).
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = JSON_ESCAPE[b as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if escape == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX_LOWER[(b >> 4) as usize],
                HEX_LOWER[(b & 15) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Parses one log version. Blank lines and unknown action kinds are skipped.
pub fn parse_ndjson(bytes: &[u8]) -> Result<Vec<Action>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut actions = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if let Some(action) = parse_action(value).map_err(|e| format!("line {}: {e}", n + 1))? {
            actions.push(action);
        }
    }
    Ok(actions)
}

/// Parses one action object (`{"kind": {...}}`); `Ok(None)` for kinds Weir does not use.
pub fn parse_action(value: serde_json::Value) -> Result<Option<Action>, String> {
    let serde_json::Value::Object(map) = value else {
        return Err("action is not a JSON object".into());
    };
    for (kind, body) in map {
        if body.is_null() {
            continue;
        }
        let known = matches!(
            kind.as_str(),
            "protocol" | "metaData" | "add" | "remove" | "txn" | "commitInfo"
        );
        if !known {
            continue;
        }
        let mut single = serde_json::Map::new();
        single.insert(kind.clone(), body);
        let action = serde_json::from_value(serde_json::Value::Object(single))
            .map_err(|e| format!("bad {kind} action: {e}"))?;
        return Ok(Some(action));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_skips_unknown_actions() {
        let actions = vec![
            Action::Protocol(Protocol::default()),
            Action::Add(Add {
                path: "dt=2026-01-01/a.parquet".into(),
                partition_values: [("dt".to_string(), Some("2026-01-01".to_string()))].into(),
                size: 10,
                modification_time: 1,
                data_change: true,
                stats: None,
                tags: None,
            }),
            Action::Txn(Txn {
                app_id: "job".into(),
                version: 3,
                last_updated: None,
            }),
        ];
        let mut bytes = to_ndjson(&actions);
        bytes.extend_from_slice(b"{\"cdc\":{\"path\":\"x\"}}\n\n");
        assert_eq!(parse_ndjson(&bytes).unwrap(), actions);
        let text = String::from_utf8(to_ndjson(&actions[..1])).unwrap();
        assert_eq!(
            text,
            "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":2}}\n"
        );
    }

    fn odd_add(path: &str, value: Option<&str>) -> Add {
        Add {
            path: path.into(),
            partition_values: [
                ("dt".to_string(), value.map(str::to_string)),
                ("k\"ey".to_string(), Some("tab\there\u{1}\\".to_string())),
            ]
            .into(),
            size: -1,
            modification_time: i64::MAX,
            data_change: false,
            stats: Some("{\"numRecords\":3,\"minValues\":{\"s\":\"a\\\"b\\n\"}}".into()),
            tags: Some([("t".to_string(), None)].into()),
        }
    }

    #[test]
    fn direct_writer_matches_serde() {
        let actions = vec![
            Action::Add(odd_add("dt=a b%25c%2Fd/part é#1.parquet", Some("a b%c/d"))),
            Action::Add(Add {
                stats: None,
                tags: None,
                ..odd_add("plain.parquet", None)
            }),
            Action::Remove(Remove {
                path: "dt=x%3Dy/f 1.parquet".into(),
                deletion_timestamp: Some(7),
                data_change: true,
                extended_file_metadata: Some(false),
                partition_values: Some([("dt".to_string(), Some("x=y".to_string()))].into()),
                size: Some(9),
            }),
            Action::Remove(Remove {
                path: "r.parquet".into(),
                deletion_timestamp: None,
                data_change: false,
                extended_file_metadata: None,
                partition_values: None,
                size: None,
            }),
        ];
        let fast = to_ndjson(&actions);
        let mut via_serde = Vec::new();
        for action in &actions {
            serde_json::to_writer(&mut via_serde, action).unwrap();
            via_serde.push(b'\n');
        }
        assert_eq!(
            String::from_utf8(fast.clone()).unwrap(),
            String::from_utf8(via_serde).unwrap()
        );
        assert_eq!(parse_ndjson(&fast).unwrap(), actions);
    }

    #[test]
    fn paths_are_uri_encoded_in_the_log_only() {
        let key = "dt=a b%25c%2Fd/x#?é+.parquet";
        let encoded = encode_path(key);
        assert_eq!(encoded, "dt=a%20b%2525c%252Fd/x%23%3F%C3%A9%2B.parquet");
        assert_eq!(decode_path(&encoded).unwrap(), key);
        assert_eq!(
            encode_path("dt=2026-01-01/part-0_a.parquet"),
            "dt=2026-01-01/part-0_a.parquet"
        );
        let line = to_ndjson(&[Action::Add(odd_add(key, None))]);
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(
            text.contains("\"path\":\"dt=a%20b%2525c%252Fd/x%23%3F%C3%A9%2B.parquet\""),
            "{text}"
        );
        let Action::Add(add) = &parse_ndjson(&line).unwrap()[0] else {
            panic!("not an add")
        };
        assert_eq!(add.path, key);
        let err = decode_path("bad%FF").unwrap_err();
        assert!(err.contains("bad%FF"), "{err}");
    }

    #[test]
    fn bad_line_is_reported_by_number() {
        let err = parse_ndjson(b"{\"txn\":{\"appId\":\"a\",\"version\":1}}\n{oops").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
