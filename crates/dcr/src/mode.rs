//! What each registration mode accepts (issue 14 §1).
//!
//! An open registration endpoint is an unauthenticated write path, so it
//! registers **public** clients only, for the redirect-based grants only:
//! nothing registered anonymously holds a credential worth stealing or can
//! act without a user. A confidential client, or `client_credentials`,
//! needs a registration that a party this server already trusts stands
//! behind: an initial access token (RFC 7591 §3) or a software statement
//! (§2.3) from a trusted issuer.

use crate::error::RegistrationError;
use crate::request::{AuthMethod, GrantType, RequestedMetadata};
use serde::{Deserialize, Serialize};
use steward_core::TrustTier;

/// `[dcr] mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// No registration endpoint; none is advertised.
    Off,
    /// Anyone may register a public client.
    #[default]
    Open,
    /// Every registration needs an initial access token or a software statement.
    Protected,
}

impl Mode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Open => "open",
            Self::Protected => "protected",
        }
    }
}

/// Who stands behind a registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Nobody: an anonymous request.
    Anonymous,
    /// An initial access token the operator created, granting `tier`.
    InitialToken { id: String, tier: TrustTier },
    /// A software statement verified against a trusted issuer.
    Statement { issuer: String, tier: TrustTier },
}

impl Backing {
    pub const fn is_anonymous(&self) -> bool {
        matches!(self, Self::Anonymous)
    }

    /// The tier the registered client starts with.
    pub fn tier(&self) -> TrustTier {
        match self {
            Self::Anonymous => TrustTier::Unverified,
            Self::InitialToken { tier, .. } | Self::Statement { tier, .. } => *tier,
        }
    }
}

/// Why a request may not register at all in this mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `protected` mode and no credential: HTTP 401 with
    /// `WWW-Authenticate: Bearer` (RFC 7591 §3, RFC 6750 §3).
    CredentialRequired,
    /// The request is not acceptable: HTTP 400 with the RFC 7591 error.
    Invalid(RegistrationError),
}

impl From<RegistrationError> for Refusal {
    fn from(e: RegistrationError) -> Self {
        Self::Invalid(e)
    }
}

/// A request the mode admits, with its defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub auth_method: AuthMethod,
    pub grant_types: Vec<GrantType>,
    pub tier: TrustTier,
}

/// Applies the mode's rules and RFC 7591's defaults to `req`.
///
/// Defaults: `grant_types` is `["authorization_code"]` (RFC 7591 §2). An
/// absent `token_endpoint_auth_method` is `client_secret_basic` per RFC
/// 7591 when a credential backs the request, and `none` for an anonymous
/// one — the only method open registration issues, substituted as RFC 7591
/// §3 allows and returned in the response so the client knows.
pub fn admit(mode: Mode, backing: &Backing, req: &RequestedMetadata) -> Result<Admitted, Refusal> {
    if mode == Mode::Protected && backing.is_anonymous() {
        return Err(Refusal::CredentialRequired);
    }
    let grant_types = req
        .grant_types
        .clone()
        .unwrap_or_else(|| vec![GrantType::AuthorizationCode]);
    let auth_method = match (req.auth_method, backing.is_anonymous()) {
        (Some(m), _) => m,
        (None, true) => AuthMethod::None,
        (None, false) => AuthMethod::ClientSecretBasic,
    };
    if backing.is_anonymous() {
        if auth_method != AuthMethod::None {
            return Err(RegistrationError::metadata(format!(
                "open registration issues public clients only: use token_endpoint_auth_method \"none\" \
                 ({} needs an initial access token or a software statement)",
                auth_method.as_str()
            ))
            .into());
        }
        if grant_types.contains(&GrantType::ClientCredentials) {
            return Err(RegistrationError::metadata(
                "open registration allows authorization_code and refresh_token only; \
                 client_credentials needs an initial access token or a software statement",
            )
            .into());
        }
    }
    if grant_types.contains(&GrantType::ClientCredentials) && auth_method == AuthMethod::None {
        return Err(RegistrationError::metadata(
            "client_credentials needs a confidential client (client_secret_basic, client_secret_post \
             or private_key_jwt)",
        )
        .into());
    }
    if auth_method == AuthMethod::PrivateKeyJwt && req.jwks.is_none() && req.jwks_uri.is_none() {
        return Err(
            RegistrationError::metadata("private_key_jwt needs the public keys in jwks or jwks_uri").into(),
        );
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && req.redirect_uris.is_empty() {
        return Err(RegistrationError::redirect(
            "authorization_code needs at least one redirect URI in redirect_uris",
        )
        .into());
    }
    if grant_types.contains(&GrantType::RefreshToken) && !grant_types.contains(&GrantType::AuthorizationCode)
    {
        return Err(RegistrationError::metadata(
            "refresh_token is issued with authorization_code only; add authorization_code to grant_types",
        )
        .into());
    }
    Ok(Admitted {
        auth_method,
        grant_types,
        tier: backing.tier(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Purpose, RequestRules, parse_request};

    fn req(body: &str) -> RequestedMetadata {
        parse_request(body.as_bytes(), &RequestRules::default(), Purpose::Register).unwrap()
    }

    const TOKEN: fn() -> Backing = || Backing::InitialToken {
        id: "t".into(),
        tier: TrustTier::Verified,
    };

    fn invalid(r: Result<Admitted, Refusal>) -> RegistrationError {
        match r {
            Err(Refusal::Invalid(e)) => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn open_mode_registers_public_clients_only() {
        let a = admit(
            Mode::Open,
            &Backing::Anonymous,
            &req(r#"{"redirect_uris":["https://a.example/cb"]}"#),
        )
        .unwrap();
        assert_eq!(
            a.auth_method,
            AuthMethod::None,
            "absent method: none, substituted"
        );
        assert_eq!(a.grant_types, vec![GrantType::AuthorizationCode]);
        assert_eq!(a.tier, TrustTier::Unverified);
        for m in ["client_secret_basic", "client_secret_post", "private_key_jwt"] {
            let body = format!(
                r#"{{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"{m}","jwks_uri":"https://k.example/j"}}"#
            );
            let e = invalid(admit(Mode::Open, &Backing::Anonymous, &req(&body)));
            assert!(e.description.contains("public clients only"), "{e}");
        }
        let cc = req(r#"{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}"#);
        invalid(admit(Mode::Open, &Backing::Anonymous, &cc));
    }

    #[test]
    fn protected_mode_needs_a_credential() {
        let r = req(r#"{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none"}"#);
        assert_eq!(
            admit(Mode::Protected, &Backing::Anonymous, &r),
            Err(Refusal::CredentialRequired)
        );
        assert!(admit(Mode::Protected, &TOKEN(), &r).is_ok());
    }

    #[test]
    fn a_backed_registration_may_be_confidential() {
        let r = req(r#"{"grant_types":["client_credentials"]}"#);
        let a = admit(Mode::Open, &TOKEN(), &r).unwrap();
        assert_eq!(a.auth_method, AuthMethod::ClientSecretBasic, "RFC 7591 default");
        assert_eq!(a.tier, TrustTier::Verified);
        let pk =
            req(r#"{"grant_types":["client_credentials"],"token_endpoint_auth_method":"private_key_jwt"}"#);
        assert!(
            invalid(admit(Mode::Protected, &TOKEN(), &pk))
                .description
                .contains("jwks")
        );
        let public_cc = req(r#"{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}"#);
        invalid(admit(Mode::Protected, &TOKEN(), &public_cc));
    }

    #[test]
    fn authorization_code_needs_a_redirect_uri() {
        let e = invalid(admit(Mode::Open, &Backing::Anonymous, &req("{}")));
        assert_eq!(e.code, crate::ErrorCode::InvalidRedirectUri);
        let refresh_only = req(r#"{"grant_types":["refresh_token"],"response_types":[]}"#);
        invalid(admit(Mode::Open, &Backing::Anonymous, &refresh_only));
    }
}
