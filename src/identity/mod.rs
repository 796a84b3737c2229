//! Principals as code: accounts, users, groups, roles, managed policies, identity providers
//! and the organization, loaded from a reviewed directory into an immutable [`Directory`].
//!
//! Layout (one file per principal or policy; IAM's own JSON for documents):
//!
//! ```text
//! policies/
//!   managed/<Name>.json                       AWS-managed policies: arn:aws:iam::aws:policy/<Name>
//!   accounts/<ACCOUNT_ID>/account.json        {"AccountId": "...", "Alias": "..."}
//!   accounts/<ACCOUNT_ID>/users/<UserName>.json
//!   accounts/<ACCOUNT_ID>/groups/<GroupName>.json
//!   accounts/<ACCOUNT_ID>/roles/<RoleName>.json
//!   accounts/<ACCOUNT_ID>/policies/<Name>.json        customer managed: arn:aws:iam::<ACCOUNT_ID>:policy/<Name>
//!   accounts/<ACCOUNT_ID>/identity-providers/<name>.json
//!   accounts/<ACCOUNT_ID>/functions/<FunctionName>.json  rotation functions: arn:aws:lambda:REGION:<ACCOUNT_ID>:function:<FunctionName>
//!   organization/organization.json            optional: the OU tree and where SCPs attach
//!   organization/scps/<Name>.json
//! ```
//!
//! Loading checks everything and reports every problem with its file and JSON path; a set with
//! any error is refused whole. May depend on: `policy` (document grammar), `error`. No store.

pub mod jwt;
pub mod live;
pub mod load;
pub mod model;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use load::{load_dir, LoadError};

/// A policy document with its identity, compiled once at load time.
#[derive(Debug, Clone)]
pub struct PolicyDoc {
    /// The policy's ARN (managed) or `ARN-of-owner:inline/<name>` (inline).
    pub id: String,
    pub document: serde_json::Value,
    /// The compiled policy (`None` only in a set that was refused for errors).
    pub compiled: Option<Arc<crate::policy::Policy>>,
}

impl PolicyDoc {
    /// Compile `document` as a policy of `kind`, labelled with `id`.
    pub fn new(id: String, document: serde_json::Value, kind: load::DocKind) -> Self {
        let text = if kind == load::DocKind::Trust {
            // `id` is the role's ARN plus `:trust`: its account is the fifth field.
            load::trust_as_resource_policy(&document, id.split(':').nth(4)).unwrap_or_default()
        } else {
            document.to_string()
        };
        let compiled = crate::policy::Policy::parse(&text, kind.policy_type())
            .ok()
            .map(|p| Arc::new(p.with_label(&id)));
        Self {
            id,
            document,
            compiled,
        }
    }
}

/// A user.
#[derive(Debug, Clone)]
pub struct User {
    pub account: String,
    pub name: String,
    pub path: String,
    pub arn: String,
    pub user_id: String,
    pub tags: BTreeMap<String, String>,
    pub groups: Vec<String>,
    /// Identity policies: the user's own attached and inline ones, then its groups'.
    pub policies: Vec<Arc<PolicyDoc>>,
    pub boundary: Option<Arc<PolicyDoc>>,
    /// The compiled identity policies, indexed once.
    pub identity_group: Arc<crate::policy::PolicyGroup>,
}

/// The compiled, indexed group of a principal's identity policies.
pub fn group_of(policies: &[Arc<PolicyDoc>]) -> Arc<crate::policy::PolicyGroup> {
    Arc::new(crate::policy::PolicyGroup::new(
        policies.iter().filter_map(|p| p.compiled.clone()).collect(),
    ))
}

/// A group (its policies apply to its users, which hold them in [`User::policies`]).
#[derive(Debug, Clone)]
pub struct Group {
    pub account: String,
    pub name: String,
    pub path: String,
    pub arn: String,
    pub group_id: String,
    /// Its attached and inline identity policies.
    pub policies: Vec<Arc<PolicyDoc>>,
}

/// A role.
#[derive(Debug, Clone)]
pub struct Role {
    pub account: String,
    pub name: String,
    pub path: String,
    pub arn: String,
    pub role_id: String,
    pub tags: BTreeMap<String, String>,
    pub trust_policy: Arc<PolicyDoc>,
    pub max_session_duration: i64,
    pub policies: Vec<Arc<PolicyDoc>>,
    pub boundary: Option<Arc<PolicyDoc>>,
    /// The compiled identity policies, indexed once.
    pub identity_group: Arc<crate::policy::PolicyGroup>,
}

/// The condition keys of an IAM user's or role's tags when it is the resource of a decision
/// (`sts:AssumeRole` on a role, `iam:SimulatePrincipalPolicy` on a user or role):
/// `iam:ResourceTag/k` and `aws:ResourceTag/k`, as IAM's User and Role resource types list.
pub fn resource_tag_keys(tags: &BTreeMap<String, String>) -> Vec<(String, Vec<String>)> {
    let mut keys = Vec::with_capacity(2 * tags.len());
    for (k, v) in tags {
        keys.push((["iam:ResourceTag/", k].concat(), vec![v.clone()]));
        keys.push((["aws:ResourceTag/", k].concat(), vec![v.clone()]));
    }
    keys
}

/// A JWT issuer an account trusts.
#[derive(Debug, Clone)]
pub struct IdentityProvider {
    pub account: String,
    pub file: PathBuf,
    pub spec: model::IdentityProviderFile,
    /// Verification keys, loaded once with the directory.
    pub keys: Vec<jwt::VerifyKey>,
}

/// A built-in rotator: one of AWS's rotation templates, run in the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `SecretsManagerRDSPostgreSQLRotationSingleUser`: the user changes its own password.
    PostgresSingleUser,
    /// `SecretsManagerRDSPostgreSQLRotationMultiUser`: alternating users `name` and
    /// `name_clone`, changed by the master user of `masterarn`.
    PostgresMultiUser,
    /// `SecretsManagerRDSMySQLRotationSingleUser` and
    /// `SecretsManagerRDSMariaDBRotationSingleUser`: the user changes its own password.
    MysqlSingleUser,
    /// `SecretsManagerRDSMySQLRotationMultiUser` and
    /// `SecretsManagerRDSMariaDBRotationMultiUser`: alternating users `name` and
    /// `name_clone`, changed (and the grants copied) by the master user of `masterarn`.
    MysqlMultiUser,
}

impl Builtin {
    /// The built-in a template name stands for.
    pub fn from_template(name: &str) -> Option<Self> {
        match name {
            "SecretsManagerRDSPostgreSQLRotationSingleUser" => Some(Self::PostgresSingleUser),
            "SecretsManagerRDSPostgreSQLRotationMultiUser" => Some(Self::PostgresMultiUser),
            "SecretsManagerRDSMySQLRotationSingleUser"
            | "SecretsManagerRDSMariaDBRotationSingleUser" => Some(Self::MysqlSingleUser),
            "SecretsManagerRDSMySQLRotationMultiUser"
            | "SecretsManagerRDSMariaDBRotationMultiUser" => Some(Self::MysqlMultiUser),
            _ => None,
        }
    }

    /// Whether it rotates MySQL or MariaDB users (else PostgreSQL roles).
    pub fn is_mysql(self) -> bool {
        matches!(self, Self::MysqlSingleUser | Self::MysqlMultiUser)
    }

    /// Whether it alternates users (with a master secret).
    pub fn is_multi_user(self) -> bool {
        matches!(self, Self::PostgresMultiUser | Self::MysqlMultiUser)
    }
}

/// A rotation function (`functions/<FunctionName>.json`), of kind `command`, `builtin` or
/// `webhook`.
#[derive(Debug, Clone)]
pub struct RotationFunction {
    pub account: String,
    pub name: String,
    /// The one region it serves, or every region.
    pub region: Option<String>,
    /// The execution role's ARN (declared in the same account).
    pub role_arn: String,
    /// The executable (resolved against the file's directory) and its arguments.
    pub command: Vec<String>,
    pub timeout: std::time::Duration,
    pub environment: BTreeMap<String, String>,
    pub max_attempts: u32,
    pub retry_delay: std::time::Duration,
    /// For kind `builtin`: which one (`command` is then empty).
    pub builtin: Option<Builtin>,
    /// Built-ins: the CA certificate file that database servers' certificates must chain to
    /// (with it, `sslmode=verify-full`; without it, `sslmode=require`).
    pub tls_ca_file: Option<PathBuf>,
    /// Built-ins: whether a secret whose JSON sets `"ssl": false` may connect in plaintext.
    pub allow_plaintext: bool,
    /// For kind `webhook`: where and how the event is sent.
    pub webhook: Option<Webhook>,
}

/// A `webhook` function's receiver: the event is POSTed to `url`, signed with `key`.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// `https` (or, with the file's opt-in, `http` to 127.0.0.1).
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The path and query (at least `/`).
    pub path: String,
    pub key: SigningKey,
    /// Whether the body carries the execution role's temporary credentials.
    pub include_credentials: bool,
}

impl Webhook {
    /// Parse a webhook URL: `https://host[:port][/path][?query]`, or `http://127.0.0.1:PORT...`
    /// when `allow_plain_loopback`. No user information, no fragment.
    pub fn parse_url(
        url: &str,
        allow_plain_loopback: bool,
    ) -> Result<(bool, String, u16, String), String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err("must be an https:// URL".into());
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') || path.contains('#') || authority.is_empty() {
            return Err(
                "must be an https:// URL with a host, without user information or fragment".into(),
            );
        }
        let default_port = if tls { 443 } else { 80 };
        let port_of = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("`{p}` is not a port"))
        };
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            // An IPv6 address: `[addr]` or `[addr]:port`.
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| format!("`{authority}` is not a host and port"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, port_of(p)?),
                None if after.is_empty() => (h, default_port),
                None => return Err(format!("`{authority}` is not a host and port")),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, port_of(p)?),
                None => (authority, default_port),
            }
        };
        let bracketed = authority.starts_with('[');
        if host.is_empty()
            || !host.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-') || (bracketed && c == ':')
            })
        {
            return Err(format!("`{host}` is not a host name or address"));
        }
        let plain_allowed = allow_plain_loopback && host == "127.0.0.1";
        if !(tls || plain_allowed) {
            return Err("must be an https:// URL: plain http is accepted only for 127.0.0.1 with \"AllowPlainHttpLoopback\": true (tests; the event travels in clear)".into());
        }
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        if path.chars().any(|c| c.is_ascii_control() || c == ' ') {
            return Err("the path must not hold spaces or control characters".into());
        }
        Ok((tls, host.to_owned(), port, path))
    }
}

/// A webhook's HMAC key, never printed.
#[derive(Clone)]
pub struct SigningKey(Arc<zeroize::Zeroizing<Vec<u8>>>);

impl SigningKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Arc::new(zeroize::Zeroizing::new(bytes)))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

/// One account's principals.
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub id: String,
    pub alias: Option<String>,
    pub users: BTreeMap<String, Arc<User>>,
    pub groups: BTreeMap<String, Arc<Group>>,
    pub roles: BTreeMap<String, Arc<Role>>,
    pub policies: BTreeMap<String, Arc<PolicyDoc>>,
    pub identity_providers: Vec<IdentityProvider>,
    pub functions: BTreeMap<String, Arc<RotationFunction>>,
}

/// A loaded, validated set of principals and policies. Immutable; reloads replace it whole.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub accounts: BTreeMap<String, Account>,
    pub managed: BTreeMap<String, Arc<PolicyDoc>>,
    /// Organization id, when an organization is declared.
    pub org_id: Option<String>,
    /// `aws:PrincipalOrgPaths` of each account placed under nodes that all declare an id.
    pub org_paths: BTreeMap<String, String>,
    /// SCPs applying to each account, one inner list per level (root → OUs → account).
    pub scps: BTreeMap<String, Vec<Vec<Arc<PolicyDoc>>>>,
    /// The same, compiled and indexed per level.
    pub scp_groups: BTreeMap<String, Vec<Arc<crate::policy::PolicyGroup>>>,
    /// The organization's management account (SCPs do not apply to it).
    pub management_account: Option<String>,
    /// Every SCP declared under `organization/scps/`, by name (its file name), attached or not.
    pub scp_policies: BTreeMap<String, Arc<PolicyDoc>>,
    /// A fingerprint of the files this set was loaded from.
    pub fingerprint: String,
}

impl Directory {
    /// Whether `account` is in the declared organization (placed in its tree, or its
    /// management account).
    pub fn in_organization(&self, account: &str) -> bool {
        self.org_id.is_some()
            && (self.scps.contains_key(account)
                || self.management_account.as_deref() == Some(account))
    }

    pub fn user(&self, account: &str, name: &str) -> Option<&Arc<User>> {
        self.accounts.get(account).and_then(|a| a.users.get(name))
    }

    pub fn role(&self, account: &str, name: &str) -> Option<&Arc<Role>> {
        self.accounts.get(account).and_then(|a| a.roles.get(name))
    }

    /// A role by its ARN (`arn:aws:iam::ACCOUNT:role/PATH/NAME`).
    pub fn role_by_arn(&self, arn: &str) -> Option<&Arc<Role>> {
        let rest = arn.strip_prefix("arn:aws:iam::")?;
        let (account, res) = rest.split_once(":role/")?;
        let name = res.rsplit('/').next()?;
        self.role(account, name).filter(|r| r.arn == arn)
    }

    /// The role a session was issued for: the role named by the session's ARN, if it is still
    /// the same role (a role removed and declared again has a new RoleId, and the sessions of
    /// the old one are not its sessions).
    pub fn role_for_session(&self, arn: &str, role_id: &str) -> Option<&Arc<Role>> {
        self.role_by_arn(arn).filter(|r| r.role_id == role_id)
    }

    /// This set with each role's RoleId from `ids` (see [`RoleIds`]). With `loaded_at_ms` (a
    /// set read from a policies directory at that time), the access keys of users it does not
    /// declare, created before then, are retired ([`RoleIds::retire_user_keys`]); a server
    /// without a policies directory retires nothing.
    pub fn with_role_ids(
        mut self,
        ids: &dyn RoleIds,
        loaded_at_ms: Option<i64>,
    ) -> Result<Self, String> {
        if let Some(at) = loaded_at_ms {
            let users: Vec<(String, String)> = self
                .accounts
                .values()
                .flat_map(|a| a.users.keys().map(|n| (a.id.clone(), n.clone())))
                .collect();
            ids.retire_user_keys(&users, at)?;
        }
        let roles: Vec<(String, String)> = self
            .accounts
            .values()
            .flat_map(|a| a.roles.keys().map(|n| (a.id.clone(), n.clone())))
            .collect();
        let assigned = ids.sync(&roles)?;
        for account in self.accounts.values_mut() {
            for role in account.roles.values_mut() {
                let key = (role.account.clone(), role.name.clone());
                let id = assigned
                    .get(&key)
                    .ok_or_else(|| format!("no RoleId for role {} of {}", key.1, key.0))?;
                if *id != role.role_id {
                    *role = Arc::new(Role {
                        role_id: id.clone(),
                        ..Role::clone(role)
                    });
                }
            }
        }
        Ok(self)
    }

    /// The rotation function a Lambda ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`)
    /// names, when it is declared for that region.
    pub fn rotation_function(&self, arn: &str) -> Option<&Arc<RotationFunction>> {
        let rest = arn.strip_prefix("arn:aws:lambda:")?;
        let mut parts = rest.split(':');
        let (region, account, kind, name) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if kind != "function" || parts.next().is_some() {
            return None;
        }
        self.accounts
            .get(account)?
            .functions
            .get(name)
            .filter(|f| f.region.as_deref().is_none_or(|r| r == region))
    }

    /// The identity providers declared for `issuer` in any account.
    pub fn providers_for_issuer<'a>(
        &'a self,
        issuer: &'a str,
    ) -> impl Iterator<Item = &'a IdentityProvider> + 'a {
        self.accounts
            .values()
            .flat_map(|a| a.identity_providers.iter())
            .filter(move |p| p.spec.issuer == issuer)
    }
}

/// Where the RoleIds of declared roles are kept, so that a role keeps its id while it is
/// declared (across reloads and restarts, and on every server sharing the database) and a
/// role removed and declared again gets a new one, as a role deleted and re-created on AWS
/// does. Without one (a set loaded for validation or simulation), a role's id is derived from
/// its account and name.
pub trait RoleIds: Send + Sync + std::fmt::Debug {
    /// The ids of the `(account, role name)` pairs a newly loaded set declares: the kept id of
    /// a role already known, a new one for a role not known yet; the ids of roles the set no
    /// longer declares are forgotten.
    fn sync(
        &self,
        roles: &[(String, String)],
    ) -> Result<BTreeMap<(String, String), String>, String>;
    /// Deactivate the access keys of users that the `(account, user name)` pairs `users` (a
    /// newly loaded set) do not declare, among the keys created before `loaded_at_ms`: a user
    /// removed is gone with its keys (on AWS its keys are deleted first), so a user declared
    /// again under the same name does not inherit them. An operator may activate one again
    /// (`strongroom access-key activate`). Keys created after the files were read belong to
    /// users the next set will show.
    fn retire_user_keys(
        &self,
        _users: &[(String, String)],
        _loaded_at_ms: i64,
    ) -> Result<(), String> {
        Ok(())
    }
}

/// A new random RoleId (`AROA` and 17 characters of base32, as AWS's).
pub fn new_role_id() -> String {
    crate::crypto::random::unique_id("AROA")
}

/// A stable AWS-style unique id (`AIDA…`, `AROA…`) for a principal.
pub fn unique_id(prefix: &str, seed: &str) -> String {
    const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(seed.as_bytes());
    let tail: String = digest
        .iter()
        .take(17)
        .map(|b| {
            B32.get(usize::from(*b) % 32)
                .map_or('A', |c| char::from(*c))
        })
        .collect();
    format!("{prefix}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_are_stable_and_aws_shaped() {
        let a = unique_id("AIDA", "111122223333/alice");
        assert_eq!(a, unique_id("AIDA", "111122223333/alice"));
        assert_ne!(a, unique_id("AIDA", "111122223333/bob"));
        assert_eq!(a.len(), 21);
        assert!(a.starts_with("AIDA"));
    }
}
