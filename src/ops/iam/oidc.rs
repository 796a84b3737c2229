//! ListOpenIDConnectProviders and GetOpenIDConnectProvider: the identity providers (JWT
//! issuers) the caller's account declares in the principals directory
//! (`accounts/<ID>/identity-providers/`), each as the OIDC provider
//! `arn:aws:iam::<ID>:oidc-provider/<issuer without https://>` that trust policies name.
//!
//! GetOpenIDConnectProvider answers IAM's members (`Url`, `ClientIDList` the audiences,
//! `ThumbprintList` empty: keys are files, not fetched over TLS) and, beside them, how tokens
//! are verified and mapped: `Algorithms`, `KeySource` and `KeyFiles` (the files' names, never
//! their contents), `KeyCount`, `LeewaySeconds`, `SessionTagClaims`, `RoleClaim`,
//! `ConditionClaims` (every claim offered to trust policies as `<Url>:<claim>`: the standard
//! ones, then the declared ones). SDKs ignore members they do not model.

use crate::audit::Draft;
use crate::authz::Resolved;
use crate::error::ApiError;
use crate::identity::{load::federated_name, Directory, IdentityProvider};
use crate::ops::query::{QueryCall, QueryOperation};
use crate::ops::Scope;
use crate::protocol::query::Form;
use crate::protocol::Service;

/// The provider's ARN in its account.
pub fn provider_arn(p: &IdentityProvider) -> String {
    format!(
        "arn:aws:iam::{}:oidc-provider/{}",
        p.account,
        federated_name(&p.spec.issuer)
    )
}

/// Decide `action` on `arn` for the caller, in its own account.
fn authorize(
    call: &QueryCall<'_>,
    action: &str,
    arn: &str,
    draft: &mut Draft,
) -> Result<(), ApiError> {
    let caller = call.caller()?;
    let scope = Scope {
        account: caller.account_id.clone(),
        region: call.region.clone(),
    };
    let resolved = Resolved::on(arn.to_owned(), scope.account.clone());
    draft.resource_arn = Some(arn.to_owned());
    call.pipeline
        .authz
        .authorize(caller, &scope, action, &resolved, &[], draft)
}

fn providers<'d>(dir: &'d Directory, account: &str) -> &'d [IdentityProvider] {
    dir.accounts
        .get(account)
        .map(|a| a.identity_providers.as_slice())
        .unwrap_or_default()
}

/// ListOpenIDConnectProviders.
#[derive(Debug)]
pub struct ListOpenIDConnectProviders;

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProviderEntry {
    arn: String,
}

#[derive(Debug, serde::Serialize)]
pub struct ListOutput {
    #[serde(rename = "OpenIDConnectProviderList")]
    list: Vec<ProviderEntry>,
}

impl QueryOperation for ListOpenIDConnectProviders {
    type Input = ();
    type Output = ListOutput;
    const NAME: &'static str = "ListOpenIDConnectProviders";
    const SERVICE: Service = Service::Iam;
    const READ_ONLY: bool = true;

    fn parse(_form: &Form) -> Result<(), ApiError> {
        Ok(())
    }

    async fn handle(
        call: &QueryCall<'_>,
        _input: (),
        draft: &mut Draft,
    ) -> Result<ListOutput, ApiError> {
        authorize(call, "iam:ListOpenIDConnectProviders", "*", draft)?;
        let dir = call.pipeline.identities.get();
        let account = &call.caller()?.account_id;
        let mut arns: Vec<String> = providers(&dir, account).iter().map(provider_arn).collect();
        arns.sort();
        arns.dedup();
        Ok(ListOutput {
            list: arns.into_iter().map(|arn| ProviderEntry { arn }).collect(),
        })
    }
}

/// GetOpenIDConnectProvider.
#[derive(Debug)]
pub struct GetOpenIDConnectProvider;

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClaimTag {
    claim: String,
    tag_key: String,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetOutput {
    url: String,
    #[serde(rename = "ClientIDList")]
    client_id_list: Vec<String>,
    thumbprint_list: Vec<String>,
    tags: Vec<String>,
    algorithms: Vec<String>,
    /// `JwksFile`, `PublicKeyFiles` or `HmacSecretFile`.
    key_source: &'static str,
    key_files: Vec<String>,
    key_count: usize,
    leeway_seconds: u64,
    session_tag_claims: Vec<ClaimTag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role_claim: Option<String>,
    condition_claims: Vec<String>,
}

impl QueryOperation for GetOpenIDConnectProvider {
    type Input = String;
    type Output = GetOutput;
    const NAME: &'static str = "GetOpenIDConnectProvider";
    const SERVICE: Service = Service::Iam;
    const READ_ONLY: bool = true;

    fn parse(form: &Form) -> Result<String, ApiError> {
        let arn = form.get("OpenIDConnectProviderArn").ok_or_else(|| {
            ApiError::Validation("1 validation error detected: Value null at 'openIDConnectProviderArn' failed to satisfy constraint: Member must not be null".into())
        })?;
        let n = arn.chars().count();
        if !(20..=2048).contains(&n) {
            return Err(ApiError::Validation(format!(
                "1 validation error detected: Value at 'openIDConnectProviderArn' failed to satisfy constraint: Member must have length {}",
                if n < 20 { "greater than or equal to 20" } else { "less than or equal to 2048" }
            )));
        }
        Ok(arn.to_owned())
    }

    async fn handle(
        call: &QueryCall<'_>,
        arn: String,
        draft: &mut Draft,
    ) -> Result<GetOutput, ApiError> {
        authorize(call, "iam:GetOpenIDConnectProvider", &arn, draft)?;
        let dir = call.pipeline.identities.get();
        let account = &call.caller()?.account_id;
        let p = providers(&dir, account)
            .iter()
            .find(|p| provider_arn(p) == arn)
            .ok_or_else(|| {
                ApiError::NoSuchEntity(format!("OpenIDConnect Provider not found for arn {arn}"))
            })?;
        let s = &p.spec;
        let (key_source, key_files) = if let Some(j) = &s.jwks_file {
            ("JwksFile", vec![j.clone()])
        } else if let Some(h) = &s.hmac_secret_file {
            ("HmacSecretFile", vec![h.clone()])
        } else {
            ("PublicKeyFiles", s.public_key_files.clone())
        };
        Ok(GetOutput {
            url: federated_name(&s.issuer),
            client_id_list: s.audiences.clone(),
            thumbprint_list: Vec::new(),
            tags: Vec::new(),
            algorithms: s.algorithms.clone(),
            key_source,
            key_files,
            key_count: p.keys.len(),
            leeway_seconds: s
                .leeway_seconds
                .unwrap_or(crate::identity::jwt::DEFAULT_LEEWAY_SECONDS),
            session_tag_claims: s
                .session_tag_claims
                .iter()
                .map(|(claim, tag_key)| ClaimTag {
                    claim: claim.clone(),
                    tag_key: tag_key.clone(),
                })
                .collect(),
            role_claim: s.role_claim.clone(),
            condition_claims: crate::identity::jwt::STANDARD_CONDITION_CLAIMS
                .iter()
                .map(|c| (*c).to_owned())
                .chain(s.condition_claims.iter().cloned())
                .collect(),
        })
    }
}
