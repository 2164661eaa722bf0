//! The OAuth 2.1 protocol surface: clients of every kind, resources and
//! scopes, the authorization endpoint with login and consent, the token
//! endpoint, client authentication and token minting.

pub mod authorize;
pub mod client_auth;
pub mod clients;
pub mod limits;
pub mod logo;
pub mod logout;
pub mod pages;
pub mod params;
pub mod registration;
pub mod resources;
pub mod revocation;
pub mod session;
pub mod token;
pub mod tokens;
pub mod users;

use std::time::Duration;

use crate::settings::Settings;

/// Protocol state built once at start-up.
pub struct OAuth {
    pub resources: resources::Resources,
    /// Key for client-secret hashes, derived from the key-encryption key.
    pub secret_key: [u8; 32],
    /// Key for the CSRF values of the login, consent and logout forms
    /// (see [`session`]), derived from `secret_key`.
    pub csrf_key: [u8; 32],
    /// Login attempts per account and address, per address, per account
    /// (shared through the database: [`limits::Sharing::Strict`]).
    pub login_failures: limits::AttemptLimiter,
    /// `logo_uri` → content hash of the stored copy (`None`: unusable).
    pub logos: moka::future::Cache<String, Option<String>>,
    /// Client authentications per client and address, per address, per
    /// client (failures shared: [`limits::Sharing::Failures`]).
    pub client_auth_failures: limits::AttemptLimiter,
    pub dummy_password_hash: String,
    /// `[dev] auto_approve_user`, resolved to a user id.
    pub dev_user_id: Option<String>,
    /// User id → username, for the policy's user context. Exact: a user's
    /// id and name never change once created (there is no rename), so the
    /// token endpoint need not read the user at every refresh.
    pub usernames: moka::sync::Cache<String, String>,
    /// Client id → its governance view as last read, reused while the
    /// revision read with the client's row is the same (every change moves
    /// it, on any node): the token endpoint reads one row, not the view.
    pub views: moka::sync::Cache<String, std::sync::Arc<crate::governance::HeldView>>,
    /// Registrations per address and in all, per minute (`[dcr.rate_limit]`,
    /// shared through the database).
    pub registrations: limits::AttemptLimiter,
    /// Dynamic clients whose use this node recorded within the hour (see
    /// `steward_store::dcr::USE_RESOLUTION_SECS`): at most one write per
    /// client and kind of use per hour, not one per token.
    pub dcr_uses: moka::sync::Cache<(String, bool), ()>,
}

impl OAuth {
    pub fn new(settings: &Settings, secret_key: [u8; 32]) -> OAuth {
        OAuth {
            resources: resources::Resources::from_settings(settings),
            secret_key,
            csrf_key: session::derive_csrf_key(&secret_key),
            login_failures: limits::AttemptLimiter::new(
                Duration::from_secs(settings.login.window_secs),
                limits::Sharing::Strict,
            ),
            logos: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            client_auth_failures: limits::AttemptLimiter::new(
                Duration::from_secs(settings.tokens.client_auth_window_secs),
                limits::Sharing::Failures,
            ),
            dummy_password_hash: users::dummy_hash(),
            dev_user_id: None,
            usernames: moka::sync::Cache::builder().max_capacity(100_000).build(),
            views: moka::sync::Cache::builder().max_capacity(10_000).build(),
            registrations: registration::rate_limiter(),
            dcr_uses: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(
                    u64::try_from(steward_store::dcr::USE_RESOLUTION_SECS).unwrap_or(3600),
                ))
                .build(),
        }
    }
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("resources", &self.resources)
            .finish_non_exhaustive()
    }
}
