//! Partition identity: the hive-style path of a partition (`dt=2026-01-01/region=eu`), which is
//! also the name ownership patterns and leases use.

use crate::actions::PartitionValues;

/// The hive name of the null partition value.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The partition path for `values` in the table's partition column order (`""` if unpartitioned).
pub fn partition_path(columns: &[String], values: &PartitionValues) -> String {
    let mut out = String::new();
    for column in columns {
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(&escape_hive(column));
        out.push('=');
        match values.get(column).and_then(|v| v.as_deref()) {
            Some(value) => out.push_str(&escape_hive(value)),
            None => out.push_str(NULL_PARTITION),
        }
    }
    out
}

/// Shows a partition path in messages (`(unpartitioned)` for the empty path).
pub fn display_partition(path: &str) -> &str {
    if path.is_empty() {
        "(unpartitioned)"
    } else {
        path
    }
}

/// Whether a character is `%XX`-escaped in a hive path segment: Hive's escape set (control
/// characters, `"#%'*/:=?\\{[]^`) plus `}<>|` and backtick, which object stores and shells dislike.
fn needs_hive_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '"' | '#'
                | '%'
                | '\''
                | '*'
                | '/'
                | ':'
                | '='
                | '?'
                | '\\'
                | '{'
                | '}'
                | '['
                | ']'
                | '^'
                | '<'
                | '>'
                | '|'
                | '`'
        )
}

/// Hive path escaping of a partition key or value: `%XX` (UTF-8 bytes, upper-case hex) for the
/// characters that are unsafe in a path segment; any `%XX` decoder reverses it. This is the one
/// escaping Weir uses: weir-lake's sink names partition directories with it, so a partition's
/// directory and its name in ownership rules and leases are the same string.
pub fn escape_hive(s: &str) -> String {
    if !s.chars().any(needs_hive_escape) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs_hive_escape(c) {
            out.push(c);
            continue;
        }
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// An object-key-safe single segment naming a partition (for `_weir/leases/<segment>/`).
/// Reversible: `_XX` hex escapes for everything but ASCII alphanumerics, `-`, `.` and `=`.
pub fn key_segment(partition: &str) -> String {
    if partition.is_empty() {
        return "_".into();
    }
    let mut out = String::with_capacity(partition.len());
    for b in partition.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'=') {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_column_order_and_escape() {
        let cols = vec!["region".to_string(), "dt".to_string()];
        let mut values = PartitionValues::new();
        values.insert("dt".into(), Some("2026-01-01".into()));
        values.insert("region".into(), None);
        assert_eq!(
            partition_path(&cols, &values),
            "region=__HIVE_DEFAULT_PARTITION__/dt=2026-01-01"
        );
        values.insert("region".into(), Some("a/b=c".into()));
        assert_eq!(
            partition_path(&cols, &values),
            "region=a%2Fb%3Dc/dt=2026-01-01"
        );
        assert_eq!(partition_path(&[], &values), "");
        assert_eq!(
            escape_hive("a%b c:{x}|<y>`\u{7f}\u{85}é"),
            "a%25b c%3A%7Bx%7D%7C%3Cy%3E%60%7F%C2%85é"
        );
        assert_eq!(
            key_segment("dt=2026-01-01/r=e u"),
            "dt=2026-01-01_2Fr=e_20u"
        );
    }
}
