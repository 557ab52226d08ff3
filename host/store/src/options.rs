//! Operator configuration for stores: S3 addressing, transport, retries and multipart sizes.
//!
//! [`StoreOptions::from_env`] reads the `WEIR_*` and standard `AWS_*` variables documented in
//! `docs/s3.md`; a variable with a bad value is an [`Error::Config`] naming it. Options never
//! carry credentials: those come only from the environment or the EC2 instance profile when the
//! S3 client is built (see [`crate::StoreBuilder`]), so a pipeline file cannot hold them and
//! nothing that serialises options can leak them.

use std::time::Duration;

use crate::{Error, Result};

/// The smallest part S3 accepts in a multipart upload (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The largest part S3 accepts in a multipart upload.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;

/// Settings for a [`crate::Store`], whatever its backend.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreOptions {
    /// Settings used when the URL is `s3://`.
    pub s3: S3Options,
    /// Objects larger than this are written with a multipart upload by
    /// [`crate::Store::put_file`] and [`crate::Store::buf_writer`] (which also uses it as its part
    /// size). At least [`MIN_PART_SIZE`]. Env: `WEIR_MULTIPART_THRESHOLD_BYTES`.
    pub multipart_threshold_bytes: usize,
    /// Part size of [`crate::Store::put_multipart`] uploads. Between [`MIN_PART_SIZE`] and
    /// [`MAX_PART_SIZE`]. Env: `WEIR_MULTIPART_PART_SIZE_BYTES`.
    pub multipart_part_size_bytes: usize,
    /// Parts uploaded concurrently by one multipart writer. Env: `WEIR_MULTIPART_CONCURRENCY`.
    pub multipart_concurrency: usize,
    /// `file://` only: fsync files and directories before a write returns, so an acknowledged
    /// write survives a crash as it would on S3. Env: `WEIR_FILE_FSYNC` (default true).
    pub file_fsync: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            s3: S3Options::default(),
            multipart_threshold_bytes: 16 * 1024 * 1024,
            multipart_part_size_bytes: 8 * 1024 * 1024,
            multipart_concurrency: 4,
            file_fsync: true,
        }
    }
}

/// How to reach S3 or an S3-compatible server. Credentials are deliberately not here.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Options {
    /// AWS region. Env: `AWS_REGION`, else `AWS_DEFAULT_REGION`; `us-east-1` when unset.
    pub region: Option<String>,
    /// Endpoint of an S3-compatible server, e.g. `http://127.0.0.1:9000`. Unset means AWS.
    /// Env: `WEIR_S3_ENDPOINT`, else `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Virtual-hosted-style addressing (`https://bucket.host/key`) instead of path-style
    /// (`https://host/bucket/key`). With a custom endpoint, the endpoint must then include the
    /// bucket. Env: `WEIR_S3_VIRTUAL_HOSTED` (default false).
    pub virtual_hosted_style: bool,
    /// Allow plain `http://` endpoints. Only for a server on this machine: building a store
    /// refuses it for any endpoint that is not loopback. Env: `WEIR_S3_ALLOW_HTTP`, else
    /// `AWS_ALLOW_HTTP` (default false).
    pub allow_http: bool,
    /// Limit for one HTTP request, from connect to the end of the body.
    /// Env: `WEIR_S3_TIMEOUT_SECS` (default 30).
    pub request_timeout: Duration,
    /// Limit for establishing a connection. Env: `WEIR_S3_CONNECT_TIMEOUT_SECS` (default 5).
    pub connect_timeout: Duration,
    /// Retries of a failed request (5xx, throttling, connection errors), with exponential
    /// backoff from 100 ms up to 15 s. 0 disables retries. Env: `WEIR_S3_MAX_RETRIES` (default 10).
    pub max_retries: usize,
    /// No retry starts after this long since the first attempt.
    /// Env: `WEIR_S3_RETRY_TIMEOUT_SECS` (default 180).
    pub retry_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            region: None,
            endpoint: None,
            virtual_hosted_style: false,
            allow_http: false,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
        }
    }
}

impl StoreOptions {
    /// Options from the process environment. A set but invalid variable is an error naming it.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Options from `lookup(name)`, which returns a variable's value if set (for tests and for
    /// callers that keep configuration elsewhere). Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let vars = Vars(&lookup);
        let defaults = Self::default();
        let s3_defaults = S3Options::default();
        let s3 = S3Options {
            region: vars.first(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
            endpoint: vars.first(&[
                "WEIR_S3_ENDPOINT",
                "AWS_ENDPOINT_URL_S3",
                "AWS_ENDPOINT_URL",
            ]),
            virtual_hosted_style: vars
                .bool("WEIR_S3_VIRTUAL_HOSTED")?
                .unwrap_or(s3_defaults.virtual_hosted_style),
            allow_http: match vars.bool("WEIR_S3_ALLOW_HTTP")? {
                Some(allow) => allow,
                None => vars.bool("AWS_ALLOW_HTTP")?.unwrap_or(false),
            },
            request_timeout: vars
                .secs("WEIR_S3_TIMEOUT_SECS")?
                .unwrap_or(s3_defaults.request_timeout),
            connect_timeout: vars
                .secs("WEIR_S3_CONNECT_TIMEOUT_SECS")?
                .unwrap_or(s3_defaults.connect_timeout),
            max_retries: vars
                .int("WEIR_S3_MAX_RETRIES", 0, 100)?
                .unwrap_or(s3_defaults.max_retries),
            retry_timeout: vars
                .secs("WEIR_S3_RETRY_TIMEOUT_SECS")?
                .unwrap_or(s3_defaults.retry_timeout),
        };
        let options = Self {
            s3,
            multipart_threshold_bytes: vars
                .int(
                    "WEIR_MULTIPART_THRESHOLD_BYTES",
                    MIN_PART_SIZE,
                    MAX_PART_SIZE,
                )?
                .unwrap_or(defaults.multipart_threshold_bytes),
            multipart_part_size_bytes: vars
                .int(
                    "WEIR_MULTIPART_PART_SIZE_BYTES",
                    MIN_PART_SIZE,
                    MAX_PART_SIZE,
                )?
                .unwrap_or(defaults.multipart_part_size_bytes),
            multipart_concurrency: vars
                .int("WEIR_MULTIPART_CONCURRENCY", 1, 64)?
                .unwrap_or(defaults.multipart_concurrency),
            file_fsync: vars.bool("WEIR_FILE_FSYNC")?.unwrap_or(defaults.file_fsync),
        };
        options.validate()?;
        Ok(options)
    }

    /// Checks values set in code the same way as values from the environment.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            (
                "WEIR_MULTIPART_THRESHOLD_BYTES",
                self.multipart_threshold_bytes,
            ),
            (
                "WEIR_MULTIPART_PART_SIZE_BYTES",
                self.multipart_part_size_bytes,
            ),
        ];
        for (variable, size) in sizes {
            if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&size) {
                return Err(config(
                    variable,
                    &size.to_string(),
                    format!(
                        "must be between {MIN_PART_SIZE} (5 MiB, S3's smallest part) and {MAX_PART_SIZE} (5 GiB)"
                    ),
                ));
            }
        }
        if self.multipart_concurrency == 0 {
            return Err(config(
                "WEIR_MULTIPART_CONCURRENCY",
                "0",
                "must be at least 1".into(),
            ));
        }
        if self.s3.request_timeout.is_zero() {
            return Err(config(
                "WEIR_S3_TIMEOUT_SECS",
                "0",
                "must be positive".into(),
            ));
        }
        if self.s3.connect_timeout.is_zero() {
            return Err(config(
                "WEIR_S3_CONNECT_TIMEOUT_SECS",
                "0",
                "must be positive".into(),
            ));
        }
        if let Some(endpoint) = &self.s3.endpoint {
            check_endpoint(endpoint, self.s3.allow_http)?;
        }
        Ok(())
    }
}

/// An endpoint must be an http(s) URL; plain HTTP needs `allow_http` and a loopback host.
fn check_endpoint(endpoint: &str, allow_http: bool) -> Result<()> {
    let url = url::Url::parse(endpoint).map_err(|e| {
        config(
            "WEIR_S3_ENDPOINT",
            endpoint,
            format!("not a URL ({e}); expected e.g. https://s3.example.com"),
        )
    })?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if !allow_http => Err(config(
            "WEIR_S3_ALLOW_HTTP",
            "false",
            format!(
                "endpoint {endpoint} uses plain HTTP; set WEIR_S3_ALLOW_HTTP=true, which is \
                 allowed only for a server on this machine (loopback)"
            ),
        )),
        "http" if !is_loopback(&url) => Err(config(
            "WEIR_S3_ALLOW_HTTP",
            "true",
            format!(
                "plain HTTP is allowed only for a server on this machine (loopback), and \
                 endpoint {endpoint} is not; use https"
            ),
        )),
        "http" => Ok(()),
        other => Err(config(
            "WEIR_S3_ENDPOINT",
            endpoint,
            format!("unsupported scheme {other:?}; use https:// (or http:// on loopback)"),
        )),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn config(variable: &str, value: &str, reason: String) -> Error {
    Error::Config {
        variable: variable.to_string(),
        value: value.to_string(),
        reason,
    }
}

struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn first(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|name| self.get(name))
    }

    fn bool(&self, name: &str) -> Result<Option<bool>> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Some(true)),
            "0" | "false" | "no" | "off" => Ok(Some(false)),
            _ => Err(config(
                name,
                &value,
                "expected true or false (or 1/0, yes/no, on/off)".into(),
            )),
        }
    }

    fn int(&self, name: &str, min: usize, max: usize) -> Result<Option<usize>> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let parsed: usize = value
            .parse()
            .map_err(|_| config(name, &value, "expected a non-negative whole number".into()))?;
        if !(min..=max).contains(&parsed) {
            return Err(config(
                name,
                &value,
                format!("must be between {min} and {max}"),
            ));
        }
        Ok(Some(parsed))
    }

    fn secs(&self, name: &str) -> Result<Option<Duration>> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.parse::<f64>() {
            Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(Some(Duration::from_secs_f64(secs))),
            _ => Err(config(
                name,
                &value,
                "expected a number of seconds greater than 0 and at most 86400".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<StoreOptions> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        StoreOptions::from_lookup(|name| map.get(name).cloned())
    }

    fn config_error(vars: &[(&str, &str)]) -> (String, String) {
        match from(vars) {
            Err(err @ Error::Config { .. }) => {
                let Error::Config { ref variable, .. } = err else {
                    unreachable!()
                };
                (variable.clone(), err.to_string())
            }
            other => panic!("expected a config error for {vars:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        assert_eq!(from(&[]).unwrap(), StoreOptions::default());
    }

    #[test]
    fn reads_every_variable() {
        let options = from(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "ignored-when-aws-region-set"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("WEIR_S3_ALLOW_HTTP", "true"),
            ("WEIR_S3_VIRTUAL_HOSTED", "yes"),
            ("WEIR_S3_TIMEOUT_SECS", "2.5"),
            ("WEIR_S3_CONNECT_TIMEOUT_SECS", "1"),
            ("WEIR_S3_MAX_RETRIES", "0"),
            ("WEIR_S3_RETRY_TIMEOUT_SECS", "20"),
            ("WEIR_MULTIPART_THRESHOLD_BYTES", "10485760"),
            ("WEIR_MULTIPART_PART_SIZE_BYTES", "5242880"),
            ("WEIR_MULTIPART_CONCURRENCY", "2"),
            ("WEIR_FILE_FSYNC", "off"),
        ])
        .unwrap();
        assert_eq!(options.s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            options.s3.endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert!(options.s3.allow_http);
        assert!(options.s3.virtual_hosted_style);
        assert_eq!(options.s3.request_timeout, Duration::from_millis(2500));
        assert_eq!(options.s3.connect_timeout, Duration::from_secs(1));
        assert_eq!(options.s3.max_retries, 0);
        assert_eq!(options.s3.retry_timeout, Duration::from_secs(20));
        assert_eq!(options.multipart_threshold_bytes, 10 * 1024 * 1024);
        assert_eq!(options.multipart_part_size_bytes, MIN_PART_SIZE);
        assert_eq!(options.multipart_concurrency, 2);
        assert!(!options.file_fsync);
    }

    #[test]
    fn weir_endpoint_wins_over_aws_and_default_region_is_a_fallback() {
        let options = from(&[
            ("WEIR_S3_ENDPOINT", "https://s3.weir.example"),
            ("AWS_ENDPOINT_URL", "https://other.example"),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
        ])
        .unwrap();
        assert_eq!(
            options.s3.endpoint.as_deref(),
            Some("https://s3.weir.example")
        );
        assert_eq!(options.s3.region.as_deref(), Some("ap-south-1"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("WEIR_S3_TIMEOUT_SECS", "soon")], "WEIR_S3_TIMEOUT_SECS"),
            (&[("WEIR_S3_TIMEOUT_SECS", "0")], "WEIR_S3_TIMEOUT_SECS"),
            (&[("WEIR_S3_MAX_RETRIES", "-1")], "WEIR_S3_MAX_RETRIES"),
            (&[("WEIR_S3_MAX_RETRIES", "1000")], "WEIR_S3_MAX_RETRIES"),
            (
                &[("WEIR_S3_VIRTUAL_HOSTED", "maybe")],
                "WEIR_S3_VIRTUAL_HOSTED",
            ),
            (&[("WEIR_S3_ALLOW_HTTP", "2")], "WEIR_S3_ALLOW_HTTP"),
            (
                &[("WEIR_MULTIPART_THRESHOLD_BYTES", "1024")],
                "WEIR_MULTIPART_THRESHOLD_BYTES",
            ),
            (
                &[("WEIR_MULTIPART_PART_SIZE_BYTES", "1e9")],
                "WEIR_MULTIPART_PART_SIZE_BYTES",
            ),
            (&[("WEIR_FILE_FSYNC", "sometimes")], "WEIR_FILE_FSYNC"),
            (&[("WEIR_S3_ENDPOINT", "not a url")], "WEIR_S3_ENDPOINT"),
        ];
        for (vars, variable) in cases {
            let (named, message) = config_error(vars);
            assert_eq!(named, *variable, "{message}");
            assert!(message.contains(variable), "{message}");
            assert!(
                message.contains(vars[0].1),
                "message should quote the value: {message}"
            );
        }
    }

    #[test]
    fn plain_http_only_on_loopback_and_only_when_allowed() {
        let (variable, message) = config_error(&[("WEIR_S3_ENDPOINT", "http://127.0.0.1:9000")]);
        assert_eq!(variable, "WEIR_S3_ALLOW_HTTP", "{message}");
        let (variable, message) = config_error(&[
            ("WEIR_S3_ENDPOINT", "http://minio.internal:9000"),
            ("WEIR_S3_ALLOW_HTTP", "true"),
        ]);
        assert_eq!(variable, "WEIR_S3_ALLOW_HTTP", "{message}");
        assert!(message.contains("loopback"), "{message}");
        for endpoint in [
            "http://localhost:9000",
            "http://127.0.0.2:1",
            "http://[::1]:9000",
        ] {
            from(&[("WEIR_S3_ENDPOINT", endpoint), ("AWS_ALLOW_HTTP", "true")])
                .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
        }
    }
}
