//! Failures of key management, signing and token verification.
//!
//! Verification variants are deliberately specific so the server can log why
//! a token was refused; what goes back to the client is decided by the
//! server's error mapper, which never echoes these details.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum JoseError {
    // --- key-encryption key file ---
    #[error("cannot access the key-encryption key file {path}: {source}")]
    KekIo { path: PathBuf, source: io::Error },
    /// The KEK file is readable by group or others (mode shown in octal).
    #[error("key-encryption key file {path} has mode {mode:o}; it must not be group/other accessible")]
    KekPermissions { path: PathBuf, mode: u32 },
    #[error("key-encryption key file {path} is not base64")]
    KekEncoding { path: PathBuf },
    #[error("key-encryption key file {path} holds {len} bytes, expected 32")]
    KekLength { path: PathBuf, len: usize },

    // --- key generation and encryption at rest ---
    #[error("the crypto library failed to generate a key")]
    KeyGeneration,
    #[error("the crypto library failed to encrypt a private key")]
    Encryption,
    /// Wrong KEK, wrong kid (AAD), or a tampered/truncated ciphertext: AES-GCM
    /// cannot tell these apart, by design.
    #[error("private key could not be decrypted (wrong key-encryption key or tampered data)")]
    Decryption,
    #[error("encrypted private key has unknown format version {0}")]
    UnknownCiphertextVersion(u8),
    #[error("decrypted private key is not a valid {0} key")]
    KeyRejected(crate::Algorithm),
    /// The decrypted key's RFC 7638 thumbprint differs from the kid it was stored under.
    #[error("decrypted key does not match its kid")]
    KidMismatch,
    #[error("the crypto library failed to sign")]
    Signing,
    #[error("JSON serialization failed: {0}")]
    Json(#[from] serde_json::Error),

    // --- JWKs ---
    #[error("invalid JWK: {0}")]
    InvalidJwk(&'static str),
    /// A JWK with private members (`d`, `p`, `k`, ...) where only public keys belong.
    #[error("JWK contains private key material")]
    PrivateJwk,

    // --- token verification ---
    #[error("token is not a compact JWS")]
    Malformed,
    #[error("token algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    #[error("token carries a critical header extension Steward does not understand")]
    UnsupportedCritical,
    #[error("token key id {0:?} is not in the key set")]
    UnknownKey(Option<String>),
    #[error("token algorithm does not match its key's algorithm")]
    AlgorithmMismatch,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token type {found:?} is not the expected {expected:?}")]
    WrongType { expected: String, found: Option<String> },
    #[error("token issuer is not the expected one")]
    WrongIssuer,
    #[error("token audience does not include the expected one")]
    WrongAudience,
    #[error("token has no exp claim")]
    MissingExp,
    #[error("token expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token claims do not have the expected shape: {0}")]
    InvalidClaims(serde_json::Error),
}
