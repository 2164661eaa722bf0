use super::*;
use cedar_policy::{Entities, Request};

const RES: &str = "https://mcp.example.com/";

fn resource() -> ResourceInfo {
    ResourceInfo {
        uri: RES.into(),
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
        organization: None,
        owners: vec![],
        owned: false,
        owners_required: false,
        declared: false,
        same_origin: true,
        loopback_only: false,
        age_days: 3,
        domain_status: DomainStatus::Unlisted,
        approved_scopes: vec![],
        approval: ApprovalStanding::None,
        digest: Some("digest-1".into()),
    }
}

fn scopes(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| (*x).to_owned()).collect()
}

fn decide(engine: &PolicyEngine, c: &ClientAttributes, action: Action, asked: &[&str]) -> Decision {
    let r = resource();
    let s = scopes(asked);
    engine.decide(&DecisionInput {
        client: c,
        action,
        resource: &r,
        scopes: &s,
        user: None,
        address: None,
        now: UnixTime(1_000_000),
    })
}

fn default_engine() -> PolicyEngine {
    PolicyEngine::with_default_set().unwrap()
}

fn with_operator(text: &str) -> PolicyEngine {
    PolicyEngine::new(vec![
        PolicySource::default_set(),
        PolicySource::new("ops.cedar", text),
    ])
    .unwrap()
}

#[test]
fn default_set_and_schema_ship_in_the_binary_and_validate() {
    let e = default_engine();
    assert!(PolicyEngine::show_default().contains("@id(\"steward.self_service\")"));
    assert_eq!(
        e.running().policy_ids(),
        vec![
            "steward.approved",
            "steward.declared",
            "steward.denied_domain",
            "steward.quarantined_domain",
            "steward.self_service"
        ]
    );
    assert_eq!(e.running().origin_of("steward.approved"), Some("<default>"));
}

#[test]
fn built_entities_and_context_conform_to_the_schema() {
    // The engine builds entities without schema checks on the hot path; this
    // proves what it builds is exactly what the schema declares.
    let schema = load::schema().unwrap();
    let names = Names::new().unwrap();
    let c = client();
    let r = resource();
    let s = scopes(&["files:read"]);
    let user = UserContext {
        id: "u1".into(),
        username: "alice".into(),
    };
    let input = DecisionInput {
        client: &c,
        action: Action::Authorize,
        resource: &r,
        scopes: &s,
        user: Some(&user),
        address: Some("127.0.0.1".parse().unwrap()),
        now: UnixTime(5),
    };
    let (entities, context) = entities::build(&names, &input, &c, &["files:read"]).unwrap();
    let all: Vec<_> = entities.iter().cloned().collect();
    Entities::from_entities(all, Some(&schema)).unwrap();
    for a in Action::ALL {
        Request::new(
            names.client_uid(&c.client_id),
            names.action(*a).unwrap().clone(),
            names.scope_uid(RES, "files:read"),
            context.clone(),
            Some(&schema),
        )
        .unwrap();
    }
}

#[test]
fn unknown_client_gets_only_self_service_scopes() {
    let d = decide(
        &default_engine(),
        &client(),
        Action::Authorize,
        &["files:read", "files:write"],
    );
    assert_eq!(d.granted, vec!["files:read"]);
    assert_eq!(
        d.refusal("files:write").unwrap().reason,
        RefusalReason::NeedsApproval
    );
}

#[test]
fn scope_beyond_self_service_needs_approval_against_the_current_digest() {
    let d = decide(
        &default_engine(),
        &client(),
        Action::Authorize,
        &["files:write", "admin"],
    );
    assert!(d.granted.is_empty());
    assert_eq!(
        d.approval,
        Some(ApprovalNeeded {
            scopes: scopes(&["files:write", "admin"]),
            against: Some("digest-1".into()),
        })
    );
    assert_eq!(d.refusal("admin").unwrap().policy_ids, vec!["steward.approved"]);
}

#[test]
fn approved_scope_is_granted_to_an_active_client() {
    let mut c = client();
    c.approved_scopes = scopes(&["files:write"]);
    c.approval = ApprovalStanding::Current;
    for a in Action::ALL {
        let d = decide(&default_engine(), &c, *a, &["files:read", "files:write", "admin"]);
        assert_eq!(d.granted, vec!["files:read", "files:write"], "{a}");
        assert_eq!(d.approval.as_ref().unwrap().scopes, vec!["admin"]);
    }
}

#[test]
fn denied_domain_gets_nothing() {
    for status in [DomainStatus::Denied, DomainStatus::NotAllowed] {
        let mut c = client();
        c.domain_status = status;
        c.approved_scopes = scopes(&["files:write"]);
        c.declared = true;
        let d = decide(
            &default_engine(),
            &c,
            Action::Authorize,
            &["files:read", "files:write"],
        );
        assert!(d.granted.is_empty(), "{status}");
        assert_eq!(d.approval, None, "an approval cannot help a denied domain");
        for r in &d.refused {
            assert_eq!(r.reason, RefusalReason::Forbidden);
            assert_eq!(r.policy_ids, vec!["steward.denied_domain"]);
        }
    }
}

#[test]
fn quarantined_domain_gets_nothing_unapproved_not_even_self_service() {
    let mut c = client();
    c.domain_status = DomainStatus::Quarantined;
    c.state = LifecycleState::Pending;
    let d = decide(&default_engine(), &c, Action::Authorize, &["files:read"]);
    assert!(d.granted.is_empty());
    assert_eq!(d.approval.unwrap().scopes, vec!["files:read"]);
    // Once approved (and so active), it gets what was approved.
    c.state = LifecycleState::Active;
    c.approved_scopes = scopes(&["files:read"]);
    let d = decide(
        &default_engine(),
        &c,
        Action::Authorize,
        &["files:read", "files:write"],
    );
    assert_eq!(d.granted, vec!["files:read"]);
}

#[test]
fn suspended_revoked_and_expired_clients_get_nothing_and_no_approval_is_offered() {
    for state in [
        LifecycleState::Suspended,
        LifecycleState::Revoked,
        LifecycleState::Expired,
    ] {
        let mut c = client();
        c.state = state;
        c.approved_scopes = scopes(&["files:write"]);
        c.declared = true;
        for a in Action::ALL {
            let d = decide(&default_engine(), &c, *a, &["files:read", "files:write"]);
            assert!(d.granted.is_empty(), "{state} {a}");
            assert_eq!(d.approval, None);
            assert!(d.refused.iter().all(|r| r.reason == RefusalReason::NotPermitted));
        }
    }
}

#[test]
fn pending_client_keeps_self_service_but_not_approved_scopes() {
    let mut c = client();
    c.state = LifecycleState::Pending;
    c.approved_scopes = scopes(&["files:write"]);
    let d = decide(
        &default_engine(),
        &c,
        Action::Refresh,
        &["files:read", "files:write"],
    );
    assert_eq!(d.granted, vec!["files:read"]);
    assert_eq!(
        d.refusal("files:write").unwrap().reason,
        RefusalReason::NeedsApproval
    );
}

#[test]
fn declared_client_is_approved_by_its_configuration() {
    let mut c = client();
    c.declared = true;
    c.kind = ClientKind::PreRegistered;
    let d = decide(
        &default_engine(),
        &c,
        Action::ClientCredentials,
        &["files:write", "admin"],
    );
    assert_eq!(d.granted, vec!["files:write", "admin"]);
}

#[test]
fn scope_the_resource_does_not_define_is_refused_as_unknown() {
    let mut c = client();
    c.declared = true;
    let d = decide(
        &default_engine(),
        &c,
        Action::Authorize,
        &["root", "files:read", "root"],
    );
    assert_eq!(d.granted, vec!["files:read"]);
    assert_eq!(d.refused.len(), 1, "asked twice, refused once");
    assert_eq!(d.refusal("root").unwrap().reason, RefusalReason::UnknownScope);
}

#[test]
fn operator_forbid_wins_over_default_permits_per_action() {
    let e = with_operator(
        r#"@id("ops.no_refresh_for_loopback")
forbid (principal is Client, action == Action::"refresh", resource)
when { principal.loopback_only };"#,
    );
    let mut c = client();
    c.loopback_only = true;
    let d = decide(&e, &c, Action::Refresh, &["files:read"]);
    assert!(d.granted.is_empty());
    assert_eq!(d.refusal("files:read").unwrap().reason, RefusalReason::Forbidden);
    assert_eq!(
        d.refusal("files:read").unwrap().policy_ids,
        vec!["ops.no_refresh_for_loopback"]
    );
    assert_eq!(
        decide(&e, &c, Action::Authorize, &["files:read"]).granted,
        vec!["files:read"]
    );
}

#[test]
fn policy_error_fails_closed() {
    // Cedar skips a policy that errors: this forbid would then grant what the
    // operator meant to forbid. Steward refuses the scope instead.
    let e = with_operator(
        r#"@id("ops.overflowing_forbid")
forbid (principal is Client, action, resource)
when { principal.age_days * 9223372036854775807 > 0 };"#,
    );
    let d = decide(&e, &client(), Action::Authorize, &["files:read"]);
    assert!(d.granted.is_empty());
    let r = d.refusal("files:read").unwrap();
    assert_eq!(r.reason, RefusalReason::PolicyError);
    assert_eq!(r.policy_ids, vec!["ops.overflowing_forbid"]);
    assert_eq!(d.policy_errors.len(), 1);
    assert_eq!(d.policy_errors[0].policy_id, "ops.overflowing_forbid");
    assert!(
        d.policy_errors[0].message.contains("overflow"),
        "{}",
        d.policy_errors[0].message
    );
}

#[test]
fn context_carries_the_user_time_and_address() {
    let e = with_operator(
        r#"@id("ops.office_only")
forbid (principal is Client, action == Action::"authorize", resource)
unless { context has address && context.address.isInRange(ip("10.0.0.0/8")) && context has user && context.user.username != "mallory" && context.now > 0 };"#,
    );
    let c = client();
    let r = resource();
    let s = scopes(&["files:read"]);
    let alice = UserContext {
        id: "u1".into(),
        username: "alice".into(),
    };
    let mallory = UserContext {
        id: "u2".into(),
        username: "mallory".into(),
    };
    let ask = |user: Option<&UserContext>, addr: Option<&str>| {
        e.decide(&DecisionInput {
            client: &c,
            action: Action::Authorize,
            resource: &r,
            scopes: &s,
            user,
            address: addr.map(|a| a.parse().unwrap()),
            now: UnixTime(10),
        })
        .granted
    };
    assert_eq!(ask(Some(&alice), Some("10.1.2.3")), vec!["files:read"]);
    assert!(ask(Some(&mallory), Some("10.1.2.3")).is_empty());
    assert!(ask(Some(&alice), Some("192.0.2.1")).is_empty());
    assert!(ask(None, Some("10.1.2.3")).is_empty());
}

#[test]
fn broken_policy_reload_keeps_running_set() {
    let e = default_engine();
    let before = e.running();
    let err = e
        .reload(vec![
            PolicySource::default_set(),
            PolicySource::new(
                "broken.cedar",
                "permit (principal, action, resource) when { principal. };",
            ),
        ])
        .unwrap_err();
    assert!(matches!(err, PolicyError::Malformed(_)));
    assert!(
        Arc::ptr_eq(&before, &e.running()),
        "the running set was not replaced"
    );
    assert_eq!(
        decide(&e, &client(), Action::Authorize, &["files:read"]).granted,
        vec!["files:read"]
    );
}

#[test]
fn reload_takes_effect_at_the_next_decision() {
    let e = default_engine();
    assert_eq!(
        decide(&e, &client(), Action::Authorize, &["files:read"]).granted,
        vec!["files:read"]
    );
    e.reload(vec![
        PolicySource::default_set(),
        PolicySource::new(
            "ops.cedar",
            r#"forbid (principal is Client, action, resource) when { principal.kind == "metadata_document" };"#,
        ),
    ])
    .unwrap();
    let d = decide(&e, &client(), Action::Authorize, &["files:read"]);
    assert!(d.granted.is_empty());
    assert_eq!(d.refusal("files:read").unwrap().policy_ids, vec!["ops.cedar#0"]);
}

#[test]
fn malformed_policy_error_names_file_line_and_column() {
    let e = default_engine();
    let text = "// ops\npermit (principal, action, resource)\nwhen { principal.state == };\n";
    let Err(PolicyError::Malformed(d)) = e.check(vec![PolicySource::new("/etc/steward/ops.cedar", text)])
    else {
        panic!("expected a parse error");
    };
    assert_eq!(d[0].file, "/etc/steward/ops.cedar");
    assert_eq!(d[0].line, 3, "{}", d[0]);
    assert!(d[0].column > 1, "{}", d[0]);
    assert!(
        d[0].to_string().starts_with("/etc/steward/ops.cedar:3:"),
        "{}",
        d[0]
    );
}

#[test]
fn policy_that_does_not_match_the_schema_is_refused_with_its_location() {
    let e = default_engine();
    let text = "@id(\"ops.typo\")\npermit (principal is Client, action, resource is Scope)\nwhen {\n  principal.sate == \"active\"\n};\n";
    let Err(PolicyError::Malformed(d)) = e.check(vec![PolicySource::new("ops.cedar", text)]) else {
        panic!("expected a validation error");
    };
    assert_eq!(d[0].file, "ops.cedar");
    assert_eq!((d[0].line, d[0].column), (4, 3), "{}", d[0]);
    assert!(d[0].message.contains("ops.typo"), "{}", d[0]);
    let err = PolicyError::Malformed(d);
    assert!(
        err.to_string()
            .starts_with("malformed policy: ops.cedar:4:3: policy ops.typo"),
        "{err}"
    );
}

#[test]
fn unknown_entity_type_and_action_are_refused() {
    let e = default_engine();
    for text in [
        "permit (principal == User::\"alice\", action, resource);",
        "permit (principal, action == Action::\"delete\", resource);",
    ] {
        assert!(
            e.check(vec![PolicySource::new("x.cedar", text)]).is_err(),
            "{text}"
        );
    }
}

#[test]
fn duplicate_policy_ids_are_refused_naming_both_files() {
    let e = default_engine();
    let text = "@id(\"steward.approved\")\npermit (principal, action, resource);";
    let Err(PolicyError::Malformed(d)) = e.check(vec![
        PolicySource::default_set(),
        PolicySource::new("ops.cedar", text),
    ]) else {
        panic!("expected a duplicate id");
    };
    assert_eq!(d[0].file, "ops.cedar");
    assert_eq!(d[0].line, 1);
    assert!(d[0].message.contains("<default>"), "{}", d[0]);
}

#[test]
fn templates_are_refused() {
    let e = default_engine();
    let r = e.check(vec![PolicySource::new(
        "t.cedar",
        "permit (principal == ?principal, action, resource);",
    )]);
    assert!(matches!(r, Err(PolicyError::Malformed(_))));
}

#[test]
fn unreadable_policy_file_is_named() {
    let cfg = PolicyConfig {
        include_default: true,
        files: vec!["/nonexistent/steward/ops.cedar".into()],
    };
    let err = cfg.sources().unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/steward/ops.cedar"),
        "{err}"
    );
}

#[test]
fn without_the_default_set_nothing_is_permitted_unless_the_operator_says_so() {
    let e = PolicyEngine::new(vec![]).unwrap();
    let d = decide(&e, &client(), Action::Authorize, &["files:read"]);
    assert!(d.granted.is_empty());
    assert_eq!(
        d.refusal("files:read").unwrap().reason,
        RefusalReason::NotPermitted
    );
}

#[test]
fn explain_names_the_policies_and_their_files() {
    let e = with_operator(
        r#"@id("ops.no_admin")
forbid (principal, action, resource is Scope) when { resource.name == "admin" };"#,
    );
    let mut c = client();
    c.declared = true;
    let r = resource();
    let s = scopes(&["files:read", "admin"]);
    let x = e.explain(&DecisionInput {
        client: &c,
        action: Action::Authorize,
        resource: &r,
        scopes: &s,
        user: None,
        address: None,
        now: UnixTime(0),
    });
    assert_eq!(x.decision.granted, vec!["files:read"]);
    let read = x.scopes.iter().find(|t| t.scope == "files:read").unwrap();
    assert!(read.granted);
    assert_eq!(read.policy_ids, vec!["steward.declared", "steward.self_service"]);
    let admin = x.scopes.iter().find(|t| t.scope == "admin").unwrap();
    assert_eq!(admin.reason, Some(RefusalReason::Forbidden));
    assert_eq!(admin.policy_ids, vec!["ops.no_admin"]);
    assert!(x.origins.contains(&("ops.no_admin".into(), "ops.cedar".into())));
    assert!(
        x.origins
            .contains(&("steward.declared".into(), "<default>".into()))
    );
}

#[test]
fn impact_lists_clients_that_would_gain_or_lose_scopes() {
    let e = default_engine();
    let candidate = e
        .check(vec![
            PolicySource::default_set(),
            PolicySource::new(
                "candidate.cedar",
                r#"@id("c.acme_write") permit (principal is Client, action, resource is Scope)
when { principal.organization == "Acme" && resource.name == "files:write" };
@id("c.no_unowned_read") forbid (principal is Client, action, resource is Scope)
when { !principal.owned && resource.name == "files:read" && principal.organization != "Acme" };"#,
            ),
        ])
        .unwrap();
    let r = resource();
    let all = r.scopes.clone();
    let mut acme = client();
    acme.client_id = "acme".into();
    acme.organization = Some("Acme".into());
    let other = client();
    let subjects = [
        DecisionInput {
            client: &acme,
            action: Action::Authorize,
            resource: &r,
            scopes: &all,
            user: None,
            address: None,
            now: UnixTime(0),
        },
        DecisionInput {
            client: &other,
            action: Action::Authorize,
            resource: &r,
            scopes: &all,
            user: None,
            address: None,
            now: UnixTime(0),
        },
    ];
    let rows = e.impact(&candidate, &subjects, &[Action::Authorize]);
    assert_eq!(
        rows,
        vec![
            ImpactRow {
                client_id: "acme".into(),
                resource: RES.into(),
                action: Action::Authorize,
                gained: scopes(&["files:write"]),
                lost: vec![],
            },
            ImpactRow {
                client_id: other.client_id.clone(),
                resource: RES.into(),
                action: Action::Authorize,
                gained: vec![],
                lost: scopes(&["files:read"]),
            },
        ]
    );
    // The running set is untouched by an impact run.
    assert_eq!(e.running().len(), 5);
}

#[test]
fn line_column_counts_characters() {
    assert_eq!(load::line_column("ab\ncé d", 7), (2, 4));
    assert_eq!(load::line_column("x", 0), (1, 1));
    assert_eq!(load::line_column("x", 99), (1, 2));
}

#[test]
fn action_names_round_trip() {
    for a in Action::ALL {
        assert_eq!(a.as_str().parse::<Action>(), Ok(*a));
    }
    assert!("introspect".parse::<Action>().is_err());
}

/// The memo answers exactly what evaluation would, for the exact input
/// only, and a reload starts from an empty memo: a decision of the old set
/// is never given by the new one.
#[test]
fn remembered_decisions_match_evaluation_and_die_with_their_set() {
    let engine = default_engine();
    let c = client();
    let first = decide(&engine, &c, Action::Authorize, &["files:read", "admin"]);
    assert_eq!(engine.running().memo.len(), 1);
    assert_eq!(
        decide(&engine, &c, Action::Authorize, &["files:read", "admin"]),
        first
    );
    // Another state is another input, decided afresh.
    let suspended = ClientAttributes {
        state: LifecycleState::Suspended,
        ..client()
    };
    assert!(
        decide(&engine, &suspended, Action::Authorize, &["files:read"])
            .granted
            .is_empty()
    );
    assert_eq!(engine.running().memo.len(), 2);
    engine
        .reload(vec![
            PolicySource::default_set(),
            PolicySource::new("ops.cedar", "@id(\"ops.no_read\")\nforbid (principal, action, resource is Scope) when { resource.name == \"files:read\" };"),
        ])
        .unwrap();
    assert_eq!(engine.running().memo.len(), 0);
    let after = decide(&engine, &c, Action::Authorize, &["files:read", "admin"]);
    assert!(after.granted.is_empty(), "{after:?}");
}
