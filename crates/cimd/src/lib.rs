//! Client ID Metadata Documents: client_id URL rules, validation, caching, versions.
//!
//! A client whose `client_id` is an https URL is a CIMD client (CIMD -02,
//! SPEC_CHECKLIST §0.2 and §4). This crate decides which ids qualify
//! ([`ClientIdUrl`]), whether a fetched document is acceptable
//! ([`validate_document`]), how long it may be reused ([`Resolver`]) and
//! which versions were seen ([`VersionStore`]), and holds the key sets of
//! clients that publish a `jwks_uri` ([`KeySets`]). It knows nothing of HTTP
//! serving and opens no sockets itself: fetches go through steward-egress.

pub mod check;
pub mod client_id;
pub mod fetcher;
pub mod freshness;
pub mod key_sets;
mod negative;
pub mod problem;
pub mod resolve_error;
pub mod resolver;
pub mod strict_json;
pub mod validate;
pub mod versions;

pub use check::{CheckReport, check};
pub use client_id::{ClientIdError, ClientIdUrl, UrlRules, looks_like_metadata_document_id};
pub use fetcher::DocumentFetcher;
pub use key_sets::{KeySetLookup, KeySets};
pub use problem::{Problem, ValidationFailure, first_failure};
pub use resolve_error::ResolveError;
pub use resolver::{CimdConfig, ResolvedClient, Resolver};
pub use validate::{
    AuthMethod, ClientMetadata, DroppedRedirectUri, GrantType, ResponseType, ValidationPolicy,
    contains_private_jwk, validate_document,
};
pub use versions::{
    MemoryVersionStore, NewVersion, VersionRecord, VersionStore, VersionStoreError, content_hash,
};
