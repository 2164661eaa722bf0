//! Facts every node sharing the database must agree on.
//!
//! The issuer is one of them: it is every token's `iss` and the base of
//! every endpoint in the metadata (RFC 8414 §2, RFC 9068 §2.2), and resource
//! servers compare it byte for byte. A node started with another issuer
//! would mint tokens the other nodes' resource servers reject, so the first
//! node records its issuer and every later node must match it.

use crate::StoreError;
use async_trait::async_trait;

#[async_trait]
pub trait DeploymentStore: Send + Sync {
    /// Records `issuer` as the deployment's issuer if none is recorded yet
    /// (one decision, however many nodes start at once) and returns the
    /// recorded one, which the caller compares with its own.
    async fn claim_issuer(&self, issuer: &str) -> Result<String, StoreError>;
    /// Replaces the recorded issuer (a deliberate move of the deployment);
    /// returns the previous one, if any.
    async fn replace_issuer(&self, issuer: &str) -> Result<Option<String>, StoreError>;
}
