//! Which Capstan versions work together in one cluster: the same major
//! version and minor versions at most one apart, so a cluster can be
//! upgraded one node at a time (wire types and records only grow, and
//! adjacent versions read each other's).

/// This build's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A version as `major.minor.patch` (a pre-release or build suffix is
/// ignored).
fn parse(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next().unwrap_or(Some(0))?;
    if parts.next().is_some() {
        return None;
    }
    Some((major, minor, patch))
}

/// Whether a node running `theirs` may take part in a cluster whose
/// managers run `ours`; the refusal names both versions and what to do.
pub fn compatible(ours: &str, theirs: &str) -> Result<(), String> {
    let mine =
        parse(ours).ok_or_else(|| format!("this cluster's version {ours:?} is not a version"))?;
    if theirs.is_empty() {
        return Err(format!(
            "the node does not say which Capstan version it runs (older than this cluster's {ours} supports): upgrade it to {}.{}.x first",
            mine.0, mine.1
        ));
    }
    let other =
        parse(theirs).ok_or_else(|| format!("the node's version {theirs:?} is not a version"))?;
    if mine.0 == other.0 && mine.1.abs_diff(other.1) <= 1 {
        return Ok(());
    }
    let advice = if other < mine {
        "upgrade the node first"
    } else {
        "upgrade the cluster's managers first, one at a time"
    };
    Err(format!(
        "the node runs Capstan {theirs} and this cluster runs {ours}: versions must share the major version and be at most one minor version apart; {advice}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_versions_work_together_and_others_are_named() {
        assert!(compatible("1.4.2", "1.4.0").is_ok());
        assert!(compatible("1.4.2", "1.3.9").is_ok());
        assert!(compatible("1.4.2", "1.5.0-rc.1").is_ok());
        let old = compatible("1.4.2", "1.2.0").unwrap_err();
        assert!(
            old.contains("1.2.0") && old.contains("1.4.2") && old.contains("upgrade the node"),
            "{old}"
        );
        let new = compatible("1.4.2", "2.0.0").unwrap_err();
        assert!(
            new.contains("2.0.0") && new.contains("upgrade the cluster"),
            "{new}"
        );
        assert!(compatible("1.4.2", "")
            .unwrap_err()
            .contains("does not say"));
        assert!(compatible("1.4.2", "one.two")
            .unwrap_err()
            .contains("not a version"));
        assert!(compatible(VERSION, VERSION).is_ok());
    }
}
