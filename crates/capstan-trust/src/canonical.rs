//! Canonical JSON as Notary's encoder writes it: object keys sorted by
//! bytes, no whitespace, integers only, and strings with only `"` and `\`
//! escaped. Every TUF signature covers the canonical form of `signed`.

use serde_json::Value;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no canonical JSON form: {0}")]
pub struct NotCanonical(pub String);

/// The canonical bytes of `value`.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, NotCanonical> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), NotCanonical> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                // Notary decodes numbers as floats and writes whole ones
                // as integers; anything else cannot be signed.
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !f.is_finite() || f.fract() != 0.0 || f.abs() > 9.0e15 {
                    return Err(NotCanonical(format!("number {n} is not an integer")));
                }
                #[allow(clippy::cast_possible_truncation)]
                out.extend_from_slice((f as i64).to_string().as_bytes());
            }
        }
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(k, out);
                out.push(b':');
                write(&map[k], out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_and_keeps_strings_raw() {
        let v: Value = serde_json::from_str(
            r#"{"b": 1, "a": {"z": [true, null], "y": "x<\"\\\n&"}, "c": 2.0}"#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(to_vec(&v).unwrap()).unwrap(),
            "{\"a\":{\"y\":\"x<\\\"\\\\\n&\",\"z\":[true,null]},\"b\":1,\"c\":2}"
        );
    }

    #[test]
    fn refuses_fractions() {
        let v: Value = serde_json::from_str(r#"{"a": 1.5}"#).unwrap();
        assert!(to_vec(&v).is_err());
    }
}
