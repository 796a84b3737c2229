//! The files of a policies directory, as serde types. IAM's own JSON for policy documents;
//! PascalCase fields as in IAM's API for everything else. Unknown fields are errors.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// `accounts/<ACCOUNT_ID>/account.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AccountFile {
    pub account_id: String,
    #[serde(default)]
    pub alias: Option<String>,
}

/// `accounts/<ACCOUNT_ID>/users/<UserName>.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UserFile {
    pub user_name: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Managed policy ARNs (`arn:aws:iam::aws:policy/NAME` or `arn:aws:iam::ACCOUNT:policy/NAME`).
    #[serde(default)]
    pub attached_policies: Vec<String>,
    /// Inline policies by name.
    #[serde(default)]
    pub inline_policies: BTreeMap<String, Value>,
    /// A managed policy ARN used as the permissions boundary.
    #[serde(default)]
    pub permissions_boundary: Option<String>,
}

/// `accounts/<ACCOUNT_ID>/groups/<GroupName>.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GroupFile {
    pub group_name: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub attached_policies: Vec<String>,
    #[serde(default)]
    pub inline_policies: BTreeMap<String, Value>,
}

/// `accounts/<ACCOUNT_ID>/roles/<RoleName>.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RoleFile {
    pub role_name: String,
    #[serde(default)]
    pub path: Option<String>,
    pub assume_role_policy_document: Value,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Seconds, 3600–43200 (default 3600).
    #[serde(default)]
    pub max_session_duration: Option<i64>,
    #[serde(default)]
    pub attached_policies: Vec<String>,
    #[serde(default)]
    pub inline_policies: BTreeMap<String, Value>,
    #[serde(default)]
    pub permissions_boundary: Option<String>,
}

/// `accounts/<ACCOUNT_ID>/identity-providers/<name>.json`: a JWT issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct IdentityProviderFile {
    /// The `iss` claim, e.g. `https://token.actions.githubusercontent.com`.
    pub issuer: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// Verification keys: a JWKS file, PEM public key files, or an HMAC secret file
    /// (paths relative to the provider file).
    #[serde(default)]
    pub jwks_file: Option<String>,
    #[serde(default)]
    pub public_key_files: Vec<String>,
    #[serde(default)]
    pub hmac_secret_file: Option<String>,
    /// Allowed algorithms (RS256, ES256, EdDSA, HS256).
    pub algorithms: Vec<String>,
    /// Clock leeway in seconds on `exp` and `nbf`, 0–300 (default 60).
    #[serde(default)]
    pub leeway_seconds: Option<u64>,
    /// Claims copied into session tags: claim name → tag key.
    #[serde(default)]
    pub session_tag_claims: BTreeMap<String, String>,
    /// A claim naming the role to act as for Bearer calls (else the `X-Strongroom-Role` header).
    #[serde(default)]
    pub role_claim: Option<String>,
    /// Further claims offered to trust policies as `ISSUER:<claim>` condition keys (exact,
    /// case-sensitive claim names), beside the ones AWS maps for every OIDC provider
    /// (`sub`, `aud`, `oaud`, `amr`, `email`; see [`super::jwt::condition_keys`]).
    #[serde(default)]
    pub condition_claims: Vec<String>,
}

/// `organization/organization.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct OrganizationFile {
    /// `o-` followed by 10–32 lowercase letters or digits.
    pub id: String,
    pub management_account: String,
    pub root: OrgUnitFile,
}

/// A node of the organization tree: the root or an organizational unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct OrgUnitFile {
    #[serde(default)]
    pub name: Option<String>,
    /// The node's id as AWS Organizations shows it (`r-…` for the root, `ou-…-…` for an
    /// OU). Optional; when every node above an account has one, its principals carry
    /// `aws:PrincipalOrgPaths` (`o-…/r-…/ou-…/`).
    #[serde(default)]
    pub id: Option<String>,
    /// Names of files under `organization/scps/` (without `.json`) attached here.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Accounts directly in this node, each with its own attached SCPs.
    #[serde(default)]
    pub accounts: Vec<OrgAccountFile>,
    #[serde(default)]
    pub organizational_units: Vec<OrgUnitFile>,
}

/// An account's place in the organization.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct OrgAccountFile {
    pub account_id: String,
    #[serde(default)]
    pub policies: Vec<String>,
}

/// `accounts/<ACCOUNT_ID>/functions/<FunctionName>.json`: a rotation function, addressed as
/// `arn:aws:lambda:REGION:ACCOUNT_ID:function:FunctionName`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FunctionFile {
    pub function_name: String,
    /// The one region it serves; every region of the server when absent.
    #[serde(default)]
    pub region: Option<String>,
    /// The execution role (a role of the same account): the function's calls are made with
    /// a session of it.
    pub role: String,
    /// `command` (a local executable), `builtin` (one of AWS's database rotation templates,
    /// named by `Builtin`) or `webhook` (an HTTPS POST of the event to `Url`, signed with
    /// the key of `SigningKeyFile` or `SigningKeyEnv`). Other kinds are refused at load.
    pub kind: String,
    /// For kind `webhook`: the `https://` URL the event is POSTed to (`http://127.0.0.1`
    /// only with `AllowPlainHttpLoopback`).
    #[serde(default)]
    pub url: Option<String>,
    /// For kind `webhook`: a file (relative to this file) holding the HMAC-SHA256 signing
    /// key (its bytes, trailing whitespace removed; 32 bytes at least). Exclusive with
    /// `SigningKeyEnv`.
    #[serde(default)]
    pub signing_key_file: Option<String>,
    /// For kind `webhook`: the server's environment variable holding the signing key.
    #[serde(default)]
    pub signing_key_env: Option<String>,
    /// For kind `webhook`: put the execution role's temporary credentials (and the region
    /// and endpoint to call) in the body (default false: the receiver uses its own).
    #[serde(default)]
    pub include_credentials: Option<bool>,
    /// For kind `webhook`: accept an `http://127.0.0.1:PORT` URL (tests only; the event
    /// travels in clear).
    #[serde(default)]
    pub allow_plain_http_loopback: Option<bool>,
    /// For kind `builtin`: the template name (`SecretsManagerRDSPostgreSQLRotationSingleUser`
    /// or `SecretsManagerRDSPostgreSQLRotationMultiUser`).
    #[serde(default)]
    pub builtin: Option<String>,
    /// For kinds `builtin` and `webhook`: a PEM CA file (relative to this file) that the
    /// database's (or the webhook receiver's) certificate must chain to; the connection then
    /// verifies the certificate and the host name (a webhook without it trusts the system's
    /// roots).
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// For kind `builtin`: allow plaintext connections for secrets whose JSON sets
    /// `"ssl": false` (default false: such a secret fails to rotate).
    #[serde(default)]
    pub allow_plaintext: Option<bool>,
    /// The executable and its arguments. A relative path with a `/` is relative to this file.
    #[serde(default)]
    pub command: Vec<String>,
    /// Per invocation (one step), 1–900 (default 30).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Further environment variables for the executable (not `AWS_*`).
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Attempts of the whole rotation before it is marked failed, 1–20 (default 5).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The delay before the second attempt, doubled for each further one, 1–86400 seconds
    /// (default 60).
    #[serde(default)]
    pub retry_delay_seconds: Option<u64>,
}
