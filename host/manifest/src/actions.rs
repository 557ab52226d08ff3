//! Delta Lake log actions (protocol, metaData, add, remove, txn, commitInfo) and their JSON form.
//!
//! A log version is newline-delimited JSON, one action per line (`{"add": {...}}`). Unknown action
//! kinds (written by other engines, e.g. `cdc` or `domainMetadata`) are skipped when reading.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Partition values of a file: column name to value (`None` is the null partition).
pub type PartitionValues = BTreeMap<String, Option<String>>;

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Add {
    pub path: String,
    #[serde(default)]
    pub partition_values: PartitionValues,
    pub size: i64,
    pub modification_time: i64,
    pub data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remove {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<i64>,
    pub data_change: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_file_metadata: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_values: Option<PartitionValues>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
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

/// Serialises actions as newline-delimited JSON.
pub fn to_ndjson(actions: &[Action]) -> Vec<u8> {
    let mut out = Vec::with_capacity(actions.len() * 256);
    for action in actions {
        // Serialising these plain structs cannot fail.
        serde_json::to_writer(&mut out, action).expect("actions serialise");
        out.push(b'\n');
    }
    out
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

    #[test]
    fn bad_line_is_reported_by_number() {
        let err = parse_ndjson(b"{\"txn\":{\"appId\":\"a\",\"version\":1}}\n{oops").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }
}
