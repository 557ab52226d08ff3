//! Sizes (`"128MiB"`, `"1GB"`, or a plain number of bytes) and durations (`"10s"`, `"500ms"`,
//! `"10m"`, or a plain number of milliseconds) as they appear in spec files.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes. Written as an integer (bytes) or a string with a unit: `B`, `KB`/`KiB`,
/// `MB`/`MiB`, `GB`/`GiB` (decimal units are powers of 1000, binary ones of 1024).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// A duration. Written as an integer (milliseconds) or a string with a unit: `ms`, `s`, `m`,
/// `h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl ByteSize {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (number, unit) = split_unit(text);
        let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "k" => 1_000,
            "kib" => 1 << 10,
            "mb" | "m" => 1_000_000,
            "mib" => 1 << 20,
            "gb" | "g" => 1_000_000_000,
            "gib" => 1 << 30,
            "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            _ => {
                return Err(format!(
                    "size {text:?} has an unknown unit {unit:?}; use B, KB, KiB, MB, MiB, GB or GiB"
                ));
            }
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("size {text:?} is not a number with a unit, e.g. \"128MiB\""))?;
        if !value.is_finite() || value < 0.0 {
            return Err(format!("size {text:?} must be a non-negative number"));
        }
        Ok(ByteSize((value * multiplier as f64).round() as u64))
    }
}

impl Duration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (number, unit) = split_unit(text);
        let value: f64 = number.parse().map_err(|_| {
            format!("duration {text:?} is not a number with a unit, e.g. \"10s\" or \"500ms\"")
        })?;
        if !value.is_finite() || value < 0.0 {
            return Err(format!("duration {text:?} must be a non-negative number"));
        }
        let seconds = match unit {
            "ms" => value / 1000.0,
            "" | "s" => value,
            "m" | "min" => value * 60.0,
            "h" => value * 3600.0,
            _ => {
                return Err(format!(
                    "duration {text:?} has an unknown unit {unit:?}; use ms, s, m or h"
                ));
            }
        };
        Ok(Duration(std::time::Duration::from_secs_f64(seconds)))
    }
}

fn split_unit(text: &str) -> (&str, &str) {
    let text = text.trim();
    let at = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (text[..at].trim(), text[at..].trim())
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human_bytes(self.0))
    }
}

/// `1.5 MiB`-style text for a byte count.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Int(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Int(ms) => Ok(Duration(std::time::Duration::from_millis(ms))),
            Raw::Text(t) => Duration::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0.as_millis() as u64)
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Bytes: an integer, or a string with a unit (\"128MiB\", \"1GB\").",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*[0-9.]+\\s*([kKmMgGtT]i?[bB]?|[bB])?\\s*$"}
            ]
        })
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: an integer (milliseconds), or a string with a unit (\"500ms\", \"10s\", \"10m\", \"1h\").",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*[0-9.]+\\s*(ms|s|m|min|h)?\\s*$"}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(ByteSize::parse("128MiB").unwrap().0, 128 << 20);
        assert_eq!(ByteSize::parse("1 GB").unwrap().0, 1_000_000_000);
        assert_eq!(ByteSize::parse("42").unwrap().0, 42);
        assert!(
            ByteSize::parse("12 parsecs")
                .unwrap_err()
                .contains("parsecs")
        );
        assert_eq!(
            Duration::parse("500ms").unwrap().0,
            std::time::Duration::from_millis(500)
        );
        assert_eq!(
            Duration::parse("10m").unwrap().0,
            std::time::Duration::from_secs(600)
        );
        assert!(Duration::parse("soon").is_err());
    }
}
