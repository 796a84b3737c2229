//! The authorization decision. PURE: no I/O, no clock, no async.
//!
//! This first version knows one rule, the one AWS applies before any policy exists: an
//! account's root user is allowed every action on its own account's resources, and nobody
//! else is allowed anything. Identity and resource policies (IAM.md) plug in here; the
//! pipeline already calls `evaluate` for every request and every resource.
//!
//! May depend on: `auth::Principal` (data only). Never on `store`, actix or diesel.

use crate::auth::{Principal, PrincipalKind};

/// What is being asked.
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

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    /// Denied because no statement allowed it.
    ImplicitDeny,
    /// Denied by an explicit `Deny` statement.
    ExplicitDeny,
}

/// Why a decision was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The account root's implicit allow in its own account.
    RootInOwnAccount,
    /// Nothing allowed the request.
    NoStatementAllowed,
}

/// A decision and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub effect: Effect,
    pub reason: Reason,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }
}

/// Decide one request.
pub fn evaluate(req: &AuthzRequest<'_>) -> Decision {
    if req.principal.kind == PrincipalKind::Root && req.principal.account_id == req.resource_account
    {
        return Decision {
            effect: Effect::Allow,
            reason: Reason::RootInOwnAccount,
        };
    }
    Decision {
        effect: Effect::ImplicitDeny,
        reason: Reason::NoStatementAllowed,
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
        let other = AuthzRequest {
            resource_account: "222222222222",
            ..own.clone()
        };
        assert_eq!(evaluate(&other).effect, Effect::ImplicitDeny);
        let mut user = p.clone();
        user.kind = PrincipalKind::User;
        let as_user = AuthzRequest {
            principal: &user,
            ..own
        };
        assert!(!evaluate(&as_user).is_allowed());
    }
}
