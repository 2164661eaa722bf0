//! Local user accounts: argon2id password hashes (RFC 9106), and a login
//! check that takes the same time and gives the same answer whether or not
//! the account exists (no username enumeration by timing).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use steward_store::User;

use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("password hashing failed")]
    Hash,
    #[error("storage: {0}")]
    Store(#[from] steward_store::StoreError),
    #[error("a user named {0:?} already exists")]
    Exists(String),
    #[error("the password must be at least 12 characters")]
    WeakPassword,
    #[error("usernames are 1-64 characters of letters, digits, '.', '_', '-' and '@'")]
    BadUsername,
}

/// An argon2id PHC string for `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    let mut salt_bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt_bytes).map_err(|_| UserError::Hash)?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|_| UserError::Hash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| UserError::Hash)
}

fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash nobody knows the password of, verified against when the username
/// is unknown so both paths cost one argon2 verification.
pub fn dummy_hash() -> String {
    hash_password(steward_core::secret::random_token().expose()).unwrap_or_default()
}

pub fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
}

/// Checks a login. `Ok(None)` for a wrong password, an unknown or a disabled
/// user alike.
pub async fn verify_login(
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<Option<User>, UserError> {
    let user = state.store.get_user_by_name(username).await?;
    let (hash, user) = match user {
        Some(u) => (u.password_hash.clone(), Some(u)),
        None => (state.oauth.dummy_password_hash.clone(), None),
    };
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || verify(&hash, &password))
        .await
        .unwrap_or(false);
    let user = user.filter(|u| ok && !u.disabled);
    let outcome = if user.is_some() { "succeeded" } else { "failed" };
    metrics::counter!("steward_logins_total", "outcome" => outcome).increment(1);
    Ok(user)
}

/// Creates a user (for `steward users add` and the dev auto-approve user).
pub async fn create_user(
    store: &dyn steward_store::Store,
    username: &str,
    password_hash: String,
    now: steward_core::UnixTime,
) -> Result<User, UserError> {
    if !valid_username(username) {
        return Err(UserError::BadUsername);
    }
    if store.get_user_by_name(username).await?.is_some() {
        return Err(UserError::Exists(username.to_owned()));
    }
    let user = User {
        id: crate::oauth::tokens::new_user_id(),
        username: username.to_owned(),
        password_hash,
        created_at: now,
        disabled: false,
    };
    store.create_user(&user).await?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, "correct horse battery"));
        assert!(!verify(&h, "correct horse batterY"));
        assert!(!verify("not a hash", "x"));
    }

    #[test]
    fn usernames() {
        assert!(valid_username("alice"));
        assert!(valid_username("a.b-c_d@e"));
        assert!(!valid_username(""));
        assert!(!valid_username("a b"));
        assert!(!valid_username("<script>"));
    }
}
