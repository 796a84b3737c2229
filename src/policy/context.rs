//! The request context the evaluator reads (IAM.md §3.7, §5.1, §6.3): the caller, the action,
//! the resource and the condition keys as typed multi-values. Built once per request; the
//! clock, the peer address and every other fact come in from the caller.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::index::fnv;
use super::pattern::split_arn;

/// What kind of identity is calling.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalType {
    /// The account's root user.
    Root,
    /// An IAM user.
    User,
    /// A role session (`arn:aws:sts::A:assumed-role/R/s`).
    AssumedRole,
    /// A `GetFederationToken` session (`arn:aws:sts::A:federated-user/n`).
    FederatedUser,
    /// An AWS service principal (`arn` holds the service name, e.g. `lambda.amazonaws.com`).
    Service,
    /// An unsigned caller (never produced by Strongroom; kept for completeness).
    Anonymous,
}

impl PrincipalType {
    /// The name used in the test-vector schema.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Root => "Root",
            Self::User => "User",
            Self::AssumedRole => "AssumedRole",
            Self::FederatedUser => "FederatedUser",
            Self::Service => "Service",
            Self::Anonymous => "Anonymous",
        }
    }

    /// Parse a test-vector name (`Root`, `User`, `AssumedRole`, `FederatedUser`, `Service`,
    /// `Anonymous`; `Account` is accepted for `Root`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Root" | "Account" => Self::Root,
            "User" => Self::User,
            "AssumedRole" => Self::AssumedRole,
            "FederatedUser" => Self::FederatedUser,
            "Service" | "AWSService" => Self::Service,
            "Anonymous" => Self::Anonymous,
            _ => return None,
        })
    }

    /// The value of `aws:PrincipalType` (IAM.md §4).
    fn aws_principal_type(self) -> Option<&'static str> {
        match self {
            Self::Root => Some("Account"),
            Self::User => Some("User"),
            Self::AssumedRole => Some("AssumedRole"),
            Self::FederatedUser => Some("FederatedUser"),
            Self::Anonymous => Some("Anonymous"),
            Self::Service => None,
        }
    }
}

/// The caller, as policies see it.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalInfo {
    pub kind: PrincipalType,
    /// The caller's own ARN: user ARN, session ARN (no role path), root ARN, or the service name.
    pub arn: String,
    /// For role sessions the role ARN (with path); for federated users the IAM user who
    /// called `GetFederationToken`. `None` otherwise.
    pub issuer_arn: Option<String>,
    pub account: String,
    /// `aws:username` (IAM users only).
    pub user_name: Option<String>,
    /// `aws:userid` (`AIDA…`, `AROA…:session`, the account id for root).
    pub user_id: Option<String>,
    /// Principal tags (entity tags overlaid with session tags).
    pub tags: BTreeMap<String, String>,
}

impl PrincipalInfo {
    /// An account's root user.
    pub fn root(account: &str) -> Self {
        Self {
            kind: PrincipalType::Root,
            arn: format!("arn:aws:iam::{account}:root"),
            issuer_arn: None,
            account: account.to_owned(),
            user_name: None,
            user_id: Some(account.to_owned()),
            tags: BTreeMap::new(),
        }
    }

    /// Build from the authenticated principal. A session's role ARN is derived from the
    /// session ARN (`assumed-role/R/s` → `role/R`); the role path is not known there.
    pub fn from_auth(p: &crate::auth::Principal) -> Self {
        use crate::auth::PrincipalKind;
        let kind = match p.kind {
            PrincipalKind::Root => PrincipalType::Root,
            PrincipalKind::User => PrincipalType::User,
            PrincipalKind::AssumedRole => PrincipalType::AssumedRole,
        };
        let issuer_arn = match kind {
            PrincipalType::AssumedRole => role_arn_of_session(&p.arn),
            _ => None,
        };
        let user_name = match kind {
            PrincipalType::User => p.arn.rsplit('/').next().map(str::to_owned),
            _ => None,
        };
        Self {
            kind,
            arn: p.arn.clone(),
            issuer_arn,
            account: p.account_id.clone(),
            user_name,
            user_id: Some(p.user_id.clone()),
            tags: BTreeMap::new(),
        }
    }

    /// `aws:PrincipalArn`: the role ARN for role sessions, the caller's ARN otherwise.
    pub fn principal_arn(&self) -> &str {
        match (self.kind, &self.issuer_arn) {
            (PrincipalType::AssumedRole, Some(role)) => role,
            _ => &self.arn,
        }
    }
}

/// `arn:aws:sts::A:assumed-role/R/s` → `arn:aws:iam::A:role/R`.
pub(crate) fn role_arn_of_session(session: &str) -> Option<String> {
    let [_, partition, _, _, account, res] = split_arn(session)?;
    let role = res.strip_prefix("assumed-role/")?.split('/').next()?;
    Some(format!("arn:{partition}:iam::{account}:role/{role}"))
}

/// The declared type of a condition key (IAM.md §3.7).
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    String,
    Arn,
    Numeric,
    Date,
    Bool,
    Ip,
    Binary,
    ArrayOfString,
    ArrayOfArn,
}

impl KeyType {
    /// Multivalued keys need `ForAnyValue:`/`ForAllValues:`.
    pub fn is_multivalued(self) -> bool {
        matches!(self, Self::ArrayOfString | Self::ArrayOfArn)
    }
}

/// The type of a well-known key (lowercased name), if known.
pub fn known_key_type(key_lc: &str) -> Option<KeyType> {
    use KeyType as T;
    Some(match key_lc {
        "aws:tagkeys"
        | "aws:principalorgpaths"
        | "aws:resourceorgpaths"
        | "aws:calledvia"
        | "aws:principalservicenameslist"
        | "secretsmanager:addreplicaregions" => T::ArrayOfString,
        "aws:sourceip" | "aws:vpcsourceip" => T::Ip,
        "aws:currenttime" | "aws:epochtime" | "aws:tokenissuetime" => T::Date,
        "aws:securetransport"
        | "aws:multifactorauthpresent"
        | "aws:principalisawsservice"
        | "aws:viaawsservice"
        | "secretsmanager:forceoverwritereplicasecret"
        | "secretsmanager:blockpublicpolicy"
        | "secretsmanager:forcedeletewithoutrecovery"
        | "secretsmanager:rotateimmediately"
        | "secretsmanager:modifyrotationrules" => T::Bool,
        "aws:multifactorauthage" | "secretsmanager:recoverywindowindays" => T::Numeric,
        "aws:principalarn"
        | "aws:sourcearn"
        | "secretsmanager:secretid"
        | "secretsmanager:kmskeyarn"
        | "secretsmanager:rotationlambdaarn"
        | "secretsmanager:externalsecretrotationrolearn"
        | "secretsmanager:resource/allowrotationlambdaarn" => T::Arn,
        "aws:sourceaccount"
        | "aws:sourcevpc"
        | "aws:sourcevpce"
        | "aws:requestedregion"
        | "aws:principalaccount"
        | "aws:principalorgid"
        | "aws:principaltype"
        | "aws:userid"
        | "aws:username"
        | "aws:resourceaccount"
        | "aws:resourceorgid"
        | "aws:useragent"
        | "aws:referer"
        | "secretsmanager:name"
        | "secretsmanager:description"
        | "secretsmanager:kmskeyid"
        | "secretsmanager:type"
        | "secretsmanager:secretprimaryregion"
        | "secretsmanager:versionid"
        | "secretsmanager:versionstage"
        | "secretsmanager:resource/type" => T::String,
        k if k.starts_with("aws:resourcetag/")
            || k.starts_with("aws:requesttag/")
            || k.starts_with("aws:principaltag/")
            || k.starts_with("secretsmanager:resourcetag/") =>
        {
            T::String
        }
        _ => return None,
    })
}

/// One key's values.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextValue {
    pub ty: KeyType,
    pub values: Vec<String>,
}

/// Condition keys that several request contexts share (the request's facts: region, time,
/// source address, transport; a secret's own keys), built once and added to each context
/// with [`RequestContext::with_shared`].
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, Default)]
pub struct ContextKeys {
    map: KeyMap,
}

impl ContextKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// A well-known key whose lowercased name is known when compiling, with one value.
    pub(crate) fn with_static(mut self, key_lc: &'static str, value: &str) -> Self {
        let ty = known_key_type(key_lc).unwrap_or(KeyType::String);
        self.map.put_static(key_lc, ty, vec![value.to_owned()]);
        self
    }

    /// [`RequestContext::with`]: a key's values, typed as that sets them.
    pub fn with<I, S>(mut self, key: &str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let (key, value) = typed_key(key, values);
        self.map.insert(Cow::Owned(key), value);
        self
    }

    /// `aws:CurrentTime` and `aws:EpochTime`.
    pub fn with_time(mut self, now: time::OffsetDateTime) -> Self {
        self.map.put_time(now);
        self
    }

    /// `aws:SourceIp`.
    pub fn with_source_ip(mut self, ip: IpAddr) -> Self {
        self.map.put_source_ip(ip);
        self
    }

    /// `aws:SecureTransport`.
    pub fn with_secure_transport(mut self, tls: bool) -> Self {
        self.map.put_secure_transport(tls);
        self
    }
}

/// The caller's side of a request context: who is calling and the condition keys derived
/// from it (`aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:username`, `aws:userid`,
/// `aws:PrincipalType`, `aws:PrincipalTag/*`). Built once and shared (an `Arc`) by every
/// context of the same caller.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone)]
pub struct PrincipalContext {
    info: PrincipalInfo,
    map: KeyMap,
}

impl PrincipalContext {
    /// The principal's keys derived from `info`.
    pub fn new(info: PrincipalInfo) -> Self {
        let mut map = KeyMap::default();
        fill_principal_keys(&info, &mut map);
        Self { info, map }
    }

    /// The caller.
    pub fn info(&self) -> &PrincipalInfo {
        &self.info
    }

    /// A well-known key whose lowercased name is known when compiling, with one value (a
    /// key every context of this caller has, such as its session's).
    pub(crate) fn with_static(mut self, key_lc: &'static str, value: &str) -> Self {
        let ty = known_key_type(key_lc).unwrap_or(KeyType::String);
        self.map.put_static(key_lc, ty, vec![value.to_owned()]);
        self
    }

    /// [`RequestContext::with_own_request_keys`], for every context of this caller.
    pub fn with_own_request_keys(self) -> Self {
        let service = match own_request_service(self.info.kind) {
            Some(service) => service,
            None => return self,
        };
        self.with_static("aws:viaawsservice", "false")
            .with_static("aws:principalisawsservice", service)
    }
}

/// `aws:PrincipalIsAWSService` of a principal's own signed request; `None` for an anonymous
/// request, which has neither that key nor `aws:ViaAWSService`.
fn own_request_service(kind: PrincipalType) -> Option<&'static str> {
    match kind {
        PrincipalType::Anonymous => None,
        PrincipalType::Service => Some("true"),
        _ => Some("false"),
    }
}

fn fill_principal_keys(p: &PrincipalInfo, map: &mut KeyMap) {
    let mut keys: Vec<(&str, KeyType, String)> = Vec::with_capacity(6);
    if !matches!(p.kind, PrincipalType::Anonymous | PrincipalType::Service) {
        keys.push((
            "aws:principalarn",
            KeyType::Arn,
            p.principal_arn().to_owned(),
        ));
    }
    if !p.account.is_empty() {
        keys.push(("aws:principalaccount", KeyType::String, p.account.clone()));
    }
    if p.kind == PrincipalType::User {
        let name = p
            .user_name
            .clone()
            .or_else(|| p.arn.rsplit('/').next().map(str::to_owned));
        if let Some(name) = name {
            keys.push(("aws:username", KeyType::String, name));
        }
    }
    let user_id = p.user_id.clone().or_else(|| match p.kind {
        PrincipalType::Root => Some(p.account.clone()),
        PrincipalType::FederatedUser => p
            .arn
            .rsplit('/')
            .next()
            .map(|n| format!("{}:{n}", p.account)),
        PrincipalType::Anonymous => Some("anonymous".to_owned()),
        _ => None,
    });
    if let Some(id) = user_id {
        keys.push(("aws:userid", KeyType::String, id));
    }
    if let Some(t) = p.kind.aws_principal_type() {
        keys.push(("aws:principaltype", KeyType::String, t.to_owned()));
    }
    for (k, ty, v) in keys {
        map.insert(
            Cow::Borrowed(k),
            ContextValue {
                ty,
                values: vec![v],
            },
        );
    }
    for (k, v) in &p.tags {
        map.insert(
            Cow::Owned(format!("aws:principaltag/{}", k.to_lowercase())),
            ContextValue {
                ty: KeyType::String,
                values: vec![v.clone()],
            },
        );
    }
}

/// The action, its lowercase form, the resource and the resource's account, in one buffer.
#[derive(Debug, Clone)]
struct Texts {
    buf: String,
    /// End of the action; the lowercase action follows it.
    action_end: usize,
    /// End of the lowercase action; the resource follows it.
    action_lc_end: usize,
    /// End of the resource.
    resource_end: usize,
    /// The resource's account, a range of `buf` (within the resource when taken from its
    /// ARN, after it when given).
    resource_account: Option<(usize, usize)>,
    /// Byte ranges of the six ARN parts of the resource within `buf` (`None` when not an
    /// ARN, e.g. `*`).
    resource_parts: Option<[(usize, usize); 6]>,
}

impl Texts {
    fn new(action: &str, resource: &str, resource_account: Option<&str>) -> Self {
        let mut buf = String::with_capacity(
            2 * action.len() + resource.len() + resource_account.map_or(0, str::len),
        );
        buf.push_str(action);
        let action_end = buf.len();
        buf.push_str(action);
        let action_lc_end = buf.len();
        if let Some(lc) = buf.get_mut(action_end..action_lc_end) {
            lc.make_ascii_lowercase();
        }
        buf.push_str(resource);
        let resource_end = buf.len();
        let resource_parts =
            arn_ranges(resource).map(|r| r.map(|(a, b)| (a + action_lc_end, b + action_lc_end)));
        let resource_account = match resource_account {
            Some(a) => {
                buf.push_str(a);
                Some((resource_end, buf.len()))
            }
            None => arn_account_range(resource)
                .map(|(a, b)| (a + action_lc_end, b + action_lc_end))
                .filter(|(a, b)| a < b),
        };
        Self {
            buf,
            action_end,
            action_lc_end,
            resource_end,
            resource_account,
            resource_parts,
        }
    }

    fn range(&self, (a, b): (usize, usize)) -> &str {
        self.buf.get(a..b).unwrap_or_default()
    }

    fn action(&self) -> &str {
        self.range((0, self.action_end))
    }

    fn action_lc(&self) -> &str {
        self.range((self.action_end, self.action_lc_end))
    }

    fn resource(&self) -> &str {
        self.range((self.action_lc_end, self.resource_end))
    }

    fn resource_account(&self) -> Option<&str> {
        self.resource_account.map(|r| self.range(r))
    }
}

/// Everything one authorization decision reads. A key is looked up in the context's own
/// keys, then in its shared layers ([`Self::with_shared`], the last added first), then in
/// the principal's.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone)]
pub struct RequestContext {
    principal: Arc<PrincipalContext>,
    /// The shared layers, the last added first (`[1]` only with `[0]`).
    shared: [Option<Arc<ContextKeys>>; 2],
    texts: Texts,
    /// The context's own keys; a `None` value hides a shared or principal key
    /// ([`Self::without`]).
    keys: KeyMap,
    pub(crate) action_hash: u64,
    pub(crate) service_hash: u64,
}

impl RequestContext {
    /// A context for `principal` calling `action` on `resource` (an ARN or `*`). The
    /// resource account defaults to the ARN's account. Principal-derived global keys
    /// (`aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:username`, `aws:userid`,
    /// `aws:PrincipalType`, `aws:PrincipalTag/*`) are filled in; later `with_*` calls override.
    pub fn new(
        principal: PrincipalInfo,
        action: &str,
        resource: &str,
        resource_account: Option<&str>,
    ) -> Self {
        Self::for_principal(
            Arc::new(PrincipalContext::new(principal)),
            action,
            resource,
            resource_account,
        )
    }

    /// [`Self::new`] with the principal's side built already (and shared with other
    /// contexts): its keys are the principal's, and later `with_*` calls override them.
    pub fn for_principal(
        principal: Arc<PrincipalContext>,
        action: &str,
        resource: &str,
        resource_account: Option<&str>,
    ) -> Self {
        let texts = Texts::new(action, resource, resource_account);
        let (action_hash, service_hash) = action_hashes(texts.action_lc());
        Self {
            action_hash,
            service_hash,
            principal,
            shared: [None, None],
            texts,
            keys: KeyMap {
                // Room for the keys a decision on a tagged secret usually adds to the shared
                // and the principal's (resource, tags twice, operation): no regrowth while
                // filling.
                slots: Vec::with_capacity(16),
            },
        }
    }

    /// Add the keys of `shared`, as if each were set now: they override the keys set so far,
    /// and later `with_*` calls override them.
    pub fn with_shared(mut self, shared: Arc<ContextKeys>) -> Self {
        self.keys
            .slots
            .retain(|(h, k, _)| shared.map.lookup(*h, k).is_none());
        let [newer, older] = &mut self.shared;
        if let (Some(new), Some(old)) = (newer.as_ref(), older.take()) {
            // A third layer: the two below it become one, the newer's keys over the older's.
            let mut merged = (*old).clone();
            for (h, k, v) in &new.map.slots {
                merged.map.insert_slot(*h, k.clone(), v.clone());
            }
            *newer = Some(Arc::new(merged));
        }
        let [newer, older] = &mut self.shared;
        *older = newer.take();
        *newer = Some(shared);
        self
    }

    /// The shared layers, the last added first.
    fn shared_layers(&self) -> impl Iterator<Item = &ContextKeys> {
        self.shared.iter().flatten().map(|s| &**s)
    }

    fn put(&mut self, key: &str, ty: KeyType, values: Vec<String>) {
        self.keys
            .insert(Cow::Owned(key.to_lowercase()), ContextValue { ty, values });
    }

    /// Set a key's values (replacing any). The type comes from the well-known key table;
    /// unknown keys are `String`, or `ArrayOfString` when given several values.
    pub fn with<I, S>(mut self, key: &str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let (key, value) = typed_key(key, values);
        self.keys.insert(Cow::Owned(key), value);
        self
    }

    /// [`Self::with`] for a well-known key whose lowercased name is known when compiling.
    pub(crate) fn with_static(mut self, key_lc: &'static str, value: &str) -> Self {
        let ty = known_key_type(key_lc).unwrap_or(KeyType::String);
        self.keys.put_static(key_lc, ty, vec![value.to_owned()]);
        self
    }

    /// The keys of a principal's own signed request: `aws:ViaAWSService` false (a request a
    /// service makes on the principal's behalf sets it true afterwards) and
    /// `aws:PrincipalIsAWSService`, true only for a service principal. AWS puts both in the
    /// context of every signed request (a `Bool` condition on either, such as the network
    /// perimeter's `"aws:ViaAWSService": "false"`, needs them present); an anonymous request
    /// has neither.
    pub fn with_own_request_keys(self) -> Self {
        let service = match own_request_service(self.principal.info.kind) {
            Some(service) => service,
            None => return self,
        };
        self.with_static("aws:viaawsservice", "false")
            .with_static("aws:principalisawsservice", service)
    }

    /// Set a key with an explicit type.
    pub fn with_typed(mut self, key: &str, ty: KeyType, values: Vec<String>) -> Self {
        self.put(key, ty, values);
        self
    }

    /// Remove a key.
    pub fn without(mut self, key: &str) -> Self {
        let key = key.to_lowercase();
        self.keys.remove(&key);
        let h = fnv(key.as_bytes());
        let shared = self
            .shared_layers()
            .any(|s| s.map.lookup(h, &key).is_some());
        if shared || self.principal.map.lookup(h, &key).is_some() {
            self.keys.insert_slot(h, Cow::Owned(key), None);
        }
        self
    }

    /// `aws:CurrentTime` and `aws:EpochTime` (the evaluator never reads a clock).
    pub fn with_time(mut self, now: time::OffsetDateTime) -> Self {
        self.keys.put_time(now);
        self
    }

    /// `aws:SourceIp`.
    pub fn with_source_ip(mut self, ip: IpAddr) -> Self {
        self.keys.put_source_ip(ip);
        self
    }

    /// `aws:SecureTransport`.
    pub fn with_secure_transport(mut self, tls: bool) -> Self {
        self.keys.put_secure_transport(tls);
        self
    }

    /// `aws:ResourceTag/k` and `secretsmanager:ResourceTag/k` for each tag of the secret.
    pub fn with_resource_tags<'a>(
        mut self,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        for (k, v) in tags {
            self.put(
                &format!("aws:ResourceTag/{k}"),
                KeyType::String,
                vec![v.to_owned()],
            );
            self.put(
                &format!("secretsmanager:ResourceTag/{k}"),
                KeyType::String,
                vec![v.to_owned()],
            );
        }
        self
    }

    /// `aws:RequestTag/k` for each tag and `aws:TagKeys` (all keys).
    pub fn with_request_tags<'a>(
        mut self,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let mut keys = Vec::new();
        for (k, v) in tags {
            self.put(
                &format!("aws:RequestTag/{k}"),
                KeyType::String,
                vec![v.to_owned()],
            );
            keys.push(k.to_owned());
        }
        self.put("aws:TagKeys", KeyType::ArrayOfString, keys);
        self
    }

    /// The same request for another action (e.g. the lock-out check).
    pub fn with_action(&self, action: &str) -> Self {
        let texts = Texts::new(action, self.resource(), self.resource_account());
        let (action_hash, service_hash) = action_hashes(texts.action_lc());
        Self {
            principal: Arc::clone(&self.principal),
            shared: self.shared.clone(),
            texts,
            keys: self.keys.clone(),
            action_hash,
            service_hash,
        }
    }

    pub fn principal(&self) -> &PrincipalInfo {
        &self.principal.info
    }

    /// The action as given (`secretsmanager:GetSecretValue`).
    pub fn action(&self) -> &str {
        self.texts.action()
    }

    pub(crate) fn action_lc(&self) -> &str {
        self.texts.action_lc()
    }

    /// The resource ARN or `*`.
    pub fn resource(&self) -> &str {
        self.texts.resource()
    }

    pub(crate) fn resource_parts(&self) -> Option<[&str; 6]> {
        let r = self.texts.resource_parts?;
        let s = &self.texts.buf;
        Some([
            s.get(r[0].0..r[0].1)?,
            s.get(r[1].0..r[1].1)?,
            s.get(r[2].0..r[2].1)?,
            s.get(r[3].0..r[3].1)?,
            s.get(r[4].0..r[4].1)?,
            s.get(r[5].0..r[5].1)?,
        ])
    }

    /// The account owning the resource (`None` for `*` actions).
    pub fn resource_account(&self) -> Option<&str> {
        self.texts.resource_account()
    }

    /// Same-account request (a `*` resource belongs to the caller's account).
    pub fn is_same_account(&self) -> bool {
        self.resource_account()
            .is_none_or(|a| a == self.principal.info.account)
    }

    /// A key's values (key name case-insensitive).
    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        let key = key.to_lowercase();
        self.get_hashed(fnv(key.as_bytes()), &key)
    }

    /// A key by its lowercased name and that name's `fnv` hash (precomputed by policies).
    pub(crate) fn get_hashed(&self, hash: u64, key_lc: &str) -> Option<&ContextValue> {
        if let Some(own) = self.keys.lookup(hash, key_lc) {
            return own.as_ref();
        }
        for layer in self.shared_layers() {
            if let Some(shared) = layer.map.lookup(hash, key_lc) {
                return shared.as_ref();
            }
        }
        self.principal
            .map
            .lookup(hash, key_lc)
            .and_then(Option::as_ref)
    }

    /// The value of a single-valued key (for policy variables); `None` if absent or
    /// multivalued.
    #[cfg(test)]
    pub(crate) fn single_value(&self, key_lc: &str) -> Option<&str> {
        self.single_value_hashed(fnv(key_lc.as_bytes()), key_lc)
    }

    /// `single_value` with a precomputed hash.
    pub(crate) fn single_value_hashed(&self, hash: u64, key_lc: &str) -> Option<&str> {
        let v = self.get_hashed(hash, key_lc)?;
        match v.values.as_slice() {
            [one] if !v.ty.is_multivalued() => Some(one),
            _ => None,
        }
    }

    /// All keys (lowercased names), ordered by the name's hash.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &ContextValue)> {
        let shared = |i: usize| {
            self.shared
                .get(i)
                .and_then(Option::as_ref)
                .map_or(&[][..], |s| s.map.slots.as_slice())
        };
        let mut all: Vec<(u64, &str, &ContextValue)> = Vec::new();
        let layers = [
            self.keys.slots.as_slice(),
            shared(0),
            shared(1),
            self.principal.map.slots.as_slice(),
        ];
        for (i, layer) in layers.iter().enumerate() {
            let above = layers.get(..i).unwrap_or_default();
            for (h, k, v) in layer.iter() {
                if above
                    .iter()
                    .any(|l| l.iter().any(|s| s.0 == *h && s.1 == *k))
                {
                    continue;
                }
                if let Some(v) = v {
                    all.push((*h, k.as_ref(), v));
                }
            }
        }
        all.sort_by_key(|s| s.0);
        all.into_iter().map(|(_, k, v)| (k, v))
    }
}

/// A key set with [`RequestContext::with`]: its lowercased name, and its values typed by the
/// well-known key table (unknown keys: `String`, or `ArrayOfString` when given several
/// values).
fn typed_key<I, S>(key: &str, values: I) -> (String, ContextValue)
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let values: Vec<String> = values.into_iter().map(Into::into).collect();
    let key = key.to_lowercase();
    let ty = known_key_type(&key).unwrap_or(if values.len() > 1 {
        KeyType::ArrayOfString
    } else {
        KeyType::String
    });
    (key, ContextValue { ty, values })
}

/// The `fnv` hashes of a lowercase action and of its service.
fn action_hashes(action_lc: &str) -> (u64, u64) {
    let service = action_lc.split(':').next().unwrap_or("");
    (fnv(action_lc.as_bytes()), fnv(service.as_bytes()))
}

/// `now` as `aws:CurrentTime` (RFC 3339, UTC) and `aws:EpochTime` (seconds) text. Every
/// request of the same second has the same texts: each thread keeps the last second's.
fn time_texts(now: time::OffsetDateTime) -> (String, String) {
    thread_local! {
        static LAST: RefCell<Option<(time::OffsetDateTime, String, String)>> =
            const { RefCell::new(None) };
    }
    let utc = now.to_offset(time::UtcOffset::UTC);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((t, iso, epoch)) = last.as_ref() {
            if *t == utc {
                return (iso.clone(), epoch.clone());
            }
        }
        let iso = utc
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let epoch = utc.unix_timestamp().to_string();
        *last = Some((utc, iso.clone(), epoch.clone()));
        (iso, epoch)
    })
}

/// Condition keys by lowercased name: a vector sorted by the name's hash (policies carry the
/// hash precomputed, so a lookup is a binary search and one string compare). A `None` value
/// hides the key of a layer below (a request context's shared or principal keys).
#[derive(Debug, Clone, Default)]
struct KeyMap {
    slots: Vec<(u64, Cow<'static, str>, Option<ContextValue>)>,
}

impl KeyMap {
    fn insert(&mut self, key_lc: Cow<'static, str>, value: ContextValue) {
        let h = fnv(key_lc.as_bytes());
        self.insert_slot(h, key_lc, Some(value));
    }

    fn insert_slot(&mut self, h: u64, key_lc: Cow<'static, str>, value: Option<ContextValue>) {
        let start = self.slots.partition_point(|s| s.0 < h);
        for slot in self.slots.iter_mut().skip(start).take_while(|s| s.0 == h) {
            if slot.1 == key_lc {
                slot.2 = value;
                return;
            }
        }
        self.slots.insert(start, (h, key_lc, value));
    }

    /// A key whose lowercased name is known when compiling.
    fn put_static(&mut self, key_lc: &'static str, ty: KeyType, values: Vec<String>) {
        debug_assert_eq!(key_lc, key_lc.to_lowercase());
        self.insert(Cow::Borrowed(key_lc), ContextValue { ty, values });
    }

    /// `aws:CurrentTime` and `aws:EpochTime`.
    fn put_time(&mut self, now: time::OffsetDateTime) {
        let (iso, epoch) = time_texts(now);
        self.put_static("aws:currenttime", KeyType::Date, vec![iso]);
        self.put_static("aws:epochtime", KeyType::Date, vec![epoch]);
    }

    /// `aws:SourceIp`.
    fn put_source_ip(&mut self, ip: IpAddr) {
        self.put_static("aws:sourceip", KeyType::Ip, vec![ip.to_string()]);
    }

    /// `aws:SecureTransport`.
    fn put_secure_transport(&mut self, tls: bool) {
        let text = if tls { "true" } else { "false" };
        self.put_static("aws:securetransport", KeyType::Bool, vec![text.to_owned()]);
    }

    fn remove(&mut self, key_lc: &str) {
        self.slots.retain(|s| s.1 != key_lc);
    }

    /// The key's slot value: `Some(None)` when the key is hidden, `None` when absent.
    fn lookup(&self, h: u64, key_lc: &str) -> Option<&Option<ContextValue>> {
        let start = self.slots.partition_point(|s| s.0 < h);
        self.slots
            .iter()
            .skip(start)
            .take_while(|s| s.0 == h)
            .find(|s| s.1 == key_lc)
            .map(|s| &s.2)
    }
}

/// The byte range of the account, the fifth of [`split_arn`]'s six parts (which does not
/// ask for the `arn:` prefix).
fn arn_account_range(s: &str) -> Option<(usize, usize)> {
    let mut colons = s
        .bytes()
        .enumerate()
        .filter(|&(_, b)| b == b':')
        .map(|(i, _)| i);
    let fourth = colons.nth(3)?;
    let fifth = colons.next()?;
    Some((fourth + 1, fifth))
}

#[expect(
    clippy::indexing_slicing,
    reason = "fixed-size array filled in order, index < 6"
)]
fn arn_ranges(s: &str) -> Option<[(usize, usize); 6]> {
    if !s.starts_with("arn:") {
        return None;
    }
    let mut out = [(0, 0); 6];
    let mut start = 0;
    let mut n = 0;
    for (i, b) in s.bytes().enumerate() {
        if b == b':' && n < 5 {
            out[n] = (start, i);
            n += 1;
            start = i + 1;
        }
    }
    if n < 5 {
        return None;
    }
    out[5] = (start, s.len());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> PrincipalInfo {
        PrincipalInfo {
            kind: PrincipalType::User,
            arn: "arn:aws:iam::111111111111:user/alice".into(),
            issuer_arn: None,
            account: "111111111111".into(),
            user_name: None,
            user_id: Some("AIDA1".into()),
            tags: [("Team".to_owned(), "blue".to_owned())]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn principal_keys_are_derived() {
        let c = RequestContext::new(alice(), "secretsmanager:GetSecretValue", "*", None);
        assert_eq!(c.single_value("aws:username"), Some("alice"));
        assert_eq!(c.single_value("aws:userid"), Some("AIDA1"));
        assert_eq!(c.single_value("aws:principaltype"), Some("User"));
        assert_eq!(c.single_value("aws:principaltag/team"), Some("blue"));
        assert_eq!(
            c.get("AWS:PrincipalTag/TEAM").map(|v| v.values.len()),
            Some(1)
        );
        assert!(c.is_same_account());
        let c = c.with("aws:username", ["bob"]);
        assert_eq!(c.single_value("aws:username"), Some("bob"));
    }

    #[test]
    fn session_principal_arn_is_the_role() {
        let p = PrincipalInfo {
            kind: PrincipalType::AssumedRole,
            arn: "arn:aws:sts::1:assumed-role/app/s1".into(),
            issuer_arn: role_arn_of_session("arn:aws:sts::1:assumed-role/app/s1"),
            account: "1".into(),
            user_name: None,
            user_id: None,
            tags: BTreeMap::new(),
        };
        let c = RequestContext::new(p, "a:b", "arn:aws:secretsmanager:r:2:secret:x", None);
        assert_eq!(
            c.single_value("aws:principalarn"),
            Some("arn:aws:iam::1:role/app")
        );
        assert_eq!(c.resource_account(), Some("2"));
        assert!(!c.is_same_account());
        assert_eq!(c.resource_parts().map(|p| p[5]), Some("secret:x"));
    }

    /// Every key's values, as the evaluator reads them.
    fn all_keys(c: &RequestContext) -> BTreeMap<String, ContextValue> {
        let keys: BTreeMap<String, ContextValue> =
            c.keys().map(|(k, v)| (k.to_owned(), v.clone())).collect();
        for (k, v) in &keys {
            assert_eq!(c.get(&k.to_uppercase()), Some(v), "{k}");
        }
        keys
    }

    /// Shared and principal keys read as the same keys set one by one in the same order:
    /// what was set before a shared layer is overridden by it, what is set after overrides
    /// it, and a removed key is gone from every layer.
    #[test]
    fn layered_keys_read_as_keys_set_in_order() {
        let t = time::macros::datetime!(2024-05-01 12:00 UTC);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let shared = |region: &str| {
            Arc::new(
                ContextKeys::new()
                    .with_static("aws:requestedregion", region)
                    .with_source_ip(ip)
                    .with_time(t)
                    .with_secure_transport(true),
            )
        };
        let flat_shared = |c: RequestContext, region: &str| {
            c.with_static("aws:requestedregion", region)
                .with_source_ip(ip)
                .with_time(t)
                .with_secure_transport(true)
        };
        let res = "arn:aws:secretsmanager:us-east-1:222222222222:secret:x-AbCdEf";
        let principal = Arc::new(PrincipalContext::new(alice()).with_own_request_keys());
        let layered =
            RequestContext::for_principal(principal, "secretsmanager:GetSecretValue", res, None)
                .with("AWS:SourceIp", ["10.0.0.1"])
                .with("aws:tokenissuetime", ["x"])
                .without("aws:userid")
                .with_shared(shared("us-east-1"))
                .with("aws:username", ["bob"])
                .without("aws:principaltag/TEAM")
                .without("AWS:RequestedRegion")
                .with("aws:TagKeys", ["a", "b"]);
        let flat = RequestContext::new(alice(), "secretsmanager:GetSecretValue", res, None)
            .with_own_request_keys()
            .with("AWS:SourceIp", ["10.0.0.1"])
            .with("aws:tokenissuetime", ["x"])
            .without("aws:userid");
        let flat = flat_shared(flat, "us-east-1")
            .with("aws:username", ["bob"])
            .without("aws:principaltag/TEAM")
            .without("AWS:RequestedRegion")
            .with("aws:TagKeys", ["a", "b"]);
        assert_eq!(all_keys(&layered), all_keys(&flat));
        assert!(layered.get("aws:requestedregion").is_none());
        assert!(layered.get("aws:principaltag/team").is_none());
        assert!(layered.get("aws:userid").is_none());
        assert_eq!(layered.single_value("aws:sourceip"), Some("192.0.2.7"));
        assert_eq!(layered.single_value("aws:username"), Some("bob"));
        assert_eq!(layered.single_value("aws:principaltype"), Some("User"));
        assert_eq!(layered.single_value("aws:tagkeys"), None);
        assert_eq!(layered.resource_account(), flat.resource_account());
        assert_eq!(layered.resource_parts(), flat.resource_parts());
        // A second shared layer overrides the first and what was set before it.
        let layered = layered
            .with("aws:epochtime", ["1"])
            .with_shared(shared("eu-west-1"));
        let flat = flat_shared(flat.with("aws:epochtime", ["1"]), "eu-west-1");
        assert_eq!(all_keys(&layered), all_keys(&flat));
        assert_eq!(
            layered.single_value("aws:requestedregion"),
            Some("eu-west-1")
        );
        // A third and a fourth: the layers below them are merged, in order.
        let more = |tag: &str| {
            Arc::new(
                ContextKeys::new()
                    .with("aws:ResourceTag/Env", [tag])
                    .with("aws:requestedregion", [tag])
                    .with("x:Several", ["a", "b"]),
            )
        };
        let flat_more = |c: RequestContext, tag: &str| {
            c.with("aws:ResourceTag/Env", [tag])
                .with("aws:requestedregion", [tag])
                .with("x:Several", ["a", "b"])
        };
        let layered = layered
            .with("aws:resourcetag/env", ["own"])
            .with("aws:userid", ["AIDA2"])
            .with_shared(more("one"))
            .without("aws:currenttime")
            .with_shared(more("two"))
            .with("aws:username", ["carol"]);
        let flat = flat_more(
            flat_more(
                flat.with("aws:resourcetag/env", ["own"])
                    .with("aws:userid", ["AIDA2"]),
                "one",
            )
            .without("aws:currenttime"),
            "two",
        )
        .with("aws:username", ["carol"]);
        assert_eq!(all_keys(&layered), all_keys(&flat));
        assert_eq!(layered.single_value("aws:resourcetag/env"), Some("two"));
        assert_eq!(layered.single_value("aws:userid"), Some("AIDA2"));
        assert_eq!(layered.single_value("aws:sourceip"), Some("192.0.2.7"));
        assert!(layered.get("aws:currenttime").is_none());
        assert_eq!(
            layered.get("x:several").map(|v| v.ty),
            Some(KeyType::ArrayOfString)
        );
        let (a, b) = (
            layered.with_action("kms:Decrypt"),
            flat.with_action("kms:Decrypt"),
        );
        assert_eq!(all_keys(&a), all_keys(&b));
        assert_eq!((a.action(), a.action_lc()), ("kms:Decrypt", "kms:decrypt"));
        assert_eq!(
            (a.action_hash, a.service_hash),
            (b.action_hash, b.service_hash)
        );
        assert_eq!(a.resource(), res);
        assert_eq!(a.resource_account(), Some("222222222222"));
    }

    /// The resource's account: the one given, else the ARN's (any text of six `:`-separated
    /// parts, as `split_arn` reads it), none when that part is empty.
    #[test]
    fn resource_account_is_given_or_the_arns() {
        let c = |r: &str, a: Option<&str>| {
            RequestContext::new(PrincipalInfo::root("1"), "A:B", r, a)
                .resource_account()
                .map(str::to_owned)
        };
        assert_eq!(c("arn:aws:s3:::bucket", None), None);
        assert_eq!(c("arn:aws:sm:r:9:secret:x", None).as_deref(), Some("9"));
        assert_eq!(c("x:aws:sm:r:9:secret:x:y", None).as_deref(), Some("9"));
        assert_eq!(c("arn:aws:sm:r:9", None), None);
        assert_eq!(c("*", None), None);
        assert_eq!(c("*", Some("7")).as_deref(), Some("7"));
        assert_eq!(c("arn:aws:sm:r:9:secret:x", Some("")).as_deref(), Some(""));
        let ctx = RequestContext::new(
            PrincipalInfo::root("1"),
            "A:B",
            "arn:aws:sm:r:9:s",
            Some("7"),
        );
        assert_eq!(
            (ctx.action(), ctx.action_lc(), ctx.resource()),
            ("A:B", "a:b", "arn:aws:sm:r:9:s")
        );
        assert_eq!(ctx.resource_parts().map(|p| p[4]), Some("9"));
    }

    #[test]
    fn time_is_injected() {
        let t = time::macros::datetime!(2024-05-01 12:00 UTC);
        let c = RequestContext::new(PrincipalInfo::root("1"), "a:b", "*", None).with_time(t);
        assert_eq!(
            c.single_value("aws:currenttime"),
            Some("2024-05-01T12:00:00Z")
        );
        assert_eq!(c.single_value("aws:epochtime"), Some("1714564800"));
    }
}
