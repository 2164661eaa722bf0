//! Signing keys, JWKS, JWT access tokens, client assertions.
