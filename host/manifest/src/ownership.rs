//! Partition ownership: patterns (`dt=2026-01-*`, `region=eu/*`, `*`) mapped to owner ids.
//!
//! The policy is stored in the Delta log, in `metaData.configuration["weir.ownership"]`, so it is
//! changed only by commits and every change is audited by the log. A pattern is a glob over the
//! partition path where `*` matches any run of characters (including `/`); a pattern also covers
//! the sub-partitions of a partition it matches (`region=eu` covers `region=eu/dt=...`). When several
//! patterns match, the most specific one (most literal characters) wins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::partition::display_partition;

/// The configuration key holding the policy (a JSON list of rules).
pub const OWNERSHIP_KEY: &str = "weir.ownership";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipRule {
    pub pattern: String,
    pub owner: String,
}

/// A table's ownership policy. Partitions no rule covers are unowned: any job may write them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    pub rules: Vec<OwnershipRule>,
}

impl Ownership {
    /// Reads the policy from a table configuration.
    pub fn from_configuration(config: &BTreeMap<String, String>) -> Result<Self, String> {
        match config.get(OWNERSHIP_KEY) {
            None => Ok(Self::default()),
            Some(json) => serde_json::from_str(json)
                .map(|rules| Self { rules })
                .map_err(|e| format!("bad {OWNERSHIP_KEY} configuration: {e}")),
        }
    }

    /// The policy as a configuration value.
    pub fn to_configuration_value(&self) -> String {
        serde_json::to_string(&self.rules).expect("rules serialise")
    }

    /// Sets the owner of `pattern`, replacing any rule with the same pattern.
    pub fn set(&mut self, pattern: &str, owner: &str) -> Result<()> {
        validate_pattern(pattern)?;
        if owner.trim().is_empty() {
            return Err(Error::Invalid(format!(
                "empty owner for pattern {pattern:?}"
            )));
        }
        match self.rules.iter_mut().find(|r| r.pattern == pattern) {
            Some(rule) => rule.owner = owner.to_string(),
            None => self.rules.push(OwnershipRule {
                pattern: pattern.to_string(),
                owner: owner.to_string(),
            }),
        }
        Ok(())
    }

    /// Removes the rule for `pattern`; returns whether one existed.
    pub fn remove(&mut self, pattern: &str) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.pattern != pattern);
        self.rules.len() != before
    }

    /// The owner of a partition path, if any rule covers it.
    pub fn owner_of(&self, partition: &str) -> Option<&str> {
        self.rules
            .iter()
            .filter(|r| pattern_covers(&r.pattern, partition))
            .max_by_key(|r| specificity(&r.pattern))
            .map(|r| r.owner.as_str())
    }

    /// Refuses a write to `partition` by a job running as `job_owner` unless it owns the partition.
    pub fn check(&self, partition: &str, job_owner: Option<&str>) -> Result<()> {
        let Some(owner) = self.owner_of(partition) else {
            return Ok(());
        };
        if job_owner == Some(owner) {
            return Ok(());
        }
        Err(Error::OwnershipRefused {
            partition: display_partition(partition).to_string(),
            owner: owner.to_string(),
            job_owner: job_owner.unwrap_or("(no owner)").to_string(),
        })
    }
}

fn validate_pattern(pattern: &str) -> Result<()> {
    if pattern.is_empty() || pattern.starts_with('/') || pattern.contains("//") {
        return Err(Error::Invalid(format!(
            "bad ownership pattern {pattern:?}: use a partition path glob like dt=2026-01-* or region=eu/* or *"
        )));
    }
    Ok(())
}

fn specificity(pattern: &str) -> usize {
    pattern.chars().filter(|&c| c != '*').count()
}

/// Whether `pattern` matches `partition` or one of its parent partitions.
pub fn pattern_covers(pattern: &str, partition: &str) -> bool {
    let pattern = pattern.trim_end_matches('/');
    if glob(pattern.as_bytes(), partition.as_bytes()) {
        return true;
    }
    partition
        .match_indices('/')
        .any(|(i, _)| glob(pattern.as_bytes(), &partition.as_bytes()[..i]))
}

/// Glob match where `*` matches any (possibly empty) byte run.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_cover_partitions() {
        assert!(pattern_covers("*", "dt=2026-01-01"));
        assert!(pattern_covers("*", ""));
        assert!(pattern_covers("dt=2026-01-*", "dt=2026-01-31"));
        assert!(!pattern_covers("dt=2026-01-*", "dt=2026-02-01"));
        assert!(pattern_covers("region=eu/*", "region=eu/dt=2026-01-01"));
        assert!(!pattern_covers("region=eu/*", "region=us/dt=2026-01-01"));
        assert!(pattern_covers("region=eu", "region=eu/dt=2026-01-01"));
        assert!(!pattern_covers("region=eu", "region=eur/dt=2026-01-01"));
    }

    #[test]
    fn most_specific_rule_wins_and_refusal_names_everyone() {
        let mut o = Ownership::default();
        o.set("*", "platform").unwrap();
        o.set("dt=2026-01-*", "billing").unwrap();
        assert_eq!(o.owner_of("dt=2026-01-01"), Some("billing"));
        assert_eq!(o.owner_of("dt=2026-02-01"), Some("platform"));
        let err = o.check("dt=2026-01-01", Some("fraud")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "partition dt=2026-01-01 is owned by billing; this job runs as fraud"
        );
        assert!(o.check("dt=2026-01-01", Some("billing")).is_ok());
        let config = [(OWNERSHIP_KEY.to_string(), o.to_configuration_value())].into();
        assert_eq!(Ownership::from_configuration(&config).unwrap(), o);
        assert!(o.remove("*"));
        assert!(o.check("dt=2026-02-01", None).is_ok());
    }
}
