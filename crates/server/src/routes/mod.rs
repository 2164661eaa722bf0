//! Route handlers, one module per endpoint family.

pub mod admin;
pub mod discovery;
pub mod jwks;
pub mod ops;
