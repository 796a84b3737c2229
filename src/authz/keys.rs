//! The KMS actions Secrets Manager performs on a caller's behalf, decided with each key's key
//! policy (IAM.md §5.7), and the AWS managed key's one-account rule.

use crate::audit::Draft;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::ops::{self, Scope};
use crate::policy;

use super::resolve::{Fetched, Resolved};
use super::Authz;

impl Authz {
    /// Decide the KMS actions an operation performs on the caller's behalf, each with the
    /// key's key policy (IAM.md §5.7). A value read is decided on the key that sealed the
    /// version read (`fetched`), not on the secret's key of the moment: a secret moved to
    /// another key keeps its older versions under the old one. A store error or a secret's
    /// key that cannot be found refuses; a named key that does not exist is reported by the
    /// operation itself.
    pub(super) async fn authorize_key_uses(
        &self,
        principal: &Principal,
        scope: &Scope,
        resolved: &Resolved,
        uses: Vec<ops::KeyUse>,
        fetched: Option<&Fetched>,
        draft: &mut Draft,
    ) -> Result<Vec<DecidedKey>, ApiError> {
        let Some(secret) = resolved.secret.as_ref() else {
            // No secret: only a named key (CreateSecret, in the caller's account) is used,
            // for the secret the request creates (its ARN, with the fresh suffix the
            // operation gives it, is `kms:EncryptionContext:SecretARN`).
            let arn = Some(resolved.arn.as_str()).filter(|a| *a != "*");
            return self
                .authorize_named_keys(principal, scope, scope, arn, uses, draft)
                .await;
        };
        let read_key = match fetched {
            Some(Ok(f)) => f.sealing_key_id().map(str::to_owned),
            _ => None,
        };
        let mut wanted: Vec<(&'static str, Option<String>)> = Vec::new();
        let mut named = Vec::new();
        for u in uses {
            match u {
                ops::KeyUse::SecretKey(action) => {
                    let key = if action == "kms:Decrypt" && read_key.is_some() {
                        read_key.clone()
                    } else {
                        secret.kms_key_id.clone()
                    };
                    wanted.push((action, key));
                }
                other @ ops::KeyUse::Named(..) => named.push(other),
            }
        }
        // The key that sealed the version read was read with it (in the resolution's
        // transaction, or its cached result): not read again.
        let mut rows: Vec<(String, Option<crate::store::rows::KmsKeyRow>)> = match fetched {
            Some(Ok(f)) => f
                .sealing_key_id()
                .map(|id| (id.to_owned(), Some(f.sealing_key().clone())))
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        let ids: Vec<String> = wanted
            .iter()
            .filter_map(|(_, k)| k.clone())
            .filter(|id| !rows.iter().any(|(k, _)| k == id))
            .collect();
        // Secrets under the AWS managed key before its first use name no key row: no read.
        // Otherwise a few lookups by key, on the calling thread where the store allows it.
        if !ids.is_empty() {
            rows.extend(
                self.ctx
                    .store
                    .read_point(move |tx| {
                        let mut out = Vec::with_capacity(ids.len());
                        for id in &ids {
                            out.push((id.clone(), tx.kms_key(id)?));
                        }
                        Ok(out)
                    })
                    .await?,
            );
        }
        // `kms:ResourceAliases` of each customer managed key decided below, read in one
        // transaction, for the keys whose decision has a policy that reads it: a value no
        // policy reads cannot change the decision, and reading it anyway would cost every
        // value read under a customer managed key a store read (a round trip on PostgreSQL).
        let dir = self.identities.get();
        let customer: Vec<crate::store::rows::KmsKeyRow> = rows
            .iter()
            .filter_map(|(_, r)| r.clone())
            .filter(|k| k.key_manager != "AWS")
            .filter(|k| {
                self.policy_set(principal, &key_resolved(k), &dir)
                    .map_or(true, |set| set.mentions_condition_key(RESOURCE_ALIASES))
            })
            .collect();
        let aliases = if customer.is_empty() {
            Vec::new()
        } else {
            self.ctx
                .store
                .read_point(move |tx| {
                    let mut out = Vec::with_capacity(customer.len());
                    for k in &customer {
                        let names = tx.kms_alias_names_of(&k.account_id, &k.region, &k.key_id)?;
                        out.push((k.key_id.clone(), names));
                    }
                    Ok(out)
                })
                .await?
        };
        let aliases_of = |id: &str| {
            aliases
                .iter()
                .find(|(k, _)| k == id)
                .map(|(_, a)| a.clone())
                .unwrap_or_default()
        };
        for (action, key_id) in wanted {
            match key_id {
                // The account's AWS managed key (not created until first used).
                None => ensure_same_account_for_managed_key(principal, &secret.account_id, draft)?,
                Some(id) => match rows
                    .iter()
                    .find(|(k, _)| *k == id)
                    .and_then(|(_, r)| r.as_ref())
                {
                    Some(key) => self.authorize_on_key(
                        principal,
                        scope,
                        action,
                        OnKey {
                            key,
                            aliases: aliases_of(&key.key_id),
                            dir: &dir,
                        },
                        Some(&secret.arn),
                        draft,
                    )?,
                    None => {
                        draft.decision = Some(policy::Effect::ImplicitDeny.as_str().to_owned());
                        draft.decision_reason =
                            Some(format!("the KMS key {id} of {} is not found", secret.arn));
                        return Err(ApiError::AccessDenied(format!(
                            "User: {} is not authorized to perform: {action} on the KMS key of resource: {}. Access to KMS is not allowed",
                            principal.arn, secret.arn
                        )));
                    }
                },
            }
        }
        // A named key is the secret's account's (that is where the operation resolves it and
        // what it will seal with), whoever calls.
        let owner = Scope {
            account: secret.account_id.clone(),
            region: secret.region.clone(),
        };
        self.authorize_named_keys(principal, scope, &owner, Some(&secret.arn), named, draft)
            .await
    }

    /// [`Self::authorize_key_uses`] for the keys a request names (`KmsKeyId`), resolved in
    /// `owner`'s account and region: the account whose secret will be sealed with the key
    /// (the operation resolves the name there too). Answers what each name resolved to, for
    /// the operation to hold its own resolution to ([`DecidedKey`]).
    async fn authorize_named_keys(
        &self,
        principal: &Principal,
        scope: &Scope,
        owner: &Scope,
        secret_arn: Option<&str>,
        uses: Vec<ops::KeyUse>,
        draft: &mut Draft,
    ) -> Result<Vec<DecidedKey>, ApiError> {
        let wanted: Vec<(&'static str, String)> = uses
            .into_iter()
            .filter_map(|u| match u {
                ops::KeyUse::Named(a, id) => Some((a, id)),
                ops::KeyUse::SecretKey(_) => None,
            })
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let (account, region) = (owner.account.clone(), owner.region.clone());
        let keys = self
            .ctx
            .store
            .read_point(move |tx| {
                let mut out = Vec::with_capacity(wanted.len());
                for (action, id) in &wanted {
                    let key = if crate::kms::names_default_alias(&account, &region, id) {
                        NamedKey::Managed
                    } else {
                        match crate::kms::resolve_key(tx, &account, &region, id, |_| {
                            Err(ApiError::internal("the default alias is resolved above"))
                        })? {
                            Some(k) => {
                                let aliases =
                                    tx.kms_alias_names_of(&k.account_id, &k.region, &k.key_id)?;
                                NamedKey::Found(Box::new(k), aliases)
                            }
                            None => NamedKey::Missing,
                        }
                    };
                    out.push((*action, id.clone(), key));
                }
                Ok(out)
            })
            .await?;
        let dir = self.identities.get();
        let mut decided = Vec::with_capacity(keys.len());
        for (action, named, key) in keys {
            let key_id = match key {
                NamedKey::Found(key, aliases) => {
                    let on = OnKey {
                        key: &key,
                        aliases,
                        dir: &dir,
                    };
                    self.authorize_on_key(principal, scope, action, on, secret_arn, draft)?;
                    DecidedKeyId::Key(key.key_id)
                }
                // The owner's account's managed key: usable by that account's principals only.
                NamedKey::Managed => {
                    ensure_same_account_for_managed_key(principal, &owner.account, draft)?;
                    DecidedKeyId::Managed
                }
                // Reported by the operation (KMS's NotFound wording), before anything is used.
                NamedKey::Missing => DecidedKeyId::Missing,
            };
            decided.push(DecidedKey { named, key: key_id });
        }
        Ok(decided)
    }

    /// What the `KmsKeyId` `id` of a request names in `owner`'s account and region, and that
    /// key's ARN (`secretsmanager:KmsKeyArn`; `None` when no key answers to the name, or for
    /// the AWS managed key before its first use), resolved as the operation resolves it.
    pub(super) async fn named_key_arn(
        &self,
        owner: &Scope,
        id: &str,
    ) -> Result<(DecidedKey, Option<String>), ApiError> {
        let (account, region, name) = (owner.account.clone(), owner.region.clone(), id.to_owned());
        let (key, arn) = self
            .ctx
            .store
            .read_point(move |tx| {
                if crate::kms::names_default_alias(&account, &region, &name) {
                    let arn =
                        crate::kms::default_key_if_created(tx, &account, &region)?.map(|k| k.arn);
                    return Ok((DecidedKeyId::Managed, arn));
                }
                let found = crate::kms::resolve_key(tx, &account, &region, &name, |_| {
                    Err(ApiError::internal("the default alias is resolved above"))
                })?;
                Ok(match found {
                    Some(k) => (DecidedKeyId::Key(k.key_id), Some(k.arn)),
                    None => (DecidedKeyId::Missing, None),
                })
            })
            .await?;
        Ok((
            DecidedKey {
                named: id.to_owned(),
                key,
            },
            arn,
        ))
    }

    /// Decide `action` on the KMS key `key` for Secrets Manager acting on the caller's
    /// behalf (on `secret_arn`), with the key policy required. The AWS managed key is left to
    /// the operations (any principal of its account, no other account). A denial keeps the
    /// request's own decision record but for the deciding KMS decision.
    pub(super) fn authorize_on_key(
        &self,
        principal: &Principal,
        scope: &Scope,
        action: &str,
        on: OnKey<'_>,
        secret_arn: Option<&str>,
        draft: &mut Draft,
    ) -> Result<(), ApiError> {
        let OnKey { key, aliases, dir } = on;
        if key.key_manager == "AWS" {
            // An AWS managed key's policy allows its own account's principals, through
            // Secrets Manager, and can grant no other account.
            return ensure_same_account_for_managed_key(principal, &key.account_id, draft);
        }
        // (`authorize` adds kms:CallerAccount to every kms: action.)
        let mut keys = crate::kms::key_policy::key_condition_keys(aliases);
        keys.push((
            "kms:ViaService".to_owned(),
            vec![crate::kms::key_policy::via_service(&key.region)],
        ));
        // Secrets Manager uses the key on the caller's behalf (a forward access session).
        keys.push(("aws:ViaAWSService".to_owned(), vec!["true".to_owned()]));
        if let Some(arn) = secret_arn {
            keys.push((
                "kms:EncryptionContext:SecretARN".to_owned(),
                vec![arn.to_owned()],
            ));
            // Secrets Manager's encryption context always has these two keys.
            keys.push((
                "kms:EncryptionContextKeys".to_owned(),
                vec!["SecretARN".to_owned(), "SecretVersionId".to_owned()],
            ));
        }
        let on_key = key_resolved(key);
        let facts = self.facts(scope, draft);
        let (recorded, result) = self.decide(
            dir,
            principal,
            &facts,
            action,
            &on_key,
            super::Keys::flat(&keys),
        );
        // An allowed use leaves the request's own decision in the draft.
        result.map_err(|e| {
            recorded.write(draft);
            ApiError::AccessDenied(format!("{}. Access to KMS is not allowed", e.message()))
        })
    }
}

/// `kms:ResourceAliases`, lowercase (as conditions hold their keys).
const RESOURCE_ALIASES: &str = "kms:resourcealiases";

/// A KMS key as the resource of a decision: its key policy must allow.
fn key_resolved(key: &crate::store::rows::KmsKeyRow) -> Resolved {
    Resolved {
        arn: key.arn.clone(),
        account: key.account_id.clone(),
        secret: None,
        keys: Vec::new(),
        shared_keys: None,
        policy_cell: None,
        resource_policy: Some(crate::kms::key_policy::effective(key)),
        compiled_policy: None,
        resource_required: true,
        shown: None,
    }
}

/// What a key the request named (`KmsKeyId`) resolved to when its use was decided. The
/// operation resolves the name again inside its write transaction (an alias may have moved
/// to another key in between, or been created) and holds that resolution to this one
/// ([`crate::authz::Authorized::ensure_named_key`]), so that nothing is sealed under a key
/// whose use was never decided for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidedKey {
    /// The identifier as the request gave it.
    pub named: String,
    pub key: DecidedKeyId,
}

/// See [`DecidedKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecidedKeyId {
    /// A key found and decided with its key policy.
    Key(String),
    /// `alias/aws/secretsmanager`: the owner account's AWS managed key.
    Managed,
    /// Not found: nothing was decided (the operation reports it missing).
    Missing,
}

/// A named KMS key, as [`Authz::authorize_named_keys`] found it.
/// A KMS key a decision is made on, with the names of its aliases (`kms:ResourceAliases`),
/// and the principals directory whose policies the decision is made with: the one by whose
/// policies the aliases were looked up or left out (a policy of a later reload that reads
/// them would otherwise be decided without them, and its Deny on them would not apply).
pub(super) struct OnKey<'a> {
    pub key: &'a crate::store::rows::KmsKeyRow,
    pub aliases: Vec<String>,
    pub dir: &'a crate::identity::Directory,
}

enum NamedKey {
    /// A key, with the names of its aliases (`kms:ResourceAliases`).
    Found(Box<crate::store::rows::KmsKeyRow>, Vec<String>),
    /// `alias/aws/secretsmanager`: the caller's account's AWS managed key.
    Managed,
    Missing,
}

/// A secret under the AWS managed key `aws/secretsmanager` of `owner` can be used by `owner`'s
/// principals only: the managed key's policy cannot grant another account, so AWS refuses
/// such a read or write with this message (never a write the other account could not read).
fn ensure_same_account_for_managed_key(
    principal: &Principal,
    owner: &str,
    draft: &mut Draft,
) -> Result<(), ApiError> {
    if principal.account_id == owner {
        return Ok(());
    }
    draft.decision = Some(policy::Effect::ImplicitDeny.as_str().to_owned());
    draft.decision_reason = Some(format!(
        "the AWS managed key aws/secretsmanager of account {owner} cannot be used by another account"
    ));
    Err(ApiError::InvalidRequest(
        "You can't access a secret from a different AWS account if you encrypt the secret with the default KMS service key.".into(),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::OnKey;
    use crate::auth::Principal;
    use crate::authz::Authz;
    use crate::identity::live::Live;
    use crate::identity::{load_dir, Directory};
    use crate::ops::{Ctx, Scope};
    use crate::store::rows::KmsKeyRow;

    const A: &str = "111122223333";

    /// The directory of one user `dev` of account A with the inline policy `statements`.
    fn directory(root: &std::path::Path, statements: &str) -> Directory {
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(
            &format!("accounts/{A}/account.json"),
            &format!(r#"{{"AccountId":"{A}"}}"#),
        );
        write(
            &format!("accounts/{A}/users/dev.json"),
            &format!(
                r#"{{"UserName":"dev","InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":{statements}}}}}}}"#
            ),
        );
        load_dir(root).unwrap()
    }

    /// A key decision is made with the policies of the directory it names (the one whose
    /// policies decided that its aliases need not be looked up), not with those of a reload
    /// in force by then: under the later set, whose Deny reads `kms:ResourceAliases`, the
    /// decision without the aliases would allow what neither set allows.
    #[test]
    fn a_key_decision_is_made_with_the_directory_its_aliases_were_looked_up_for() {
        let t = tempfile::tempdir().unwrap();
        // before the reload: no identity policy allows kms:Decrypt
        let before = directory(
            &t.path().join("before"),
            r#"[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}]"#,
        );
        // after: kms:Decrypt is allowed but on keys with a `prod` alias
        let after = directory(
            &t.path().join("after"),
            r#"[{"Effect":"Allow","Action":["secretsmanager:*","kms:Decrypt"],"Resource":"*"},
                {"Effect":"Deny","Action":"kms:Decrypt","Resource":"*",
                 "Condition":{"ForAnyValue:StringLike":{"kms:ResourceAliases":"alias/prod*"}}}]"#,
        );
        let store =
            crate::store::Store::open(&format!("sqlite://{}/a.db", t.path().display())).unwrap();
        let ctx = Ctx {
            store,
            keyring: crate::kms::Keyring::new(crate::crypto::master::MasterKeyring::generate()),
            clock: Arc::new(|| 1_000_000),
            rotation: crate::rotation::Wiring::default(),
            regions: Arc::new(vec!["us-east-1".into()]),
            peers: Arc::new(Vec::new()),
        };
        let authz = Authz::new(ctx, Arc::new(Live::fixed(after.clone())));
        let u = after.user(A, "dev").unwrap();
        let dev = Principal::user(A, &u.arn, &u.user_id, "dev", u.tags.clone(), "AKIADEV");
        let key = KmsKeyRow::customer_for_test(A, "1234abcd-12ab-34cd-56ef-1234567890ab", None);
        let scope = Scope {
            account: A.into(),
            region: "us-east-1".into(),
        };
        let secret = format!("arn:aws:secretsmanager:us-east-1:{A}:secret:db-AbCdEf");
        let decide = |dir: &Directory, aliases: &[&str]| {
            let mut draft = crate::audit::Draft::default();
            let on = OnKey {
                key: &key,
                aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
                dir,
            };
            authz
                .authorize_on_key(&dev, &scope, "kms:Decrypt", on, Some(&secret), &mut draft)
                .is_ok()
        };
        // the set before the reload reads no alias and allows nothing here
        assert!(!before
            .user(A, "dev")
            .unwrap()
            .identity_group
            .mentions_condition_key("kms:resourcealiases"));
        assert!(!decide(&before, &[]));
        // (the later set without the aliases it reads would allow it: the mix to avoid)
        assert!(decide(&after, &[]));
        // the set after the reload, with the aliases it reads: refused on a `prod` key...
        assert!(!decide(&after, &["alias/prod-db"]));
        // ...and allowed on another key (positive control)
        assert!(decide(&after, &["alias/dev-db"]));
    }
}
