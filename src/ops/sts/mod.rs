//! STS on the same endpoint (AWS Query protocol, XML answers).

pub mod assume_role;
pub mod web_identity;

use crate::audit::Draft;
use crate::auth::{Principal, PrincipalKind};
use crate::error::ApiError;
use crate::pipeline::Pipeline;
use crate::protocol::query::{self, Form};
use crate::protocol::Service;

/// An authenticated Query-protocol call.
#[derive(Debug)]
pub struct QueryCall<'a> {
    pub pipeline: &'a Pipeline,
    pub principal: Principal,
    pub region: String,
    pub form: &'a Form,
    pub request_id: &'a str,
}

/// Pick the STS action and run it.
pub async fn dispatch(
    action: &str,
    call: QueryCall<'_>,
    draft: &mut Draft,
) -> Result<Vec<u8>, ApiError> {
    match action {
        "GetCallerIdentity" => {
            draft.read_only = Some(true);
            draft.decision = Some("Allow".into());
            draft.decision_reason = Some("GetCallerIdentity needs no permission".into());
            Ok(get_caller_identity(&call))
        }
        "AssumeRole" => {
            draft.read_only = Some(false);
            assume_role::assume_role(&call, draft)
        }
        "GetSessionToken"
        | "AssumeRoleWithSAML"
        | "GetFederationToken"
        | "DecodeAuthorizationMessage"
        | "GetAccessKeyInfo" => Err(crate::pipeline::not_built(action)),
        other => Err(ApiError::UnknownOperation(format!(
            "Could not find operation {} for version 2011-06-15",
            other.chars().take(64).collect::<String>()
        ))),
    }
}

/// GetCallerIdentity: who the credentials belong to (no permission needed, as on AWS).
fn get_caller_identity(call: &QueryCall<'_>) -> Vec<u8> {
    let p = &call.principal;
    let user_id = match p.kind {
        PrincipalKind::Root => p.account_id.clone(),
        _ => p.user_id.clone(),
    };
    let result = format!(
        "    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n",
        query::xml_escape(&p.arn),
        query::xml_escape(&user_id),
        query::xml_escape(&p.account_id)
    );
    query::response(
        Service::Sts.xml_namespace(),
        "GetCallerIdentity",
        &result,
        call.request_id,
    )
}
