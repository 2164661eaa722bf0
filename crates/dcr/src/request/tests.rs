use super::*;
use crate::error::ErrorCode;

fn rules() -> RequestRules {
    RequestRules {
        redirect: RedirectUriRules {
            allow_private_use_schemes: true,
        },
        allow_networks: Vec::new(),
    }
}

fn parse(body: &str) -> Result<RequestedMetadata, RegistrationError> {
    parse_request(body.as_bytes(), &rules(), Purpose::Register)
}

fn code_of(body: &str) -> ErrorCode {
    match parse(body) {
        Err(e) => e.code,
        Ok(m) => panic!("accepted: {m:?}"),
    }
}

#[test]
fn a_typical_mcp_client_request_is_read() {
    let m = parse(
        r#"{"client_name":"Inspector","redirect_uris":["http://localhost:6274/oauth/callback"],
            "grant_types":["authorization_code","refresh_token"],"response_types":["code"],
            "token_endpoint_auth_method":"none","scope":"mcp:read","x-unknown":{"a":1}}"#,
    )
    .unwrap();
    assert_eq!(m.client_name.as_deref(), Some("Inspector"));
    assert_eq!(m.auth_method, Some(AuthMethod::None));
    assert_eq!(
        m.grant_types,
        Some(vec![GrantType::AuthorizationCode, GrantType::RefreshToken])
    );
    assert!(m.scope.unwrap().contains("mcp:read"));
}

#[test]
fn duplicate_members_and_non_objects_are_refused() {
    assert_eq!(
        code_of(r#"{"redirect_uris":["https://a.example/cb"],"redirect_uris":["https://b.example/cb"]}"#),
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        code_of(r#"{"jwks":{"keys":[{"kty":"EC","kty":"RSA"}]}}"#),
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(code_of("[]"), ErrorCode::InvalidClientMetadata);
    assert_eq!(code_of("not json"), ErrorCode::InvalidClientMetadata);
}

#[test]
fn redirect_uris_follow_oauth_21() {
    for bad in [
        r#"{"redirect_uris":["http://evil.example/cb"]}"#,
        r#"{"redirect_uris":["https://a.example/cb#frag"]}"#,
        r#"{"redirect_uris":["javascript:alert(1)"]}"#,
        r#"{"redirect_uris":["myapp:/cb"]}"#,
        r#"{"redirect_uris":"https://a.example/cb"}"#,
        r#"{"redirect_uris":[1]}"#,
    ] {
        assert_eq!(code_of(bad), ErrorCode::InvalidRedirectUri, "{bad}");
    }
    let many: Vec<String> = (0..11).map(|i| format!("\"https://a.example/{i}\"")).collect();
    assert_eq!(
        code_of(&format!(r#"{{"redirect_uris":[{}]}}"#, many.join(","))),
        ErrorCode::InvalidRedirectUri
    );
    let m =
        parse(r#"{"redirect_uris":["com.example.app:/cb","http://127.0.0.1/cb","https://a.example/cb"]}"#)
            .unwrap();
    assert_eq!(m.redirect_uris.len(), 3);
}

#[test]
fn unknown_auth_methods_and_grants_are_refused() {
    assert_eq!(
        code_of(r#"{"token_endpoint_auth_method":"client_secret_jwt"}"#),
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        code_of(r#"{"token_endpoint_auth_method":"tls_client_auth"}"#),
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        code_of(r#"{"grant_types":["implicit"]}"#),
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        code_of(r#"{"grant_types":["password"]}"#),
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        code_of(r#"{"response_types":["token"]}"#),
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        code_of(r#"{"grant_types":["client_credentials"],"response_types":["code"]}"#),
        ErrorCode::InvalidClientMetadata
    );
}

#[test]
fn private_keys_in_jwks_are_refused() {
    let body = r#"{"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[
        {"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
         "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}]}}"#;
    let e = parse(body).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidClientMetadata);
    assert!(e.description.contains("private"), "{e}");
    let symmetric = r#"{"jwks":{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}}"#;
    assert_eq!(code_of(symmetric), ErrorCode::InvalidClientMetadata);
}

#[test]
fn jwks_uri_at_a_forbidden_address_is_refused_before_any_fetch() {
    for host in [
        "127.0.0.1",
        "[::1]",
        "169.254.169.254",
        "10.0.0.1",
        "localhost",
        "a.localhost",
        "[::ffff:10.0.0.1]",
    ] {
        let body =
            format!(r#"{{"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://{host}/jwks"}}"#);
        let e = parse(&body).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClientMetadata, "{host}");
        assert!(e.description.contains("jwks_uri"), "{e}");
    }
    assert_eq!(
        code_of(r#"{"jwks_uri":"http://keys.example/jwks"}"#),
        ErrorCode::InvalidClientMetadata
    );
    assert!(parse(r#"{"jwks_uri":"https://keys.example/jwks"}"#).is_ok());
    // An operator's allow_networks entry lets a test address through.
    let allowed = RequestRules {
        allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
        ..rules()
    };
    assert!(
        parse_request(
            br#"{"jwks_uri":"https://127.0.0.1/jwks"}"#,
            &allowed,
            Purpose::Register
        )
        .is_ok()
    );
}

#[test]
fn jwks_and_jwks_uri_together_are_refused() {
    assert_eq!(
        code_of(r#"{"jwks_uri":"https://k.example/j","jwks":{"keys":[{"kty":"EC"}]}}"#),
        ErrorCode::InvalidClientMetadata
    );
}

#[test]
fn claims_shown_to_people_are_bounded() {
    let long = "x".repeat(201);
    assert_eq!(
        code_of(&format!(r#"{{"client_name":"{long}"}}"#)),
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        code_of(r#"{"client_name":"a\u0007b"}"#),
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        code_of(r#"{"logo_uri":"http://a.example/l.png"}"#),
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(
        code_of(r#"{"client_uri":"https://user@a.example/"}"#),
        ErrorCode::InvalidClientMetadata
    );
    assert_eq!(code_of(r#"{"scope":"a  \"b"}"#), ErrorCode::InvalidClientMetadata);
}

#[test]
fn an_update_names_its_client_and_sends_no_server_members() {
    let update =
        |body: &str| parse_request(body.as_bytes(), &rules(), Purpose::Update { client_id: "dcr_x" });
    assert!(update(r#"{"client_id":"dcr_x","redirect_uris":["https://a.example/cb"]}"#).is_ok());
    assert!(update(r#"{"client_id":"dcr_y"}"#).is_err());
    assert!(update(r#"{"redirect_uris":["https://a.example/cb"]}"#).is_err());
    for m in SERVER_ISSUED {
        let body = format!(r#"{{"client_id":"dcr_x","{m}":"v"}}"#);
        assert!(update(&body).is_err(), "{m}");
    }
}
