//! Facts every node sharing the database must agree on.
//!
//! The issuer is one of them: it is every token's `iss` and the base of
//! every endpoint in the metadata (RFC 8414 §2, RFC 9068 §2.2), and resource
//! servers compare it byte for byte. A node started with another issuer
//! would mint tokens the other nodes' resource servers reject, so the first
//! node records its issuer and every later node must match it.
//!
//! The policy generation is another: `steward policy reload` runs on one
//! machine, but every node sharing the database decides with its own copy of
//! the policy set (issue 13 item 5). The command bumps a counter here; each
//! node polls it and reloads its set when the counter moves, so a reload
//! reaches every node without any node listening on a port for it.

use crate::StoreError;
use async_trait::async_trait;
use steward_core::UnixTime;

#[async_trait]
pub trait DeploymentStore: Send + Sync {
    /// Records `issuer` as the deployment's issuer if none is recorded yet
    /// (one decision, however many nodes start at once) and returns the
    /// recorded one, which the caller compares with its own.
    async fn claim_issuer(&self, issuer: &str) -> Result<String, StoreError>;
    /// Replaces the recorded issuer (a deliberate move of the deployment);
    /// returns the previous one, if any.
    async fn replace_issuer(&self, issuer: &str) -> Result<Option<String>, StoreError>;
    /// Asks every node to reload its policy set: increments the policy
    /// generation atomically (concurrent requests each get their own
    /// number, none is lost) and records `now` as the time of the request.
    /// Returns the new generation.
    async fn request_policy_reload(&self, now: UnixTime) -> Result<i64, StoreError>;
    /// The current policy generation: 0 until the first reload request.
    /// A node that saw a lower number reloads.
    async fn policy_generation(&self) -> Result<i64, StoreError>;
}
