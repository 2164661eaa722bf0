//! Dynamic Client Registration, hardened (RFC 7591, RFC 7592; issue 14).
//!
//! Pure rules, no HTTP and no storage: how a registration request is read
//! ([`request`]), what each `[dcr] mode` admits ([`mode`]), software
//! statements from trusted issuers ([`statement`]), and the record and
//! credentials a registration produces ([`registered`]). The server's
//! registration endpoint and the CLI call these, and the governance policy
//! (action `register`) decides which scopes a registration may hold.

pub mod error;
pub mod mode;
pub mod registered;
pub mod request;
pub mod statement;

pub use error::{ErrorCode, RegistrationError};
pub use mode::{Admitted, Backing, Mode, Refusal, admit};
pub use registered::{IssuedCredentials, RegisteredMetadata, dedupe_key};
pub use request::{AuthMethod, GrantType, Purpose, RequestRules, RequestedMetadata, parse_request};
pub use statement::{IssuerKeys, TrustedIssuer};
