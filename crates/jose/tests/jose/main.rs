//! Integration tests for steward-jose, one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access_tokens;
mod client_assertions;
mod common;
mod keys;
mod software_statements;
