//! Decisions on further secrets inside an authorized request (BatchGetSecretValue), each
//! recorded as its own audit event.

use std::sync::{Arc, Mutex};

use crate::audit::Draft;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ops::{self, Scope};
use crate::policy;

use super::authorized::{Refusal, SecretAuthorizer};
use super::resolve::{missing_secret, secret_keys, Resolved};
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
                keys: {
                    let mut keys = secret_keys(secret, &facts.tags);
                    keys.extend(facts.request_keys.iter().cloned());
                    keys
                },
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
        draft.request_parameters = serde_json::json!({ "secretId": resolved.arn });
        let result = self
            .authz
            .authorize(
                &self.principal,
                &self.scope,
                action,
                &resolved,
                &resolved.keys,
                &mut draft,
            )
            .map_err(|error| Refusal {
                error,
                may_see: false,
            })
            .and_then(|()| match found {
                Some((secret, facts)) => match &facts.key {
                    Some(key) => facts.key_actions.iter().try_for_each(|key_action| {
                        self.authz
                            .authorize_on_key(
                                &self.principal,
                                &self.scope,
                                key_action,
                                key,
                                Some(facts.key_for.as_deref().unwrap_or(&secret.arn)),
                                &mut draft,
                            )
                            .map_err(|error| Refusal {
                                error,
                                may_see: true,
                            })
                    }),
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
        let mut keys = vec![("secretsmanager:SecretId".to_owned(), vec![arn.to_owned()])];
        for (k, v) in tags {
            keys.push((format!("aws:ResourceTag/{k}"), vec![v.clone()]));
            keys.push((format!("secretsmanager:ResourceTag/{k}"), vec![v.clone()]));
        }
        let on = |resource_policy: Option<&str>| Resolved {
            resource_policy: resource_policy.map(str::to_owned),
            ..Resolved::on(arn, account)
        };
        let (with, without) = (on(Some(policy)), on(None));
        let allows = |resolved: &Resolved, action: &str| {
            let mut scratch = self.base.clone();
            self.authz
                .authorize(
                    &self.principal,
                    &self.scope,
                    action,
                    resolved,
                    &keys,
                    &mut scratch,
                )
                .is_ok()
        };
        actions
            .iter()
            .any(|action| allows(&with, action) && !allows(&without, action))
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
