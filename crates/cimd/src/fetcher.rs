//! The seam between the resolver and the network.
//!
//! Production code fetches through [`steward_egress::Egress`], which applies
//! the SSRF, redirect, size and content-type rules (CIMD -02 §5, §8.6). Tests
//! substitute a fake so cache behaviour can be driven without sockets.

use async_trait::async_trait;
use steward_egress::{Egress, FetchError, FetchRequest, FetchResponse};

/// Something that performs one outbound document fetch.
#[async_trait]
pub trait DocumentFetcher: Send + Sync {
    async fn fetch(&self, req: &FetchRequest) -> Result<FetchResponse, FetchError>;
}

#[async_trait]
impl DocumentFetcher for Egress {
    async fn fetch(&self, req: &FetchRequest) -> Result<FetchResponse, FetchError> {
        Egress::fetch(self, req).await
    }
}
