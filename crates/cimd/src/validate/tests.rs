use super::*;
use serde_json::json;

const ID: &str = "https://client.example/oauth/client.json";

fn id() -> ClientIdUrl {
    ClientIdUrl::parse(ID, &UrlRules::default()).unwrap()
}

fn base() -> Value {
    json!({
        "client_id": ID,
        "client_name": "Example MCP Client",
        "redirect_uris": ["http://localhost/callback", "https://client.example/cb"],
    })
}

fn with(changes: Value) -> Vec<u8> {
    let mut doc = base();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            doc.as_object_mut().unwrap().remove(k);
        } else {
            doc[k] = v.clone();
        }
    }
    serde_json::to_vec(&doc).unwrap()
}

fn check(body: &[u8]) -> Result<ClientMetadata, Vec<Problem>> {
    validate_document(&id(), body, &ValidationPolicy::default())
}

fn rules(body: &[u8]) -> Vec<&'static str> {
    check(body).unwrap_err().iter().map(|p| p.rule).collect()
}

#[test]
fn a_minimal_document_is_a_public_auth_code_client() {
    let m = check(&with(json!({}))).unwrap();
    assert_eq!(m.client_id, ID);
    assert_eq!(m.auth_method, AuthMethod::None);
    assert_eq!(m.grant_types, vec![GrantType::AuthorizationCode]);
    assert_eq!(m.response_types, vec![ResponseType::Code]);
    assert_eq!(m.redirect_uris.len(), 2);
    assert!(!m.loopback_only());
    assert!(!m.client_uri_same_origin);
}

#[test]
fn not_utf8() {
    assert_eq!(rules(b"{\"client_id\":\"\xfe\"}"), ["not_utf8"]);
}

#[test]
fn invalid_json() {
    assert_eq!(rules(b"{\"client_id\": "), ["invalid_json"]);
}

#[test]
fn duplicate_key() {
    let body = format!(
        r#"{{"client_id":"{ID}","client_name":"a","redirect_uris":["https://evil.example/cb"],"redirect_uris":["https://client.example/cb"]}}"#
    );
    assert_eq!(rules(body.as_bytes()), ["duplicate_key"]);
}

#[test]
fn duplicate_key_nested() {
    let body = format!(
        r#"{{"client_id":"{ID}","client_name":"a","redirect_uris":["https://c.example/cb"],"jwks":{{"keys":[{{"kty":"EC","x":"1","x":"2"}}]}}}}"#
    );
    assert_eq!(rules(body.as_bytes()), ["duplicate_key"]);
}

#[test]
fn not_an_object() {
    assert_eq!(rules(b"[]"), ["not_an_object"]);
    assert_eq!(
        rules(b"\"https://client.example/oauth/client.json\""),
        ["not_an_object"]
    );
}

#[test]
fn client_id_missing() {
    assert_eq!(rules(&with(json!({"client_id": null}))), ["client_id_missing"]);
}

#[test]
fn client_id_mismatch() {
    for other in [
        "https://client.example:443/oauth/client.json",
        "https://CLIENT.example/oauth/client.json",
        "https://client.example/oauth/client.json/",
        "https://evil.example/oauth/client.json",
    ] {
        assert_eq!(
            rules(&with(json!({"client_id": other}))),
            ["client_id_mismatch"],
            "{other}"
        );
    }
    assert_eq!(rules(&with(json!({"client_id": 7}))), ["client_id_mismatch"]);
}

#[test]
fn client_id_with_default_port_matches_only_itself() {
    let id443 = ClientIdUrl::parse(
        "https://client.example:443/oauth/client.json",
        &UrlRules::default(),
    )
    .unwrap();
    let body = with(json!({"client_id": "https://client.example:443/oauth/client.json"}));
    assert!(validate_document(&id443, &body, &ValidationPolicy::default()).is_ok());
    assert_eq!(rules(&body), ["client_id_mismatch"]);
}

#[test]
fn client_name_required() {
    assert_eq!(
        rules(&with(json!({"client_name": null}))),
        ["client_name_required"]
    );
    assert_eq!(
        rules(&with(json!({"client_name": "  "}))),
        ["client_name_required"]
    );
    assert_eq!(rules(&with(json!({"client_name": 3}))), ["client_name_required"]);
}

#[test]
fn redirect_uris_required() {
    assert_eq!(
        rules(&with(json!({"redirect_uris": null}))),
        ["redirect_uris_required"]
    );
    assert_eq!(
        rules(&with(json!({"redirect_uris": []}))),
        ["redirect_uris_required"]
    );
    assert_eq!(
        rules(&with(json!({"redirect_uris": "https://c.example/cb"}))),
        ["redirect_uris_required"]
    );
}

/// Issue 11 item 4: an entry Steward will not use is dropped, not fatal;
/// the usable ones stay and each dropped one is reported with its reason.
#[test]
fn unusable_redirect_uris_are_dropped_and_the_usable_ones_kept() {
    for bad in [
        "https://c.example/cb#x",
        "http://c.example/cb",
        "/cb",
        "javascript:alert(1)",
        "com.example.app:/cb",
    ] {
        let body = with(json!({"redirect_uris": ["https://c.example/ok", bad]}));
        let m = check(&body).unwrap_or_else(|p| panic!("{bad}: {p:?}"));
        let kept: Vec<&str> = m.redirect_uris.iter().map(|r| r.as_str()).collect();
        assert_eq!(kept, ["https://c.example/ok"], "{bad}");
        assert_eq!(m.dropped_redirect_uris.len(), 1, "{bad}");
        assert_eq!(m.dropped_redirect_uris[0].index, 1);
        assert_eq!(m.dropped_redirect_uris[0].uri, bad);
        assert!(!m.dropped_redirect_uris[0].reason.is_empty());
    }
}

#[test]
fn the_mcp_inspector_document_keeps_its_loopback_uri() {
    let body = with(json!({"redirect_uris": [
        "cursor://anysphere.cursor-retrieval/cb",
        "com.example.inspector:/cb",
        "http://localhost:6274/oauth/callback",
    ]}));
    let m = check(&body).unwrap();
    assert_eq!(m.redirect_uris.len(), 1);
    assert!(m.loopback_only());
    let dropped: Vec<usize> = m.dropped_redirect_uris.iter().map(|d| d.index).collect();
    assert_eq!(dropped, [0, 1]);
}

#[test]
fn dropped_entries_are_cut_to_a_bounded_length() {
    let long = format!("com.example.app:/{}", "é".repeat(400));
    let body = with(json!({"redirect_uris": ["https://c.example/ok", long]}));
    let m = check(&body).unwrap();
    let kept = &m.dropped_redirect_uris[0].uri;
    assert!(kept.len() <= crate::validate::DROPPED_URI_MAX);
    assert!(long.starts_with(kept.as_str()));
}

/// Only when no usable entry remains is the document refused, one problem
/// per entry; a non-string entry is a malformed document either way.
#[test]
fn invalid_redirect_uri_when_no_usable_entry_remains() {
    let body = with(json!({"redirect_uris": ["http://c.example/cb", "com.example.app:/cb"]}));
    assert_eq!(rules(&body), ["invalid_redirect_uri", "invalid_redirect_uri"]);
    let body = with(json!({"redirect_uris": ["https://c.example/ok", 42]}));
    assert_eq!(rules(&body), ["invalid_redirect_uri"]);
}

#[test]
fn private_use_scheme_allowed_by_policy() {
    let body = with(json!({"redirect_uris": ["com.example.app:/cb"]}));
    let lax = ValidationPolicy {
        allow_private_use_schemes: true,
        ..ValidationPolicy::default()
    };
    assert!(validate_document(&id(), &body, &lax).is_ok());
}

#[test]
fn forbidden_member() {
    assert_eq!(
        rules(&with(json!({"client_secret": "s3cret"}))),
        ["forbidden_member"]
    );
    assert_eq!(
        rules(&with(json!({"client_secret_expires_at": 0}))),
        ["forbidden_member"]
    );
}

#[test]
fn forbidden_auth_method() {
    for m in [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "tls_client_auth",
        "something_new",
    ] {
        let body = with(json!({"token_endpoint_auth_method": m}));
        assert_eq!(rules(&body), ["forbidden_auth_method"], "{m}");
    }
}

#[test]
fn auth_method_picks_from_supported_preferring_private_key_jwt() {
    let body = with(json!({
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "none", "private_key_jwt"],
        "jwks_uri": "https://client.example/jwks.json",
    }));
    assert_eq!(check(&body).unwrap().auth_method, AuthMethod::PrivateKeyJwt);
    let body = with(json!({"token_endpoint_auth_methods_supported": ["client_secret_post", "none"]}));
    assert_eq!(check(&body).unwrap().auth_method, AuthMethod::None);
}

#[test]
fn no_supported_auth_method() {
    let body = with(json!({"token_endpoint_auth_methods_supported": ["client_secret_basic"]}));
    assert_eq!(rules(&body), ["no_supported_auth_method"]);
}

#[test]
fn keys_required() {
    let body = with(json!({"token_endpoint_auth_method": "private_key_jwt"}));
    assert_eq!(rules(&body), ["keys_required"]);
    let body = with(json!({
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": "https://client.example/jwks.json",
        "jwks": {"keys": []},
    }));
    assert_eq!(rules(&body), ["keys_required"]);
    let body = with(json!({
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}]},
    }));
    let m = check(&body).unwrap();
    assert_eq!(m.auth_method, AuthMethod::PrivateKeyJwt);
    assert!(m.jwks.is_some());
}

#[test]
fn private_key_material() {
    for member in PRIVATE_JWK_MEMBERS {
        let mut key = json!({"kty": "RSA", "n": "x", "e": "AQAB"});
        key[member] = json!("secret");
        let body = with(json!({"jwks": {"keys": [key]}}));
        assert_eq!(rules(&body), ["private_key_material"], "{member}");
    }
    // A JWK hidden elsewhere in the document is found too.
    let body = with(json!({"extension": {"nested": [{"kty": "oct", "k": "c2VjcmV0"}]}}));
    assert_eq!(rules(&body), ["private_key_material"]);
    // A jwks key without kty is still a key.
    let body = with(json!({"jwks": {"keys": [{"d": "x"}]}}));
    assert_eq!(rules(&body), ["private_key_material"]);
}

#[test]
fn private_key_material_beside_the_jwks_keys_is_found() {
    // Not in `keys`, but still inside `jwks`: a symmetric key next to an empty set.
    let body = with(json!({"jwks": {"keys": [], "x": {"kty": "oct", "k": "c2VjcmV0"}}}));
    let problems = check(&body).unwrap_err();
    assert_eq!(
        problems.iter().map(|p| p.rule).collect::<Vec<_>>(),
        ["private_key_material"]
    );
    assert_eq!(problems[0].member.as_deref(), Some("jwks"));
    // Deeper inside jwks, and inside a key's own members.
    for jwks in [
        json!({"keys": [], "extra": [{"nested": {"kty": "RSA", "n": "x", "e": "AQAB", "d": "x"}}]}),
        json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "x5": {"kty": "oct", "k": "s"}}]}),
        json!({"keys": [], "more": {"keys": [{"p": "x"}]}}),
    ] {
        assert_eq!(
            rules(&with(json!({"jwks": jwks.clone()}))),
            ["private_key_material"],
            "{jwks}"
        );
    }
    // Public keys alone are fine, and `k` outside a JWK-shaped object is not key material.
    let public = with(json!({
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}], "k": "not a key"},
        "software": {"k": 1},
    }));
    check(&public).unwrap();
}

#[test]
fn invalid_jwks() {
    assert_eq!(rules(&with(json!({"jwks": [1]}))), ["invalid_jwks"]);
    assert_eq!(rules(&with(json!({"jwks": {"keys": [1]}}))), ["invalid_jwks"]);
}

#[test]
fn uri_not_https() {
    for member in URI_MEMBERS {
        for bad in [
            "http://client.example/x",
            "/relative",
            "javascript:alert(1)",
            "https://",
        ] {
            let body = with(json!({ member: bad }));
            assert_eq!(rules(&body), ["uri_not_https"], "{member} {bad}");
        }
    }
}

#[test]
fn unsupported_grant_types() {
    let body = with(json!({"grant_types": ["implicit", "password"]}));
    assert_eq!(rules(&body), ["unsupported_grant_types"]);
    let body = with(json!({"grant_types": ["implicit", "refresh_token", "authorization_code", "urn:x"]}));
    assert_eq!(
        check(&body).unwrap().grant_types,
        vec![GrantType::RefreshToken, GrantType::AuthorizationCode]
    );
}

#[test]
fn unsupported_response_types() {
    assert_eq!(
        rules(&with(json!({"response_types": ["token"]}))),
        ["unsupported_response_types"]
    );
    let body = with(json!({"response_types": ["token", "code"]}));
    assert_eq!(check(&body).unwrap().response_types, vec![ResponseType::Code]);
}

#[test]
fn invalid_member_type() {
    for (member, value) in [
        ("scope", json!(["a"])),
        ("contacts", json!("a@b.example")),
        ("software_statement", json!(1)),
        ("grant_types", json!("authorization_code")),
        ("token_endpoint_auth_method", json!(["none"])),
        ("logo_uri", json!(5)),
    ] {
        let body = with(json!({ member: value }));
        assert_eq!(rules(&body), ["invalid_member_type"], "{member}");
    }
}

#[test]
fn unknown_members_are_ignored() {
    let body = with(json!({"application_type": "native", "software_version": "1.2", "x-custom": {"a": 1}}));
    assert!(check(&body).is_ok());
}

#[test]
fn client_uri_same_origin_is_recorded() {
    let m = check(&with(json!({"client_uri": "https://client.example/about"}))).unwrap();
    assert!(m.client_uri_same_origin);
    let m = check(&with(json!({"client_uri": "https://other.example/"}))).unwrap();
    assert!(!m.client_uri_same_origin);
}

#[test]
fn every_problem_is_reported() {
    let body = with(json!({
        "client_id": "https://evil.example/c",
        "client_name": null,
        "client_secret": "x",
        "logo_uri": "http://x.example/l.png",
        "token_endpoint_auth_method": "client_secret_basic",
    }));
    let problems = check(&body).unwrap_err();
    let got: Vec<_> = problems.iter().map(|p| p.rule).collect();
    assert_eq!(
        got,
        [
            "client_id_mismatch",
            "client_name_required",
            "forbidden_member",
            "uri_not_https",
            "forbidden_auth_method"
        ]
    );
    assert_eq!(
        crate::problem::first_failure(&problems),
        Some(F::ClientIdMismatch)
    );
    assert_eq!(problems[2].member.as_deref(), Some("client_secret"));
}
