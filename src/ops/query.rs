//! The Query-protocol operations (STS, IAM) as ordinary operations: a typed input read and
//! validated from the form, a typed output the protocol layer encodes as XML
//! (`protocol::query::encode`), one file per operation like the JSON ones. They decide what
//! they do through `authz` like every other request; the pipeline authenticates them and
//! records them.

use std::future::Future;

use serde::Serialize;

use crate::audit::Draft;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::pipeline::Pipeline;
use crate::protocol::query::{self, Form};
use crate::protocol::Service;

use super::{iam, sts};

/// A Query-protocol call on its way to an operation.
#[derive(Debug)]
pub struct QueryCall<'a> {
    pub pipeline: &'a Pipeline,
    /// The authenticated caller; `None` only for AssumeRoleWithWebIdentity, whose token is
    /// the credential (unsigned on AWS too).
    pub principal: Option<std::sync::Arc<Principal>>,
    pub region: String,
    pub request_id: &'a str,
}

impl QueryCall<'_> {
    /// The authenticated caller.
    pub fn caller(&self) -> Result<&Principal, ApiError> {
        self.principal.as_deref().ok_or_else(|| {
            ApiError::MissingAuthenticationToken("Request is missing Authentication Token".into())
        })
    }
}

/// One Query-protocol operation.
pub trait QueryOperation {
    type Input;
    type Output: Serialize;
    /// The action's name (`AssumeRole`).
    const NAME: &'static str;
    const SERVICE: Service;
    /// Whether it only reads (CloudTrail's `readOnly`).
    const READ_ONLY: bool;
    /// Read and validate the input from the form (before anything is decided).
    fn parse(form: &Form) -> Result<Self::Input, ApiError>;
    /// Do it (deciding what it does through `authz`, recording the decision in `draft`).
    fn handle(
        call: &QueryCall<'_>,
        input: Self::Input,
        draft: &mut Draft,
    ) -> impl Future<Output = Result<Self::Output, ApiError>>;
}

/// Pick the operation for `action` of `service` and run it.
pub async fn dispatch(
    service: Service,
    action: &str,
    call: QueryCall<'_>,
    form: &Form,
    draft: &mut Draft,
) -> Result<Vec<u8>, ApiError> {
    match (service, action) {
        (Service::Sts, "GetCallerIdentity") => {
            run::<sts::GetCallerIdentity>(&call, form, draft).await
        }
        (Service::Sts, "AssumeRole") => {
            run::<sts::assume_role::AssumeRole>(&call, form, draft).await
        }
        (Service::Sts, "AssumeRoleWithWebIdentity") => {
            run::<sts::web_identity::AssumeRoleWithWebIdentity>(&call, form, draft).await
        }
        (Service::Iam, "SimulatePrincipalPolicy") => {
            run::<iam::SimulatePrincipalPolicy>(&call, form, draft).await
        }
        (Service::Iam, "SimulateCustomPolicy") => {
            run::<iam::SimulateCustomPolicy>(&call, form, draft).await
        }
        (Service::Iam, "GetAccountAuthorizationDetails") => {
            run::<iam::account_details::GetAccountAuthorizationDetails>(&call, form, draft).await
        }
        (Service::Iam, "ListOpenIDConnectProviders") => {
            run::<iam::oidc::ListOpenIDConnectProviders>(&call, form, draft).await
        }
        (Service::Iam, "GetOpenIDConnectProvider") => {
            run::<iam::oidc::GetOpenIDConnectProvider>(&call, form, draft).await
        }
        (
            Service::Sts,
            "GetSessionToken"
            | "AssumeRoleWithSAML"
            | "GetFederationToken"
            | "DecodeAuthorizationMessage"
            | "GetAccessKeyInfo",
        ) => Err(crate::pipeline::not_built(action)),
        (Service::Sts, other) => Err(ApiError::UnknownOperation(format!(
            "Could not find operation {} for version 2011-06-15",
            other.chars().take(64).collect::<String>()
        ))),
        (_, other) => Err(crate::pipeline::not_built(other)),
    }
}

/// Parse, run, encode.
async fn run<O: QueryOperation>(
    call: &QueryCall<'_>,
    form: &Form,
    draft: &mut Draft,
) -> Result<Vec<u8>, ApiError> {
    draft.read_only = Some(O::READ_ONLY);
    let input = O::parse(form)?;
    let output = O::handle(call, input, draft).await?;
    query::encode(
        O::SERVICE.xml_namespace(),
        O::NAME,
        &output,
        call.request_id,
    )
}
