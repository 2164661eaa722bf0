//! Steward's governance room: every client an accountable non-human
//! identity (issue 13).
//!
//! Pure domain: a storage port ([`port::GovernanceStore`]) and a `Clock` in,
//! decisions and state changes out. No HTTP, no SQL. Every door (the server's
//! protocol endpoints, the CLI, the admin API) asks this crate the one
//! question — may this client get this scope on this resource now? — and
//! changes governance state only through its functions, so each rule is
//! written once (ARCHITECTURE.md "one decision point").

pub mod domains;
pub mod lifecycle;
pub mod model;
pub mod ownership;
pub mod policy;
pub mod port;
pub mod separation;
