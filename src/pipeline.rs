//! THE request: decode → authenticate → parse → resolve → authorize → execute → audit → encode.
//!
//! `handle` is the only caller of `Authorized::mint`, after `policy::evaluate` allowed the
//! request. Every request, whatever happens, gets an audit record before its response; if
//! the record cannot be written the response is `InternalServiceError`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::audit::{self, Auditor, Draft};
use crate::auth::sigv4::{self, SigningKeyCache};
use crate::auth::{AuthError, Credential, Principal, RequestHead, SecretAccessKey};
use crate::crypto::envelope;
use crate::error::ApiError;
use crate::ops::{self, Authorized, Ctx, Operation, Scope, Target};
use crate::policy::{self, AuthzRequest};
use crate::protocol::{self, Service};

/// Shared server state.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub ctx: Ctx,
    pub auditor: Auditor,
    pub regions: Arc<Vec<String>>,
    signing_keys: Arc<SigningKeyCache>,
    credentials: Arc<Mutex<HashMap<String, (Credential, i64)>>>,
}

/// How long a looked-up credential is trusted before it is read again.
const CREDENTIAL_TTL_MS: i64 = 5_000;

/// A finished response: status, JSON body, request id.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub request_id: String,
}

impl Pipeline {
    pub fn new(ctx: Ctx, auditor: Auditor, regions: Vec<String>) -> Self {
        Self {
            ctx,
            auditor,
            regions: Arc::new(regions),
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
        let result = self.run(&head, body, &mut draft).await;
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
        match result {
            Ok(body) => Reply {
                status: 200,
                body,
                request_id,
            },
            Err(e) => Reply {
                status: e.status(),
                body: e.body().into_bytes(),
                request_id,
            },
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
        let cred = self.credential(&parsed.access_key_id).await?;
        if !cred.active {
            return Err(AuthError::UnknownKey.into());
        }
        let now_s = self.ctx.now_ms().div_euclid(1000);
        sigv4::verify(head, body, &parsed, &cred.secret, now_s, &self.signing_keys)?;
        Ok(cred.principal)
    }

    /// The credential of an access key id (cached for a few seconds).
    async fn credential(&self, access_key_id: &str) -> Result<Credential, ApiError> {
        let now = self.ctx.now_ms();
        {
            let cache = self
                .credentials
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((c, at)) = cache.get(access_key_id) {
                if now - at < CREDENTIAL_TTL_MS {
                    return Ok(c.clone());
                }
            }
        }
        let id = access_key_id.to_owned();
        let keyring = self.ctx.keyring.clone();
        let cred = self
            .ctx
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
                let principal = match &row.user_name {
                    None => Principal::root(&row.account_id, &row.access_key_id),
                    Some(_) => return Ok(None), // users arrive with the identities issue
                };
                Ok(Some(Credential {
                    secret: SecretAccessKey::new(secret),
                    principal,
                    active: row.status == "Active",
                }))
            })
            .await?
            .ok_or(AuthError::UnknownKey)?;
        let mut cache = self
            .credentials
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(access_key_id.to_owned(), (cred.clone(), now));
        Ok(cred)
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
        (Service::SecretsManager, name) => Err(ApiError::UnknownOperation(format!(
            "The operation `{}` is not known to Secrets Manager.",
            name.chars().take(64).collect::<String>()
        ))),
    }
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
