//! Turning a decision's input into Cedar entities and context, exactly as
//! the schema (`policy/steward.cedarschema`) declares them.

use super::{Action, ClientAttributes, DecisionInput};
use cedar_policy::{Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

/// Entity type names and action uids, parsed once.
#[derive(Debug)]
pub(crate) struct Names {
    client: EntityTypeName,
    resource: EntityTypeName,
    scope: EntityTypeName,
    actions: Vec<(Action, EntityUid)>,
}

impl Names {
    pub(crate) fn new() -> Result<Self, String> {
        let t = |s: &str| EntityTypeName::from_str(s).map_err(|e| e.to_string());
        let action = t("Action")?;
        Ok(Self {
            client: t("Client")?,
            resource: t("Resource")?,
            scope: t("Scope")?,
            actions: Action::ALL
                .iter()
                .map(|a| {
                    (
                        *a,
                        EntityUid::from_type_name_and_id(action.clone(), EntityId::new(a.as_str())),
                    )
                })
                .collect(),
        })
    }

    pub(crate) fn action(&self, a: Action) -> Option<&EntityUid> {
        self.actions.iter().find(|(x, _)| *x == a).map(|(_, u)| u)
    }

    fn uid(t: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(t.clone(), EntityId::new(id))
    }

    pub(crate) fn client_uid(&self, client_id: &str) -> EntityUid {
        Self::uid(&self.client, client_id)
    }

    pub(crate) fn scope_uid(&self, resource: &str, scope: &str) -> EntityUid {
        Self::uid(&self.scope, &format!("{resource} {scope}"))
    }

    fn resource_uid(&self, resource: &str) -> EntityUid {
        Self::uid(&self.resource, resource)
    }
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

fn strings<'a>(it: impl IntoIterator<Item = &'a String>) -> RestrictedExpression {
    RestrictedExpression::new_set(it.into_iter().map(|s| string(s)))
}

fn client_entity(names: &Names, c: &ClientAttributes) -> Result<Entity, String> {
    let attrs: HashMap<String, RestrictedExpression> = [
        ("client_id", string(&c.client_id)),
        ("kind", string(c.kind.as_str())),
        ("state", string(c.state.as_str())),
        ("tier", string(c.tier.as_str())),
        ("host", string(c.host.as_deref().unwrap_or(""))),
        ("organization", string(c.organization.as_deref().unwrap_or(""))),
        ("owners", strings(&c.owners)),
        ("owned", RestrictedExpression::new_bool(c.owned)),
        (
            "owners_required",
            RestrictedExpression::new_bool(c.owners_required),
        ),
        ("declared", RestrictedExpression::new_bool(c.declared)),
        ("same_origin", RestrictedExpression::new_bool(c.same_origin)),
        ("loopback_only", RestrictedExpression::new_bool(c.loopback_only)),
        ("age_days", RestrictedExpression::new_long(c.age_days)),
        ("domain_status", string(c.domain_status.as_str())),
        ("approved_scopes", strings(&c.approved_scopes)),
        ("approval", string(c.approval.as_str())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Entity::new(names.client_uid(&c.client_id), attrs, HashSet::new()).map_err(|e| e.to_string())
}

/// The entities and context of one decision: the client (possibly a
/// hypothetical variant of it), the resource, and one scope entity per
/// scope in `scopes`, each a child of the resource.
pub(crate) fn build(
    names: &Names,
    input: &DecisionInput<'_>,
    client: &ClientAttributes,
    scopes: &[&str],
) -> Result<(Entities, Context), String> {
    let r = input.resource;
    let resource_uid = names.resource_uid(&r.uri);
    let resource = Entity::new(
        resource_uid.clone(),
        HashMap::from([
            ("uri".to_owned(), string(&r.uri)),
            ("self_service_scopes".to_owned(), strings(&r.self_service_scopes)),
        ]),
        HashSet::new(),
    )
    .map_err(|e| e.to_string())?;
    let mut all = Vec::with_capacity(scopes.len() + 2);
    all.push(client_entity(names, client)?);
    all.push(resource);
    for s in scopes {
        all.push(
            Entity::new(
                names.scope_uid(&r.uri, s),
                HashMap::from([
                    ("name".to_owned(), string(s)),
                    ("resource".to_owned(), string(&r.uri)),
                    (
                        "self_service".to_owned(),
                        RestrictedExpression::new_bool(r.self_service_scopes.iter().any(|x| x == s)),
                    ),
                ]),
                HashSet::from([resource_uid.clone()]),
            )
            .map_err(|e| e.to_string())?,
        );
    }
    let entities = Entities::from_entities(all, None).map_err(|e| e.to_string())?;
    let mut ctx = vec![("now".to_owned(), RestrictedExpression::new_long(input.now.0))];
    if let Some(u) = input.user {
        ctx.push((
            "user".to_owned(),
            RestrictedExpression::new_record([
                ("id".to_owned(), string(&u.id)),
                ("username".to_owned(), string(&u.username)),
            ])
            .map_err(|e| e.to_string())?,
        ));
    }
    if let Some(a) = input.address {
        ctx.push(("address".to_owned(), RestrictedExpression::new_ip(a.to_string())));
    }
    let context = Context::from_pairs(ctx).map_err(|e| e.to_string())?;
    Ok((entities, context))
}
