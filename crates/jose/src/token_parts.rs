//! Splitting a compact JWS (RFC 7515 §7.1) and reading its header and
//! payload without trusting either.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

/// The header members Steward acts on. Anything else is ignored, except
/// `crit`, which RFC 7515 §4.1.11 forbids ignoring.
#[derive(Debug, Deserialize)]
pub(crate) struct RawHeader {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub crit: Option<Value>,
}

pub(crate) struct Parts<'a> {
    pub header: RawHeader,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: the signing input.
    pub signing_input: &'a str,
    pub signature: &'a str,
    pub payload: Vec<u8>,
}

/// Why a token could not even be parsed.
pub(crate) enum PartsError {
    Malformed,
    Critical,
}

pub(crate) fn split(token: &str) -> Result<Parts<'_>, PartsError> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(PartsError::Malformed)?;
    let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(PartsError::Malformed)?;
    if payload_b64.contains('.') || signature.is_empty() {
        return Err(PartsError::Malformed);
    }
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| PartsError::Malformed)?;
    let header: RawHeader = serde_json::from_slice(&header_json).map_err(|_| PartsError::Malformed)?;
    if header.crit.is_some() {
        // Steward understands no header extensions, so any `crit` list names
        // one it does not understand and the JWS MUST be rejected.
        return Err(PartsError::Critical);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| PartsError::Malformed)?;
    // RFC 7519 §7.2 step 10: the claims set MUST be a JSON object. Checked
    // here because serde would happily read a struct from a JSON array.
    if payload.trim_ascii_start().first() != Some(&b'{') {
        return Err(PartsError::Malformed);
    }
    Ok(Parts {
        header,
        signing_input,
        signature,
        payload,
    })
}

/// A NumericDate (RFC 7519 §2): integer seconds; fractional values are
/// allowed by the RFC and truncated.
pub(crate) fn numeric_date(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && f.abs() < 9.0e15)
            .map(|f| f.trunc() as i64)
    })
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3); true when
/// `expected` is among them.
pub(crate) fn audience_contains(aud: Option<&Value>, expected: &str) -> bool {
    match aud {
        Some(Value::String(s)) => s == expected,
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(expected)),
        _ => false,
    }
}

/// `aud` names `expected` and nothing else: the string itself, or an array
/// whose only member it is (RFC 7523bis for client assertions: the issuer
/// must be the sole audience, so an assertion that also names another
/// server cannot be replayed between them).
pub(crate) fn audience_is_only(aud: Option<&Value>, expected: &str) -> bool {
    match aud {
        Some(Value::String(s)) => s == expected,
        Some(Value::Array(items)) => matches!(items.as_slice(), [Value::String(s)] if s == expected),
        _ => false,
    }
}

/// Media-type comparison for `typ` (RFC 7515 §4.1.9): case-insensitive, and
/// a value without '/' means `application/<value>`.
pub(crate) fn typ_matches(found: &str, expected: &str) -> bool {
    fn strip(t: &str) -> &str {
        match t.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &t[12..],
            _ => t,
        }
    }
    strip(found).eq_ignore_ascii_case(strip(expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typ_comparison_follows_rfc7515() {
        assert!(typ_matches("at+jwt", "at+jwt"));
        assert!(typ_matches("application/at+jwt", "at+jwt"));
        assert!(typ_matches("AT+JWT", "at+jwt"));
        assert!(!typ_matches("jwt", "at+jwt"));
        assert!(!typ_matches("text/at+jwt", "at+jwt"));
    }

    #[test]
    fn sole_audience_refuses_extra_values() {
        assert!(audience_is_only(Some(&json!("a")), "a"));
        assert!(audience_is_only(Some(&json!(["a"])), "a"));
        assert!(!audience_is_only(Some(&json!(["a", "b"])), "a"));
        assert!(!audience_is_only(Some(&json!(["a", "a"])), "a"));
        assert!(!audience_is_only(Some(&json!([])), "a"));
        assert!(!audience_is_only(Some(&json!("b")), "a"));
        assert!(!audience_is_only(None, "a"));
    }

    #[test]
    fn audience_may_be_a_string_or_an_array() {
        assert!(audience_contains(Some(&json!("a")), "a"));
        assert!(audience_contains(Some(&json!(["b", "a"])), "a"));
        assert!(!audience_contains(Some(&json!(["b"])), "a"));
        assert!(!audience_contains(None, "a"));
        assert!(!audience_contains(Some(&json!(1)), "a"));
    }

    #[test]
    fn numeric_dates_accept_integers_and_fractions_only() {
        assert_eq!(numeric_date(&json!(10)), Some(10));
        assert_eq!(numeric_date(&json!(10.9)), Some(10));
        assert_eq!(numeric_date(&json!("10")), None);
    }

    #[test]
    fn malformed_shapes_are_refused() {
        // e30 = {}, WyJ4Il0 = ["x"]
        for t in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "e30.e30.",
            "!!.e30.c2ln",
            "e30.WyJ4Il0.c2ln",
        ] {
            assert!(split(t).is_err(), "{t}");
        }
        // {"alg":"ES256","crit":["exp"]}
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","crit":["exp"]}"#);
        assert!(matches!(
            split(&format!("{h}.e30.c2ln")),
            Err(PartsError::Critical)
        ));
    }
}
