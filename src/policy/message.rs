//! `AccessDeniedException` text in AWS's forms (IAM.md §5.6):
//!
//! * `User: ARN is not authorized to perform: ACTION on resource: ARN because no
//!   identity-based policy allows the ACTION action`
//! * `User: ARN is not authorized to perform: ACTION on resource: ARN with an explicit deny in
//!   a resource-based policy`
//!
//! For `*`-only actions (no resource) AWS omits the `on resource:` part.

use super::context::RequestContext;
use super::eval::{Decision, Reason};
use super::parse::PolicyType;

/// The phrase naming a policy type after "an explicit deny in …" / "no … allows".
fn article_and_name(t: PolicyType) -> (&'static str, &'static str) {
    match t {
        PolicyType::Identity => ("an", "identity-based policy"),
        PolicyType::Resource => ("a", "resource-based policy"),
        PolicyType::PermissionsBoundary => ("a", "permissions boundary"),
        PolicyType::Session => ("a", "session policy"),
        PolicyType::Scp => ("a", "service control policy"),
        PolicyType::Rcp => ("a", "resource control policy"),
    }
}

/// The message for a denial, from its parts; `None` for `Allowed` reasons.
pub fn access_denied_message(
    principal_arn: &str,
    action: &str,
    resource: &str,
    reason: &Reason,
) -> Option<String> {
    let on = if resource == "*" || resource.is_empty() {
        String::new()
    } else {
        format!(" on resource: {resource}")
    };
    let head = format!("User: {principal_arn} is not authorized to perform: {action}{on}");
    match reason {
        Reason::ExplicitDeny(t) => {
            let (a, name) = article_and_name(*t);
            Some(format!("{head} with an explicit deny in {a} {name}"))
        }
        Reason::NotAllowedBy(t) => {
            let (_, name) = article_and_name(*t);
            Some(format!(
                "{head} because no {name} allows the {action} action"
            ))
        }
        Reason::NoStatementAllowed => Some(format!(
            "{head} because no identity-based policy allows the {action} action"
        )),
        Reason::RootInOwnAccount | Reason::Allowed(_) => None,
    }
}

/// The `AccessDeniedException` message for `decision` (`None` when allowed).
pub fn denial_message(ctx: &RequestContext, decision: &Decision) -> Option<String> {
    if decision.is_allowed() {
        return None;
    }
    access_denied_message(
        &ctx.principal().arn,
        ctx.action(),
        ctx.resource(),
        &decision.reason,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:iam::111111111111:user/alice";
    const SECRET: &str = "arn:aws:secretsmanager:us-east-1:111111111111:secret:a-AbCdEf";
    const GET: &str = "secretsmanager:GetSecretValue";

    #[test]
    fn aws_forms() {
        let m = |r: Reason| access_denied_message(ARN, GET, SECRET, &r).unwrap();
        assert_eq!(
            m(Reason::NotAllowedBy(PolicyType::Identity)),
            "User: arn:aws:iam::111111111111:user/alice is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:111111111111:secret:a-AbCdEf because no identity-based policy allows the secretsmanager:GetSecretValue action"
        );
        assert_eq!(
            m(Reason::ExplicitDeny(PolicyType::Resource)),
            "User: arn:aws:iam::111111111111:user/alice is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:111111111111:secret:a-AbCdEf with an explicit deny in a resource-based policy"
        );
        assert!(m(Reason::ExplicitDeny(PolicyType::Scp))
            .ends_with("with an explicit deny in a service control policy"));
        assert!(m(Reason::ExplicitDeny(PolicyType::Identity))
            .ends_with("with an explicit deny in an identity-based policy"));
        assert!(
            m(Reason::NotAllowedBy(PolicyType::PermissionsBoundary)).ends_with(
                "because no permissions boundary allows the secretsmanager:GetSecretValue action"
            )
        );
        assert!(m(Reason::NotAllowedBy(PolicyType::Session)).ends_with(
            "because no session policy allows the secretsmanager:GetSecretValue action"
        ));
        assert!(m(Reason::NotAllowedBy(PolicyType::Rcp)).ends_with(
            "because no resource control policy allows the secretsmanager:GetSecretValue action"
        ));
        assert!(m(Reason::NotAllowedBy(PolicyType::Resource)).ends_with(
            "because no resource-based policy allows the secretsmanager:GetSecretValue action"
        ));
        assert_eq!(
            access_denied_message(ARN, "secretsmanager:ListSecrets", "*", &Reason::NotAllowedBy(PolicyType::Identity)).unwrap(),
            "User: arn:aws:iam::111111111111:user/alice is not authorized to perform: secretsmanager:ListSecrets because no identity-based policy allows the secretsmanager:ListSecrets action"
        );
        assert!(access_denied_message(ARN, GET, SECRET, &Reason::RootInOwnAccount).is_none());
    }
}
