//! The purge's selections, written once for both backends: each is a table
//! and the condition its deletable rows meet, with the cutoff as parameter 1.

/// A metadata-document client nobody has used: no grant, token or family,
/// no owner recorded, no access request or approval (the governance
/// tables cascade from `clients`, so reaping such a client would delete a
/// request an approver has yet to see), never moved out of `active`.
pub(crate) const UNUSED_METADATA_CLIENT: &str = "kind = 'metadata_document' AND state = 'active' \
     AND owner_organization IS NULL AND owner_business IS NULL \
     AND owner_technical IS NULL AND owner_contact IS NULL \
     AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = clients.client_id) \
     AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.client_id = clients.client_id) \
     AND NOT EXISTS (SELECT 1 FROM refresh_families f WHERE f.client_id = clients.client_id) \
     AND NOT EXISTS (SELECT 1 FROM client_owners o WHERE o.client_id = clients.client_id) \
     AND NOT EXISTS (SELECT 1 FROM access_requests r WHERE r.client_id = clients.client_id) \
     AND NOT EXISTS (SELECT 1 FROM approvals p WHERE p.client_id = clients.client_id)";

/// Which cutoff of the plan a selection uses.
#[derive(Clone, Copy)]
pub(crate) enum Cutoff {
    Now,
    Refusals,
    Logos,
    UnusedClients,
}

/// What the rows of a selection count as in the report.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Expired,
    Refusal,
    Logo,
    Client,
}

/// `(table, condition with $CUTOFF, cutoff, kind)`, in deletion order
/// (children before the parents that only become deletable once they go).
pub(crate) fn selections() -> [(&'static str, String, Cutoff, Kind); 10] {
    let refusals = crate::REFUSAL_AUDIT_ACTIONS
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(", ");
    [
        (
            "access_tokens",
            "expires_at <= $CUTOFF".into(),
            Cutoff::Now,
            Kind::Expired,
        ),
        (
            "authorization_codes",
            "expires_at <= $CUTOFF".into(),
            Cutoff::Now,
            Kind::Expired,
        ),
        (
            "refresh_tokens",
            "expires_at <= $CUTOFF".into(),
            Cutoff::Now,
            Kind::Expired,
        ),
        (
            "sessions",
            "expires_at <= $CUTOFF".into(),
            Cutoff::Now,
            Kind::Expired,
        ),
        (
            "client_assertion_jtis",
            "expires_at <= $CUTOFF".into(),
            Cutoff::Now,
            Kind::Expired,
        ),
        (
            "attempt_counters",
            "expires_at <= $CUTOFF".into(),
            Cutoff::Now,
            Kind::Expired,
        ),
        (
            "refresh_families",
            "created_at <= $CUTOFF \
             AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = refresh_families.id) \
             AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.family_id = refresh_families.id)"
                .into(),
            Cutoff::Now,
            Kind::Expired,
        ),
        (
            "audit_events",
            format!("action IN ({refusals}) AND at <= $CUTOFF"),
            Cutoff::Refusals,
            Kind::Refusal,
        ),
        ("logos", "fetched_at <= $CUTOFF".into(), Cutoff::Logos, Kind::Logo),
        (
            "clients",
            format!("first_seen <= $CUTOFF AND {UNUSED_METADATA_CLIENT}"),
            Cutoff::UnusedClients,
            Kind::Client,
        ),
    ]
}

impl Cutoff {
    pub(crate) fn of(self, plan: &crate::PurgePlan) -> i64 {
        match self {
            Cutoff::Now => plan.now.0,
            Cutoff::Refusals => plan.refusals_before.0,
            Cutoff::Logos => plan.logos_before.0,
            Cutoff::UnusedClients => plan.unused_clients_before.0,
        }
    }
}

impl Kind {
    pub(crate) fn add(self, report: &mut crate::PurgeReport, n: u64) {
        match self {
            Kind::Expired => report.expired += n,
            Kind::Refusal => report.refusal_events += n,
            Kind::Logo => report.logos += n,
            Kind::Client => report.unused_clients += n,
        }
    }
}

/// Versions of `$1` beyond the newest `$2`, for a client without grants,
/// that no code points at.
pub(crate) const TRIM_VERSIONS: &str = "client_id = $1 \
     AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = $1) \
     AND NOT EXISTS (SELECT 1 FROM authorization_codes c WHERE c.metadata_version_id = client_metadata_versions.id) \
     AND id NOT IN (SELECT id FROM client_metadata_versions WHERE client_id = $1 \
                    ORDER BY last_seen_at DESC, id DESC LIMIT $2)";
