//! Signing keys, JWKS, JWT access tokens, client assertions.
//!
//! - [`kek`]: the key-encryption key that protects signing keys at rest.
//! - [`keygen`] / [`at_rest`]: new signing keys, their RFC 7638 `kid`, AES-256-GCM sealing.
//! - [`signing_key`]: a decrypted key that signs compact JWS quickly.
//! - [`jwks`]: the published key set and the [`Verifier`] built from it.
//! - [`access_token`]: RFC 9068 JWT access tokens.
//! - [`client_assertion`]: RFC 7523 `private_key_jwt` client authentication.
//! - [`software_statement`]: RFC 7591 §2.3 software statements from trusted issuers.
//! - [`rotation`]: how long a rotated-out key stays published.
//!
//! Pure library: the only I/O is reading or creating the KEK file.

pub mod access_token;
pub mod algorithm;
pub mod at_rest;
pub mod client_assertion;
pub mod error;
pub mod jwks;
pub mod kek;
mod key_select;
pub mod keygen;
mod public_jwk;
pub mod rotation;
pub mod signing_key;
pub mod software_statement;
pub mod thumbprint;
mod token_parts;

pub use access_token::{AccessTokenClaims, sign_access_token};
pub use algorithm::Algorithm;
pub use client_assertion::{
    AssertionClaims, AssertionError, CLIENT_ASSERTION_ALGORITHMS, verify_client_assertion,
};
pub use error::JoseError;
pub use jwks::{Expectations, Jwks, Verifier};
pub use kek::Kek;
pub use keygen::{NewKey, generate_signing_key};
pub use rotation::retire_after;
pub use signing_key::SigningKey;
pub use software_statement::{
    StatementError, check_issuer_jwks, statement_issuer, verify_software_statement,
};
pub use thumbprint::jwk_thumbprint;
