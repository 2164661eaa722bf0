//! JSON parsing that refuses duplicate object keys.
//!
//! RFC 8259 §4 leaves duplicate names undefined and parsers disagree: serde_json
//! keeps the last, others keep the first. A document with two `redirect_uris`
//! could therefore be read one way by Steward and another way by a reviewer's
//! tool or another authorization server, so a duplicate key at any nesting
//! level makes the document invalid.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// Why a body is not a strict JSON value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StrictJsonError {
    #[error("the document is not valid UTF-8")]
    NotUtf8,
    #[error("the document is not valid JSON: {0}")]
    Syntax(String),
    #[error("the key {0:?} appears more than once in one object")]
    DuplicateKey(String),
}

/// Parses `body` as one JSON value, refusing duplicate keys at every level.
pub fn parse(body: &[u8]) -> Result<Value, StrictJsonError> {
    let text = std::str::from_utf8(body).map_err(|_| StrictJsonError::NotUtf8)?;
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = StrictSeed {
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => match duplicate.into_inner() {
            Some(key) => Err(StrictJsonError::DuplicateKey(key)),
            None => Err(StrictJsonError::Syntax(e.to_string())),
        },
    }
}

/// Carries the slot where the first duplicate key is reported, so the caller
/// can tell "duplicate key" from ordinary syntax errors without matching on
/// error message text.
#[derive(Clone, Copy)]
struct StrictSeed<'a> {
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let message = format!("duplicate key {key:?}");
                *self.duplicate.borrow_mut() = Some(key);
                return Err(de::Error::custom(message));
            }
            let value = map.next_value_seed(self)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ordinary_json() {
        let v = parse(br#"{"a":[1,2.5,-3,"x",null,true,{"b":{}}]}"#).unwrap();
        assert_eq!(v["a"][3], "x");
        assert_eq!(v["a"][1], 2.5);
    }

    #[test]
    fn duplicate_key_at_top_level() {
        assert_eq!(
            parse(br#"{"a":1,"a":2}"#),
            Err(StrictJsonError::DuplicateKey("a".into()))
        );
    }

    #[test]
    fn duplicate_key_nested_in_arrays_and_objects() {
        assert_eq!(
            parse(br#"{"jwks":{"keys":[{"kty":"EC","kty":"RSA"}]}}"#),
            Err(StrictJsonError::DuplicateKey("kty".into()))
        );
    }

    #[test]
    fn escaped_spelling_of_the_same_key_is_a_duplicate() {
        assert_eq!(
            parse(br#"{"a":1,"\u0061":2}"#),
            Err(StrictJsonError::DuplicateKey("a".into()))
        );
    }

    #[test]
    fn not_utf8_and_syntax_errors() {
        assert_eq!(parse(b"{\"a\":\"\xff\"}"), Err(StrictJsonError::NotUtf8));
        assert!(matches!(parse(b"{\"a\":1,}"), Err(StrictJsonError::Syntax(_))));
        assert!(matches!(parse(b"{} {}"), Err(StrictJsonError::Syntax(_))));
    }
}
