//! Clients as non-human identities: how they arrived, where they stand in
//! their lifecycle, and how far Steward trusts them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a client became known to Steward (CIMD -02 §7.1: keep a kind
/// discriminator so the three kinds never shadow each other).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Configured by an operator (configuration file or `steward clients create`).
    PreRegistered,
    /// The `client_id` is an https URL serving a Client ID Metadata Document.
    MetadataDocument,
    /// Registered through RFC 7591 Dynamic Client Registration.
    Dynamic,
}

/// Where a client stands in its lifecycle. The moves between these states
/// and who may make them are written once, in `steward-governance`'s
/// lifecycle table; this type only names the states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleState {
    /// Known but awaiting approval (a quarantined domain, or a drift the
    /// policy wants re-approved). Gets at most self-service scopes.
    Pending,
    Active,
    /// Temporarily blocked (an emergency brake); refresh families are kept
    /// so a resume restores access without users signing in again.
    Suspended,
    /// Blocked for good; its refresh families and tokens are revoked and a
    /// revoked metadata-document URL stays refused.
    Revoked,
    /// A natural end: the document is gone, the registration lapsed, a
    /// review was left overdue. Refresh families are revoked; the client may
    /// come back (to `active`) through policy or an approver.
    Expired,
}

/// How far Steward trusts a client's claims about itself. Identity is not
/// trust: a metadata document proves control of a URL, nothing more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustTier {
    /// Self-asserted identity only (a fresh metadata document or open DCR).
    Unverified,
    /// Reviewed and approved by an operator.
    Verified,
    /// An operator-managed first-party or partner client.
    Trusted,
}

macro_rules! str_enum {
    ($t:ty { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok(Self::$v),)+
                    other => Err(UnknownVariant(other.to_owned())),
                }
            }
        }
    };
}

str_enum!(ClientKind { PreRegistered => "pre_registered", MetadataDocument => "metadata_document", Dynamic => "dynamic" });
impl LifecycleState {
    /// Whether the client may use its credentials and tokens at all: an
    /// `active` client, or a `pending` one (which the policy holds to
    /// self-service scopes at most). A suspended, revoked or expired client
    /// is refused at every endpoint and its tokens introspect as inactive
    /// (issue 13 item 2). The one statement of that rule.
    pub const fn in_use(self) -> bool {
        matches!(self, Self::Active | Self::Pending)
    }
}

str_enum!(LifecycleState { Pending => "pending", Active => "active", Suspended => "suspended", Revoked => "revoked", Expired => "expired" });
str_enum!(TrustTier { Unverified => "unverified", Verified => "verified", Trusted => "trusted" });

/// A stored enum column held a value this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value {0:?}")]
pub struct UnknownVariant(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_round_trip() {
        for k in [
            ClientKind::PreRegistered,
            ClientKind::MetadataDocument,
            ClientKind::Dynamic,
        ] {
            assert_eq!(k.as_str().parse::<ClientKind>(), Ok(k));
        }
        for s in [
            LifecycleState::Pending,
            LifecycleState::Active,
            LifecycleState::Suspended,
            LifecycleState::Revoked,
            LifecycleState::Expired,
        ] {
            assert_eq!(s.as_str().parse::<LifecycleState>(), Ok(s));
        }
        for t in [TrustTier::Unverified, TrustTier::Verified, TrustTier::Trusted] {
            assert_eq!(t.as_str().parse::<TrustTier>(), Ok(t));
        }
        assert!("bogus".parse::<ClientKind>().is_err());
    }
}
