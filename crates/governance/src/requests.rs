//! Access requests and approvals (issue 13 §7): the pure rules. A request
//! is bound to the metadata digest it was made against, expires if nobody
//! decides it (default 14 days), and an approval may only narrow what was
//! asked, never widen it.

use crate::error::GovernanceError;
use crate::model::{AccessRequest, RequestState};
use steward_core::UnixTime;

/// Default lifetime of an undecided request: 14 days.
pub const DEFAULT_REQUEST_EXPIRY_SECS: i64 = 14 * 24 * 3600;

/// The longest justification kept (characters); longer text is refused, not
/// silently cut.
pub const MAX_JUSTIFICATION_CHARS: usize = 2000;

/// A decider's justification: required, trimmed, bounded.
pub fn justification(text: &str, to: &'static str) -> Result<String, GovernanceError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(GovernanceError::JustificationRequired(to));
    }
    if t.chars().count() > MAX_JUSTIFICATION_CHARS {
        return Err(GovernanceError::InvalidInput(format!(
            "the justification is longer than {MAX_JUSTIFICATION_CHARS} characters"
        )));
    }
    Ok(t.to_owned())
}

/// Whether the request can no longer be decided at `now`.
pub fn is_expired(r: &AccessRequest, now: UnixTime) -> bool {
    now >= r.expires_at
}

/// Checks that `r` may be decided at `now`: still pending and not expired.
pub fn decidable(r: &AccessRequest, now: UnixTime) -> Result<(), GovernanceError> {
    if r.state != RequestState::Pending {
        return Err(GovernanceError::RequestDecided {
            id: r.id.clone(),
            state: r.state,
        });
    }
    if is_expired(r, now) {
        return Err(GovernanceError::RequestExpired {
            id: r.id.clone(),
            expires_at: r.expires_at.0,
        });
    }
    Ok(())
}

/// The scopes an approval grants: all that was asked, or `narrowed` — which
/// must be a non-empty subset of what was asked.
pub fn granted_scopes(
    r: &AccessRequest,
    narrowed: Option<&[String]>,
) -> Result<Vec<String>, GovernanceError> {
    let Some(n) = narrowed else {
        return Ok(r.scopes.clone());
    };
    if n.is_empty() {
        return Err(GovernanceError::InvalidInput(format!(
            "an approval of access request {} must grant at least one scope; deny it instead",
            r.id
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(n.len());
    for s in n {
        if !r.scopes.contains(s) {
            return Err(GovernanceError::NotRequested {
                id: r.id.clone(),
                scope: s.clone(),
            });
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    Ok(out)
}

/// A fresh random identifier with a readable prefix (`req_…`, `apr_…`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(rand::random::<[u8; 16]>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> AccessRequest {
        AccessRequest {
            id: "req_1".into(),
            client_id: "c".into(),
            resource: "r".into(),
            scopes: vec!["a".into(), "b".into()],
            requested_by: "u".into(),
            requested_by_name: "user".into(),
            justification: String::new(),
            metadata_digest: None,
            state: RequestState::Pending,
            created_at: UnixTime(0),
            expires_at: UnixTime(100),
            decided_by: None,
            decided_by_name: None,
            decided_at: None,
            decision_justification: None,
            granted_scopes: vec![],
            approval_expires_at: None,
        }
    }

    #[test]
    fn approval_may_only_narrow() {
        assert_eq!(granted_scopes(&req(), None).unwrap(), vec!["a", "b"]);
        assert_eq!(granted_scopes(&req(), Some(&["b".into()])).unwrap(), vec!["b"]);
        assert_eq!(
            granted_scopes(&req(), Some(&["b".into(), "c".into()])),
            Err(GovernanceError::NotRequested {
                id: "req_1".into(),
                scope: "c".into()
            })
        );
        assert!(granted_scopes(&req(), Some(&[])).is_err());
    }

    #[test]
    fn expired_request_cannot_be_decided() {
        assert!(decidable(&req(), UnixTime(99)).is_ok());
        assert_eq!(
            decidable(&req(), UnixTime(100)),
            Err(GovernanceError::RequestExpired {
                id: "req_1".into(),
                expires_at: 100
            })
        );
        let mut r = req();
        r.state = RequestState::Denied;
        assert!(matches!(
            decidable(&r, UnixTime(0)),
            Err(GovernanceError::RequestDecided { .. })
        ));
    }

    #[test]
    fn decisions_need_a_justification() {
        assert!(justification("  ", "approve").is_err());
        assert_eq!(justification(" ok ", "approve").unwrap(), "ok");
        assert!(justification(&"x".repeat(2001), "approve").is_err());
    }

    #[test]
    fn ids_are_random_and_prefixed() {
        let a = new_id("req");
        assert!(a.starts_with("req_") && a.len() == 36);
        assert_ne!(a, new_id("req"));
    }
}
