//! Checks of user-supplied swarm objects, with errors that name the field.

use capstan_core::service::{MountKind, ServiceMode};
use capstan_core::ServiceSpec;

/// Most replicas one service may ask for.
pub const MAX_REPLICAS: u64 = 100_000;
/// Largest secret or config, as in Docker (500 KiB).
pub const MAX_DATA_BYTES: usize = 500 * 1024;

/// Checks an object name the way Docker does: 1 to 63 characters, letters,
/// digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {kind} name {name:?}: use 1 to 63 letters, digits, '-', '_' or '.', starting with a letter or digit"
        ))
    }
}

/// Checks a service spec before it is stored.
pub fn service_spec(spec: &ServiceSpec) -> Result<(), String> {
    name("service", &spec.name)?;
    let c = &spec.task.container;
    if c.image.trim().is_empty() {
        return Err("service image must not be empty".into());
    }
    if c.image.chars().any(char::is_whitespace) {
        return Err(format!("invalid image reference {:?}", c.image));
    }
    if let ServiceMode::Replicated { replicas } = spec.mode {
        if replicas > MAX_REPLICAS {
            return Err(format!(
                "replicas {replicas} is above the limit of {MAX_REPLICAS}"
            ));
        }
    }
    for constraint in &spec.task.placement.constraints {
        capstan_core::constraint::parse_constraint(constraint)?;
    }
    for env in &c.env {
        if env.is_empty() || env.starts_with('=') {
            return Err(format!(
                "invalid environment entry {env:?}: expected KEY=value"
            ));
        }
    }
    for m in &c.mounts {
        if !m.target.starts_with('/') {
            return Err(format!(
                "mount target {:?} must be an absolute path",
                m.target
            ));
        }
        if m.kind == MountKind::Bind && !m.source.starts_with('/') {
            return Err(format!(
                "bind mount source {:?} must be an absolute path",
                m.source
            ));
        }
        if m.kind == MountKind::Volume && !m.source.is_empty() {
            name("volume", &m.source)?;
        }
    }
    for p in &spec.task.ports {
        if p.target_port == 0 {
            return Err("published port: target port must not be 0".into());
        }
        if !matches!(p.protocol.as_str(), "tcp" | "udp" | "") {
            return Err(format!(
                "published port protocol {:?}: expected tcp or udp",
                p.protocol
            ));
        }
    }
    for (what, u) in [("update", &spec.update), ("rollback", &spec.rollback)] {
        if !(0.0..=1.0).contains(&u.max_failure_ratio) {
            return Err(format!("{what} max failure ratio must be between 0 and 1"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("service", "web").is_ok());
        assert!(name("service", "my_stack_web.1").is_ok());
        for bad in ["", "-web", "a b", "web/1", &"x".repeat(64)] {
            assert!(name("service", bad).is_err(), "{bad:?}");
        }
    }
}
