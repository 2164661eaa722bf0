//! Software statements (RFC 7591 §2.3): federation. A statement is a JWT
//! signed by a party the operator already trusts — listed in
//! `[[dcr.trusted_issuers]]` — asserting who the software is. It backs a
//! registration the way an initial access token does, with the tier and
//! scope ceiling the operator granted that issuer, and its claims take
//! precedence over the same members of the request body (§2.3: "the
//! authorization server MUST treat the software statement's values as
//! taking precedence").
//!
//! Order matters: the issuer named by the (still unverified) statement is
//! looked up first, so a statement from an unknown issuer is
//! `unapproved_software_statement` without any key being fetched; only then
//! is the signature checked with that issuer's keys, and nothing the
//! statement says is believed before.

use crate::error::RegistrationError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use steward_core::{TrustTier, UnixTime};
use steward_jose::{StatementError, statement_issuer, verify_software_statement};

/// JWT claims that describe the statement itself, not the client: never
/// copied into the registration.
const STATEMENT_ONLY_CLAIMS: [&str; 8] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "software_statement",
];

/// One `[[dcr.trusted_issuers]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The statement's `iss`, compared exactly.
    pub issuer: String,
    /// The issuer's public keys, inline (a JWK set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// Or an https URL serving them, fetched through the guarded fetcher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The tier a client registered with this issuer's statement starts with.
    #[serde(default = "default_tier")]
    pub tier: TrustTier,
    /// The scopes its statements may ever grant: the scope ceiling of every
    /// client it backs, under the policy's own decision.
    pub scopes: Vec<String>,
}

const fn default_tier() -> TrustTier {
    TrustTier::Verified
}

/// Where an issuer's keys come from.
pub enum IssuerKeys<'a> {
    Inline(&'a Value),
    Uri(&'a str),
}

impl TrustedIssuer {
    pub fn keys(&self) -> IssuerKeys<'_> {
        match (&self.jwks, &self.jwks_uri) {
            (Some(v), _) => IssuerKeys::Inline(v),
            (None, Some(u)) => IssuerKeys::Uri(u),
            // `validate` refuses an entry with neither; an empty set verifies nothing.
            (None, None) => IssuerKeys::Inline(&Value::Null),
        }
    }

    /// What serde cannot check: one key source, public keys only, an https
    /// `jwks_uri`, a non-empty ceiling.
    pub fn validate(&self) -> Result<(), String> {
        if self.issuer.trim().is_empty() {
            return Err("issuer must not be empty".to_owned());
        }
        match (&self.jwks, &self.jwks_uri) {
            (Some(_), Some(_)) => return Err(format!("{}: set jwks or jwks_uri, not both", self.issuer)),
            (None, None) => return Err(format!("{}: set jwks (inline keys) or jwks_uri", self.issuer)),
            (Some(jwks), None) => {
                steward_jose::check_issuer_jwks(jwks).map_err(|e| format!("{}: jwks: {e}", self.issuer))?;
            }
            (None, Some(uri)) => {
                let url = url::Url::parse(uri).map_err(|e| format!("{}: jwks_uri: {e}", self.issuer))?;
                if url.scheme() != "https" {
                    return Err(format!("{}: jwks_uri must be an https URL", self.issuer));
                }
            }
        }
        if self.scopes.is_empty() {
            return Err(format!(
                "{}: scopes (the ceiling its statements may grant) must name at least one scope",
                self.issuer
            ));
        }
        Ok(())
    }
}

/// The trusted issuer a statement claims to come from.
pub fn trusted_issuer<'a>(
    issuers: &'a [TrustedIssuer],
    statement: &str,
) -> Result<&'a TrustedIssuer, RegistrationError> {
    let iss = statement_issuer(statement).map_err(|e| RegistrationError::statement(e.to_string()))?;
    issuers.iter().find(|i| i.issuer == iss).ok_or_else(|| {
        RegistrationError::unapproved_statement(format!(
            "software statements from {iss:?} are not trusted by this server"
        ))
    })
}

/// Verifies `statement` with `issuer`'s key set `jwks`, for the
/// authorization server `audience`; returns the claims that describe the
/// client.
pub fn verify(
    issuer: &TrustedIssuer,
    jwks: &Value,
    statement: &str,
    audience: &str,
    now: UnixTime,
) -> Result<Map<String, Value>, StatementError> {
    let mut claims = verify_software_statement(statement, &issuer.issuer, jwks, audience, now)?;
    for c in STATEMENT_ONLY_CLAIMS {
        claims.remove(c);
    }
    Ok(claims)
}

/// The request body with the statement's claims laid over it: a member the
/// statement asserts replaces the body's. The body was parsed (and its
/// duplicate members refused) before; the result is parsed again by the
/// same rules, so a statement cannot smuggle in what a body could not say.
pub fn overlay(body: &[u8], claims: &Map<String, Value>) -> Result<Vec<u8>, RegistrationError> {
    let mut merged: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|_| RegistrationError::metadata("the request body is not a JSON object"))?;
    for (k, v) in claims {
        merged.insert(k.clone(), v.clone());
    }
    serde_json::to_vec(&Value::Object(merged))
        .map_err(|_| RegistrationError::metadata("the registration could not be assembled"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issuer(jwks: Option<Value>, jwks_uri: Option<&str>, scopes: &[&str]) -> TrustedIssuer {
        TrustedIssuer {
            issuer: "https://fed.example".into(),
            jwks,
            jwks_uri: jwks_uri.map(str::to_owned),
            tier: TrustTier::Verified,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn an_issuer_entry_needs_one_public_key_source_and_a_ceiling() {
        let public = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]});
        assert!(issuer(Some(public.clone()), None, &["a"]).validate().is_ok());
        assert!(
            issuer(None, Some("https://fed.example/jwks"), &["a"])
                .validate()
                .is_ok()
        );
        let both = issuer(Some(public.clone()), Some("https://fed.example/jwks"), &["a"]);
        assert!(both.validate().unwrap_err().contains("not both"));
        assert!(issuer(None, None, &["a"]).validate().is_err());
        assert!(
            issuer(None, Some("http://fed.example/jwks"), &["a"])
                .validate()
                .unwrap_err()
                .contains("https")
        );
        assert!(
            issuer(Some(public), None, &[])
                .validate()
                .unwrap_err()
                .contains("ceiling")
        );
        let mut private = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]});
        private["keys"][0]["d"] = json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
        assert!(
            issuer(Some(private), None, &["a"]).validate().is_err(),
            "private key material"
        );
    }

    #[test]
    fn an_unknown_issuer_is_unapproved_and_junk_is_invalid() {
        let issuers = vec![issuer(None, Some("https://fed.example/jwks"), &["a"])];
        let b64 = |v: &Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
        };
        let stranger = format!(
            "{}.{}.c2ln",
            b64(&json!({"alg": "ES256"})),
            b64(&json!({"iss": "https://stranger.example"}))
        );
        let e = trusted_issuer(&issuers, &stranger).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::UnapprovedSoftwareStatement);
        let e = trusted_issuer(&issuers, "not-a-jwt").unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::InvalidSoftwareStatement);
        let known = format!(
            "{}.{}.c2ln",
            b64(&json!({"alg": "ES256"})),
            b64(&json!({"iss": "https://fed.example"}))
        );
        assert_eq!(
            trusted_issuer(&issuers, &known).unwrap().issuer,
            "https://fed.example"
        );
    }

    #[test]
    fn statement_claims_take_precedence_over_the_body() {
        let body = br#"{"client_name":"Body Name","redirect_uris":["https://body.example/cb"],"software_statement":"x.y.z"}"#;
        let claims: Map<String, Value> =
            serde_json::from_value(json!({"client_name": "Signed Name", "software_id": "sw-1"})).unwrap();
        let merged: Value = serde_json::from_slice(&overlay(body, &claims).unwrap()).unwrap();
        assert_eq!(merged["client_name"], "Signed Name");
        assert_eq!(merged["software_id"], "sw-1");
        assert_eq!(
            merged["redirect_uris"][0], "https://body.example/cb",
            "unasserted members stay"
        );
        assert_eq!(merged["software_statement"], "x.y.z");
    }
}
