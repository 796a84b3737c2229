//! THE request: decode → authenticate → parse → resolve → authorize → execute → audit → encode.
//!
//! `handle` is the only caller of `Authorized::mint`, after `policy::evaluate` allowed the
//! request. Every request, whatever happens, gets an audit record before its response; if
//! the record cannot be written the response is `InternalServiceError`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::audit::{self, Auditor, Draft};
use crate::auth::session;
use crate::auth::sigv4::{self, SigningKeyCache};
use crate::auth::{AuthError, Credential, Principal, RequestHead, SecretAccessKey};
use crate::crypto::envelope;
use crate::error::ApiError;
use crate::identity::live::Live;
use crate::ops::{self, Authorized, Ctx, Operation, Scope, Target};
use crate::policy;
use crate::protocol::{self, Service};

/// Shared server state.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub ctx: Ctx,
    pub auditor: Auditor,
    pub regions: Arc<Vec<String>>,
    pub identities: Arc<Live>,
    /// Whether the listener is TLS (`aws:SecureTransport`).
    pub secure: bool,
    /// Reverse proxies whose X-Forwarded-For is believed for `aws:SourceIp`.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// Compiled resource and session policies by (kind, label, text).
    policies: Arc<Mutex<PolicyCache>>,
    signing_keys: Arc<SigningKeyCache>,
    credentials: Arc<Mutex<HashMap<String, (StoredKey, i64)>>>,
    /// A shared lock on the master key file's lock file, held while this server runs so
    /// that `master-key rotate` refuses to run beside it.
    pub master_key_lock: Option<Arc<std::fs::File>>,
}

/// An access key as stored: its secret, owner and status (the principal is built per
/// request from the live directory, so a reload takes effect at once).
#[derive(Debug, Clone)]
struct StoredKey {
    secret: SecretAccessKey,
    account: String,
    user_name: Option<String>,
    active: bool,
}

/// Compiled resource and session policies, by a hash of (kind, text); a hit is confirmed by
/// comparing the text. Keyed by text, not by secret: a policy text attached to many secrets
/// (a template) is compiled and kept once, and each use gets it under its own label
/// (`Policy::relabelled`, which shares the compiled body). Keyed by secret, as it was until
/// session 9, the benchmark's 10,000 secrets with one policy text each held 10,000 copies,
/// about 6 KB each: 50-60 MB of the server's RSS after seeding or a BatchGetSecretValue run.
type PolicyCache = HashMap<u64, Vec<CachedPolicy>>;

/// One compiled policy of the [`PolicyCache`].
#[derive(Debug)]
struct CachedPolicy {
    kind: policy::PolicyType,
    text: String,
    policy: policy::Policy,
}

/// Most compiled policies kept (the cache is emptied when it grows past this).
const POLICY_CACHE_MAX: usize = 20_000;

/// How long a looked-up credential is trusted before it is read again.
const CREDENTIAL_TTL_MS: i64 = 5_000;

/// A finished response: status, JSON body, request id.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub request_id: String,
    pub content_type: &'static str,
}

impl Pipeline {
    pub fn new(ctx: Ctx, auditor: Auditor, regions: Vec<String>, identities: Arc<Live>) -> Self {
        Self {
            ctx,
            auditor,
            regions: Arc::new(regions),
            identities,
            secure: false,
            trusted_proxies: Arc::new(Vec::new()),
            policies: Arc::new(Mutex::new(HashMap::new())),
            signing_keys: Arc::new(SigningKeyCache::new()),
            credentials: Arc::new(Mutex::new(HashMap::new())),
            master_key_lock: None,
        }
    }

    /// Handle one request.
    pub async fn handle(&self, head: RequestHead, source_ip: Option<String>, body: &[u8]) -> Reply {
        let _in_flight = self.auditor.begin();
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut draft = Draft {
            request_id: request_id.clone(),
            event_time_ms: self.ctx.now_ms(),
            source_ip,
            user_agent: head
                .header("user-agent")
                .map(|u| u.chars().take(256).collect()),
            ..Draft::default()
        };
        let query = protocol::is_query(head.header("x-amz-target"), head.header("content-type"));
        let result = if query {
            self.run_query(&head, body, &mut draft).await
        } else {
            self.run(&head, body, &mut draft).await
        };
        if let Err(e) = &result {
            draft.error_code = Some(e.code().to_owned());
            draft.error_message = Some(e.message().to_owned());
            if let ApiError::Internal(detail) = e {
                tracing::error!(request_id = %request_id, "internal error: {detail}");
            }
        }
        // CloudTrail leaves `responseElements` null for reads (and parsing a read's body
        // would copy its secret value into a JSON tree): only writes record identifiers.
        if let Ok(body) = &result {
            if !query && draft.read_only == Some(false) && !draft.recorded_with_change {
                draft.response_elements = serde_json::from_slice(body).ok();
            }
        }
        let result = if draft.recorded_with_change && result.is_ok() {
            // Committed in the operation's write transaction, with its change.
            result
        } else {
            if draft.recorded_with_change {
                tracing::warn!(request_id = %request_id, "request failed after its change and record were committed; recording the failure too");
            }
            match self.auditor.record(&draft).await {
                Ok(()) => result,
                Err(e) => {
                    tracing::error!(request_id = %request_id, "audit write failed, failing closed: {e:?}");
                    Err(ApiError::internal("audit write failed"))
                }
            }
        };
        let content_type = if query {
            "text/xml"
        } else {
            "application/x-amz-json-1.1"
        };
        match result {
            Ok(body) => Reply {
                status: 200,
                body,
                request_id,
                content_type,
            },
            Err(e) if query => {
                let ns = if draft.event_source == Service::Iam.event_source() {
                    Service::Iam.xml_namespace()
                } else {
                    Service::Sts.xml_namespace()
                };
                let (status, body) = protocol::query::error_body(ns, &e, &request_id);
                Reply {
                    status,
                    body,
                    request_id,
                    content_type,
                }
            }
            Err(e) => Reply {
                status: e.status(),
                body: e.body().into_bytes(),
                request_id,
                content_type,
            },
        }
    }

    /// A request refused before its body was read (too large, unreadable): recorded like
    /// any other (with what its headers say), then answered with `e` (or
    /// `InternalServiceError` when the record cannot be written).
    pub async fn refuse(
        &self,
        head: &RequestHead,
        source_ip: Option<String>,
        e: ApiError,
    ) -> Reply {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut draft = Draft {
            request_id: request_id.clone(),
            event_time_ms: self.ctx.now_ms(),
            source_ip,
            user_agent: head
                .header("user-agent")
                .map(|u| u.chars().take(256).collect()),
            error_code: Some(e.code().to_owned()),
            error_message: Some(e.message().to_owned()),
            ..Draft::default()
        };
        if let Ok((service, op)) = protocol::decode_target(head.header("x-amz-target")) {
            draft.event_source = service.event_source().to_owned();
            draft.event_name = op;
        }
        let e = match self.auditor.record(&draft).await {
            Ok(()) => e,
            Err(err) => {
                tracing::error!(request_id = %request_id, "audit write failed, failing closed: {err:?}");
                ApiError::internal("audit write failed")
            }
        };
        Reply {
            status: e.status(),
            body: e.body().into_bytes(),
            request_id,
            content_type: "application/x-amz-json-1.1",
        }
    }

    /// A Query-protocol request (STS, IAM): form body, XML answer.
    async fn run_query(
        &self,
        head: &RequestHead,
        body: &[u8],
        draft: &mut Draft,
    ) -> Result<Vec<u8>, ApiError> {
        if head.method != "POST" {
            return Err(ApiError::UnknownOperation("Only POST / is served.".into()));
        }
        let form = protocol::query::parse_form(body)?;
        let action = form
            .get("Action")
            .ok_or_else(|| ApiError::UnknownOperation("Missing Action parameter.".into()))?
            .to_owned();
        draft.event_name = action.chars().take(64).collect();
        draft.request_parameters = safe_form_parameters(&form);
        if action == "AssumeRoleWithWebIdentity" {
            // Unsigned on AWS too: the web identity token is the credential.
            draft.event_source = Service::Sts.event_source().to_owned();
            draft.read_only = Some(false);
            let request_id = draft.request_id.clone();
            return ops::sts::web_identity::assume_role_with_web_identity(
                self,
                &form,
                &request_id,
                draft,
            );
        }
        let parsed = sigv4::parse(head)?;
        let service = protocol::query_service(&parsed.service).ok_or_else(|| {
            ApiError::InvalidSignature(
                "Credential should be scoped to correct service: 'sts' or 'iam'. ".into(),
            )
        })?;
        draft.event_source = service.event_source().to_owned();
        let principal = self.authenticate(head, body, service, draft).await?;
        draft.principal = Some(principal.clone());
        let call = ops::sts::QueryCall {
            pipeline: self,
            principal,
            region: draft.region.clone(),
            form: &form,
            request_id: &draft.request_id.clone(),
        };
        match service {
            Service::Sts => ops::sts::dispatch(&action, call, draft).await,
            Service::Iam => ops::iam::dispatch(&action, &call, draft),
            _ => Err(not_built(&action)),
        }
    }

    async fn run(
        &self,
        head: &RequestHead,
        body: &[u8],
        draft: &mut Draft,
    ) -> Result<Vec<u8>, ApiError> {
        if head.method != "POST" {
            return Err(ApiError::UnknownOperation(
                "Only POST / is served (AWS JSON 1.1 protocol).".into(),
            ));
        }
        let (service, op) = protocol::decode_target(head.header("x-amz-target"))?;
        draft.event_source = service.event_source().to_owned();
        draft.event_name = op.clone();
        draft.request_parameters = audit::safe_request_parameters(body);
        protocol::check_content_type(head.header("content-type"))?;

        let principal = self.authenticate(head, body, service, draft).await?;
        let scope = Scope {
            account: principal.account_id.clone(),
            region: draft.region.clone(),
        };
        draft.principal = Some(principal.clone());
        let call = Call {
            pipeline: self,
            principal,
            scope,
            body,
        };
        dispatch(service, &op, call, draft).await
    }

    async fn authenticate(
        &self,
        head: &RequestHead,
        body: &[u8],
        service: Service,
        draft: &mut Draft,
    ) -> Result<Principal, ApiError> {
        if let Some(token) = head.header("authorization").and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        }) {
            return self.authenticate_bearer(head, token.trim(), draft);
        }
        let parsed = sigv4::parse(head)?;
        draft.region = parsed.region.clone();
        if parsed.service != service.signing_name() {
            return Err(ApiError::InvalidSignature(format!(
                "Credential should be scoped to correct service: '{}'. ",
                service.signing_name()
            )));
        }
        if !self.regions.contains(&parsed.region) {
            let shown: String = parsed.region.chars().take(64).collect();
            return Err(ApiError::InvalidRequest(format!(
                "This Strongroom server does not serve region '{shown}'. It serves: {}.",
                self.regions.join(", ")
            )));
        }
        let cred = if parsed.access_key_id.starts_with("ASIA") {
            self.session_credential(head, &parsed.access_key_id)?
        } else if head.header("x-amz-security-token").is_some() {
            // A long-term key with a session token is not a credential AWS accepts.
            return Err(AuthError::UnknownKey.into());
        } else {
            self.credential(&parsed.access_key_id).await?
        };
        if !cred.active {
            return Err(AuthError::UnknownKey.into());
        }
        let now_s = self.ctx.now_ms().div_euclid(1000);
        sigv4::verify(head, body, &parsed, &cred.secret, now_s, &self.signing_keys)?;
        Ok(cred.principal)
    }

    /// `Authorization: Bearer <jwt>`: the call runs as a session of the role the request
    /// names (`X-Strongroom-Role`, or the provider's role claim), after the trust policy
    /// allowed the token as for AssumeRoleWithWebIdentity.
    fn authenticate_bearer(
        &self,
        head: &RequestHead,
        token: &str,
        draft: &mut Draft,
    ) -> Result<Principal, ApiError> {
        let region = head
            .header("x-strongroom-region")
            .map(str::to_owned)
            .or_else(|| self.regions.first().cloned())
            .unwrap_or_default();
        if !self.regions.contains(&region) {
            return Err(ApiError::InvalidRequest(format!(
                "This Strongroom server does not serve region '{}'. It serves: {}.",
                region.chars().take(64).collect::<String>(),
                self.regions.join(", ")
            )));
        }
        draft.region = region;
        let dir = self.identities.get();
        // Read (untrusted) only to pick the role and session name; the token is verified in
        // `session_for_token` before anything is decided.
        let unverified = crate::identity::jwt::unverified_claims(token)
            .map_err(|e| ApiError::InvalidIdentityToken(e.0))?;
        let claim_str = |name: &str| {
            unverified
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let role_arn = match head.header("x-strongroom-role") {
            Some(r) => r.to_owned(),
            None => {
                let issuer = claim_str("iss").unwrap_or_default();
                let claim = dir
                    .providers_for_issuer(&issuer)
                    .find_map(|p| p.spec.role_claim.clone())
                    .ok_or_else(|| {
                        ApiError::InvalidIdentityToken(
                            "No role named: send X-Strongroom-Role or configure the provider's RoleClaim.".into(),
                        )
                    })?;
                claim_str(&claim).ok_or_else(|| {
                    ApiError::InvalidIdentityToken(format!(
                        "The token has no `{claim}` claim naming a role."
                    ))
                })?
            }
        };
        let sub = claim_str("sub").unwrap_or_else(|| "web-identity".to_owned());
        let name = ops::sts::web_identity::session_name_from(&sub);
        let (claims, _verified, role) = ops::sts::web_identity::session_for_token(
            self, token, &role_arn, &name, 900, None, draft,
        )?;
        let mut principal = claims.principal(&role.tags);
        principal.access_key_id = "bearer-token".into();
        Ok(principal)
    }

    /// The credential of a temporary (STS) access key: the session token carries it.
    fn session_credential(&self, head: &RequestHead, akid: &str) -> Result<Credential, ApiError> {
        let token = head
            .header("x-amz-security-token")
            .ok_or(AuthError::UnknownKey)?;
        let keyring = &self.ctx.keyring;
        let claims = session::decode_token(token, akid, self.ctx.now_ms(), |id, sealed| {
            keyring
                .open_with_master(id, sealed, session::TOKEN_AAD)
                .ok()
        })
        .map_err(|e| match e {
            session::TokenError::Expired => ApiError::ExpiredToken(
                "The security token included in the request is expired".into(),
            ),
            session::TokenError::Invalid => AuthError::UnknownKey.into(),
        })?;
        let dir = self.identities.get();
        let role = dir
            .role_for_session(&claims.role_arn, &claims.role_id)
            .ok_or(AuthError::UnknownKey)?;
        Ok(Credential {
            secret: claims.secret_key(),
            principal: claims.principal(&role.tags),
            active: true,
        })
    }

    /// The principal owning a stored key, from the directory in force. A key whose user is
    /// no longer declared is refused like an unknown key.
    fn principal_of(&self, key: &StoredKey, access_key_id: &str) -> Option<Principal> {
        match &key.user_name {
            None => Some(Principal::root(&key.account, access_key_id)),
            Some(name) => {
                let dir = self.identities.get();
                let u = dir.user(&key.account, name)?;
                Some(Principal::user(
                    &u.account,
                    &u.arn,
                    &u.user_id,
                    &u.name,
                    u.tags.clone(),
                    access_key_id,
                ))
            }
        }
    }

    /// The credential of an access key id (the stored key cached for a few seconds).
    async fn credential(&self, access_key_id: &str) -> Result<Credential, ApiError> {
        let now = self.ctx.now_ms();
        let cached = {
            let cache = self
                .credentials
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache
                .get(access_key_id)
                .filter(|(_, at)| now - at < CREDENTIAL_TTL_MS)
                .map(|(k, _)| k.clone())
        };
        let key = match cached {
            Some(k) => k,
            None => {
                let key = self
                    .load_key(access_key_id)
                    .await?
                    .ok_or(AuthError::UnknownKey)?;
                let mut cache = self
                    .credentials
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(access_key_id.to_owned(), (key.clone(), now));
                key
            }
        };
        let principal = self
            .principal_of(&key, access_key_id)
            .ok_or(AuthError::UnknownKey)?;
        Ok(Credential {
            secret: key.secret,
            principal,
            active: key.active,
        })
    }

    async fn load_key(&self, access_key_id: &str) -> Result<Option<StoredKey>, ApiError> {
        let id = access_key_id.to_owned();
        let keyring = self.ctx.keyring.clone();
        self.ctx
            .store
            .read(move |tx| {
                let Some(row) = tx.access_key(&id)? else {
                    return Ok(None);
                };
                let secret = keyring.open_with_master(
                    row.master_key_id,
                    &row.secret_sealed,
                    &envelope::access_key_aad(&row.access_key_id),
                )?;
                let secret = String::from_utf8(secret.to_vec()).map_err(ApiError::internal)?;
                Ok(Some(StoredKey {
                    secret: SecretAccessKey::new(secret),
                    account: row.account_id,
                    user_name: row.user_name,
                    active: row.status == "Active",
                }))
            })
            .await
    }
}

/// An authenticated call on its way to an operation.
struct Call<'a> {
    pipeline: &'a Pipeline,
    principal: Principal,
    scope: Scope,
    body: &'a [u8],
}

async fn dispatch(
    service: Service,
    op: &str,
    call: Call<'_>,
    draft: &mut Draft,
) -> Result<Vec<u8>, ApiError> {
    use ops::*;
    match (service, op) {
        (Service::SecretsManager, "CreateSecret") => {
            run::<create_secret::CreateSecret>(call, draft).await
        }
        (Service::SecretsManager, "GetSecretValue") => {
            run::<get_secret_value::GetSecretValue>(call, draft).await
        }
        (Service::SecretsManager, "PutSecretValue") => {
            run::<put_secret_value::PutSecretValue>(call, draft).await
        }
        (Service::SecretsManager, "DescribeSecret") => {
            run::<describe_secret::DescribeSecret>(call, draft).await
        }
        (Service::SecretsManager, "UpdateSecret") => {
            run::<update_secret::UpdateSecret>(call, draft).await
        }
        (Service::SecretsManager, "ListSecrets") => {
            run::<list_secrets::ListSecrets>(call, draft).await
        }
        (Service::SecretsManager, "ListSecretVersionIds") => {
            run::<list_secret_version_ids::ListSecretVersionIds>(call, draft).await
        }
        (Service::SecretsManager, "UpdateSecretVersionStage") => {
            run::<update_secret_version_stage::UpdateSecretVersionStage>(call, draft).await
        }
        (Service::SecretsManager, "DeleteSecret") => {
            run::<delete_secret::DeleteSecret>(call, draft).await
        }
        (Service::SecretsManager, "RestoreSecret") => {
            run::<restore_secret::RestoreSecret>(call, draft).await
        }
        (Service::SecretsManager, "GetRandomPassword") => {
            run::<get_random_password::GetRandomPassword>(call, draft).await
        }
        (Service::SecretsManager, "TagResource") => {
            run::<tag_resource::TagResource>(call, draft).await
        }
        (Service::SecretsManager, "UntagResource") => {
            run::<untag_resource::UntagResource>(call, draft).await
        }
        (Service::SecretsManager, "BatchGetSecretValue") => {
            run::<batch_get_secret_value::BatchGetSecretValue>(call, draft).await
        }
        (Service::SecretsManager, "PutResourcePolicy") => {
            run::<put_resource_policy::PutResourcePolicy>(call, draft).await
        }
        (Service::SecretsManager, "GetResourcePolicy") => {
            run::<get_resource_policy::GetResourcePolicy>(call, draft).await
        }
        (Service::SecretsManager, "DeleteResourcePolicy") => {
            run::<delete_resource_policy::DeleteResourcePolicy>(call, draft).await
        }
        (Service::SecretsManager, "ValidateResourcePolicy") => {
            run::<validate_resource_policy::ValidateResourcePolicy>(call, draft).await
        }
        (Service::SecretsManager, name) if SM_NOT_BUILT.contains(&name) => Err(not_built(name)),
        (Service::Kms, name) => kms_ops::dispatch(name, ServiceCall { call, draft }).await,
        (Service::CloudTrail, name) => {
            cloudtrail::dispatch(name, ServiceCall { call, draft }).await
        }
        (Service::Sts | Service::Iam, name) => Err(ApiError::UnknownOperation(format!(
            "`{}` is a Query-protocol operation; send it form-encoded.",
            name.chars().take(64).collect::<String>()
        ))),
        (Service::SecretsManager, name) => Err(ApiError::UnknownOperation(format!(
            "The operation `{}` is not known to Secrets Manager.",
            name.chars().take(64).collect::<String>()
        ))),
    }
}

/// Query parameters that may be recorded as given (never tokens, secrets or policies).
fn safe_form_parameters(form: &protocol::query::Form) -> serde_json::Value {
    const SAFE: &[&str] = &[
        "Action",
        "Version",
        "RoleArn",
        "RoleSessionName",
        "DurationSeconds",
        "ExternalId",
        "PolicySourceArn",
        "ActionNames.member.1",
        "ResourceArns.member.1",
    ];
    serde_json::Value::Object(
        form.params
            .iter()
            .filter(|(k, _)| SAFE.contains(&k.as_str()))
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::Value::String(v.chars().take(512).collect()),
                )
            })
            .collect(),
    )
}

/// Secrets Manager operations that exist on AWS but are not built here yet.
const SM_NOT_BUILT: &[&str] = &[
    "RotateSecret",
    "CancelRotateSecret",
    "ReplicateSecretToRegions",
    "RemoveRegionsFromReplication",
    "StopReplicationToReplica",
    "ListResourcePolicies",
    "AssociateCrossAccountReplica",
    "DisassociateCrossAccountReplica",
];

pub(crate) fn not_built(name: &str) -> ApiError {
    ApiError::NotImplemented(format!(
        "{name} is not implemented by this Strongroom server yet."
    ))
}

/// A call to another service's operations (`ops::kms_ops::dispatch`, `ops::cloudtrail::dispatch`),
/// which picks the operation type and runs it through the same pipeline.
pub struct ServiceCall<'a, 'd> {
    call: Call<'a>,
    draft: &'d mut Draft,
}

impl std::fmt::Debug for ServiceCall<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceCall")
    }
}

impl ServiceCall<'_, '_> {
    /// Run KMS operation `O`.
    pub async fn run<O: Operation + 'static>(self) -> Result<Vec<u8>, ApiError>
    where
        O::Output: 'static,
    {
        run::<O>(self.call, self.draft).await
    }
}

/// Parse, validate, resolve, authorize, execute, encode.
async fn run<O: Operation + 'static>(call: Call<'_>, draft: &mut Draft) -> Result<Vec<u8>, ApiError>
where
    O::Output: 'static,
{
    draft.read_only = Some(O::READ_ONLY);
    let input: O::Input = protocol::parse_body(call.body)?;
    O::validate(&input)?;
    let pipeline = call.pipeline;
    let ctx = &pipeline.ctx;
    let (resolved, fetched) =
        resolve(ctx, &call.scope, O::target(&input), O::fetch_value(&input)).await?;
    draft.resource_arn = Some(resolved.arn.clone());
    let mut keys = O::context_keys(&input);
    keys.extend(resolved.keys.iter().cloned());
    for action in std::iter::once(O::ACTION).chain(O::extra_actions(&input)) {
        pipeline.authorize(
            &call.principal,
            &call.scope,
            action,
            &resolved,
            &keys,
            draft,
        )?;
    }
    let uses = O::key_uses(&input);
    if !uses.is_empty() {
        pipeline
            .authorize_key_uses(&call.principal, &call.scope, &resolved, uses, draft)
            .await?;
    }
    let per_secret = Arc::new(PerSecret {
        pipeline: pipeline.clone(),
        principal: call.principal.clone(),
        scope: call.scope.clone(),
        base: draft.clone(),
        events: Mutex::new(Vec::new()),
    });
    let authorizer: Arc<dyn ops::SecretAuthorizer> = per_secret.clone();
    let authorized = Authorized::mint(
        call.principal,
        call.scope,
        resolved.arn,
        resolved.secret,
        Some(authorizer),
    )
    .with_fetched(fetched);
    // A write's record goes into its own write transaction (see `audit::in_tx`).
    let in_tx = if O::READ_ONLY {
        None
    } else {
        pipeline
            .auditor
            .in_request_transaction(draft.clone(), Box::new(complete_with::<O>))
    };
    let scoped;
    let ctx = match &in_tx {
        Some(record) => {
            scoped = Ctx {
                store: ctx.store.with_hook(record.clone()),
                ..ctx.clone()
            };
            &scoped
        }
        None => ctx,
    };
    let output = O::handle(ctx, &authorized, input).await;
    draft.recorded_with_change = in_tx.is_some_and(|r| r.written());
    // One audit event per secret the operation authorized on its own (BatchGetSecretValue).
    let events = std::mem::take(
        &mut *per_secret
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    pipeline.auditor.record_all(&events).await?;
    serde_json::to_vec(&output?).map_err(ApiError::internal)
}

/// Completes a write's in-transaction record from the transaction's result: when it is the
/// operation's output, its identifiers become `responseElements` (as the pipeline does with
/// the response body otherwise).
fn complete_with<O: Operation + 'static>(result: &dyn std::any::Any, draft: &mut Draft) -> bool
where
    O::Output: 'static,
{
    draft.response_elements = result
        .downcast_ref::<O::Output>()
        .and_then(|o| serde_json::to_value(o).ok());
    true
}

/// Per-secret authorization inside an authorized request, with its audit events.
#[derive(Debug)]
struct PerSecret {
    pipeline: Pipeline,
    principal: Principal,
    scope: Scope,
    base: Draft,
    events: Mutex<Vec<Draft>>,
}

impl ops::SecretAuthorizer for PerSecret {
    fn authorize_secret(
        &self,
        action: &str,
        secret: &crate::store::rows::SecretRow,
        facts: &ops::SecretFacts,
    ) -> Result<(), ApiError> {
        let mut draft = self.base.clone();
        draft.request_id = uuid::Uuid::new_v4().to_string();
        draft.event_name = action.rsplit(':').next().unwrap_or(action).to_owned();
        draft.read_only = Some(true);
        draft.resource_arn = Some(secret.arn.clone());
        draft.request_parameters = serde_json::json!({ "secretId": secret.arn });
        let resolved = Resolved {
            arn: secret.arn.clone(),
            account: secret.account_id.clone(),
            secret: None,
            keys: secret_keys(secret, facts.tags.clone()),
            resource_policy: secret.resource_policy.clone(),
            compiled_policy: None,
            resource_required: false,
        };
        let result = self
            .pipeline
            .authorize(
                &self.principal,
                &self.scope,
                action,
                &resolved,
                &resolved.keys,
                &mut draft,
            )
            .and_then(|()| match (&facts.key, facts.key_action) {
                (Some(key), Some(key_action)) => self.pipeline.authorize_on_key(
                    &self.principal,
                    &self.scope,
                    key_action,
                    key,
                    Some(&secret.arn),
                    &mut draft,
                ),
                _ => Ok(()),
            });
        if let Err(e) = &result {
            draft.error_code = Some(e.code().to_owned());
            draft.error_message = Some(e.message().to_owned());
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
}

impl PerSecret {
    fn key_check(
        &self,
        action: &str,
        key: &crate::store::rows::KmsKeyRow,
        policy: &str,
    ) -> Result<(), ApiError> {
        let on_key = Resolved {
            arn: key.arn.clone(),
            account: key.account_id.clone(),
            secret: None,
            keys: Vec::new(),
            resource_policy: None,
            compiled_policy: Some(Arc::new(
                policy::Policy::parse(policy, policy::PolicyType::Resource)
                    .map_err(|e| ApiError::MalformedPolicyDocument(e.aws_message()))?
                    .with_label(&format!("{}:key-policy", key.arn)),
            )),
            resource_required: true,
        };
        let mut scratch = self.base.clone();
        self.pipeline.authorize(
            &self.principal,
            &self.scope,
            action,
            &on_key,
            &[],
            &mut scratch,
        )
    }
}

/// What a target resolved to: the ARN to authorize on, the secret when it exists, the
/// resource's condition keys (tags, SecretId) and its resource policy.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub arn: String,
    pub account: String,
    pub secret: Option<crate::store::rows::SecretRow>,
    pub keys: Vec<(String, Vec<String>)>,
    pub resource_policy: Option<String>,
    /// An already-compiled resource-side policy (a role's trust policy), used instead of
    /// `resource_policy`.
    pub compiled_policy: Option<Arc<policy::Policy>>,
    /// The resource policy must allow even in its own account (a KMS key policy).
    pub resource_required: bool,
}

impl Pipeline {
    /// Decide one action on a resolved resource; records the decision in the draft and
    /// answers AWS's AccessDeniedException wording when denied.
    pub fn authorize(
        &self,
        principal: &Principal,
        scope: &Scope,
        action: &str,
        resolved: &Resolved,
        keys: &[(String, Vec<String>)],
        draft: &mut Draft,
    ) -> Result<(), ApiError> {
        let dir = self.identities.get();
        let mut info = policy::PrincipalInfo::from_auth(principal);
        info.issuer_arn = principal.role_arn.clone().or(info.issuer_arn);
        info.user_name = principal
            .name
            .clone()
            .filter(|_| principal.kind == crate::auth::PrincipalKind::User);
        info.tags = principal.tags.clone();
        let mut rctx =
            policy::RequestContext::new(info, action, &resolved.arn, Some(&resolved.account))
                .with("aws:RequestedRegion", [scope.region.as_str()])
                .with_secure_transport(self.secure);
        if let Ok(now) =
            time::OffsetDateTime::from_unix_timestamp(self.ctx.now_ms().div_euclid(1000))
        {
            rctx = rctx.with_time(now);
        }
        if let Some(ip) = draft.source_ip.as_deref().and_then(|i| i.parse().ok()) {
            rctx = rctx.with_source_ip(ip);
        }
        if let Some(org) = &dir.org_id {
            let in_org = |account: &str| {
                dir.scps.contains_key(account) || dir.management_account.as_deref() == Some(account)
            };
            if in_org(&principal.account_id) {
                rctx = rctx.with("aws:PrincipalOrgID", [org.as_str()]);
                if let Some(path) = dir.org_paths.get(&principal.account_id) {
                    rctx = rctx.with("aws:PrincipalOrgPaths", [path.as_str()]);
                }
            }
            if resolved.arn != "*" && in_org(&resolved.account) {
                rctx = rctx.with("aws:ResourceOrgID", [org.as_str()]);
            }
        }
        // Temporary credentials: issued without MFA (present and false, as AWS sets it);
        // long-term access keys leave the key absent.
        if let Some(session) = &principal.session {
            rctx = rctx.with("aws:MultiFactorAuthPresent", ["false"]);
            if let Ok(t) =
                time::OffsetDateTime::from_unix_timestamp(session.created_ms.div_euclid(1000))
            {
                if let Ok(text) = t.format(&time::format_description::well_known::Rfc3339) {
                    rctx = rctx.with("aws:TokenIssueTime", [text.as_str()]);
                }
            }
        }
        if action.starts_with("kms:") {
            rctx = rctx.with("kms:CallerAccount", [principal.account_id.as_str()]);
        }
        for (k, v) in keys {
            rctx = rctx.with(k, v.iter().map(String::as_str));
        }
        let set = self.policy_set(principal, resolved, &dir);
        let decision = policy::authorize(&rctx, &set);
        record_decision(draft, &decision);
        if decision.is_allowed() {
            return Ok(());
        }
        Err(ApiError::AccessDenied(
            policy::denial_message(&rctx, &decision).unwrap_or_else(|| {
                format!(
                    "User: {} is not authorized to perform: {action} on resource: {}",
                    principal.arn, resolved.arn
                )
            }),
        ))
    }

    /// Decide the KMS actions an operation performs on the caller's behalf, each with the
    /// key's key policy (IAM.md §5.7). The AWS managed key allows every principal of its
    /// account through Secrets Manager and no other account (checked by the operations); a
    /// key that does not exist is reported by the operation itself.
    async fn authorize_key_uses(
        &self,
        principal: &Principal,
        scope: &Scope,
        resolved: &Resolved,
        uses: Vec<ops::KeyUse>,
        draft: &mut Draft,
    ) -> Result<(), ApiError> {
        let secret_key = resolved.secret.as_ref().and_then(|s| s.kms_key_id.clone());
        let wanted: Vec<(&'static str, bool, String)> = uses
            .into_iter()
            .filter_map(|u| match u {
                ops::KeyUse::SecretKey(a) => secret_key.clone().map(|k| (a, true, k)),
                ops::KeyUse::Named(a, id) => Some((a, false, id)),
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let (account, region) = (scope.account.clone(), scope.region.clone());
        let keys = self
            .ctx
            .store
            .read(move |tx| {
                let mut out = Vec::with_capacity(wanted.len());
                for (action, by_id, id) in &wanted {
                    let key = if *by_id {
                        tx.kms_key(id)?
                    } else {
                        crate::kms::resolve_key(tx, &account, &region, id, |_| {
                            Err(ApiError::KmsNotFound(String::new()))
                        })
                        .ok()
                        .flatten()
                    };
                    out.push((*action, key));
                }
                Ok(out)
            })
            .await?;
        let secret_arn = resolved.secret.as_ref().map(|s| s.arn.as_str());
        for (action, key) in keys {
            if let Some(key) = key {
                self.authorize_on_key(principal, scope, action, &key, secret_arn, draft)?;
            }
        }
        Ok(())
    }

    /// Decide `action` on the KMS key `key` for Secrets Manager acting on the caller's
    /// behalf (on `secret_arn`), with the key policy required. The AWS managed key is left to
    /// the operations (any principal of its account, no other account). A denial keeps the
    /// request's own decision record but for the deciding KMS decision.
    fn authorize_on_key(
        &self,
        principal: &Principal,
        scope: &Scope,
        action: &str,
        key: &crate::store::rows::KmsKeyRow,
        secret_arn: Option<&str>,
        draft: &mut Draft,
    ) -> Result<(), ApiError> {
        if key.key_manager == "AWS" {
            return Ok(());
        }
        // (`authorize` adds kms:CallerAccount to every kms: action.)
        let mut keys = vec![(
            "kms:ViaService".to_owned(),
            vec![crate::kms::key_policy::via_service(&key.region)],
        )];
        if let Some(arn) = secret_arn {
            keys.push((
                "kms:EncryptionContext:SecretARN".to_owned(),
                vec![arn.to_owned()],
            ));
        }
        let on_key = Resolved {
            arn: key.arn.clone(),
            account: key.account_id.clone(),
            secret: None,
            keys: Vec::new(),
            resource_policy: Some(crate::kms::key_policy::effective(key)),
            compiled_policy: None,
            resource_required: true,
        };
        let mut scratch = draft.clone();
        self.authorize(principal, scope, action, &on_key, &keys, &mut scratch)
            .map_err(|e| {
                draft.decision = scratch.decision.take();
                draft.decision_reason = scratch.decision_reason.take();
                draft.deciding_policy_type = scratch.deciding_policy_type.take();
                draft.policy_id = scratch.policy_id.take();
                draft.statement = scratch.statement.take();
                ApiError::AccessDenied(format!("{}. Access to KMS is not allowed", e.message()))
            })
    }

    /// Every policy that takes part in a decision for `principal` on `resolved`.
    fn policy_set(
        &self,
        principal: &Principal,
        resolved: &Resolved,
        dir: &crate::identity::Directory,
    ) -> policy::PolicySet {
        let mut set = policy::PolicySet::default();
        match principal.kind {
            crate::auth::PrincipalKind::Root => {}
            crate::auth::PrincipalKind::User => {
                if let Some(u) = principal
                    .name
                    .as_deref()
                    .and_then(|n| dir.user(&principal.account_id, n))
                {
                    set.identity = Arc::clone(&u.identity_group);
                    set.boundary = u.boundary.as_ref().and_then(|b| b.compiled.clone());
                }
            }
            crate::auth::PrincipalKind::AssumedRole => {
                if let Some(r) = principal
                    .role_arn
                    .as_deref()
                    .and_then(|a| dir.role_by_arn(a))
                {
                    set.identity = Arc::clone(&r.identity_group);
                    set.boundary = r.boundary.as_ref().and_then(|b| b.compiled.clone());
                }
                if let Some(text) = principal.session.as_ref().and_then(|s| s.policy.as_deref()) {
                    set.session = Some(Arc::new(policy::PolicyGroup::new(
                        self.compiled_session_policy(text).into_iter().collect(),
                    )));
                }
            }
        }
        if dir.management_account.as_deref() != Some(principal.account_id.as_str()) {
            if let Some(levels) = dir.scp_groups.get(&principal.account_id) {
                set.scp = Some(levels.clone());
            }
        }
        set.resource_required = resolved.resource_required;
        if let Some(p) = &resolved.compiled_policy {
            set.resource = Some(Arc::clone(p));
        } else if let Some(text) = &resolved.resource_policy {
            set.resource = self.compiled_resource_policy(&resolved.arn, text);
        }
        set
    }

    /// A session policy, compiled once per distinct text.
    pub fn compiled_session_policy(&self, text: &str) -> Option<Arc<policy::Policy>> {
        self.compiled(text, policy::PolicyType::Session, ("session-policy", ""))
    }

    /// A secret's resource policy, compiled once per distinct text.
    fn compiled_resource_policy(&self, arn: &str, text: &str) -> Option<Arc<policy::Policy>> {
        self.compiled(
            text,
            policy::PolicyType::Resource,
            (arn, ":resource-policy"),
        )
    }

    /// `text` compiled as a `kind` policy labelled `label.0 + label.1`, from the cache when
    /// it was compiled before (under any label).
    fn compiled(
        &self,
        text: &str,
        kind: policy::PolicyType,
        label: (&str, &str),
    ) -> Option<Arc<policy::Policy>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        kind.hash(&mut h);
        text.hash(&mut h);
        let key = h.finish();
        let same = |e: &CachedPolicy| e.kind == kind && e.text == text;
        let label = format!("{}{}", label.0, label.1);
        {
            let cache = self
                .policies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(e) = cache.get(&key).and_then(|v| v.iter().find(|e| same(e))) {
                return Some(Arc::new(e.policy.relabelled(&label)));
            }
        }
        let compiled = policy::Policy::parse(text, kind).ok()?;
        let labelled = Arc::new(compiled.relabelled(&label));
        let mut cache = self
            .policies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() > POLICY_CACHE_MAX {
            cache.clear();
        }
        let bucket = cache.entry(key).or_default();
        if !bucket.iter().any(same) {
            bucket.push(CachedPolicy {
                kind,
                text: text.to_owned(),
                policy: compiled,
            });
        }
        Some(labelled)
    }
}

/// The decision into the audit record's `authorization` block: the effect, the reason in one
/// line, and the first deciding statement (its policy's type, id or ARN, and Sid or index).
/// An implicit deny has no deciding statement; its reason says which policy type was missing.
fn record_decision(draft: &mut audit::Draft, d: &policy::Decision) {
    draft.decision = Some(d.effect.as_str().to_owned());
    draft.decision_reason = Some(describe_decision(d));
    let first = d.deciding.first();
    draft.deciding_policy_type = first.map(|m| format!("{:?}", m.policy_type));
    draft.policy_id = first.map(|m| m.policy_id.to_string());
    draft.statement = first.map(policy::MatchedStatement::sid_or_index);
}

/// The decision in one line for the audit record: effect, deciding policy and statement.
fn describe_decision(d: &policy::Decision) -> String {
    let by: Vec<String> = d
        .deciding
        .iter()
        .map(|m| format!("{:?} {} #{}", m.policy_type, m.policy_id, m.sid_or_index()))
        .collect();
    if by.is_empty() {
        format!("{:?}", d.reason)
    } else {
        format!("{:?} by {}", d.reason, by.join(", "))
    }
}

/// Resolve a target to the ARN to authorize on (and the secret, when it exists). With
/// `fetch`, a secret's selected version is read (sealed) in the same read transaction; what
/// that read found, value or error, is for the operation to use once authorized.
async fn resolve(
    ctx: &Ctx,
    scope: &Scope,
    target: Target,
    fetch: Option<ops::values::VersionSelector>,
) -> Result<(Resolved, Option<Fetched>), ApiError> {
    match target {
        Target::Secret(id) => resolve_secret(ctx, scope, id, fetch).await,
        other => Ok((resolve_other(ctx, scope, other).await?, None)),
    }
}

/// A value fetched with its secret, or why it could not be.
type Fetched = Result<ops::values::FetchedValue, ApiError>;

/// [`resolve`] for a SecretId: the secret, its tags and (with `fetch`) the value to read, in
/// one short read transaction.
async fn resolve_secret(
    ctx: &Ctx,
    scope: &Scope,
    id: String,
    fetch: Option<ops::values::VersionSelector>,
) -> Result<(Resolved, Option<Fetched>), ApiError> {
    let (account, region) = (scope.account.clone(), scope.region.clone());
    let keyring = ctx.keyring.clone();
    let found = ctx
        .store
        .read_point(move |tx| {
            let mut found = tx.find_secret(&account, &region, &id)?;
            // Another account's secret is addressed by its full ARN.
            if found.is_none() && id.starts_with("arn:") {
                found = tx.secret_by_arn(&id)?.filter(|s| s.region == region);
            }
            match found {
                Some(secret) => {
                    let tags = tx.tags(&secret.secret_id)?;
                    let fetched = fetch.map(|sel| {
                        ops::values::fetch_value(
                            tx,
                            &keyring,
                            &secret,
                            sel.version_id.as_deref(),
                            sel.stage.as_deref(),
                        )
                    });
                    Ok(Ok((secret, tags, fetched)))
                }
                None => Ok(Err(id)),
            }
        })
        .await?;
    match found {
        Ok((secret, tags, fetched)) => {
            let keys = secret_keys(&secret, tags);
            let resolved = Resolved {
                arn: secret.arn.clone(),
                account: secret.account_id.clone(),
                resource_policy: secret.resource_policy.clone(),
                compiled_policy: None,
                resource_required: false,
                secret: Some(secret),
                keys,
            };
            Ok((resolved, fetched))
        }
        Err(id) => {
            let arn = crate::secrets::would_be_arn(&scope.region, &scope.account, &id);
            let resolved = Resolved {
                arn: arn.clone(),
                account: scope.account.clone(),
                secret: None,
                keys: vec![("secretsmanager:SecretId".to_owned(), vec![arn])],
                resource_policy: None,
                compiled_policy: None,
                resource_required: false,
            };
            Ok((resolved, None))
        }
    }
}

/// [`resolve`] for targets other than a SecretId.
async fn resolve_other(ctx: &Ctx, scope: &Scope, target: Target) -> Result<Resolved, ApiError> {
    let base = |arn: String| Resolved {
        arn,
        account: scope.account.clone(),
        secret: None,
        keys: Vec::new(),
        resource_policy: None,
        compiled_policy: None,
        resource_required: false,
    };
    match target {
        Target::Any => Ok(base("*".to_owned())),
        Target::NewSecret(name) => Ok(base(crate::secrets::secret_arn(
            &scope.region,
            &scope.account,
            &name,
            &crate::secrets::arn_suffix(),
        ))),
        Target::Secret(id) => Ok(resolve_secret(ctx, scope, id, None).await?.0),
        Target::KmsKey(id) => {
            let (account, region) = (scope.account.clone(), scope.region.clone());
            let key = ctx
                .store
                .read(move |tx| {
                    let key = crate::kms::resolve_key(tx, &account, &region, &id, |_| {
                        Err(ApiError::KmsNotFound("not created yet".into()))
                    });
                    Ok(match key {
                        Ok(Some(k)) => Ok(k),
                        _ => Err(format!("arn:aws:kms:{region}:{account}:key/{id}")),
                    })
                })
                .await?;
            Ok(match key {
                // An existing key is decided with its key policy, which must allow.
                Ok(k) => Resolved {
                    resource_policy: Some(crate::kms::key_policy::effective(&k)),
                    resource_required: true,
                    account: k.account_id,
                    ..base(k.arn)
                },
                Err(arn) => base(arn),
            })
        }
    }
}

/// A secret's own condition keys: `secretsmanager:SecretId`, its tags as
/// `aws:ResourceTag/k` and `secretsmanager:ResourceTag/k`, its primary region.
fn secret_keys(
    secret: &crate::store::rows::SecretRow,
    tags: Vec<(String, String)>,
) -> Vec<(String, Vec<String>)> {
    let mut keys = Vec::with_capacity(2 + 2 * tags.len());
    keys.push((
        "secretsmanager:SecretId".to_owned(),
        vec![secret.arn.clone()],
    ));
    for (k, v) in tags {
        keys.push((format!("aws:ResourceTag/{k}"), vec![v.clone()]));
        keys.push((format!("secretsmanager:ResourceTag/{k}"), vec![v]));
    }
    if let Some(p) = &secret.primary_region {
        keys.push((
            "secretsmanager:SecretPrimaryRegion".to_owned(),
            vec![p.clone()],
        ));
    }
    keys
}
