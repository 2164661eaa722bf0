//! RFC 8414 authorization server metadata.
//!
//! The document is built once at start-up from the settings and served as
//! bytes. It lists only what this server implements, the `issuer` is the
//! configured string byte for byte (RFC 8414 §3.3: clients compare it
//! exactly), and every endpoint URL is absolute.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::state::AppState;

/// The endpoint paths Steward serves, relative to the issuer.
pub const JWKS_PATH: &str = "/jwks.json";

/// JWS algorithms accepted on `private_key_jwt` client assertions (RFC 7523):
/// the verifier's own list, so what is advertised is exactly what is accepted.
const ASSERTION_ALGS: [&str; 5] = steward_jose::CLIENT_ASSERTION_ALGORITHMS;

/// Builds the metadata document for `issuer`.
pub fn metadata_document(issuer: &str, cimd_enabled: bool, registration: bool, scopes: &[String]) -> Value {
    let base = issuer.trim_end_matches('/');
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}{JWKS_PATH}"),
        "revocation_endpoint": format!("{base}/revoke"),
        "introspection_endpoint": format!("{base}/introspect"),
        "revocation_endpoint_auth_methods_supported":
            ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported":
            ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        // RFC 8414 §2: no default is implied when these are absent, so a
        // client cannot use private_key_jwt at these endpoints without them
        // (authlib's metadata validator refuses the document). Revocation and
        // introspection authenticate exactly as the token endpoint does.
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        // RFC 9207: `iss` is on every authorization response, errors included.
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": ["none", "login", "consent"],
    });
    if !scopes.is_empty() {
        doc["scopes_supported"] = json!(scopes);
    }
    if registration {
        // RFC 8414 §2 / RFC 7591: present only when DCR is on; MCP clients
        // fall back to DCR when they see it (SPEC_CHECKLIST §13).
        doc["registration_endpoint"] = json!(format!("{base}{}", crate::oauth::registration::REGISTER_PATH));
    }
    if cimd_enabled {
        // CIMD -01 §5 / -02 §6: ASs that publish metadata include this when they support CIMD.
        doc["client_id_metadata_document_supported"] = Value::Bool(true);
    }
    doc
}

/// The well-known path for an issuer: RFC 8414 §3.1 inserts the well-known
/// segment between the host and the issuer's path.
pub fn well_known_path(issuer: &str) -> String {
    let path = url::Url::parse(issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    format!("/.well-known/oauth-authorization-server{path}")
}

pub async fn metadata(State(state): State<AppState>) -> Response {
    json_bytes(state.metadata.clone())
}

/// A cached JSON body with the content type RFC 8414 §3.2 requires.
pub fn json_bytes(body: Bytes) -> Response {
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_inserts_the_issuer_path() {
        assert_eq!(
            well_known_path("https://as.example"),
            "/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            well_known_path("https://as.example/tenant1"),
            "/.well-known/oauth-authorization-server/tenant1"
        );
    }

    #[test]
    fn issuer_is_byte_for_byte_and_urls_absolute() {
        let d = metadata_document("https://as.example/t", true, true, &[]);
        assert_eq!(d["token_endpoint"], "https://as.example/t/token");
        assert_eq!(d["authorization_response_iss_parameter_supported"], true);
        assert_eq!(d["issuer"], "https://as.example/t");
        assert_eq!(d["jwks_uri"], "https://as.example/t/jwks.json");
        assert_eq!(d["client_id_metadata_document_supported"], true);
        assert_eq!(d["registration_endpoint"], "https://as.example/t/register");
        let off = metadata_document("https://as.example/t", true, false, &[]);
        assert!(
            off.get("registration_endpoint").is_none(),
            "not advertised when dcr.mode = off"
        );
    }

    #[test]
    fn every_endpoint_offering_private_key_jwt_lists_its_algorithms() {
        let d = metadata_document("https://as.example", true, false, &[]);
        for endpoint in ["token", "revocation", "introspection"] {
            let methods = &d[format!("{endpoint}_endpoint_auth_methods_supported")];
            assert!(methods.as_array().unwrap().iter().any(|m| m == "private_key_jwt"));
            let algs = d[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")]
                .as_array()
                .unwrap();
            assert!(algs.iter().any(|a| a == "ES256"), "{endpoint}");
            assert!(!algs.iter().any(|a| a == "none"), "{endpoint}");
        }
    }
}
