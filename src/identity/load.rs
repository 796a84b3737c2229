//! Loading and validating a policies directory. Every problem is collected with its file and
//! JSON path; any problem refuses the whole set.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::model::{
    AccountFile, FunctionFile, GroupFile, IdentityProviderFile, OrgUnitFile, OrganizationFile,
    RoleFile, UserFile,
};
use super::{unique_id, Account, Directory, IdentityProvider, PolicyDoc, Role, User};

/// One problem in a policies directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    /// JSON path inside the file (`$` for the whole file).
    pub path: String,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.file.display(),
            self.path,
            self.message
        )
    }
}

/// The kind of a policy document, for grammar checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// Identity policies and boundaries: no Principal.
    Identity,
    /// Role trust policies: Principal required (evaluated like a resource policy).
    Trust,
    /// Service control policies.
    Scp,
}

impl DocKind {
    pub fn policy_type(self) -> crate::policy::PolicyType {
        match self {
            Self::Identity => crate::policy::PolicyType::Identity,
            Self::Trust => crate::policy::PolicyType::Resource,
            Self::Scp => crate::policy::PolicyType::Scp,
        }
    }
}

/// Grammar and size checks of one policy document: `(json path, message)` pairs.
pub fn check_document(doc: &Value, kind: DocKind, max_chars: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let text = doc.to_string();
    let size = text.chars().filter(|c| !c.is_whitespace()).count();
    if size > max_chars {
        out.push((
            "$".to_owned(),
            format!("policy document is {size} characters; the limit is {max_chars}"),
        ));
    }
    let text = if kind == DocKind::Trust {
        match trust_as_resource_policy(doc, None) {
            Ok(t) => t,
            Err(e) => {
                out.push(e);
                return out;
            }
        }
    } else {
        text
    };
    if let Err(errors) = crate::policy::Policy::parse(&text, kind.policy_type()) {
        for e in errors.errors() {
            let path = match e.statement {
                Some(i) => format!("$.Statement[{i}]"),
                None => "$".to_owned(),
            };
            out.push((path, e.error.to_string()));
        }
    }
    out
}

/// A trust policy is a resource policy whose resource is the role itself: it may not name a
/// Resource, and compiles as a resource policy on `*`.
///
/// A web identity caller is matched as the service principal `federated:ISSUER`, where
/// ISSUER is the provider of the role's account that verified its token. A `Federated`
/// provider ARN of another account (`role_account` given) names no provider a token of this
/// role can come from (AWS looks the provider up in the role's account), and is mapped to a
/// principal no caller has.
pub fn trust_as_resource_policy(
    doc: &Value,
    role_account: Option<&str>,
) -> Result<String, (String, String)> {
    let mut doc = doc.clone();
    let statements: Vec<&mut Value> = match doc.get_mut("Statement") {
        Some(Value::Array(a)) => a.iter_mut().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => return Ok(doc.to_string()),
    };
    for (i, st) in statements.into_iter().enumerate() {
        if let Some(obj) = st.as_object_mut() {
            if obj.contains_key("Resource") || obj.contains_key("NotResource") {
                return Err((
                    format!("$.Statement[{i}]"),
                    "Has prohibited field Resource (a trust policy applies to its role)".into(),
                ));
            }
            obj.insert("Resource".into(), Value::String("*".into()));
            // A web identity caller is matched as the service principal `federated:ISSUER`.
            if let Some(Value::Object(p)) = obj.get_mut("Principal") {
                if let Some(fed) = p.remove("Federated") {
                    let list: Vec<Value> = match fed {
                        Value::Array(a) => a,
                        other => vec![other],
                    };
                    let mapped: Vec<Value> = list
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|f| {
                            let account = f
                                .strip_prefix("arn:aws:iam::")
                                .and_then(|r| r.split_once(':'))
                                .map(|(a, _)| a);
                            Value::String(match (account, role_account) {
                                (Some(a), Some(role)) if a != role => format!(
                                    "federated-provider-of-another-account:{}",
                                    federated_name(f)
                                ),
                                _ => format!("federated:{}", federated_name(f)),
                            })
                        })
                        .collect();
                    p.insert("Service".into(), Value::Array(mapped));
                }
            }
        }
    }
    Ok(doc.to_string())
}

/// `https://issuer/path` or `arn:aws:iam::A:oidc-provider/issuer/path` → `issuer/path`.
pub fn federated_name(f: &str) -> String {
    match f.split_once(":oidc-provider/") {
        Some((_, host)) => host.to_owned(),
        None => super::jwt::issuer_key_prefix(f),
    }
}

struct Loader {
    root: PathBuf,
    errors: Vec<LoadError>,
    hasher: Sha256,
}

impl Loader {
    /// The file name under which `key` was claimed first in `seen`, when another file
    /// did; otherwise `file` claims it.
    fn claimed_before(
        seen: &mut BTreeMap<String, PathBuf>,
        key: String,
        file: &Path,
    ) -> Option<String> {
        if let Some(first) = seen.get(&key) {
            return Some(
                first
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
        seen.insert(key, file.to_path_buf());
        None
    }

    /// Whether `name` (of a `kind` declared in `file`) differs from every name in `seen`
    /// other than by case; records it, or an error naming the first file when it does not.
    fn unique_ignoring_case(
        &mut self,
        seen: &mut BTreeMap<String, PathBuf>,
        file: &Path,
        path: &str,
        name: &str,
        kind: &str,
    ) -> bool {
        let Some(first) = Self::claimed_before(seen, name.to_lowercase(), file) else {
            return true;
        };
        self.err(
            file,
            path,
            format!("another {kind} of this account ({first}) has this name in another case: IAM names are unique regardless of case"),
        );
        false
    }

    fn err(&mut self, file: &Path, path: &str, message: impl Into<String>) {
        self.errors.push(LoadError {
            file: file.to_path_buf(),
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn read<T: DeserializeOwned>(&mut self, file: &Path) -> Option<T> {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                self.err(file, "$", format!("cannot read: {e}"));
                return None;
            }
        };
        self.hasher.update(file.to_string_lossy().as_bytes());
        self.hasher.update(&bytes);
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                self.err(file, "$", format!("not valid JSON: {e}"));
                return None;
            }
        };
        // serde_json keeps the last of two equal keys; a policy with two `Effect`s or two
        // `Condition`s must be refused, not read as whichever came last (IAM.md §1.1). The
        // strict reader checks the whole file (text that parsed above is UTF-8).
        if let Err(e) = crate::policy::Json::parse(&String::from_utf8_lossy(&bytes)) {
            self.err(file, "$", format!("not valid JSON: {e}"));
            return None;
        }
        match serde_path_to_error(&value) {
            Ok(v) => Some(v),
            Err((path, msg)) => {
                self.err(file, &path, msg);
                None
            }
        }
    }

    /// `*.json` files of a directory, sorted; a missing directory is empty.
    fn json_files(&mut self, dir: &Path) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return vec![];
        };
        let mut v: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        let mut out = vec![];
        for p in v {
            if p.extension().and_then(|e| e.to_str()) == Some("json") {
                out.push(p);
            } else if !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with('.')
                    || n.ends_with(".md")
                    || n.ends_with(".pem")
                    || n.ends_with(".key")
                    || n.ends_with(".jwks")
                    || n.ends_with(".hmac")
            }) {
                self.err(&p, "$", "unexpected file (only *.json is read here)");
            }
        }
        out
    }

    fn stem(file: &Path) -> String {
        file.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned()
    }

    fn check_doc(&mut self, file: &Path, json_path: &str, doc: &Value, kind: DocKind, max: usize) {
        for (p, m) in check_document(doc, kind, max) {
            let full = if p == "$" {
                json_path.to_owned()
            } else {
                format!("{json_path}{}", p.trim_start_matches('$'))
            };
            self.err(file, &full, m);
        }
    }
}

/// Deserialize with the failing field's path in the error.
fn serde_path_to_error<T: DeserializeOwned>(value: &Value) -> Result<T, (String, String)> {
    T::deserialize(value).map_err(|e| {
        let msg = e.to_string();
        // serde names the unknown or missing field in the message; point at it.
        let path = msg
            .split('`')
            .nth(1)
            .map_or_else(|| "$".to_owned(), |f| format!("$.{f}"));
        (path, msg)
    })
}

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

fn valid_path(p: &str) -> bool {
    p.starts_with('/') && p.ends_with('/') && p.len() <= 512 && !p.contains("//")
}

fn check_tags(l: &mut Loader, file: &Path, tags: &BTreeMap<String, String>) {
    if tags.len() > 50 {
        l.err(file, "$.Tags", "more than 50 tags");
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            l.err(
                file,
                &format!("$.Tags.{k}"),
                "tag keys are 1-128 characters",
            );
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            l.err(file, &format!("$.Tags.{k}"), "the aws: prefix is reserved");
        }
        if v.chars().count() > 256 {
            l.err(
                file,
                &format!("$.Tags.{k}"),
                "tag values are at most 256 characters",
            );
        }
    }
}

/// Load and validate the directory at `root`.
pub fn load_dir(root: &Path) -> Result<Directory, Vec<LoadError>> {
    let mut l = Loader {
        root: root.to_path_buf(),
        errors: vec![],
        hasher: Sha256::new(),
    };
    if !root.is_dir() {
        l.err(root, "$", "not a directory");
        return Err(l.errors);
    }
    let mut dir = Directory::default();

    // AWS-managed policies
    for f in l.json_files(&root.join("managed")) {
        let name = Loader::stem(&f);
        if let Some(doc) = l.read::<Value>(&f) {
            l.check_doc(&f, "$", &doc, DocKind::Identity, 6144);
            let id = format!("arn:aws:iam::aws:policy/{name}");
            dir.managed.insert(
                id.clone(),
                Arc::new(PolicyDoc::new(id, doc, DocKind::Identity)),
            );
        }
    }

    // accounts
    let accounts_dir = root.join("accounts");
    let mut account_dirs: Vec<PathBuf> = std::fs::read_dir(&accounts_dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    account_dirs.sort();
    for adir in account_dirs {
        if let Some(acct) = load_account(&mut l, &adir, &dir.managed) {
            dir.accounts.insert(acct.id.clone(), acct);
        }
    }

    // organization
    let org_file = root.join("organization").join("organization.json");
    if org_file.is_file() {
        load_org(&mut l, &org_file, &mut dir);
    }

    let _ = &l.root;
    dir.fingerprint = hex::encode(l.hasher.clone().finalize());
    if l.errors.is_empty() {
        Ok(dir)
    } else {
        Err(l.errors)
    }
}

/// Resolve managed policy ARNs for `account`.
fn resolve_policies(
    l: &mut Loader,
    file: &Path,
    field: &str,
    arns: &[String],
    account: &str,
    customer: &BTreeMap<String, Arc<PolicyDoc>>,
    managed: &BTreeMap<String, Arc<PolicyDoc>>,
) -> Vec<Arc<PolicyDoc>> {
    let mut out = vec![];
    for (i, arn) in arns.iter().enumerate() {
        let found = if arn.starts_with("arn:aws:iam::aws:policy/") {
            managed.get(arn)
        } else if arn.starts_with(&format!("arn:aws:iam::{account}:policy/")) {
            customer.get(arn)
        } else {
            l.err(
                file,
                &format!("$.{field}[{i}]"),
                format!("`{arn}` is not a managed policy ARN of this account or AWS"),
            );
            continue;
        };
        match found {
            Some(p) => out.push(Arc::clone(p)),
            None => l.err(
                file,
                &format!("$.{field}[{i}]"),
                format!("no policy `{arn}` is declared"),
            ),
        }
    }
    out
}

/// The permissions boundary named by a user or role file, if any.
fn resolve_boundary(
    l: &mut Loader,
    file: &Path,
    arn: Option<&String>,
    account: &str,
    customer: &BTreeMap<String, Arc<PolicyDoc>>,
    managed: &BTreeMap<String, Arc<PolicyDoc>>,
) -> Option<Arc<PolicyDoc>> {
    let arn = arn?;
    resolve_policies(
        l,
        file,
        "PermissionsBoundary",
        std::slice::from_ref(arn),
        account,
        customer,
        managed,
    )
    .into_iter()
    .next()
}

fn inline(
    l: &mut Loader,
    file: &Path,
    owner_arn: &str,
    docs: &BTreeMap<String, Value>,
    max: usize,
) -> Vec<Arc<PolicyDoc>> {
    let mut out = vec![];
    for (name, doc) in docs {
        if !valid_name(name, 128) {
            l.err(
                file,
                &format!("$.InlinePolicies.{name}"),
                "invalid policy name",
            );
        }
        l.check_doc(
            file,
            &format!("$.InlinePolicies.{name}"),
            doc,
            DocKind::Identity,
            max,
        );
        out.push(Arc::new(PolicyDoc::new(
            format!("{owner_arn}:inline/{name}"),
            doc.clone(),
            DocKind::Identity,
        )));
    }
    out
}

fn load_account(
    l: &mut Loader,
    adir: &Path,
    managed: &BTreeMap<String, Arc<PolicyDoc>>,
) -> Option<Account> {
    let afile = adir.join("account.json");
    let meta: AccountFile = l.read(&afile)?;
    let dir_name = Loader::stem(adir);
    if meta.account_id.len() != 12 || !meta.account_id.chars().all(|c| c.is_ascii_digit()) {
        l.err(&afile, "$.AccountId", "an account id is 12 digits");
    }
    if dir_name != meta.account_id {
        l.err(
            &afile,
            "$.AccountId",
            format!("does not match the directory name `{dir_name}`"),
        );
    }
    let id = meta.account_id.clone();
    let mut acct = Account {
        id: id.clone(),
        alias: meta.alias,
        ..Account::default()
    };

    for f in l.json_files(&adir.join("policies")) {
        let name = Loader::stem(&f);
        if !valid_name(&name, 128) {
            l.err(&f, "$", "invalid policy name (the file name)");
        }
        if let Some(doc) = l.read::<Value>(&f) {
            l.check_doc(&f, "$", &doc, DocKind::Identity, 6144);
            let pid = format!("arn:aws:iam::{id}:policy/{name}");
            acct.policies.insert(
                pid.clone(),
                Arc::new(PolicyDoc::new(pid, doc, DocKind::Identity)),
            );
        }
    }

    let mut groups: BTreeMap<String, Vec<Arc<PolicyDoc>>> = BTreeMap::new();
    for f in l.json_files(&adir.join("groups")) {
        let Some(g) = l.read::<GroupFile>(&f) else {
            continue;
        };
        if Loader::stem(&f) != g.group_name || !valid_name(&g.group_name, 128) {
            l.err(
                &f,
                "$.GroupName",
                "must be a valid name equal to the file name",
            );
        }
        let path = g.path.clone().unwrap_or_else(|| "/".into());
        if !valid_path(&path) {
            l.err(&f, "$.Path", "a path starts and ends with `/`");
        }
        let arn = format!("arn:aws:iam::{id}:group{path}{}", g.group_name);
        let mut pols = resolve_policies(
            l,
            &f,
            "AttachedPolicies",
            &g.attached_policies,
            &id,
            &acct.policies,
            managed,
        );
        pols.extend(inline(l, &f, &arn, &g.inline_policies, 5120));
        acct.groups.insert(
            g.group_name.clone(),
            Arc::new(super::Group {
                account: id.clone(),
                group_id: unique_id("AGPA", &format!("{id}/{}", g.group_name)),
                name: g.group_name.clone(),
                path,
                arn,
                policies: pols.clone(),
            }),
        );
        groups.insert(g.group_name, pols);
    }

    // IAM names of one kind are unique regardless of case (AWS refuses `admin` beside
    // `ADMIN`): two such principals would be one to a reader of policies and records.
    let mut user_names = BTreeMap::new();
    for f in l.json_files(&adir.join("users")) {
        let Some(u) = l.read::<UserFile>(&f) else {
            continue;
        };
        if !l.unique_ignoring_case(&mut user_names, &f, "$.UserName", &u.user_name, "user") {
            continue;
        }
        if Loader::stem(&f) != u.user_name || !valid_name(&u.user_name, 64) {
            l.err(
                &f,
                "$.UserName",
                "must be a valid name (1-64 of [A-Za-z0-9+=,.@_-]) equal to the file name",
            );
        }
        let path = u.path.clone().unwrap_or_else(|| "/".into());
        if !valid_path(&path) {
            l.err(&f, "$.Path", "a path starts and ends with `/`");
        }
        check_tags(l, &f, &u.tags);
        let arn = format!("arn:aws:iam::{id}:user{path}{}", u.user_name);
        let mut pols = resolve_policies(
            l,
            &f,
            "AttachedPolicies",
            &u.attached_policies,
            &id,
            &acct.policies,
            managed,
        );
        pols.extend(inline(l, &f, &arn, &u.inline_policies, 2048));
        for (i, g) in u.groups.iter().enumerate() {
            match groups.get(g) {
                Some(gp) => pols.extend(gp.iter().cloned()),
                None => l.err(
                    &f,
                    &format!("$.Groups[{i}]"),
                    format!("no group `{g}` in account {id}"),
                ),
            }
        }
        let boundary = resolve_boundary(
            l,
            &f,
            u.permissions_boundary.as_ref(),
            &id,
            &acct.policies,
            managed,
        );
        let user = User {
            account: id.clone(),
            user_id: unique_id("AIDA", &format!("{id}/{}", u.user_name)),
            name: u.user_name.clone(),
            path,
            arn,
            tags: u.tags,
            groups: u.groups,
            identity_group: super::group_of(&pols),
            policies: pols,
            boundary,
        };
        acct.users.insert(u.user_name, Arc::new(user));
    }

    let mut role_names = BTreeMap::new();
    for f in l.json_files(&adir.join("roles")) {
        let Some(r) = l.read::<RoleFile>(&f) else {
            continue;
        };
        if !l.unique_ignoring_case(&mut role_names, &f, "$.RoleName", &r.role_name, "role") {
            continue;
        }
        if Loader::stem(&f) != r.role_name || !valid_name(&r.role_name, 64) {
            l.err(
                &f,
                "$.RoleName",
                "must be a valid name (1-64 of [A-Za-z0-9+=,.@_-]) equal to the file name",
            );
        }
        let path = r.path.clone().unwrap_or_else(|| "/".into());
        if !valid_path(&path) {
            l.err(&f, "$.Path", "a path starts and ends with `/`");
        }
        check_tags(l, &f, &r.tags);
        let max = r.max_session_duration.unwrap_or(3600);
        if !(3600..=43200).contains(&max) {
            l.err(
                &f,
                "$.MaxSessionDuration",
                "must be between 3600 and 43200 seconds",
            );
        }
        l.check_doc(
            &f,
            "$.AssumeRolePolicyDocument",
            &r.assume_role_policy_document,
            DocKind::Trust,
            2048,
        );
        let arn = format!("arn:aws:iam::{id}:role{path}{}", r.role_name);
        let mut pols = resolve_policies(
            l,
            &f,
            "AttachedPolicies",
            &r.attached_policies,
            &id,
            &acct.policies,
            managed,
        );
        pols.extend(inline(l, &f, &arn, &r.inline_policies, 10240));
        let boundary = resolve_boundary(
            l,
            &f,
            r.permissions_boundary.as_ref(),
            &id,
            &acct.policies,
            managed,
        );
        let role = Role {
            account: id.clone(),
            role_id: unique_id("AROA", &format!("{id}/{}", r.role_name)),
            name: r.role_name.clone(),
            path,
            trust_policy: Arc::new(PolicyDoc::new(
                format!("{arn}:trust"),
                r.assume_role_policy_document,
                DocKind::Trust,
            )),
            arn,
            tags: r.tags,
            max_session_duration: max,
            identity_group: super::group_of(&pols),
            policies: pols,
            boundary,
        };
        acct.roles.insert(r.role_name, Arc::new(role));
    }

    for f in l.json_files(&adir.join("functions")) {
        let Some(func) = l.read::<FunctionFile>(&f) else {
            continue;
        };
        if let Some(loaded) = load_function(l, &f, &id, &acct, func) {
            acct.functions.insert(loaded.name.clone(), Arc::new(loaded));
        }
    }

    // Trust policies (`Federated`) and condition keys name a provider by its issuer without
    // the scheme and a trailing `/` (AWS's `oidc-provider/HOST/PATH`): two providers of one
    // account with one such name would be one provider to them, each one's tokens trusted
    // as the other's. As IAM refuses a second provider of one URL, the second is refused.
    let mut provider_names: BTreeMap<String, PathBuf> = BTreeMap::new();
    for f in l.json_files(&adir.join("identity-providers")) {
        let Some(p) = l.read::<IdentityProviderFile>(&f) else {
            continue;
        };
        check_provider(l, &f, &p);
        let name = federated_name(&p.issuer);
        if let Some(first) = Loader::claimed_before(&mut provider_names, name.clone(), &f) {
            l.err(
                &f,
                "$.Issuer",
                format!(
                    "another identity provider of this account ({first}) has an issuer named `{name}` too (the scheme and a trailing `/` do not tell providers apart)"
                ),
            );
            continue;
        }
        let base = f.parent().map(Path::to_path_buf).unwrap_or_default();
        let keys = match super::jwt::load_keys(&p, &base) {
            Ok(k) => k,
            Err(e) => {
                l.err(&f, "$", e);
                vec![]
            }
        };
        acct.identity_providers.push(IdentityProvider {
            account: id.clone(),
            file: f,
            spec: p,
            keys,
        });
    }
    Some(acct)
}

/// Check a rotation function's file; its role must be declared in the same account.
fn load_function(
    l: &mut Loader,
    f: &Path,
    account: &str,
    acct: &Account,
    func: FunctionFile,
) -> Option<super::RotationFunction> {
    let ok_name = !func.function_name.is_empty()
        && func.function_name.len() <= 64
        && func
            .function_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if Loader::stem(f) != func.function_name || !ok_name {
        l.err(
            f,
            "$.FunctionName",
            "must be a valid name (1-64 of [A-Za-z0-9-_]) equal to the file name",
        );
    }
    let builtin = func
        .builtin
        .as_deref()
        .and_then(super::Builtin::from_template);
    let webhook_fields = func.url.is_some()
        || func.signing_key_file.is_some()
        || func.signing_key_env.is_some()
        || func.include_credentials.is_some()
        || func.allow_plain_http_loopback.is_some();
    if webhook_fields && func.kind != "webhook" {
        l.err(
            f,
            "$.Kind",
            "`Url`, `SigningKeyFile`, `SigningKeyEnv`, `IncludeCredentials` and `AllowPlainHttpLoopback` belong to kind `webhook`",
        );
    }
    let mut webhook = None;
    match func.kind.as_str() {
        "command" => {
            if func.builtin.is_some() || func.tls_ca_file.is_some() || func.allow_plaintext.is_some()
            {
                l.err(
                    f,
                    "$.Kind",
                    "`Builtin`, `TlsCaFile` and `AllowPlaintext` belong to kind `builtin`",
                );
            }
        }
        "webhook" => {
            if func.builtin.is_some() || func.allow_plaintext.is_some() || !func.command.is_empty()
            {
                l.err(
                    f,
                    "$.Kind",
                    "a webhook function has no `Command`, `Builtin` or `AllowPlaintext`",
                );
            }
            webhook = load_webhook(l, f, &func);
        }
        "builtin" => {
            if builtin.is_none() {
                l.err(
                    f,
                    "$.Builtin",
                    "must name a built-in rotator of this server: one of AWS's PostgreSQL, MySQL or MariaDB single-user or multi-user template names (e.g. SecretsManagerRDSPostgreSQLRotationSingleUser)",
                );
            }
            if !func.command.is_empty() {
                l.err(f, "$.Command", "a built-in function has no command");
            }
        }
        other => l.err(
            f,
            "$.Kind",
            format!(
                "kind `{other}` is not supported by this server: only `command`, `builtin` and `webhook` functions run here"
            ),
        ),
    }
    let role_declared = acct.roles.values().any(|r| r.arn == func.role);
    if !role_declared {
        l.err(
            f,
            "$.Role",
            format!("no role `{}` declared in account {account}", func.role),
        );
    }
    if func.command.is_empty() && func.kind != "builtin" && func.kind != "webhook" {
        l.err(
            f,
            "$.Command",
            "the executable and its arguments are required",
        );
    }
    let timeout = func.timeout_seconds.unwrap_or(30);
    if !(1..=900).contains(&timeout) {
        l.err(f, "$.TimeoutSeconds", "must be between 1 and 900");
    }
    let attempts = func.max_attempts.unwrap_or(5);
    if !(1..=20).contains(&attempts) {
        l.err(f, "$.MaxAttempts", "must be between 1 and 20");
    }
    let delay = func.retry_delay_seconds.unwrap_or(60);
    if !(1..=86_400).contains(&delay) {
        l.err(f, "$.RetryDelaySeconds", "must be between 1 and 86400");
    }
    for k in func.environment.keys() {
        if k.to_ascii_uppercase().starts_with("AWS_") || k == "SECRETS_MANAGER_ENDPOINT" {
            l.err(
                f,
                &format!("$.Environment.{k}"),
                "reserved: the server sets it for each invocation",
            );
        }
    }
    let base = f.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut command = func.command;
    if let Some(exe) = command.first_mut() {
        if !Path::new(exe.as_str()).is_absolute() && exe.contains('/') {
            *exe = base.join(exe.as_str()).to_string_lossy().into_owned();
        }
    }
    Some(super::RotationFunction {
        account: account.to_owned(),
        name: func.function_name,
        region: func.region,
        role_arn: func.role,
        command,
        timeout: std::time::Duration::from_secs(timeout),
        environment: func.environment,
        max_attempts: attempts,
        retry_delay: std::time::Duration::from_secs(delay),
        builtin,
        tls_ca_file: func.tls_ca_file.map(|c| {
            if Path::new(&c).is_absolute() {
                PathBuf::from(c)
            } else {
                base.join(c)
            }
        }),
        allow_plaintext: func.allow_plaintext.unwrap_or(false),
        webhook,
    })
}

/// The smallest signing key accepted (GitHub and Vault users generate 32 random bytes or
/// more; a short one is a guessable one).
const MIN_SIGNING_KEY: usize = 32;

/// A webhook function's URL and signing key (read now: a reload reads it again).
fn load_webhook(l: &mut Loader, f: &Path, func: &FunctionFile) -> Option<super::Webhook> {
    let allow_plain = func.allow_plain_http_loopback.unwrap_or(false);
    let target = match func.url.as_deref() {
        None => {
            l.err(f, "$.Url", "a webhook function needs the URL it posts to");
            None
        }
        Some(url) => match super::Webhook::parse_url(url, allow_plain) {
            Ok(t) => Some(t),
            Err(e) => {
                l.err(f, "$.Url", e);
                None
            }
        },
    };
    let base = f.parent().map(Path::to_path_buf).unwrap_or_default();
    let key = match (&func.signing_key_file, &func.signing_key_env) {
        (Some(_), Some(_)) | (None, None) => {
            l.err(
                f,
                "$.SigningKeyFile",
                "a webhook function needs exactly one of `SigningKeyFile` and `SigningKeyEnv` (the HMAC key, never inline)",
            );
            None
        }
        (Some(file), None) => {
            let path = if Path::new(file).is_absolute() {
                PathBuf::from(file)
            } else {
                base.join(file)
            };
            match std::fs::read(&path) {
                Ok(bytes) => Some(("$.SigningKeyFile", zeroize::Zeroizing::new(bytes))),
                Err(e) => {
                    l.err(
                        f,
                        "$.SigningKeyFile",
                        format!("cannot read `{}`: {e}", path.display()),
                    );
                    None
                }
            }
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) => Some(("$.SigningKeyEnv", zeroize::Zeroizing::new(v.into_bytes()))),
            Err(_) => {
                l.err(
                    f,
                    "$.SigningKeyEnv",
                    format!("the environment variable `{var}` is not set (or not UTF-8)"),
                );
                None
            }
        },
    };
    let key = key.and_then(|(at, mut bytes)| {
        let kept = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i.saturating_add(1));
        bytes.truncate(kept);
        if bytes.len() < MIN_SIGNING_KEY {
            l.err(
                f,
                at,
                format!("the signing key must be {MIN_SIGNING_KEY} bytes at least"),
            );
            return None;
        }
        Some(super::SigningKey::new(bytes.to_vec()))
    });
    let (tls, host, port, path) = target?;
    Some(super::Webhook {
        tls,
        host,
        port,
        path,
        key: key?,
        include_credentials: func.include_credentials.unwrap_or(false),
    })
}

fn check_provider(l: &mut Loader, f: &Path, p: &IdentityProviderFile) {
    if !(p.issuer.starts_with("https://") || p.issuer.starts_with("http://")) {
        l.err(f, "$.Issuer", "an issuer is an https:// URL");
    }
    if p.audiences.is_empty() {
        l.err(f, "$.Audiences", "at least one audience is required");
    }
    if p.leeway_seconds
        .is_some_and(|s| s > super::jwt::MAX_LEEWAY_SECONDS)
    {
        l.err(
            f,
            "$.LeewaySeconds",
            format!(
                "must be between 0 and {} seconds",
                super::jwt::MAX_LEEWAY_SECONDS
            ),
        );
    }
    let sources = usize::from(p.jwks_file.is_some())
        + usize::from(!p.public_key_files.is_empty())
        + usize::from(p.hmac_secret_file.is_some());
    if sources != 1 {
        l.err(
            f,
            "$",
            "exactly one of JwksFile, PublicKeyFiles, HmacSecretFile is required",
        );
    }
    let base = f.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut files: Vec<(String, &String)> = vec![];
    if let Some(j) = &p.jwks_file {
        files.push(("$.JwksFile".into(), j));
    }
    for (i, k) in p.public_key_files.iter().enumerate() {
        files.push((format!("$.PublicKeyFiles[{i}]"), k));
    }
    if let Some(h) = &p.hmac_secret_file {
        files.push(("$.HmacSecretFile".into(), h));
    }
    for (path, rel) in files {
        if !base.join(rel).is_file() {
            l.err(
                f,
                &path,
                format!("file `{rel}` not found next to the provider file"),
            );
        }
    }
    for (i, a) in p.algorithms.iter().enumerate() {
        if !["RS256", "ES256", "EdDSA", "HS256"].contains(&a.as_str()) {
            l.err(
                f,
                &format!("$.Algorithms[{i}]"),
                format!("unsupported algorithm `{a}` (RS256, ES256, EdDSA, HS256)"),
            );
        }
    }
    for (path, message) in super::jwt::check_condition_claims(p) {
        l.err(f, &path, message);
    }
    if p.algorithms.is_empty() {
        l.err(f, "$.Algorithms", "at least one algorithm is required");
    }
    if p.hmac_secret_file.is_some() && p.algorithms.iter().any(|a| a != "HS256") {
        l.err(f, "$.Algorithms", "an HMAC secret only verifies HS256");
    }
    if p.hmac_secret_file.is_none() && p.algorithms.iter().any(|a| a == "HS256") {
        l.err(
            f,
            "$.Algorithms",
            "HS256 needs an HmacSecretFile (public keys never verify HMAC tokens)",
        );
    }
}

fn load_org(l: &mut Loader, file: &Path, dir: &mut Directory) {
    let Some(org) = l.read::<OrganizationFile>(file) else {
        return;
    };
    let id_ok = org.id.strip_prefix("o-").is_some_and(|r| {
        (10..=32).contains(&r.len())
            && r.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    if !id_ok {
        l.err(
            file,
            "$.Id",
            "an organization id is `o-` and 10-32 lowercase letters or digits",
        );
    }
    let mut scps: BTreeMap<String, Arc<PolicyDoc>> = BTreeMap::new();
    let scp_dir = file.parent().map(|p| p.join("scps")).unwrap_or_default();
    for f in l.json_files(&scp_dir) {
        let name = Loader::stem(&f);
        if let Some(doc) = l.read::<Value>(&f) {
            l.check_doc(&f, "$", &doc, DocKind::Scp, 5120);
            let pid = format!(
                "arn:aws:organizations::{}:policy/{}/service_control_policy/{name}",
                org.management_account, org.id
            );
            scps.insert(name, Arc::new(PolicyDoc::new(pid, doc, DocKind::Scp)));
        }
    }
    let mut seen = BTreeSet::new();
    let mut ids = vec![Some(org.id.clone())];
    walk_org(
        l,
        file,
        "$.Root",
        &org.root,
        &scps,
        &mut vec![],
        &mut ids,
        dir,
        &mut seen,
    );
    if !is_account_id(&org.management_account) {
        l.err(file, "$.ManagementAccount", "an account id is 12 digits");
    }
    // The management account is a member (aws:PrincipalOrgID) even when the tree does not
    // place it; SCPs never apply to it.
    dir.scps.entry(org.management_account.clone()).or_default();
    // Every level of an account's chain must allow. A level with no SCP attached stands for
    // AWS's default `FullAWSAccess` (AWS never leaves a level empty), so it restricts nothing.
    dir.scp_groups = dir
        .scps
        .iter()
        .map(|(account, levels)| {
            (
                account.clone(),
                levels
                    .iter()
                    .filter(|l| !l.is_empty())
                    .map(|l| super::group_of(l))
                    .collect(),
            )
        })
        .collect();
    dir.management_account = Some(org.management_account);
    dir.org_id = Some(org.id);
    dir.scp_policies = scps;
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

#[expect(
    clippy::too_many_arguments,
    reason = "a recursive walk carrying its context"
)]
fn walk_org(
    l: &mut Loader,
    file: &Path,
    path: &str,
    node: &OrgUnitFile,
    scps: &BTreeMap<String, Arc<PolicyDoc>>,
    levels: &mut Vec<Vec<Arc<PolicyDoc>>>,
    ids: &mut Vec<Option<String>>,
    dir: &mut Directory,
    seen: &mut BTreeSet<String>,
) {
    let root = levels.is_empty();
    if let Some(id) = &node.id {
        let ok = if root {
            id.strip_prefix("r-")
                .is_some_and(|r| (4..=32).contains(&r.len()) && lower_alnum(r))
        } else {
            id.strip_prefix("ou-").is_some_and(|r| {
                r.split_once('-').is_some_and(|(a, b)| {
                    (4..=32).contains(&a.len())
                        && (8..=32).contains(&b.len())
                        && lower_alnum(a)
                        && lower_alnum(b)
                })
            })
        };
        if !ok {
            l.err(
                file,
                &format!("{path}.Id"),
                if root {
                    "a root id is `r-` and 4-32 lowercase letters or digits"
                } else {
                    "an OU id is `ou-`, 4-32 lowercase letters or digits, `-`, and 8-32 more"
                },
            );
        }
    }
    ids.push(node.id.clone());
    let org_path: Option<String> = ids
        .iter()
        .map(|i| i.as_deref().map(|i| format!("{i}/")))
        .collect();
    let mut here = vec![];
    for (i, name) in node.policies.iter().enumerate() {
        match scps.get(name) {
            Some(p) => here.push(Arc::clone(p)),
            None => l.err(
                file,
                &format!("{path}.Policies[{i}]"),
                format!("no SCP `{name}` in organization/scps"),
            ),
        }
    }
    levels.push(here);
    for (i, a) in node.accounts.iter().enumerate() {
        if !is_account_id(&a.account_id) {
            l.err(
                file,
                &format!("{path}.Accounts[{i}].AccountId"),
                "an account id is 12 digits",
            );
        }
        if !seen.insert(a.account_id.clone()) {
            l.err(
                file,
                &format!("{path}.Accounts[{i}]"),
                format!("account {} appears twice", a.account_id),
            );
        }
        let mut own = vec![];
        for (j, name) in a.policies.iter().enumerate() {
            match scps.get(name) {
                Some(p) => own.push(Arc::clone(p)),
                None => l.err(
                    file,
                    &format!("{path}.Accounts[{i}].Policies[{j}]"),
                    format!("no SCP `{name}` in organization/scps"),
                ),
            }
        }
        let mut chain = levels.clone();
        chain.push(own);
        dir.scps.insert(a.account_id.clone(), chain);
        if let Some(p) = &org_path {
            dir.org_paths.insert(a.account_id.clone(), p.clone());
        }
    }
    for (i, ou) in node.organizational_units.iter().enumerate() {
        walk_org(
            l,
            file,
            &format!("{path}.OrganizationalUnits[{i}]"),
            ou,
            scps,
            levels,
            ids,
            dir,
            seen,
        );
    }
    levels.pop();
    ids.pop();
}

fn lower_alnum(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}
