//! Steward's domain model.
//!
//! Nothing in here knows about HTTP serving, SQL or outbound sockets: the
//! types describe OAuth 2.1 concepts so that invalid values cannot be built,
//! and the behaviour (matching, verification, expiry) is pure and testable.

pub mod client;
pub mod error;
pub mod pkce;
pub mod redirect;
pub mod scope;
pub mod secret;
pub mod time;

pub use client::{ClientKind, LifecycleState, TrustTier};
pub use error::{ErrorCode, OAuthError};
pub use redirect::{RedirectUri, RedirectUriError, RedirectUriRules};
pub use time::{Clock, ManualClock, SystemClock, UnixTime};
