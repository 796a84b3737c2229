//! Decisions on further secrets inside an authorized request (BatchGetSecretValue), each
//! recorded as its own audit event.

use std::sync::{Arc, Mutex};

use crate::audit::Draft;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ops::{self, Scope};
use crate::policy;

use super::authorized::{Refusal, SecretAuthorizer};
use super::resolve::{missing_secret, secret_key_layer, Resolved};
use super::Authz;

/// Per-secret authorization inside an authorized request, with its audit events.
#[derive(Debug)]
pub(super) struct PerSecret {
    authz: Authz,
    principal: Arc<Principal>,
    scope: Scope,
    base: Draft,
    events: Mutex<Vec<Draft>>,
}

impl SecretAuthorizer for PerSecret {
    fn authorize_secret(
        &self,
        action: &str,
        named: &str,
        found: Option<(&crate::store::rows::SecretRow, &ops::SecretFacts)>,
    ) -> Result<(), Refusal> {
        let mut draft = self.base.clone();
        draft.request_id = uuid::Uuid::new_v4().to_string();
        draft.event_name = action.rsplit(':').next().unwrap_or(action).to_owned();
        draft.read_only = Some(true);
        let resolved = match found {
            Some((secret, facts)) => Resolved {
                arn: secret.arn.clone(),
                account: secret.account_id.clone(),
                secret: None,
                keys: Vec::new(),
                shared_keys: Some(
                    facts
                        .secret_keys
                        .clone()
                        .unwrap_or_else(|| secret_key_layer(secret, &facts.tags)),
                ),
                policy_cell: facts.policy_cell.clone(),
                resource_policy: secret.resource_policy.clone(),
                compiled_policy: None,
                resource_required: false,
                shown: Some(crate::secrets::would_be_arn(
                    &self.scope.region,
                    &self.scope.account,
                    named,
                )),
            },
            None => missing_secret(&self.scope, named),
        };
        draft.resource_arn = Some(resolved.arn.clone());
        // The request's member name, as a client sends it (recorded as `secretId`).
        draft.request_parameters = serde_json::json!({ "SecretId": resolved.arn });
        // The resource's keys, then the request's own for this decision.
        let keys = super::Keys {
            before: &resolved.keys,
            shared: resolved.shared_keys.as_ref(),
            after: found.map_or(&[][..], |(_, facts)| &facts.request_keys),
        };
        let dir = self.authz.identities().get();
        let result = self
            .authz
            .authorize_under(
                &dir,
                &self.principal,
                &self.scope,
                action,
                &resolved,
                keys,
                &mut draft,
            )
            .map_err(|error| Refusal {
                error,
                may_see: false,
            })
            .and_then(|()| match found {
                Some((secret, facts)) => match &facts.key {
                    Some(key) => {
                        let dir = self.authz.identities().get();
                        facts.key_actions.iter().try_for_each(|key_action| {
                            self.authz
                                .authorize_on_key(
                                    &self.principal,
                                    &self.scope,
                                    key_action,
                                    super::keys::OnKey {
                                        key,
                                        aliases: facts.key_aliases.clone(),
                                        dir: &dir,
                                    },
                                    Some(facts.key_for.as_deref().unwrap_or(&secret.arn)),
                                    &mut draft,
                                )
                                .map_err(|error| Refusal {
                                    error,
                                    may_see: true,
                                })
                        })
                    }
                    None => Ok(()),
                },
                None => Ok(()),
            });
        if let Err(r) = &result {
            draft.error_code = Some(r.error.code().to_owned());
            draft.error_message = Some(r.error.message().to_owned());
        }
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(draft);
        result
    }

    fn would_allow_on_key(
        &self,
        action: &str,
        key: &crate::store::rows::KmsKeyRow,
        policy: &str,
    ) -> bool {
        self.key_check(action, key, policy).is_ok()
    }

    fn resource_policy_grants(
        &self,
        arn: &str,
        account: &str,
        tags: &[(String, String)],
        policy: &str,
        actions: &[&str],
    ) -> bool {
        // A policy that cannot be read would refuse every decision on the secret; it
        // counts as granting here, so that the caller refuses it rather than stores it.
        if policy::Policy::parse(policy, policy::PolicyType::Resource).is_err() {
            return true;
        }
        // The policy is decided as the later requests could meet it (`widened`), not only
        // as this request's context meets it.
        let widened = match widened(policy, &self.principal) {
            Widened::Nothing => return false,
            Widened::Policy(text) => {
                match policy::Policy::parse(&text, policy::PolicyType::Resource) {
                    Ok(p) => Arc::new(p),
                    Err(_) => return true,
                }
            }
        };
        let mut keys = vec![("secretsmanager:SecretId".to_owned(), vec![arn.to_owned()])];
        for (k, v) in tags {
            keys.push((format!("aws:ResourceTag/{k}"), vec![v.clone()]));
            keys.push((format!("secretsmanager:ResourceTag/{k}"), vec![v.clone()]));
        }
        let on = Resolved::on(arn, account);
        let dir = self.authz.identities().get();
        let facts = self.authz.facts(&self.scope, &self.base);
        // The policy alone (no identity, boundary or session policy) lets the caller.
        let grants = |action: &str| {
            let rctx = Authz::context(
                &dir,
                &self.principal,
                &facts,
                action,
                &on,
                super::Keys::flat(&keys),
            );
            let set = policy::PolicySet {
                resource: Some(Arc::clone(&widened)),
                ..policy::PolicySet::default()
            };
            policy::authorize(&rctx, &set).is_allowed()
        };
        // The caller's own policies let it already, without a resource policy.
        let already = |action: &str| {
            let mut scratch = self.base.clone();
            self.authz
                .authorize(
                    &self.principal,
                    &self.scope,
                    action,
                    &on,
                    &keys,
                    &mut scratch,
                )
                .is_ok()
        };
        actions
            .iter()
            .any(|action| grants(action) && !already(action))
    }

    fn same_organization(&self, a: &str, b: &str) -> bool {
        let dir = self.authz.identities().get();
        dir.org_id.is_some() && dir.in_organization(a) && dir.in_organization(b)
    }
}

impl PerSecret {
    pub(super) fn new(authz: Authz, principal: Arc<Principal>, scope: Scope, base: Draft) -> Self {
        Self {
            authz,
            principal,
            scope,
            base,
            events: Mutex::new(Vec::new()),
        }
    }

    fn key_check(
        &self,
        action: &str,
        key: &crate::store::rows::KmsKeyRow,
        policy: &str,
    ) -> Result<(), ApiError> {
        let on_key = Resolved {
            compiled_policy: Some(Arc::new(
                policy::Policy::parse(policy, policy::PolicyType::Resource)
                    .map_err(|e| ApiError::MalformedPolicyDocument(e.aws_message()))?
                    .with_label(&format!("{}:key-policy", key.arn)),
            )),
            resource_required: true,
            ..Resolved::on(key.arn.clone(), key.account_id.clone())
        };
        let mut scratch = self.base.clone();
        self.authz.authorize(
            &self.principal,
            &self.scope,
            action,
            &on_key,
            &[],
            &mut scratch,
        )
    }
}

/// A resource policy as requests other than the one deciding on it could meet it.
enum Widened {
    /// No statement could allow anything.
    Nothing,
    Policy(String),
}

/// The condition keys whose value is the same for every request of one principal on one
/// secret (its tags as the policy is stored with them): a condition on any other key (the
/// version read, the time, the source address, session tags...) may hold on a later
/// request even when it fails on this one.
fn fixed_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    matches!(
        key.as_str(),
        "aws:principalaccount"
            | "aws:principalarn"
            | "aws:principalorgid"
            | "aws:principalorgpaths"
            | "aws:principaltype"
            | "aws:resourceaccount"
            | "aws:resourceorgid"
            | "aws:resourceorgpaths"
            | "secretsmanager:secretid"
    ) || key.starts_with("aws:resourcetag/")
        || key.starts_with("secretsmanager:resourcetag/")
}

/// `policy` (a policy `Policy::parse` accepts) as `caller` could meet it on any later request:
/// its `Allow` statements only (a `Deny` may not apply then), without their conditions on
/// keys that are not fixed ([`fixed_key`]) or whose values name a policy variable, with a
/// `Resource` naming a variable read as `*`, a `NotPrincipal` read as `Principal: *`, and,
/// for a role session, the role's other sessions named as the caller (the principal may
/// take any session name).
fn widened(policy: &str, caller: &Principal) -> Widened {
    use serde_json::Value;
    let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(policy) else {
        return Widened::Nothing;
    };
    let statements = match doc.remove("Statement") {
        Some(Value::Array(a)) => a,
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    let session_prefix = (caller.kind == crate::auth::PrincipalKind::AssumedRole)
        .then(|| {
            caller
                .arn
                .rsplit_once('/')
                .map(|(role, _)| format!("{role}/"))
        })
        .flatten();
    let names_variable = |v: &Value| match v {
        Value::String(s) => s.contains("${"),
        Value::Array(a) => a
            .iter()
            .any(|v| v.as_str().is_some_and(|s| s.contains("${"))),
        _ => false,
    };
    let mut kept = Vec::new();
    for mut st in statements {
        let Value::Object(st_map) = &mut st else {
            continue;
        };
        if st_map.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        if let Some(Value::Object(ops)) = st_map.get_mut("Condition") {
            for keys in ops.values_mut() {
                if let Value::Object(keys) = keys {
                    keys.retain(|k, v| fixed_key(k) && !names_variable(v));
                }
            }
            ops.retain(|_, keys| keys.as_object().is_some_and(|k| !k.is_empty()));
        }
        if st_map
            .get("Condition")
            .and_then(Value::as_object)
            .is_some_and(serde_json::Map::is_empty)
        {
            st_map.remove("Condition");
        }
        for element in ["Resource", "NotResource"] {
            if st_map.get(element).is_some_and(names_variable) {
                st_map.remove(element);
                st_map.insert("Resource".to_owned(), Value::from("*"));
            }
        }
        // `Allow` with `NotPrincipal` lets everyone it does not list; a later request may
        // come as a principal it does not list (another session of the caller's role, say).
        if st_map.remove("NotPrincipal").is_some() {
            st_map.insert("Principal".to_owned(), Value::from("*"));
        }
        if let (Some(prefix), Some(Value::Object(principal))) =
            (&session_prefix, st_map.get_mut("Principal"))
        {
            for values in principal.values_mut() {
                let rename = |v: &mut Value| {
                    if v.as_str().is_some_and(|s| s.starts_with(prefix.as_str())) {
                        *v = Value::from(caller.arn.as_str());
                    }
                };
                match values {
                    Value::Array(a) => a.iter_mut().for_each(rename),
                    v => rename(v),
                }
            }
        }
        kept.push(st);
    }
    if kept.is_empty() {
        return Widened::Nothing;
    }
    doc.insert("Statement".to_owned(), Value::Array(kept));
    Widened::Policy(Value::Object(doc).to_string())
}

/// The audit events of the per-secret decisions a request made, for the pipeline to record.
#[derive(Debug)]
pub struct Events(pub(super) Arc<PerSecret>);

impl Events {
    /// Take the events recorded so far.
    pub fn take(&self) -> Vec<Draft> {
        std::mem::take(
            &mut *self
                .0
                .events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{widened, Widened};
    use crate::auth::{Principal, PrincipalKind};

    fn statements(policy: &str, caller: &Principal) -> serde_json::Value {
        match widened(policy, caller) {
            Widened::Policy(text) => {
                let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
                crate::policy::Policy::parse(&text, crate::policy::PolicyType::Resource).unwrap();
                doc["Statement"].clone()
            }
            Widened::Nothing => serde_json::Value::Null,
        }
    }

    fn root() -> Principal {
        Principal::root("111122223333", "AKIAEXAMPLE")
    }

    fn session() -> Principal {
        Principal {
            kind: PrincipalKind::AssumedRole,
            arn: "arn:aws:sts::111122223333:assumed-role/app/s1".into(),
            role_arn: Some("arn:aws:iam::111122223333:role/app".into()),
            ..root()
        }
    }

    #[test]
    fn only_allows_remain_with_the_conditions_every_request_meets() {
        let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Deny","Principal":"*","Action":"secretsmanager:*","Resource":"*"},
            {"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*",
             "Condition":{"StringEquals":{"AWS:PrincipalAccount":"444455556666","secretsmanager:VersionStage":"AWSCURRENT"},
                          "DateGreaterThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"},
                          "StringLike":{"aws:ResourceTag/team":"a*","aws:SourceIp":"10.*"}}},
            {"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue",
             "Resource":"arn:aws:secretsmanager:us-east-1:111122223333:secret:${aws:username}-*",
             "Condition":{"StringEquals":{"aws:PrincipalArn":"${secretsmanager:VersionStage}"}}}]}"#;
        let got = statements(policy, &root());
        assert_eq!(got.as_array().unwrap().len(), 2, "{got}");
        assert_eq!(
            got[0]["Condition"],
            serde_json::json!({"StringEquals": {"AWS:PrincipalAccount": "444455556666"},
                               "StringLike": {"aws:ResourceTag/team": "a*"}})
        );
        assert!(got[1].get("Condition").is_none(), "{got}");
        assert_eq!(got[1]["Resource"], "*");
        let only_deny = r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"secretsmanager:*","Resource":"*"}}"#;
        assert!(matches!(widened(only_deny, &root()), Widened::Nothing));
    }

    #[test]
    fn another_session_of_the_callers_role_is_named_as_the_caller() {
        let policy = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":["arn:aws:sts::111122223333:assumed-role/app/s2",
                "arn:aws:sts::111122223333:assumed-role/other/s2"]},
             "Action":"secretsmanager:GetSecretValue","Resource":"*"},
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role/app/s3"},
             "Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
        let got = statements(policy, &session());
        assert_eq!(
            got[0]["Principal"]["AWS"],
            serde_json::json!([
                "arn:aws:sts::111122223333:assumed-role/app/s1",
                "arn:aws:sts::111122223333:assumed-role/other/s2"
            ])
        );
        assert_eq!(
            got[1]["Principal"]["AWS"],
            "arn:aws:sts::111122223333:assumed-role/app/s1"
        );
        // An Allow that lists the caller's other session in NotPrincipal lets that session.
        let not = r#"{"Statement":{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:sts::111122223333:assumed-role/app/s2"},
             "Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#;
        let got = statements(not, &session());
        assert_eq!(got[0]["Principal"], "*", "{got}");
        assert!(got[0].get("NotPrincipal").is_none(), "{got}");
        // another caller's policy is left as written
        let got = statements(policy, &root());
        assert_eq!(
            got[1]["Principal"]["AWS"],
            "arn:aws:sts::111122223333:assumed-role/app/s3"
        );
    }
}
