//! The IAM policy engine (docs/IAM.md). PURE: no I/O, no clock, no async — except the
//! `simulate` file helpers, which read case files for the CLI.
//!
//! Use:
//! 1. Parse each policy once: [`Policy::parse`]`(text, PolicyType::…)` (validated, compiled,
//!    IAM's error wording via `aws_message()`), optionally `.with_label(arn)`; share as
//!    `Arc<Policy>`. Group identity policies per principal in a [`PolicyGroup`] (merged index).
//! 2. Per request, build a [`RequestContext`] (principal, action, resource ARN, condition keys,
//!    time) and a [`PolicySet`] from the cached parts.
//! 3. [`authorize`] returns a [`Decision`] (effect, reason, deciding statements,
//!    diagnostics); [`denial_message`] gives the `AccessDeniedException` text.
//!
//! [`evaluate`] is the policy-less decision the pipeline used before policies existed: root
//! in its own account is allowed, everything else is implicitly denied.
//!
//! May depend on: `auth::Principal` (data only). Never on `store`, actix or diesel.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::string_slice))]

mod condition;
mod context;
mod err;
mod eval;
mod index;
mod lint;
mod message;
mod model;
mod parse;
mod pattern;
mod public;
mod simulate;
mod template;
mod value;

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod review_tests;

pub use condition::{BaseOp, Operator, Qualifier};
pub use context::{
    known_key_type, ContextKeys, ContextValue, KeyType, PrincipalContext, PrincipalInfo,
    PrincipalType, RequestContext,
};
pub use err::{ParseError, ParseErrors, PolicyError};
pub use eval::{
    authorize, missing_context_keys, AllowBasis, Decision, Diagnostic, Effect, MatchedStatement,
    PolicyGroup, PolicySet, Reason,
};
pub use lint::{lint, Warning, WarningCode};
pub use message::{access_denied_message, denial_message};
pub use model::{
    ConditionBlock, Json, OneOrMore, PolicyDocument, PrincipalDocument, StatementDocument,
};
pub use parse::{Policy, PolicyType, Statement, StatementEffect};
pub use pattern::{ArnPattern, Pattern};
pub use public::{broad_access, would_lock_out, BroadAccess, PublicPolicyOptions};
pub use simulate::{
    run_cases, run_cases_file, validate_document, validate_document_as, CaseResult, CasesReport,
    ValidationReport,
};

use crate::auth::{Principal, PrincipalKind};

/// What is being asked (the policy-less form the pipeline uses today).
#[derive(Debug, Clone)]
pub struct AuthzRequest<'a> {
    pub principal: &'a Principal,
    /// `service:Action`, e.g. `secretsmanager:GetSecretValue`.
    pub action: &'a str,
    /// The resource ARN (the resolved full ARN of a secret), or `*`.
    pub resource: &'a str,
    /// The account that owns the resource.
    pub resource_account: &'a str,
}

impl AuthzRequest<'_> {
    /// The request context for the full engine.
    pub fn context(&self) -> RequestContext {
        RequestContext::new(
            PrincipalInfo::from_auth(self.principal),
            self.action,
            self.resource,
            Some(self.resource_account).filter(|a| !a.is_empty()),
        )
    }
}

/// Decide one request with no policies: root in its own account is allowed, everyone else is
/// implicitly denied.
pub fn evaluate(req: &AuthzRequest<'_>) -> Decision {
    let allowed = req.principal.kind == PrincipalKind::Root
        && req.principal.account_id == req.resource_account;
    Decision {
        effect: if allowed {
            Effect::Allow
        } else {
            Effect::ImplicitDeny
        },
        reason: if allowed {
            Reason::RootInOwnAccount
        } else {
            Reason::NoStatementAllowed
        },
        deciding: Vec::new(),
        diagnostics: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_allowed_in_own_account_only() {
        let p = Principal::root("111111111111", "AKIA1");
        let own = AuthzRequest {
            principal: &p,
            action: "secretsmanager:GetSecretValue",
            resource: "arn:aws:secretsmanager:us-east-1:111111111111:secret:a-AbCdEf",
            resource_account: "111111111111",
        };
        assert!(evaluate(&own).is_allowed());
        assert!(authorize(&own.context(), &PolicySet::default()).is_allowed());
        let other = AuthzRequest {
            resource_account: "222222222222",
            ..own.clone()
        };
        assert_eq!(evaluate(&other).effect, Effect::ImplicitDeny);
        assert_eq!(
            authorize(&other.context(), &PolicySet::default()).effect,
            Effect::ImplicitDeny
        );
        let mut user = p.clone();
        user.kind = PrincipalKind::User;
        let as_user = AuthzRequest {
            principal: &user,
            ..own
        };
        assert!(!evaluate(&as_user).is_allowed());
        assert!(!authorize(&as_user.context(), &PolicySet::default()).is_allowed());
    }
}
