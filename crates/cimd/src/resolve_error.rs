//! Why a metadata-document client could not be resolved.
//!
//! Each failure has a stable snake_case reason (for logs and the
//! `steward_cimd_resolutions_total` counter) and says whether it is
//! transient: the server answers a transient failure with 503 and
//! `Retry-After`, a definitive one with an error page (CIMD -01 §4: abort the
//! request, do not redirect to an unvalidated redirect URI).

use crate::client_id::ClientIdError;
use crate::problem::Problem;
use crate::versions::VersionStoreError;
use steward_egress::FetchError;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    InvalidClientId(#[from] ClientIdError),
    /// The fetch failed. `retry_after_secs` is the negative-cache backoff
    /// the failure started, so the first answer's `Retry-After` agrees with
    /// when the resolver will actually fetch again.
    #[error("fetching the metadata document failed: {error}")]
    Fetch {
        error: FetchError,
        retry_after_secs: Option<u64>,
    },
    #[error("the metadata document is invalid: {}", summary(.0))]
    Invalid(Vec<Problem>),
    #[error(transparent)]
    Store(#[from] VersionStoreError),
    /// A fetch failed moments ago and is not retried before the backoff ends.
    #[error("the metadata document failed recently ({reason}); retry in {retry_after_secs}s")]
    RecentFailure {
        reason: &'static str,
        transient: bool,
        retry_after_secs: u64,
    },
    /// 304 to a request that carried no validators: the server is broken.
    #[error("the document server answered 304 Not Modified to an unconditional request")]
    UnexpectedNotModified,
    /// The token endpoint's view: the document's origin last answered
    /// definitively (`reason`: 404, invalid document, refused address), so
    /// stored versions are no longer trusted.
    #[error("the metadata document was withdrawn ({reason})")]
    Withdrawn { reason: &'static str },
    /// The token endpoint's view: no confirmation of the document is younger
    /// than `max_cache_seconds`; a background revalidation is under way.
    #[error("the stored metadata document is older than the cache bound and is being revalidated")]
    Unconfirmed { retry_after_secs: u64 },
}

fn summary(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ResolveError {
    /// Stable snake_case reason: the egress reason for fetch failures, the
    /// first broken rule for invalid documents.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidClientId(e) => e.reason(),
            Self::Fetch { error, .. } => error.reason(),
            Self::Invalid(problems) => problems.first().map_or("invalid_document", |p| p.rule),
            Self::Store(_) => "version_store_unavailable",
            Self::RecentFailure { reason, .. } => reason,
            Self::UnexpectedNotModified => "unexpected_not_modified",
            Self::Withdrawn { reason } => reason,
            Self::Unconfirmed { .. } => "metadata_unconfirmed",
        }
    }

    /// Worth retrying soon (DNS timeout, connection refused, 5xx, store down).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Fetch { error, .. } => error.is_transient(),
            Self::Store(VersionStoreError::Unavailable(_)) => true,
            Self::RecentFailure { transient, .. } => *transient,
            Self::Unconfirmed { .. } => true,
            Self::Withdrawn { .. }
            | Self::InvalidClientId(_)
            | Self::Invalid(_)
            | Self::Store(VersionStoreError::Corrupt(_))
            | Self::UnexpectedNotModified => false,
        }
    }

    /// Seconds until a retry can succeed, for `Retry-After`.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RecentFailure { retry_after_secs, .. } => Some(*retry_after_secs),
            Self::Fetch { retry_after_secs, .. } => *retry_after_secs,
            Self::Unconfirmed { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}
