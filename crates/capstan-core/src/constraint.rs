//! Placement constraints (`--constraint node.labels.zone==a`): parsing and
//! matching against nodes, with Docker Swarm's semantics.
//!
//! Values compare case-insensitively, as in swarmkit. A label the node does
//! not have never matches `==` and always matches `!=`, so `node.labels.ssd!=true`
//! also selects nodes without the label.

use std::fmt;

use crate::node::Node;

/// The keys a constraint may test, as shown in error messages.
pub const SUPPORTED_KEYS: &str = "node.id, node.hostname, node.role, node.platform.os, \
     node.platform.arch, node.labels.<name>, engine.labels.<name>";

const NODE_LABEL_PREFIX: &str = "node.labels.";
const ENGINE_LABEL_PREFIX: &str = "engine.labels.";

/// How a constraint compares a node attribute with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConstraintOp {
    /// `==`: the attribute equals the value.
    Eq,
    /// `!=`: the attribute differs from the value (or is missing).
    Ne,
}

/// One parsed placement constraint, e.g. `node.role==manager`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    /// The attribute tested, e.g. `node.labels.zone`.
    pub key: String,
    /// Equal or not equal.
    pub op: ConstraintOp,
    /// The value compared with, e.g. `a`.
    pub value: String,
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            ConstraintOp::Eq => "==",
            ConstraintOp::Ne => "!=",
        };
        write!(f, "{}{}{}", self.key, op, self.value)
    }
}

/// A node attribute a constraint or a spread preference can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attribute<'k> {
    Id,
    Hostname,
    Role,
    PlatformOs,
    PlatformArch,
    NodeLabel(&'k str),
    EngineLabel(&'k str),
}

/// Recognises a key; the fixed part is case-insensitive (as in swarmkit),
/// label names are not.
fn attribute(key: &str) -> Option<Attribute<'_>> {
    let fixed = match key.to_ascii_lowercase().as_str() {
        "node.id" => Some(Attribute::Id),
        "node.hostname" => Some(Attribute::Hostname),
        "node.role" => Some(Attribute::Role),
        "node.platform.os" => Some(Attribute::PlatformOs),
        "node.platform.arch" => Some(Attribute::PlatformArch),
        _ => None,
    };
    fixed
        .or_else(|| label_name(key, NODE_LABEL_PREFIX).map(Attribute::NodeLabel))
        .or_else(|| label_name(key, ENGINE_LABEL_PREFIX).map(Attribute::EngineLabel))
}

fn label_name<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    let head = key.get(..prefix.len())?;
    let name = &key[prefix.len()..];
    (head.eq_ignore_ascii_case(prefix) && !name.is_empty()).then_some(name)
}

/// Parses one constraint such as `node.labels.zone == a`. The error names
/// the constraint and lists the supported keys.
pub fn parse_constraint(s: &str) -> Result<Constraint, String> {
    let bad = |why: &str| {
        format!("invalid placement constraint {s:?}: {why}; supported keys: {SUPPORTED_KEYS}")
    };
    let (key, op, value) =
        split_operator(s).ok_or_else(|| bad("expected <key>==<value> or <key>!=<value>"))?;
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() {
        return Err(bad("the key is empty"));
    }
    if value.is_empty() {
        return Err(bad("the value is empty"));
    }
    if value.contains("==") || value.contains("!=") {
        return Err(bad("more than one operator"));
    }
    if attribute(key).is_none() {
        return Err(bad(&format!("unknown key {key:?}")));
    }
    Ok(Constraint {
        key: key.to_string(),
        op,
        value: value.to_string(),
    })
}

/// Splits at the first `==` or `!=`.
fn split_operator(s: &str) -> Option<(&str, ConstraintOp, &str)> {
    let eq = s.find("==").map(|i| (i, ConstraintOp::Eq));
    let ne = s.find("!=").map(|i| (i, ConstraintOp::Ne));
    let (at, op) = match (eq, ne) {
        (Some(a), Some(b)) => {
            if a.0 <= b.0 {
                a
            } else {
                b
            }
        }
        (a, b) => a.or(b)?,
    };
    Some((&s[..at], op, &s[at + 2..]))
}

/// Parses every constraint of a placement; the first bad one is the error.
pub fn parse_constraints(list: &[String]) -> Result<Vec<Constraint>, String> {
    list.iter().map(|s| parse_constraint(s)).collect()
}

/// The value of a node attribute named like a constraint key
/// (`node.labels.zone`, `node.platform.os`, ...), or `None` when the key is
/// unknown or the node lacks the attribute (no such label, no description
/// reported yet).
pub fn node_attribute(node: &Node, key: &str) -> Option<String> {
    let description = node.description.as_ref();
    match attribute(key)? {
        Attribute::Id => Some(node.id.to_string()),
        Attribute::Hostname => Some(node.hostname.clone()),
        Attribute::Role => Some(node.role.to_string()),
        Attribute::PlatformOs => description.map(|d| d.os.clone()),
        Attribute::PlatformArch => description.map(|d| d.arch.clone()),
        Attribute::NodeLabel(name) => node.labels.get(name).cloned(),
        Attribute::EngineLabel(name) => {
            description.and_then(|d| d.engine_labels.get(name).cloned())
        }
    }
}

/// Whether `node` satisfies one constraint. A missing attribute never
/// matches `==` and always matches `!=`.
pub fn node_matches(node: &Node, c: &Constraint) -> bool {
    let equal = node_attribute(node, &c.key).is_some_and(|v| v.eq_ignore_ascii_case(&c.value));
    match c.op {
        ConstraintOp::Eq => equal,
        ConstraintOp::Ne => !equal,
    }
}

/// Whether `node` satisfies every constraint.
pub fn node_matches_all(node: &Node, constraints: &[Constraint]) -> bool {
    constraints.iter().all(|c| node_matches(node, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::node;
    use crate::node::NodeRole;

    #[test]
    fn parses_supported_keys_with_optional_spaces() {
        let cases = [
            (
                "node.role==manager",
                "node.role",
                ConstraintOp::Eq,
                "manager",
            ),
            (
                "node.hostname != n1",
                "node.hostname",
                ConstraintOp::Ne,
                "n1",
            ),
            (
                "node.id==00000000000000ab",
                "node.id",
                ConstraintOp::Eq,
                "00000000000000ab",
            ),
            (
                "node.labels.zone==a",
                "node.labels.zone",
                ConstraintOp::Eq,
                "a",
            ),
            (
                "engine.labels.os ==linux",
                "engine.labels.os",
                ConstraintOp::Eq,
                "linux",
            ),
            (
                "node.platform.os== linux",
                "node.platform.os",
                ConstraintOp::Eq,
                "linux",
            ),
            (
                "node.platform.arch==x86_64",
                "node.platform.arch",
                ConstraintOp::Eq,
                "x86_64",
            ),
            (
                "Node.Labels.Zone==a",
                "Node.Labels.Zone",
                ConstraintOp::Eq,
                "a",
            ),
        ];
        for (text, key, op, value) in cases {
            let c = parse_constraint(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (c.key.as_str(), c.op, c.value.as_str()),
                (key, op, value),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_bad_constraints_naming_them_and_the_keys() {
        let cases = [
            ("node.role", "expected <key>==<value>"),
            ("node.rol==manager", "unknown key \"node.rol\""),
            ("node.labels.==a", "unknown key"),
            ("==a", "the key is empty"),
            ("node.role==", "the value is empty"),
            ("node.role==a==b", "more than one operator"),
            ("node.role=manager", "expected <key>==<value>"),
        ];
        for (text, why) in cases {
            let err = parse_constraint(text).expect_err(text);
            assert!(err.contains(&format!("{text:?}")), "{err}");
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("node.labels.<name>"), "{err}");
        }
    }

    #[test]
    fn matches_node_attributes() {
        let mut n = node(0xab, "n1");
        n.role = NodeRole::Manager;
        n.labels.insert("zone".into(), "a".into());
        let desc = n.description.as_mut().expect("fixture has a description");
        desc.engine_labels.insert("os".into(), "linux".into());
        let cases = [
            ("node.role==manager", true),
            ("node.role==worker", false),
            ("node.role!=worker", true),
            ("node.hostname==N1", true),
            ("node.hostname!=n1", false),
            ("node.id==00000000000000AB", true),
            ("node.labels.zone==a", true),
            ("node.labels.zone!=a", false),
            ("node.labels.zone==b", false),
            ("node.labels.missing==a", false),
            ("node.labels.missing!=a", true),
            ("node.labels.Zone==a", false),
            ("engine.labels.os==linux", true),
            ("engine.labels.arch!=arm", true),
            ("node.platform.os==linux", true),
            ("node.platform.arch==x86_64", true),
            ("node.platform.arch!=x86_64", false),
        ];
        for (text, want) in cases {
            let c = parse_constraint(text).expect(text);
            assert_eq!(node_matches(&n, &c), want, "{text}");
        }
    }

    #[test]
    fn a_node_without_description_has_no_platform() {
        let mut n = node(1, "n1");
        n.description = None;
        let eq = parse_constraint("node.platform.os==linux").expect("valid");
        let ne = parse_constraint("node.platform.os!=linux").expect("valid");
        assert!(!node_matches(&n, &eq));
        assert!(node_matches(&n, &ne));
    }

    #[test]
    fn constraint_displays_as_written_without_spaces() {
        let c = parse_constraint(" node.labels.zone != a ").expect("valid");
        assert_eq!(c.to_string(), "node.labels.zone!=a");
    }
}
