//! Validation warnings: valid policies that probably do not mean what their author thinks
//! (IAM.md §2, §3, §6, §9). Warnings never change a decision.

use std::fmt;

use super::condition::{BaseOp, Condition, Qualifier};
use super::context::{known_key_type, KeyType};
use super::model::StatementDocument;
use super::parse::{ActionRule, Policy, PolicyType, PrincipalEntry, ResourceRule, StatementEffect};
use super::pattern::split_arn;
use super::public::{broad_access, PublicPolicyOptions};

/// What a warning is about.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningCode {
    AllowWithNotAction,
    AllowWithNotResource,
    MultivaluedKeyWithoutQualifier,
    ForAllValuesWithoutNullGuard,
    ForAnyValueDenyMissingKey,
    QualifierOnSingleValuedKey,
    OperatorKeyTypeMismatch,
    MfaBoolWithoutIfExists,
    RequestParameterWithoutIfExists,
    SecretArnWithoutSuffix,
    SecretArnDashStar,
    StarOnlyActionWithArn,
    NonSecretsManagerAction,
    VariablesIgnored,
    NotPrincipalDeny,
    ArnValueNotAnArn,
    BroadAccess,
}

impl WarningCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllowWithNotAction => "allow-with-not-action",
            Self::AllowWithNotResource => "allow-with-not-resource",
            Self::MultivaluedKeyWithoutQualifier => "multivalued-key-without-qualifier",
            Self::ForAllValuesWithoutNullGuard => "for-all-values-without-null-guard",
            Self::ForAnyValueDenyMissingKey => "for-any-value-deny-missing-key",
            Self::QualifierOnSingleValuedKey => "qualifier-on-single-valued-key",
            Self::OperatorKeyTypeMismatch => "operator-key-type-mismatch",
            Self::MfaBoolWithoutIfExists => "mfa-bool-without-if-exists",
            Self::RequestParameterWithoutIfExists => "request-parameter-without-if-exists",
            Self::SecretArnWithoutSuffix => "secret-arn-without-suffix",
            Self::SecretArnDashStar => "secret-arn-dash-star",
            Self::StarOnlyActionWithArn => "star-only-action-with-arn",
            Self::NonSecretsManagerAction => "non-secretsmanager-action",
            Self::VariablesIgnored => "variables-ignored",
            Self::NotPrincipalDeny => "not-principal-deny",
            Self::ArnValueNotAnArn => "arn-value-not-an-arn",
            Self::BroadAccess => "broad-access",
        }
    }
}

/// One warning.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub statement: Option<usize>,
    pub code: WarningCode,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.statement {
            Some(i) => write!(
                f,
                "statement {i}: {} ({})",
                self.message,
                self.code.as_str()
            ),
            None => write!(f, "{} ({})", self.message, self.code.as_str()),
        }
    }
}

const STAR_ONLY: [&str; 3] = [
    "secretsmanager:listsecrets",
    "secretsmanager:getrandompassword",
    "secretsmanager:batchgetsecretvalue",
];

/// Keys filled from optional request parameters: absent when the caller omits them.
const REQUEST_PARAMETER_KEYS: [&str; 9] = [
    "secretsmanager:name",
    "secretsmanager:description",
    "secretsmanager:kmskeyid",
    "secretsmanager:kmskeyarn",
    "secretsmanager:versionid",
    "secretsmanager:versionstage",
    "secretsmanager:addreplicaregions",
    "secretsmanager:recoverywindowindays",
    "secretsmanager:rotationlambdaarn",
];

/// Every warning for `policy`.
pub fn lint(policy: &Policy) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut warn = |statement: Option<usize>, code, message: String| {
        out.push(Warning {
            statement,
            code,
            message,
        })
    };
    let doc = policy.document();
    let has_var_text = |s: &StatementDocument| {
        s.resource
            .iter()
            .chain(s.not_resource.iter())
            .flat_map(|r| r.iter())
            .chain(
                s.condition
                    .iter()
                    .flatten()
                    .flat_map(|(_, keys)| keys.iter().flat_map(|(_, vs)| vs.iter())),
            )
            .any(|t| t.contains("${"))
    };
    if !policy.variables_enabled() && doc.statements.iter().any(has_var_text) {
        warn(
            None,
            WarningCode::VariablesIgnored,
            "policy variables are literal text unless `Version` is `2012-10-17`".into(),
        );
    }
    for (st, sd) in policy.statements().iter().zip(&doc.statements) {
        let i = Some(st.index);
        let allow = st.effect == StatementEffect::Allow;
        if allow && matches!(st.action, ActionRule::NotAction(_)) {
            warn(
                i,
                WarningCode::AllowWithNotAction,
                "`Allow` with `NotAction` grants every other action, of every service".into(),
            );
        }
        if allow && matches!(st.resource, ResourceRule::NotResource(_)) {
            warn(
                i,
                WarningCode::AllowWithNotResource,
                "`Allow` with `NotResource` grants every other resource".into(),
            );
        }
        let actions: Vec<String> = sd
            .action
            .iter()
            .flat_map(|a| a.iter())
            .map(|a| a.to_ascii_lowercase())
            .collect();
        let resources: Vec<&String> = sd.resource.iter().flat_map(|r| r.iter()).collect();
        if actions.iter().any(|a| STAR_ONLY.contains(&a.as_str()))
            && !resources.is_empty()
            && !resources.iter().any(|r| *r == "*")
        {
            warn(i, WarningCode::StarOnlyActionWithArn, "`ListSecrets`, `GetRandomPassword` and `BatchGetSecretValue` are authorized only by `\"Resource\": \"*\"`".into());
        }
        if policy.kind() == PolicyType::Resource {
            for a in &actions {
                if a != "*" && !a.starts_with("secretsmanager:") {
                    warn(
                        i,
                        WarningCode::NonSecretsManagerAction,
                        format!("action `{a}` has no effect in a secret's resource policy"),
                    );
                }
            }
        }
        for r in sd
            .resource
            .iter()
            .chain(sd.not_resource.iter())
            .flat_map(|r| r.iter())
        {
            secret_arn_lints(r, i, &mut warn);
        }
        if let Some(rule) = &st.principal {
            if rule.not && st.effect == StatementEffect::Deny {
                let mut msg = "`Deny` with `NotPrincipal` always denies principals that have a permissions boundary".to_owned();
                for e in &rule.entries {
                    if let PrincipalEntry::Arn(arn) = e {
                        if let Some(p) = split_arn(arn) {
                            let acct = p[4];
                            if !rule
                                .entries
                                .contains(&PrincipalEntry::Account(acct.to_owned()))
                            {
                                msg.push_str(&format!("; `{arn}` is denied anyway unless its account `{acct}` is listed too"));
                            }
                            if p[5].starts_with("assumed-role/") {
                                msg.push_str(&format!("; list the role ARN of `{arn}` as well"));
                            }
                        }
                    }
                }
                warn(i, WarningCode::NotPrincipalDeny, msg);
            }
        }
        for c in &st.conditions {
            condition_lints(c, &st.conditions, allow, i, &mut warn);
        }
    }
    if policy.kind() == PolicyType::Resource {
        for b in broad_access(policy, &PublicPolicyOptions::default()) {
            warn(
                Some(b.statement_index),
                WarningCode::BroadAccess,
                format!("grants broad access ({}) without pinning the caller with a fixed `aws:SourceArn`, `aws:SourceAccount`, `aws:SourceVpc`, `aws:SourceVpce`, `aws:PrincipalAccount` or `aws:PrincipalArn`", b.reason),
            );
        }
    }
    out
}

fn secret_arn_lints(
    r: &str,
    i: Option<usize>,
    warn: &mut impl FnMut(Option<usize>, WarningCode, String),
) {
    let Some(p) = split_arn(r) else { return };
    if p[2] != "secretsmanager" {
        return;
    }
    let Some(name) = p[5].strip_prefix("secret:") else {
        return;
    };
    let wild = name.contains('*') || name.contains('?');
    let suffixed = name.rsplit_once('-').is_some_and(|(n, s)| {
        !n.is_empty() && s.len() == 6 && s.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if !wild && !suffixed {
        warn(i, WarningCode::SecretArnWithoutSuffix, format!("`{r}` has no 6-character suffix and never matches an existing secret; use `{r}-??????`"));
    }
    if name.ends_with("-*") {
        warn(i, WarningCode::SecretArnDashStar, format!("`{r}` also matches other secrets whose names start with the same prefix; prefer `-??????`"));
    }
}

fn condition_lints(
    c: &Condition,
    all: &[Condition],
    allow: bool,
    i: Option<usize>,
    warn: &mut impl FnMut(Option<usize>, WarningCode, String),
) {
    let op = c.op;
    let ty = known_key_type(&c.key);
    let multi = ty.is_some_and(KeyType::is_multivalued);
    let name = &c.key_name;
    if op.base == BaseOp::Null {
        return;
    }
    match op.qualifier {
        Qualifier::None if multi => warn(i, WarningCode::MultivaluedKeyWithoutQualifier, format!("`{}` on multivalued key `{name}` never matches without `ForAnyValue:` or `ForAllValues:`", c.op_name)),
        Qualifier::ForAllValues if allow => {
            let guarded = all.iter().any(|o| {
                o.op.base == BaseOp::Null && o.key == c.key && o.raw_values.iter().any(|v| v.eq_ignore_ascii_case("false"))
            });
            if !guarded {
                warn(i, WarningCode::ForAllValuesWithoutNullGuard, format!("`{}` is true when `{name}` is absent; add `\"Null\": {{\"{name}\": \"false\"}}`", c.op_name));
            }
        }
        Qualifier::ForAnyValue if !allow && !op.if_exists => warn(i, WarningCode::ForAnyValueDenyMissingKey, format!("this `Deny` does not apply when `{name}` is absent")),
        _ => {}
    }
    if op.qualifier != Qualifier::None && ty.is_some() && !multi {
        warn(
            i,
            WarningCode::QualifierOnSingleValuedKey,
            format!("set qualifier on single-valued key `{name}` can broaden an `Allow`"),
        );
    }
    if let Some(ty) = ty {
        let ok = match op.base {
            BaseOp::NumericEquals
            | BaseOp::NumericNotEquals
            | BaseOp::NumericLessThan
            | BaseOp::NumericLessThanEquals
            | BaseOp::NumericGreaterThan
            | BaseOp::NumericGreaterThanEquals => matches!(ty, KeyType::Numeric | KeyType::Date),
            BaseOp::DateEquals
            | BaseOp::DateNotEquals
            | BaseOp::DateLessThan
            | BaseOp::DateLessThanEquals
            | BaseOp::DateGreaterThan
            | BaseOp::DateGreaterThanEquals => ty == KeyType::Date,
            BaseOp::Bool => ty == KeyType::Bool,
            BaseOp::IpAddress | BaseOp::NotIpAddress => ty == KeyType::Ip,
            BaseOp::BinaryEquals => ty == KeyType::Binary,
            BaseOp::ArnEquals | BaseOp::ArnLike | BaseOp::ArnNotEquals | BaseOp::ArnNotLike => {
                matches!(ty, KeyType::Arn | KeyType::ArrayOfArn)
            }
            _ => matches!(
                ty,
                KeyType::String | KeyType::Arn | KeyType::ArrayOfString | KeyType::ArrayOfArn
            ),
        };
        if !ok {
            warn(
                i,
                WarningCode::OperatorKeyTypeMismatch,
                format!("`{}` does not fit key `{name}` of type {ty:?}", c.op_name),
            );
        }
    }
    if op.base == BaseOp::Bool
        && !op.if_exists
        && c.key == "aws:multifactorauthpresent"
        && c.raw_values.iter().any(|v| v.eq_ignore_ascii_case("false"))
    {
        warn(i, WarningCode::MfaBoolWithoutIfExists, "`aws:MultiFactorAuthPresent` is absent for long-term keys, so `Bool … false` does not catch them; use `BoolIfExists`".into());
    }
    if allow
        && !op.if_exists
        && !op.base.is_negated()
        && op.qualifier == Qualifier::None
        && REQUEST_PARAMETER_KEYS.contains(&c.key.as_str())
    {
        warn(i, WarningCode::RequestParameterWithoutIfExists, format!("callers who omit the parameter behind `{name}` are not allowed; consider `{}IfExists`", c.op_name));
    }
    if matches!(
        op.base,
        BaseOp::ArnEquals | BaseOp::ArnLike | BaseOp::ArnNotEquals | BaseOp::ArnNotLike
    ) {
        for v in &c.raw_values {
            if split_arn(v).is_none() && !v.ends_with('*') && !v.contains("${") {
                warn(
                    i,
                    WarningCode::ArnValueNotAnArn,
                    format!("`{v}` is not a six-part arn and matches nothing"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str, kind: PolicyType) -> Vec<WarningCode> {
        lint(&Policy::parse(text, kind).unwrap())
            .into_iter()
            .map(|w| w.code)
            .collect()
    }

    #[test]
    fn warns_about_sharp_edges() {
        let id = |stmt: &str| {
            codes(
                &format!(r#"{{"Version":"2012-10-17","Statement":[{stmt}]}}"#),
                PolicyType::Identity,
            )
        };
        assert_eq!(
            id(r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}"#),
            vec![WarningCode::AllowWithNotAction]
        );
        assert_eq!(
            id(r#"{"Effect":"Allow","Action":"a:b","NotResource":"*"}"#),
            vec![WarningCode::AllowWithNotResource]
        );
        assert_eq!(
            id(
                r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringEquals":{"aws:TagKeys":"a"}}}"#
            ),
            vec![WarningCode::MultivaluedKeyWithoutQualifier]
        );
        assert_eq!(
            id(
                r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":"a"}}}"#
            ),
            vec![WarningCode::ForAllValuesWithoutNullGuard]
        );
        assert!(id(r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":"a"},"Null":{"aws:TagKeys":"false"}}}"#).is_empty());
        assert_eq!(
            id(
                r#"{"Effect":"Deny","Action":"a:b","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":"a"}}}"#
            ),
            vec![WarningCode::ForAnyValueDenyMissingKey]
        );
        assert_eq!(
            id(
                r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:SourceVpce":"v"}}}"#
            ),
            vec![WarningCode::QualifierOnSingleValuedKey]
        );
        assert_eq!(
            id(
                r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringLike":{"aws:SourceIp":"10.*"}}}"#
            ),
            vec![WarningCode::OperatorKeyTypeMismatch]
        );
        assert_eq!(
            id(
                r#"{"Effect":"Deny","Action":"a:b","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"false"}}}"#
            ),
            vec![WarningCode::MfaBoolWithoutIfExists]
        );
        assert_eq!(
            id(
                r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringEquals":{"secretsmanager:VersionStage":"AWSCURRENT"}}}"#
            ),
            vec![WarningCode::RequestParameterWithoutIfExists]
        );
        assert_eq!(
            id(
                r#"{"Effect":"Allow","Action":"a:b","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db"}"#
            ),
            vec![WarningCode::SecretArnWithoutSuffix]
        );
        assert_eq!(
            id(
                r#"{"Effect":"Allow","Action":"a:b","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-*"}"#
            ),
            vec![WarningCode::SecretArnDashStar]
        );
        assert!(id(r#"{"Effect":"Allow","Action":"a:b","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-a1B2c3"}"#).is_empty());
        assert_eq!(
            id(
                r#"{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-??????"}"#
            ),
            vec![WarningCode::StarOnlyActionWithArn]
        );
        assert_eq!(
            id(
                r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:s3"}}}"#
            ),
            vec![WarningCode::ArnValueNotAnArn]
        );
        let res = |stmt: &str, v: &str| {
            codes(
                &format!(r#"{{{v}"Statement":[{stmt}]}}"#),
                PolicyType::Resource,
            )
        };
        assert_eq!(
            res(
                r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*","Condition":{"StringEquals":{"aws:SourceAccount":"111111111111"}}}"#,
                r#""Version":"2012-10-17","#
            ),
            vec![WarningCode::NonSecretsManagerAction]
        );
        assert_eq!(
            res(
                r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}"#,
                r#""Version":"2012-10-17","#
            ),
            vec![WarningCode::BroadAccess]
        );
        assert_eq!(
            res(
                r#"{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111111111111:user/a"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}"#,
                r#""Version":"2012-10-17","#
            ),
            vec![WarningCode::NotPrincipalDeny]
        );
        assert_eq!(
            res(
                r#"{"Effect":"Allow","Principal":{"AWS":"111111111111"},"Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:${aws:username}-??????"}"#,
                ""
            ),
            vec![WarningCode::VariablesIgnored]
        );
    }
}
