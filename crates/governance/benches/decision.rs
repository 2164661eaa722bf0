//! The governance decision: every /authorize, code redemption, refresh,
//! client-credentials grant and registration asks the policy engine, per
//! requested scope, with nothing cached (issue 13: a suspension or a policy
//! change applies at the next request). Measured with the default set and
//! with a 50-policy set (the default five plus 45 operator policies of the
//! shapes docs/policy.md shows), for a request of one scope and of three.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use steward_core::{ClientKind, LifecycleState, TrustTier, UnixTime};
use steward_governance::domains::DomainStatus;
use steward_governance::policy::{
    Action, ApprovalStanding, ClientAttributes, DecisionInput, PolicyEngine, PolicySource, ResourceInfo,
    UserContext,
};

fn resource() -> ResourceInfo {
    ResourceInfo {
        uri: "https://mcp.example.com/".into(),
        scopes: vec!["files:read".into(), "files:write".into(), "admin".into()],
        self_service_scopes: vec!["files:read".into()],
    }
}

fn client() -> ClientAttributes {
    ClientAttributes {
        client_id: "https://agent.example.com/client.json".into(),
        kind: ClientKind::MetadataDocument,
        state: LifecycleState::Active,
        tier: TrustTier::Unverified,
        host: Some("agent.example.com".into()),
        organization: Some("Example Corp".into()),
        owners: vec!["bob".into(), "tina".into()],
        owned: true,
        owners_required: true,
        declared: false,
        same_origin: true,
        loopback_only: false,
        age_days: 30,
        domain_status: DomainStatus::Unlisted,
        approved_scopes: vec!["files:write".into()],
        approval: ApprovalStanding::Current,
        digest: Some("3f0a".repeat(16)),
    }
}

/// 45 operator policies: forbids by host, tier, age and address, permits by
/// organization and owner, none of which match the benchmark's client, so
/// every one is evaluated and the default set still decides.
fn operator_policies() -> String {
    let mut s = String::new();
    for i in 0..15 {
        s.push_str(&format!(
            "@id(\"ops.deny_host_{i}\")\nforbid (principal is Client, action, resource) when {{ principal.host == \"blocked{i}.example.net\" }};\n"
        ));
        s.push_str(&format!(
            "@id(\"ops.org_{i}\")\npermit (principal is Client, action, resource is Scope) when {{ principal.organization == \"Partner {i}\" && principal.state == \"active\" && resource.name == \"files:write\" }};\n"
        ));
        s.push_str(&format!(
            "@id(\"ops.young_{i}\")\nforbid (principal is Client, action, resource is Scope) when {{ principal.tier == \"unverified\" && principal.age_days < {} && resource.name == \"admin{i}\" }};\n",
            i + 1
        ));
    }
    s
}

fn engines() -> Vec<(&'static str, PolicyEngine)> {
    let default = PolicyEngine::with_default_set().unwrap();
    let fifty = PolicyEngine::new(vec![
        PolicySource::default_set(),
        PolicySource::new("ops.cedar", operator_policies()),
    ])
    .unwrap();
    assert_eq!(fifty.running().policy_ids().len(), 50);
    vec![("default", default), ("policies_50", fifty)]
}

fn decision(c: &mut Criterion) {
    let r = resource();
    let cl = client();
    let user = UserContext {
        id: "u_carol".into(),
        username: "carol".into(),
    };
    let one = vec!["files:read".to_owned()];
    let three = vec![
        "files:read".to_owned(),
        "files:write".to_owned(),
        "admin".to_owned(),
    ];
    for (name, engine) in engines() {
        for (n, scopes) in [("one_scope", &one), ("three_scopes", &three)] {
            let input = DecisionInput {
                client: &cl,
                action: Action::Authorize,
                resource: &r,
                scopes,
                user: Some(&user),
                address: Some("127.0.0.1".parse().unwrap()),
                now: UnixTime(1_000_000),
            };
            let d = engine.decide(&input);
            assert!(d.is_granted("files:read") && d.policy_errors.is_empty());
            // Evaluation itself (what a first question costs).
            let set = engine.running();
            c.bench_function(&format!("decision/{name}/{n}"), |b| {
                b.iter(|| engine.decide_with(&set, black_box(&input)).0)
            });
            // The same question again within the second: the set's memo.
            c.bench_function(&format!("remembered/{name}/{n}"), |b| {
                b.iter(|| engine.decide(black_box(&input)))
            });
        }
    }
}

criterion_group!(benches, decision);
criterion_main!(benches);
