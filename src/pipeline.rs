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
use crate::policy::{self, AuthzRequest};
use crate::protocol::{self, Service};

/// Shared server state.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub ctx: Ctx,
    pub auditor: Auditor,
    pub regions: Arc<Vec<String>>,
    pub identities: Arc<Live>,
    signing_keys: Arc<SigningKeyCache>,
    credentials: Arc<Mutex<HashMap<String, (StoredKey, i64)>>>,
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
            signing_keys: Arc::new(SigningKeyCache::new()),
            credentials: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Handle one request.
    pub async fn handle(&self, head: RequestHead, source_ip: Option<String>, body: &[u8]) -> Reply {
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
        let result = match self.auditor.record(&draft).await {
            Ok(()) => result,
            Err(e) => {
                tracing::error!(request_id = %request_id, "audit write failed, failing closed: {e:?}");
                Err(ApiError::internal("audit write failed"))
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
            .role_by_arn(&claims.role_arn)
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
    "GetResourcePolicy",
    "PutResourcePolicy",
    "DeleteResourcePolicy",
    "ValidateResourcePolicy",
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
    pub async fn run<O: Operation>(self) -> Result<Vec<u8>, ApiError> {
        run::<O>(self.call, self.draft).await
    }
}

/// Parse, validate, resolve, authorize, execute, encode.
async fn run<O: Operation>(call: Call<'_>, draft: &mut Draft) -> Result<Vec<u8>, ApiError> {
    draft.read_only = Some(O::READ_ONLY);
    let input: O::Input = protocol::parse_body(call.body)?;
    O::validate(&input)?;
    let ctx = &call.pipeline.ctx;
    let (resource_arn, secret) = resolve(ctx, &call.scope, O::target(&input)).await?;
    draft.resource_arn = Some(resource_arn.clone());
    let decision = policy::evaluate(&AuthzRequest {
        principal: &call.principal,
        action: O::ACTION,
        resource: &resource_arn,
        resource_account: &call.scope.account,
    });
    draft.decision = Some(
        if decision.is_allowed() {
            "Allow"
        } else {
            "Deny"
        }
        .to_owned(),
    );
    draft.decision_reason = Some(format!("{:?}", decision.reason));
    if !decision.is_allowed() {
        return Err(ApiError::AccessDenied(format!(
            "User: {} is not authorized to perform: {} on resource: {} because no identity-based policy allows the {} action",
            call.principal.arn, O::ACTION, resource_arn, O::ACTION
        )));
    }
    let authorized = Authorized::mint(call.principal, call.scope, resource_arn, secret);
    let output = O::handle(ctx, &authorized, input).await?;
    serde_json::to_vec(&output).map_err(ApiError::internal)
}

/// Resolve a target to the ARN to authorize on (and the secret, when it exists).
async fn resolve(
    ctx: &Ctx,
    scope: &Scope,
    target: Target,
) -> Result<(String, Option<crate::store::rows::SecretRow>), ApiError> {
    match target {
        Target::Any => Ok(("*".to_owned(), None)),
        Target::Secret(id) => {
            let (account, region) = (scope.account.clone(), scope.region.clone());
            let found = ctx
                .store
                .read(move |tx| Ok(tx.find_secret(&account, &region, &id)?.ok_or(id)))
                .await?;
            match found {
                Ok(secret) => Ok((secret.arn.clone(), Some(secret))),
                Err(id) => Ok((
                    crate::secrets::would_be_arn(&scope.region, &scope.account, &id),
                    None,
                )),
            }
        }
        Target::KmsKey(id) => {
            let (account, region) = (scope.account.clone(), scope.region.clone());
            let arn = ctx
                .store
                .read(move |tx| {
                    let key = crate::kms::resolve_key(tx, &account, &region, &id, |_| {
                        Err(ApiError::KmsNotFound("not created yet".into()))
                    });
                    Ok(match key {
                        Ok(Some(k)) => k.arn,
                        _ => format!("arn:aws:kms:{region}:{account}:key/{id}"),
                    })
                })
                .await?;
            Ok((arn, None))
        }
    }
}
