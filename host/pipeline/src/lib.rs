//! Pipeline spec files for Weir: the TOML model ([`PipelineSpec`]), its validation and the
//! resolution of paths and plugin references ([`Pipeline`]), and its JSON Schema
//! ([`json_schema`]).
//!
//! A spec names a source (a table or a Parquet prefix), plugin steps and a sink table; the same
//! file runs locally (`weir run`) and, later, on a cluster. See `docs/pipeline.md`.
//!
//! Guarantees:
//! - Unknown keys anywhere are errors naming the key and its line.
//! - After [`Pipeline::load`], every plugin file exists and, where the spec pins a digest (or
//!   names the plugin by digest), its sha256 matches. Local paths are absolute and normalised.
//! - Checks that need the plugins or the data (plugin configs, partition columns in the output
//!   schema) are made by the coordinator before any data is written.

mod spec;
mod units;

use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

pub use spec::{
    DeadLetter, FilterOp, FilterValue, Limits, PartitionFilter, PipelineSpec, Scalar, Scope, Sink,
    SinkMode, Source, SourceKind, Step,
};
pub use units::{ByteSize, Duration, human_bytes};

/// Environment variable with extra directories (colon-separated) to find `sha256:` plugins in.
pub const PLUGIN_PATH_ENV: &str = "WEIR_PLUGIN_PATH";

/// Errors loading or validating a spec. Each names the file and the key at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec file cannot be read.
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown key or a value of the wrong type. The
    /// message names the key, line and column.
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    /// A value is not acceptable, e.g. a plugin file that does not exist or a digest mismatch.
    #[error("{file}: `{key}`: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parses spec text (no validation beyond the model; see [`Pipeline::load`]).
pub fn parse(text: &str, file: &str) -> Result<PipelineSpec> {
    toml::from_str(text).map_err(|e| Error::Parse {
        file: file.to_string(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// The JSON Schema (draft 2020-12) of a pipeline spec.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(PipelineSpec)).unwrap_or_default()
}

/// A validated spec with every path and plugin reference resolved.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub spec: PipelineSpec,
    /// The spec file (for messages), or `<inline>`.
    pub file: String,
    /// Local paths in the spec are relative to this directory.
    pub base_dir: PathBuf,
    /// The source location: a URL, or an absolute local path.
    pub source_url: String,
    pub sink_url: String,
    pub dead_letter_url: Option<String>,
    pub steps: Vec<ResolvedStep>,
}

/// A step with its plugin file found and hashed.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedStep {
    /// Position in `steps` (0-based).
    pub index: usize,
    /// The step's `name`, or the plugin file's stem until the coordinator learns the plugin's
    /// own name.
    pub label: String,
    pub has_name: bool,
    pub path: PathBuf,
    /// Hex sha256 of the component.
    pub digest: String,
    /// The config as JSON text.
    pub config: String,
    pub scope: Scope,
}

impl Pipeline {
    /// Reads, parses and validates a spec file, resolving plugins against `plugins_dir` and
    /// `WEIR_PLUGIN_PATH`.
    pub fn load(path: &Path) -> Result<Self> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: file.clone(),
            source,
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = absolute(base);
        let extra: Vec<PathBuf> = std::env::var_os(PLUGIN_PATH_ENV)
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        Self::from_spec(parse(&text, &file)?, &file, &base, &extra)
    }

    /// Validates a parsed spec. `base_dir` anchors relative paths; `plugin_dirs` are searched
    /// (after the spec's `plugins_dir`) for `sha256:` references.
    pub fn from_spec(
        spec: PipelineSpec,
        file: &str,
        base_dir: &Path,
        plugin_dirs: &[PathBuf],
    ) -> Result<Self> {
        let invalid = |key: &str, message: String| Error::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            message,
        };
        let base_dir = absolute(base_dir);
        check_name(&spec.name).map_err(|m| invalid("name", m))?;
        if spec.source.url.trim().is_empty() {
            return Err(invalid("source.url", "must not be empty".into()));
        }
        if spec.sink.url.trim().is_empty() {
            return Err(invalid("sink.url", "must not be empty".into()));
        }
        if let Some(columns) = &spec.source.columns {
            if columns.is_empty() {
                return Err(invalid(
                    "source.columns",
                    "must list at least one column (omit it to read all)".into(),
                ));
            }
            if let Some(dup) = first_duplicate(columns) {
                return Err(invalid(
                    "source.columns",
                    format!("column `{dup}` is listed twice"),
                ));
            }
        }
        for (i, filter) in spec.source.filter.iter().enumerate() {
            let key = format!("source.filter[{i}]");
            let needs_value = !matches!(filter.op, FilterOp::IsNull | FilterOp::IsNotNull);
            match (&filter.value, needs_value) {
                (None, true) => return Err(invalid(&key, "needs a `value`".into())),
                (Some(_), false) => {
                    return Err(invalid(
                        &key,
                        "`is_null` and `is_not_null` take no `value`".into(),
                    ));
                }
                (Some(FilterValue::Many(_)), true) if filter.op != FilterOp::In => {
                    return Err(invalid(&key, "a list `value` needs op `in`".into()));
                }
                (Some(FilterValue::Many(v)), true) if v.is_empty() => {
                    return Err(invalid(&key, "`in` needs a non-empty list".into()));
                }
                _ => {}
            }
        }
        if spec.source.batch_size == Some(0) {
            return Err(invalid("source.batch_size", "must be at least 1".into()));
        }
        if spec.source.split_size.is_some_and(|s| s.0 == 0) {
            return Err(invalid(
                "source.split_size",
                "must be at least 1 byte".into(),
            ));
        }
        if let Some(dup) = first_duplicate(&spec.sink.partition_by) {
            return Err(invalid(
                "sink.partition_by",
                format!("column `{dup}` is listed twice"),
            ));
        }
        if spec.sink.partition_by.iter().any(|c| c.is_empty()) {
            return Err(invalid(
                "sink.partition_by",
                "column names must not be empty".into(),
            ));
        }
        if spec.sink.target_file_size.is_some_and(|s| s.0 < 1024) {
            return Err(invalid(
                "sink.target_file_size",
                "must be at least 1KiB".into(),
            ));
        }
        if spec
            .sink
            .owner
            .as_deref()
            .is_some_and(|o| o.trim().is_empty())
        {
            return Err(invalid("sink.owner", "must not be empty".into()));
        }
        if let Some(dl) = &spec.dead_letter
            && dl.url.trim().is_empty()
        {
            return Err(invalid("dead_letter.url", "must not be empty".into()));
        }
        let limits = &spec.limits;
        if limits.memory.is_some_and(|m| m.0 < (1 << 20)) {
            return Err(invalid("limits.memory", "must be at least 1MiB".into()));
        }
        if limits.batch_cpu.is_some_and(|d| d.0.is_zero()) {
            return Err(invalid("limits.batch_cpu", "must be positive".into()));
        }
        if limits.task_cpu.is_some_and(|d| d.0.is_zero()) {
            return Err(invalid("limits.task_cpu", "must be positive".into()));
        }
        if limits.parallelism == Some(0) {
            return Err(invalid("limits.parallelism", "must be at least 1".into()));
        }
        if limits.max_attempts == Some(0) {
            return Err(invalid("limits.max_attempts", "must be at least 1".into()));
        }

        let mut dirs = Vec::new();
        if let Some(dir) = &spec.plugins_dir {
            let dir = resolve_path(&base_dir, dir);
            if !dir.is_dir() {
                return Err(invalid(
                    "plugins_dir",
                    format!("{} is not a directory", dir.display()),
                ));
            }
            dirs.push(dir);
        }
        dirs.extend(plugin_dirs.iter().map(|d| absolute(d)));
        let mut steps = Vec::with_capacity(spec.steps.len());
        for (index, step) in spec.steps.iter().enumerate() {
            let key = format!("steps[{index}]");
            let resolved = resolve_step(index, step, &base_dir, &dirs)
                .map_err(|(field, m)| invalid(&format!("{key}.{field}"), m))?;
            steps.push(resolved);
        }
        if let Some(dup) = first_duplicate(
            &spec
                .steps
                .iter()
                .filter_map(|s| s.name.clone())
                .collect::<Vec<_>>(),
        ) {
            return Err(invalid("steps", format!("step name `{dup}` is used twice")));
        }

        Ok(Self {
            source_url: resolve_url(&base_dir, &spec.source.url),
            sink_url: resolve_url(&base_dir, &spec.sink.url),
            dead_letter_url: spec
                .dead_letter
                .as_ref()
                .map(|d| resolve_url(&base_dir, &d.url)),
            spec,
            file: file.to_string(),
            base_dir,
            steps,
        })
    }

    /// The error for a problem the coordinator found with key `key` of this spec.
    pub fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            file: self.file.clone(),
            key: key.into(),
            message: message.into(),
        }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} must be 1-100 letters, digits, '-' or '_' (it names the job in the table log)"
        ))
    }
}

fn first_duplicate(items: &[String]) -> Option<&str> {
    items
        .iter()
        .enumerate()
        .find(|(i, item)| items[..*i].contains(item))
        .map(|(_, item)| item.as_str())
}

fn resolve_step(
    index: usize,
    step: &Step,
    base_dir: &Path,
    dirs: &[PathBuf],
) -> Result<ResolvedStep, (&'static str, String)> {
    let pinned = match &step.digest {
        Some(d) => Some(parse_digest(d).map_err(|m| ("digest", m))?),
        None => None,
    };
    let (path, digest) = if let Some(rest) = step.plugin.strip_prefix("sha256:") {
        let wanted = parse_digest(&step.plugin).map_err(|m| ("plugin", m))?;
        if pinned.as_ref().is_some_and(|p| *p != wanted) {
            return Err((
                "digest",
                format!("sha256:{rest} in `plugin` differs from `digest`"),
            ));
        }
        let path = find_by_digest(&wanted, dirs).map_err(|m| ("plugin", m))?;
        (path, wanted)
    } else {
        let path = resolve_path(base_dir, &step.plugin);
        let bytes = std::fs::read(&path).map_err(|e| {
            let hint = if path.extension().is_some_and(|x| x == "wasm") {
                " (build the example plugins with scripts/build-plugins.sh)"
            } else {
                ""
            };
            (
                "plugin",
                format!("cannot read plugin {}: {e}{hint}", path.display()),
            )
        })?;
        let digest = sha256_hex(&bytes);
        if let Some(pinned) = &pinned
            && *pinned != digest
        {
            return Err((
                "digest",
                format!(
                    "plugin {} has digest sha256:{digest}, but the spec pins sha256:{pinned}",
                    path.display()
                ),
            ));
        }
        (path, digest)
    };
    let label = step.name.clone().unwrap_or_else(|| {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| format!("step{index}"));
        stem.strip_prefix("weir_plugin_")
            .unwrap_or(&stem)
            .to_string()
    });
    Ok(ResolvedStep {
        index,
        label,
        has_name: step.name.is_some(),
        path,
        digest,
        config: serde_json::Value::Object(step.config.clone()).to_string(),
        scope: step.scope,
    })
}

fn parse_digest(text: &str) -> Result<String, String> {
    let Some(hex) = text.strip_prefix("sha256:") else {
        return Err(format!(
            "digest {text:?} must be written sha256:<64 hex digits>"
        ));
    };
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "digest {text:?} must be written sha256:<64 hex digits>"
        ));
    }
    Ok(hex.to_ascii_lowercase())
}

fn find_by_digest(digest: &str, dirs: &[PathBuf]) -> Result<PathBuf, String> {
    if dirs.is_empty() {
        return Err(format!(
            "sha256:{digest} names a plugin by digest, but there is no `plugins_dir` and {PLUGIN_PATH_ENV} is not set"
        ));
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        for path in paths {
            if std::fs::read(&path).is_ok_and(|bytes| sha256_hex(&bytes) == digest) {
                return Ok(path);
            }
        }
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(format!(
        "no .wasm file with digest sha256:{digest} in {}",
        searched.join(", ")
    ))
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A URL stays as it is; a local path becomes absolute (relative to `base`) and normalised.
pub fn resolve_url(base: &Path, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    resolve_path(base, location).display().to_string()
}

fn resolve_path(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        normalize(path)
    } else {
        normalize(&base.join(path))
    }
}

fn absolute(path: &Path) -> PathBuf {
    normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// Removes `.` and resolves `..` lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "demo"
[source]
url = "in"
[sink]
url = "out"
"#;

    #[test]
    fn minimal_spec_parses_with_defaults() {
        let spec = parse(MINIMAL, "demo.toml").unwrap();
        assert_eq!(spec.sink.mode, SinkMode::Append);
        assert!(spec.steps.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let p = Pipeline::from_spec(spec, "demo.toml", dir.path(), &[]).unwrap();
        assert_eq!(
            p.sink_url,
            dir.path().join("out").display().to_string(),
            "relative paths resolve against the spec's directory"
        );
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let text = MINIMAL.replace("[sink]", "[sink]\nparition_by = [\"dt\"]");
        let err = parse(&text, "demo.toml").unwrap_err().to_string();
        assert!(err.contains("parition_by"), "{err}");
        assert!(err.contains("line 6"), "{err}");
    }

    #[test]
    fn sizes_and_modes_parse() {
        let text = MINIMAL.replace(
            "[sink]",
            "[limits]\nmemory = \"64MiB\"\nbatch_cpu = \"2s\"\n[sink]\nmode = \"overwrite-partitions\"\ntarget_file_size = \"8MiB\"",
        );
        let spec = parse(&text, "x").unwrap();
        assert_eq!(spec.limits.memory, Some(ByteSize(64 << 20)));
        assert_eq!(spec.sink.mode, SinkMode::OverwritePartitions);
        assert_eq!(spec.sink.target_file_size, Some(ByteSize(8 << 20)));
        let bad = MINIMAL.replace("[sink]", "[sink]\nmode = \"upsert\"");
        let err = parse(&bad, "x").unwrap_err().to_string();
        assert!(err.contains("upsert"), "{err}");
    }

    fn with_step(step: &str) -> String {
        MINIMAL.replace("[sink]", &format!("{step}\n[sink]"))
    }

    #[test]
    fn plugin_references_resolve_and_digests_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        std::fs::write(plugins.join("a.wasm"), b"component a").unwrap();
        let digest = sha256_hex(b"component a");
        let load = |text: &str| {
            let spec = parse(text, "p.toml").unwrap();
            Pipeline::from_spec(spec, "p.toml", dir.path(), &[])
        };

        // By path, relative to the spec; the label defaults to the file stem.
        let p = load(&with_step("[[steps]]\nplugin = \"plugins/a.wasm\"")).unwrap();
        assert_eq!(p.steps[0].digest, digest);
        assert_eq!(p.steps[0].path, plugins.join("a.wasm"));
        assert_eq!(p.steps[0].config, "{}");

        // A missing file names the key and the path.
        let err = load(&with_step("[[steps]]\nplugin = \"plugins/b.wasm\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`steps[0].plugin`"), "{err}");
        assert!(err.contains("b.wasm"), "{err}");

        // A pinned digest that differs.
        let wrong = format!("sha256:{}", "0".repeat(64));
        let err = load(&with_step(&format!(
            "[[steps]]\nplugin = \"plugins/a.wasm\"\ndigest = \"{wrong}\""
        )))
        .unwrap_err()
        .to_string();
        assert!(err.contains("`steps[0].digest`"), "{err}");
        assert!(err.contains(&digest), "{err}");

        // By digest, from plugins_dir.
        let text = format!(
            "plugins_dir = \"plugins\"\n{}",
            with_step(&format!(
                "[[steps]]\nplugin = \"sha256:{digest}\"\n[steps.config]\nkeys = [\"id\"]"
            ))
        );
        let p = load(&text).unwrap();
        assert_eq!(p.steps[0].path, plugins.join("a.wasm"));
        assert_eq!(p.steps[0].config, r#"{"keys":["id"]}"#);

        // A digest nobody has.
        let text = format!(
            "plugins_dir = \"plugins\"\n{}",
            with_step(&format!("[[steps]]\nplugin = \"{wrong}\""))
        );
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("no .wasm file with digest"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let check = |text: &str, key: &str| {
            let spec = parse(text, "p.toml").unwrap();
            let err = Pipeline::from_spec(spec, "p.toml", dir.path(), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
        };
        check(&MINIMAL.replace("\"demo\"", "\"has space\""), "name");
        check(
            &MINIMAL.replace("[sink]", "[sink]\npartition_by = [\"a\", \"a\"]"),
            "sink.partition_by",
        );
        check(
            &MINIMAL.replace("[sink]", "[limits]\nparallelism = 0\n[sink]"),
            "limits.parallelism",
        );
        check(
            &MINIMAL.replace(
                "[sink]",
                "filter = [{ column = \"d\", op = \"eq\" }]\n[sink]",
            ),
            "source.filter[0]",
        );
    }

    #[test]
    fn schema_describes_every_section() {
        let schema = json_schema().to_string();
        for key in [
            "source",
            "steps",
            "sink",
            "dead_letter",
            "limits",
            "partition_by",
        ] {
            assert!(schema.contains(key), "schema lacks {key}");
        }
    }
}
