//! GetAccountAuthorizationDetails: the caller's account's users, groups, roles and managed
//! policies, each with its policies (documents URL-encoded, as IAM answers them), read from
//! the principals directory in force. Needs `iam:GetAccountAuthorizationDetails`.

use std::sync::Arc;

use crate::audit::Draft;
use crate::authz::Resolved;
use crate::error::ApiError;
use crate::identity::PolicyDoc;
use crate::ops::query::{QueryCall, QueryOperation};
use crate::ops::Scope;
use crate::protocol::query::Form;
use crate::protocol::Service;

/// GetAccountAuthorizationDetails.
#[derive(Debug)]
pub struct GetAccountAuthorizationDetails;

/// Which entity kinds to answer (`Filter.member.N`); all when empty.
#[derive(Debug)]
pub struct Input {
    filter: Vec<String>,
}

impl Input {
    fn wants(&self, kind: &str) -> bool {
        self.filter.is_empty() || self.filter.iter().any(|f| f == kind)
    }
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    user_detail_list: Vec<UserDetail>,
    group_detail_list: Vec<GroupDetail>,
    role_detail_list: Vec<RoleDetail>,
    policies: Vec<ManagedPolicyDetail>,
    is_truncated: bool,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct InlinePolicy {
    policy_name: String,
    policy_document: String,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct AttachedPolicy {
    policy_name: String,
    policy_arn: String,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: String,
    value: String,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct UserDetail {
    path: String,
    user_name: String,
    user_id: String,
    arn: String,
    user_policy_list: Vec<InlinePolicy>,
    group_list: Vec<String>,
    attached_managed_policies: Vec<AttachedPolicy>,
    tags: Vec<Tag>,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct GroupDetail {
    path: String,
    group_name: String,
    group_id: String,
    arn: String,
    group_policy_list: Vec<InlinePolicy>,
    attached_managed_policies: Vec<AttachedPolicy>,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct RoleDetail {
    path: String,
    role_name: String,
    role_id: String,
    arn: String,
    assume_role_policy_document: String,
    role_policy_list: Vec<InlinePolicy>,
    attached_managed_policies: Vec<AttachedPolicy>,
    tags: Vec<Tag>,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyVersion {
    document: String,
    version_id: String,
    is_default_version: bool,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManagedPolicyDetail {
    policy_name: String,
    arn: String,
    default_version_id: String,
    policy_version_list: Vec<PolicyVersion>,
}

/// A policy document as IAM answers it: URL-encoded JSON.
fn encoded(doc: &serde_json::Value) -> String {
    percent_encoding::utf8_percent_encode(&doc.to_string(), percent_encoding::NON_ALPHANUMERIC)
        .to_string()
}

/// Split policies into inline ones (`<owner ARN>:inline/<name>`) and attached managed ones.
fn split(policies: &[Arc<PolicyDoc>]) -> (Vec<InlinePolicy>, Vec<AttachedPolicy>) {
    let mut inline = vec![];
    let mut attached = vec![];
    for p in policies {
        match p.id.split_once(":inline/") {
            Some((_, name)) => inline.push(InlinePolicy {
                policy_name: name.to_owned(),
                policy_document: encoded(&p.document),
            }),
            None => attached.push(AttachedPolicy {
                policy_name: p.id.rsplit('/').next().unwrap_or_default().to_owned(),
                policy_arn: p.id.clone(),
            }),
        }
    }
    (inline, attached)
}

fn tags(t: &std::collections::BTreeMap<String, String>) -> Vec<Tag> {
    t.iter()
        .map(|(k, v)| Tag {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

const FILTERS: &[&str] = &[
    "User",
    "Role",
    "Group",
    "LocalManagedPolicy",
    "AWSManagedPolicy",
];

impl QueryOperation for GetAccountAuthorizationDetails {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "GetAccountAuthorizationDetails";
    const SERVICE: Service = Service::Iam;
    const READ_ONLY: bool = true;

    fn parse(form: &Form) -> Result<Input, ApiError> {
        let filter: Vec<String> = form
            .members("Filter")
            .into_iter()
            .map(str::to_owned)
            .collect();
        if let Some(bad) = filter.iter().find(|f| !FILTERS.contains(&f.as_str())) {
            return Err(ApiError::Validation(format!(
                "1 validation error detected: Value '{}' at 'filter' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [User, Role, Group, LocalManagedPolicy, AWSManagedPolicy]]",
                bad.chars().take(64).collect::<String>()
            )));
        }
        Ok(Input { filter })
    }

    async fn handle(
        call: &QueryCall<'_>,
        input: Input,
        draft: &mut Draft,
    ) -> Result<Output, ApiError> {
        let caller = call.caller()?;
        let scope = Scope {
            account: caller.account_id.clone(),
            region: call.region.clone(),
        };
        let resolved = Resolved::on("*".to_owned(), scope.account.clone());
        call.pipeline.authz.authorize(
            caller,
            &scope,
            "iam:GetAccountAuthorizationDetails",
            &resolved,
            &[],
            draft,
        )?;
        let dir = call.pipeline.identities.get();
        let Some(acct) = dir.accounts.get(&scope.account) else {
            return Ok(Output {
                user_detail_list: vec![],
                group_detail_list: vec![],
                role_detail_list: vec![],
                policies: vec![],
                is_truncated: false,
            });
        };
        let mut users = vec![];
        if input.wants("User") {
            for u in acct.users.values() {
                // A user's own policies come first; its groups' follow (see `identity`).
                let from_groups: usize = u
                    .groups
                    .iter()
                    .filter_map(|g| acct.groups.get(g))
                    .map(|g| g.policies.len())
                    .sum();
                let own = u
                    .policies
                    .get(..u.policies.len().saturating_sub(from_groups))
                    .unwrap_or_default();
                let (inline, attached) = split(own);
                users.push(UserDetail {
                    path: u.path.clone(),
                    user_name: u.name.clone(),
                    user_id: u.user_id.clone(),
                    arn: u.arn.clone(),
                    user_policy_list: inline,
                    group_list: u.groups.clone(),
                    attached_managed_policies: attached,
                    tags: tags(&u.tags),
                });
            }
        }
        let mut groups = vec![];
        if input.wants("Group") {
            for g in acct.groups.values() {
                let (inline, attached) = split(&g.policies);
                groups.push(GroupDetail {
                    path: g.path.clone(),
                    group_name: g.name.clone(),
                    group_id: g.group_id.clone(),
                    arn: g.arn.clone(),
                    group_policy_list: inline,
                    attached_managed_policies: attached,
                });
            }
        }
        let mut roles = vec![];
        if input.wants("Role") {
            for r in acct.roles.values() {
                let (inline, attached) = split(&r.policies);
                roles.push(RoleDetail {
                    path: r.path.clone(),
                    role_name: r.name.clone(),
                    role_id: r.role_id.clone(),
                    arn: r.arn.clone(),
                    assume_role_policy_document: encoded(&r.trust_policy.document),
                    role_policy_list: inline,
                    attached_managed_policies: attached,
                    tags: tags(&r.tags),
                });
            }
        }
        let mut policies = vec![];
        let local = acct
            .policies
            .values()
            .filter(|_| input.wants("LocalManagedPolicy"));
        let aws = dir
            .managed
            .values()
            .filter(|_| input.wants("AWSManagedPolicy"));
        for p in local.chain(aws) {
            policies.push(ManagedPolicyDetail {
                policy_name: p.id.rsplit('/').next().unwrap_or_default().to_owned(),
                arn: p.id.clone(),
                default_version_id: "v1".to_owned(),
                policy_version_list: vec![PolicyVersion {
                    document: encoded(&p.document),
                    version_id: "v1".to_owned(),
                    is_default_version: true,
                }],
            });
        }
        Ok(Output {
            user_detail_list: users,
            group_detail_list: groups,
            role_detail_list: roles,
            policies,
            is_truncated: false,
        })
    }
}
