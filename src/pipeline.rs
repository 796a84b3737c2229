//! THE request, as a table of contents: decode → authenticate (`authn`) → parse → resolve
//! and authorize (`authz`) → execute (`ops`) → audit → encode.
//!
//! Every request, whatever happens, gets an audit record before its response; if the record
//! cannot be written the response is `InternalServiceError`. The one exception: refusals of
//! callers the server does not know, beyond a budget per source, are counted into a summary
//! record instead (`audit::unauthenticated`). Operations run only with the `Authorized` proof
//! that `authz` alone constructs.

use std::sync::Arc;

use crate::audit::{self, Auditor, Draft};
use crate::auth::{Principal, RequestHead};
use crate::authn::{self, Authenticator};
use crate::authz::Authz;
use crate::error::ApiError;
use crate::identity::live::Live;
use crate::ops::{self, Ctx, Operation, Scope};
use crate::protocol::{self, Service};

/// Shared server state.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub ctx: Ctx,
    pub auditor: Auditor,
    pub regions: Arc<Vec<String>>,
    pub identities: Arc<Live>,
    pub authn: Authenticator,
    pub authz: Authz,
    /// Whether the listener is TLS (`aws:SecureTransport`, with a trusted proxy's
    /// `X-Forwarded-Proto`).
    pub secure: bool,
    /// Reverse proxies whose X-Forwarded-For is believed for `aws:SourceIp`.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// A shared lock on the master key file's lock file, held while this server runs so
    /// that `master-key rotate` refuses to run beside it.
    pub master_key_lock: Option<Arc<std::fs::File>>,
    /// Prometheus metrics, when `--metrics-listen` is set.
    pub metrics: crate::metrics::Shared,
    /// Request-rate quotas, when configured (`--quotas`).
    pub quotas: Option<Arc<crate::quota::Quotas>>,
    /// The replication outbox's depth and lag per peer region (the metrics' gauges).
    pub replication: crate::replication::SharedStats,
    /// How many refusals of unknown callers are recorded one by one (the rest are counted
    /// and summarized: `audit::unauthenticated`).
    pub unauthenticated: Arc<audit::unauthenticated::Budget>,
}

/// What the transport says about a request's caller (see `server::peer_of`).
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// `aws:SourceIp` and the record's `sourceIPAddress`.
    pub source_ip: Option<String>,
    /// `aws:SecureTransport`.
    pub secure: bool,
}

/// What the web console asks of [`Pipeline::handle_as`].
#[derive(Debug)]
pub struct ConsoleCall<'a> {
    pub service: Service,
    /// The operation, as `X-Amz-Target` would name it.
    pub op: &'a str,
    pub region: &'a str,
    /// The operation's JSON input.
    pub body: &'a [u8],
    pub peer: &'a Peer,
    pub user_agent: Option<&'a str>,
}

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
        let regions = Arc::new(regions);
        let ctx = Ctx {
            regions: Arc::clone(&regions),
            ..ctx
        };
        let authz = Authz::new(ctx.clone(), Arc::clone(&identities));
        Self {
            authn: Authenticator::new(ctx.clone(), authz.clone(), Arc::clone(&regions)),
            authz,
            ctx,
            auditor,
            regions,
            identities,
            secure: false,
            trusted_proxies: Arc::new(Vec::new()),
            master_key_lock: None,
            metrics: None,
            quotas: None,
            replication: Arc::default(),
            unauthenticated: Arc::new(audit::unauthenticated::Budget::new(
                audit::unauthenticated::Limits::default(),
            )),
        }
    }

    /// Whether the refusal `draft` is recorded one by one: always for a known caller or a
    /// policy decision (a web identity's trust decision); for a caller refused before it
    /// was known, within [`audit::unauthenticated::Budget`]'s budget (otherwise it was
    /// counted for its source's summary).
    fn records_refusal(&self, draft: &Draft) -> bool {
        draft.principal.is_some() || draft.decision.is_some() || self.unauthenticated.admit(draft)
    }

    /// Record the summaries of unauthenticated refusals whose minute is over (all of them
    /// when `all`, at a stop); those that cannot be written are kept for the next call.
    pub async fn record_unauthenticated_summaries(&self, all: bool) {
        let limits = self.unauthenticated.limits();
        let due = self.unauthenticated.take_due(self.ctx.now_ms(), all);
        let mut failed = Vec::new();
        for tally in due {
            if let Err(e) = self.auditor.record(&tally.draft(limits)).await {
                tracing::error!("recording a summary of unauthenticated requests failed: {e:?}");
                failed.push(tally);
            }
        }
        if !failed.is_empty() {
            self.unauthenticated.put_back(failed);
        }
    }

    /// Handle one request.
    pub async fn handle(&self, head: RequestHead, peer: Peer, body: &[u8]) -> Reply {
        let started = std::time::Instant::now();
        let _in_flight = self.auditor.begin();
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut draft = Draft {
            request_id: request_id.clone(),
            event_time_ms: self.ctx.now_ms(),
            source_ip: peer.source_ip,
            secure_transport: peer.secure,
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
        self.finish(started, draft, result, query).await
    }

    /// A JSON-protocol call made by the web console (`console`) for the principal of its
    /// session: the same parse, authorization, operation and audit as a signed request, the
    /// console session standing in for the signature.
    pub async fn handle_as(&self, principal: &Arc<Principal>, call: ConsoleCall<'_>) -> Reply {
        let started = std::time::Instant::now();
        let _in_flight = self.auditor.begin();
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut draft = Draft {
            request_id,
            event_time_ms: self.ctx.now_ms(),
            source_ip: call.peer.source_ip.clone(),
            secure_transport: call.peer.secure,
            user_agent: call.user_agent.map(|u| u.chars().take(256).collect()),
            event_source: call.service.event_source().to_owned(),
            event_name: call.op.to_owned(),
            region: call.region.to_owned(),
            request_parameters: audit::safe_request_parameters(call.body),
            principal: Some(principal.clone()),
            ..Draft::default()
        };
        let scope = Scope {
            account: principal.account_id.clone(),
            region: call.region.to_owned(),
        };
        let quota = match (&self.quotas, call.service) {
            (Some(q), Service::SecretsManager) => q.check(&scope.account, &scope.region, call.op),
            _ => Ok(()),
        };
        let result = match quota {
            Ok(()) => {
                let c = Call {
                    pipeline: self,
                    principal: principal.clone(),
                    scope,
                    body: call.body,
                };
                dispatch(call.service, call.op, c, &mut draft).await
            }
            Err(e) => Err(e),
        };
        self.finish(started, draft, result, false).await
    }

    /// An IAM Query-protocol call (the policy simulator) made by the web console for the
    /// principal of its session, like [`Pipeline::handle_as`].
    pub async fn handle_query_as(
        &self,
        principal: &Arc<Principal>,
        params: &[(String, String)],
        region: &str,
        peer: &Peer,
        user_agent: Option<&str>,
    ) -> Reply {
        let started = std::time::Instant::now();
        let _in_flight = self.auditor.begin();
        let request_id = uuid::Uuid::new_v4().to_string();
        let form = protocol::query::Form {
            params: params.to_vec(),
        };
        let action = form.get("Action").unwrap_or_default().to_owned();
        let mut draft = Draft {
            request_id: request_id.clone(),
            event_time_ms: self.ctx.now_ms(),
            source_ip: peer.source_ip.clone(),
            secure_transport: peer.secure,
            user_agent: user_agent.map(|u| u.chars().take(256).collect()),
            event_source: Service::Iam.event_source().to_owned(),
            event_name: action.chars().take(64).collect(),
            region: region.to_owned(),
            request_parameters: protocol::query::safe_parameters(&form),
            principal: Some(principal.clone()),
            ..Draft::default()
        };
        let call = ops::query::QueryCall {
            pipeline: self,
            principal: Some(principal.clone()),
            region: region.to_owned(),
            request_id: &request_id,
        };
        let result = ops::query::dispatch(Service::Iam, &action, call, &form, &mut draft).await;
        self.finish(started, draft, result, true).await
    }

    /// Record the request (fail closed) and encode its answer.
    async fn finish(
        &self,
        started: std::time::Instant,
        mut draft: Draft,
        result: Result<Vec<u8>, ApiError>,
        query: bool,
    ) -> Reply {
        let request_id = draft.request_id.clone();
        if let Err(e) = &result {
            // The code the caller gets: the Query protocol's (`AccessDenied`) for STS and IAM.
            draft.error_code = Some(if query {
                protocol::query::error_code(e).0.to_owned()
            } else {
                e.code().to_owned()
            });
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
        } else if result.is_err() && !draft.recorded_with_change && !self.records_refusal(&draft) {
            // Counted for its source's summary.
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
        if let Some(m) = &self.metrics {
            m.observe(started, &draft, &result);
        }
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
    pub async fn refuse(&self, head: &RequestHead, peer: Peer, e: ApiError) -> Reply {
        let started = std::time::Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut draft = Draft {
            request_id: request_id.clone(),
            event_time_ms: self.ctx.now_ms(),
            source_ip: peer.source_ip,
            secure_transport: peer.secure,
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
        let recorded = if self.records_refusal(&draft) {
            self.auditor.record(&draft).await
        } else {
            // Counted for its source's summary.
            Ok(())
        };
        let e = match recorded {
            Ok(()) => e,
            Err(err) => {
                tracing::error!(request_id = %request_id, "audit write failed, failing closed: {err:?}");
                ApiError::internal("audit write failed")
            }
        };
        if let Some(m) = &self.metrics {
            m.observe(started, &draft, &Err(e.clone()));
        }
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
        // An operation name: recorded as the event name only when shaped like one.
        if action.is_empty()
            || action.len() > 64
            || !action.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ApiError::UnknownOperation(
                "The Action parameter does not name an operation.".into(),
            ));
        }
        draft.event_name.clone_from(&action);
        // AssumeRoleWithWebIdentity is unsigned (on AWS too): its token is the credential,
        // and its parameters are recorded as they come. Other actions' parameters only once
        // the caller is authenticated (see `run`).
        let (service, principal) = if action == "AssumeRoleWithWebIdentity" {
            draft.request_parameters = protocol::query::safe_parameters(&form);
            (Service::Sts, None)
        } else if authn::bearer_token(head).is_some() {
            // A bearer caller has no credential scope: the action names the service.
            let service = protocol::query_service_of_action(&action);
            draft.event_source = service.event_source().to_owned();
            let principal = self.authn.authenticate(head, body, service, draft).await?;
            (service, Some(principal))
        } else {
            let parsed = crate::auth::sigv4::parse(head)?;
            let service = protocol::query_service(&parsed.service).ok_or_else(|| {
                ApiError::InvalidSignature(
                    "Credential should be scoped to correct service: 'sts' or 'iam'. ".into(),
                )
            })?;
            draft.event_source = service.event_source().to_owned();
            let principal = self.authn.authenticate(head, body, service, draft).await?;
            (service, Some(principal))
        };
        draft.event_source = service.event_source().to_owned();
        if principal.is_some() {
            draft.request_parameters = protocol::query::safe_parameters(&form);
        }
        draft.principal.clone_from(&principal);
        let request_id = draft.request_id.clone();
        let call = ops::query::QueryCall {
            pipeline: self,
            principal,
            region: draft.region.clone(),
            request_id: &request_id,
        };
        ops::query::dispatch(service, &action, call, &form, draft).await
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
        protocol::check_content_type(head.header("content-type"))?;

        let principal = self.authn.authenticate(head, body, service, draft).await?;
        // Only an authenticated request's parameters are recorded: a request refused at
        // authentication is recorded with what its headers say, so that callers with no
        // credentials (and no quota) cannot write the body's kept members (up to 100 KB)
        // into the trail with every request.
        draft.request_parameters = audit::safe_request_parameters(body);
        let scope = Scope {
            account: principal.account_id.clone(),
            region: draft.region.clone(),
        };
        draft.principal = Some(principal.clone());
        if let (Some(q), Service::SecretsManager) = (&self.quotas, service) {
            q.check(&scope.account, &scope.region, &op)?;
        }
        let call = Call {
            pipeline: self,
            principal,
            scope,
            body,
        };
        dispatch(service, &op, call, draft).await
    }
}

/// An authenticated call on its way to an operation.
struct Call<'a> {
    pipeline: &'a Pipeline,
    principal: Arc<Principal>,
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
        (Service::SecretsManager, "RotateSecret") => {
            run::<rotate_secret::RotateSecret>(call, draft).await
        }
        (Service::SecretsManager, "CancelRotateSecret") => {
            run::<cancel_rotate_secret::CancelRotateSecret>(call, draft).await
        }
        (Service::SecretsManager, "ValidateResourcePolicy") => {
            run::<validate_resource_policy::ValidateResourcePolicy>(call, draft).await
        }
        (Service::SecretsManager, "ListResourcePolicies") => {
            run::<list_resource_policies::ListResourcePolicies>(call, draft).await
        }
        (Service::SecretsManager, "ReplicateSecretToRegions") => {
            run::<replicate_secret_to_regions::ReplicateSecretToRegions>(call, draft).await
        }
        (Service::SecretsManager, "RemoveRegionsFromReplication") => {
            run::<remove_regions_from_replication::RemoveRegionsFromReplication>(call, draft).await
        }
        (Service::SecretsManager, "StopReplicationToReplica") => {
            run::<stop_replication_to_replica::StopReplicationToReplica>(call, draft).await
        }
        (Service::SecretsManager, "AssociateCrossAccountReplica") => {
            run::<associate_cross_account_replica::AssociateCrossAccountReplica>(call, draft).await
        }
        (Service::SecretsManager, "DisassociateCrossAccountReplica") => {
            run::<disassociate_cross_account_replica::DisassociateCrossAccountReplica>(call, draft)
                .await
        }
        (Service::SecretsManager, crate::replication::APPLY_OPERATION) => {
            run::<apply_replica_change::ApplyReplicaChange>(call, draft).await
        }
        (Service::Kms, name) => kms_ops::dispatch(name, ServiceCall { call, draft }).await,
        (Service::CloudTrail, name) => {
            cloudtrail::dispatch(name, ServiceCall { call, draft }).await
        }
        (Service::Organizations, "ListAccounts") => {
            run_directory::<organizations::list_accounts::ListAccounts>(call, draft).await
        }
        (Service::Organizations, "ListPolicies") => {
            run_directory::<organizations::list_policies::ListPolicies>(call, draft).await
        }
        (Service::Organizations, "DescribePolicy") => {
            run_directory::<organizations::describe_policy::DescribePolicy>(call, draft).await
        }
        (Service::Organizations, name) if ORGANIZATIONS_NOT_BUILT.contains(&name) => {
            Err(not_built(name))
        }
        (Service::Organizations, name) => Err(ApiError::UnknownOperation(format!(
            "The operation `{}` is not known to AWS Organizations.",
            name.chars().take(64).collect::<String>()
        ))),
        (Service::Strongroom, "GetPrincipalsReloadStatus") => {
            run_directory::<strongroom::GetPrincipalsReloadStatus>(call, draft).await
        }
        (Service::Strongroom, name) => Err(ApiError::UnknownOperation(format!(
            "The operation `{}` is not known to Strongroom.",
            name.chars().take(64).collect::<String>()
        ))),
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

/// AWS Organizations operations this server does not serve (it serves ListAccounts,
/// ListPolicies and DescribePolicy from the principals directory): NotImplemented, where any
/// other name is an unknown operation.
const ORGANIZATIONS_NOT_BUILT: &[&str] = &[
    "AcceptHandshake",
    "AttachPolicy",
    "CancelHandshake",
    "CloseAccount",
    "CreateAccount",
    "CreateGovCloudAccount",
    "CreateOrganization",
    "CreateOrganizationalUnit",
    "CreatePolicy",
    "DeclineHandshake",
    "DeleteOrganization",
    "DeleteOrganizationalUnit",
    "DeletePolicy",
    "DeleteResourcePolicy",
    "DeregisterDelegatedAdministrator",
    "DescribeAccount",
    "DescribeCreateAccountStatus",
    "DescribeEffectivePolicy",
    "DescribeHandshake",
    "DescribeOrganization",
    "DescribeOrganizationalUnit",
    "DescribeResourcePolicy",
    "DetachPolicy",
    "DisableAWSServiceAccess",
    "DisablePolicyType",
    "EnableAWSServiceAccess",
    "EnableAllFeatures",
    "EnablePolicyType",
    "InviteAccountToOrganization",
    "LeaveOrganization",
    "ListAWSServiceAccessForOrganization",
    "ListAccountsForParent",
    "ListChildren",
    "ListCreateAccountStatus",
    "ListDelegatedAdministrators",
    "ListDelegatedServicesForAccount",
    "ListHandshakesForAccount",
    "ListHandshakesForOrganization",
    "ListOrganizationalUnitsForParent",
    "ListParents",
    "ListPoliciesForTarget",
    "ListRoots",
    "ListTagsForResource",
    "ListTargetsForPolicy",
    "MoveAccount",
    "PutResourcePolicy",
    "RegisterDelegatedAdministrator",
    "RemoveAccountFromOrganization",
    "TagResource",
    "UntagResource",
    "UpdateOrganizationalUnit",
    "UpdatePolicy",
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

/// Parse, validate, then the operation (which decides through `authz`), encode.
async fn run_directory<O: ops::directory::DirectoryOperation>(
    call: Call<'_>,
    draft: &mut Draft,
) -> Result<Vec<u8>, ApiError> {
    draft.read_only = Some(O::READ_ONLY);
    let input: O::Input = protocol::parse_body(call.body)?;
    O::validate(&input)?;
    let dcall = ops::directory::DirectoryCall {
        pipeline: call.pipeline,
        caller: &call.principal,
        scope: &call.scope,
    };
    let output = O::handle(&dcall, input, draft).await?;
    serde_json::to_vec(&output).map_err(ApiError::internal)
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
    let (authorized, per_secret) = pipeline
        .authz
        .authorize_operation::<O>(&call.principal, &call.scope, &input, draft)
        .await?;
    // A replica changes only through its primary (or its promotion).
    if !O::on_replica(&input) {
        if let Some(secret) = &authorized.secret {
            ops::replicas::ensure_not_replica(secret)?;
        }
    }
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
    pipeline.auditor.record_all(&per_secret.take()).await?;
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
