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
pub mod error;
pub mod facts;
pub mod lifecycle;
pub mod model;
pub mod ownership;
pub mod policy;
pub mod port;
pub mod registration;
pub mod requests;
pub mod separation;
mod service;

pub use error::GovernanceError;
pub use facts::ClientFacts;
pub use policy::{Action, Decision, PolicyEngine, ResourceInfo, UserContext};
pub use registration::RegistrableScopes;
pub use service::{ApproveOptions, By, DecideRequest, Governance, GovernanceSettings, SuccessionReport};

#[cfg(test)]
mod fake;
#[cfg(test)]
mod service_tests;
