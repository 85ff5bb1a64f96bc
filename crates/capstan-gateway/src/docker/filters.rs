//! The `filters` query parameter of list endpoints: JSON, either
//! `{"label":{"a=b":true}}` or the older `{"label":["a=b"]}`.

use std::collections::BTreeMap;

use crate::error::ApiError;

/// Parsed filters: key → values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the raw (already URL-decoded) `filters` value; `allowed` are
    /// the keys this endpoint understands (others are refused, as the
    /// engine does: "invalid filter 'x'").
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return Ok(Self::default());
        };
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::invalid(format!("invalid filters {raw:?}: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(ApiError::invalid(format!(
                "invalid filters {raw:?}: expected a JSON object"
            )));
        };
        let mut out = BTreeMap::new();
        for (key, v) in map {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::invalid(format!("invalid filter '{key}'")));
            }
            let values: Vec<String> = match v {
                serde_json::Value::Object(m) => m
                    .into_iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(k, _)| k)
                    .collect(),
                serde_json::Value::Array(items) => items
                    .into_iter()
                    .map(|i| match i {
                        serde_json::Value::String(s) => Ok(s),
                        other => Err(ApiError::invalid(format!(
                            "invalid filter '{key}': {other} is not a string"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(ApiError::invalid(format!(
                        "invalid filter '{key}': {other} is neither a list nor an object"
                    )))
                }
            };
            out.insert(key, values);
        }
        Ok(Self(out))
    }

    /// The values given for `key` (empty when the filter is absent).
    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether no filter was given.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(Vec::is_empty)
    }

    /// `key` is absent, or one of its values satisfies `pred` (values of
    /// one key are alternatives).
    pub fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        let values = self.get(key);
        values.is_empty() || values.iter().any(|v| pred(v))
    }

    /// Every `label` filter (`key` or `key=value`) matches `labels`
    /// (label filters all have to hold, as in the engine).
    pub fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        self.get("label").iter().all(|f| match f.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(f.as_str()),
        })
    }

    /// The `name` filter: a value matches when it is a substring of `name`
    /// (the engine's behaviour for swarm objects).
    pub fn name_matches(&self, name: &str) -> bool {
        self.any("name", |n| name.contains(n))
    }

    /// The `id` filter: a value matches when it is a prefix of `id`.
    pub fn id_matches(&self, id: &str) -> bool {
        self.any("id", |p| id.starts_with(p))
    }

    /// The filters as the engine's JSON (to pass on to a node's engine).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".into())
    }

    /// Adds a value to `key`.
    pub fn add(&mut self, key: &str, value: impl Into<String>) {
        self.0
            .entry(key.to_string())
            .or_default()
            .push(value.into());
    }

    /// Removes `key`, returning its values.
    pub fn take(&mut self, key: &str) -> Vec<String> {
        self.0.remove(key).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_parse() {
        let new =
            Filters::parse(Some(r#"{"label":{"a=b":true,"c":false}}"#), &["label"]).expect("new");
        assert_eq!(new.get("label"), ["a=b"]);
        let old = Filters::parse(Some(r#"{"label":["a=b"]}"#), &["label"]).expect("old");
        assert_eq!(old, new);
        assert!(Filters::parse(None, &[]).expect("none").is_empty());
    }

    #[test]
    fn bad_filters_name_the_problem() {
        let e = Filters::parse(Some(r#"{"bogus":["x"]}"#), &["label"]).expect_err("unknown key");
        assert!(
            e.message.contains("invalid filter 'bogus'"),
            "{}",
            e.message
        );
        let e = Filters::parse(Some("{not json"), &["label"]).expect_err("syntax");
        assert!(e.message.contains("invalid filters"), "{}", e.message);
        let e = Filters::parse(Some(r#"{"label":[1]}"#), &["label"]).expect_err("type");
        assert!(e.message.contains("not a string"), "{}", e.message);
    }

    #[test]
    fn label_name_and_id_filters_match_like_the_engine() {
        let f = Filters::parse(
            Some(r#"{"label":["a=b","c"],"name":["we"],"id":["ab"]}"#),
            &["label", "name", "id"],
        )
        .expect("parse");
        let labels: BTreeMap<String, String> =
            [("a".into(), "b".into()), ("c".into(), String::new())].into();
        assert!(f.labels_match(&labels));
        assert!(!f.labels_match(&BTreeMap::from([("a".into(), "b".into())])));
        assert!(f.name_matches("web"));
        assert!(!f.name_matches("db"));
        assert!(f.id_matches("abc"));
        assert!(!f.id_matches("cab"));
    }
}
