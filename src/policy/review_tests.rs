//! Adversarial review of the evaluator (IAM.md §1–§5): each test pairs the case under attack
//! with a positive control, so a pass means the rule holds and not that nothing applied.

use std::sync::Arc;

use super::context::{PrincipalInfo, PrincipalType, RequestContext};
use super::eval::{authorize, AllowBasis, Effect, PolicyGroup, PolicySet, Reason};
use super::parse::{Policy, PolicyType};

const A: &str = "111111111111";
const B: &str = "222222222222";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-a1B2c3";
const GET: &str = "secretsmanager:GetSecretValue";

fn text(stmts: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":[{stmts}]}}"#)
}

fn pol(kind: PolicyType, stmts: &str) -> Arc<Policy> {
    Arc::new(
        Policy::parse(&text(stmts), kind)
            .unwrap_or_else(|e| panic!("{stmts}: {e:?}"))
            .with_label("p"),
    )
}

fn parses(doc: &str, kind: PolicyType) -> bool {
    Policy::parse(doc, kind).is_ok()
}

fn user_in(account: &str, name: &str) -> PrincipalInfo {
    PrincipalInfo {
        kind: PrincipalType::User,
        arn: format!("arn:aws:iam::{account}:user/{name}"),
        issuer_arn: None,
        account: account.into(),
        user_name: Some(name.into()),
        user_id: Some(format!("AIDA{name}")),
        tags: [("team".to_owned(), "blue".to_owned())]
            .into_iter()
            .collect(),
    }
}

fn alice() -> PrincipalInfo {
    user_in(A, "alice")
}

/// A session of `role/team/app` (the role ARN has a path, the session ARN has none).
fn session() -> PrincipalInfo {
    PrincipalInfo {
        kind: PrincipalType::AssumedRole,
        arn: format!("arn:aws:sts::{A}:assumed-role/app/s1"),
        issuer_arn: Some(format!("arn:aws:iam::{A}:role/team/app")),
        account: A.into(),
        user_name: None,
        user_id: Some("AROAAPP:s1".into()),
        tags: Default::default(),
    }
}

fn ctx(p: PrincipalInfo) -> RequestContext {
    RequestContext::new(p, GET, SECRET, None)
}

fn identity(stmts: &str) -> PolicySet {
    PolicySet::identity(vec![pol(PolicyType::Identity, stmts)])
}

fn resource(stmts: &str) -> PolicySet {
    PolicySet {
        resource: Some(pol(PolicyType::Resource, stmts)),
        ..PolicySet::default()
    }
}

/// Identity statements spread over several policies (one merged, indexed group).
fn identity_many(stmts: &[String]) -> PolicySet {
    PolicySet::identity(
        stmts
            .chunks(20)
            .map(|c| pol(PolicyType::Identity, &c.join(",")))
            .collect(),
    )
}

fn decide(c: &RequestContext, set: &PolicySet) -> Effect {
    authorize(c, set).effect
}

const ALLOW_ALL: &str = r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#;

/// Identity `Allow *` plus one identity `Deny` statement with `cond` (a Condition object).
fn deny_when(cond: &str) -> PolicySet {
    identity(&format!(
        r#"{ALLOW_ALL},{{"Effect":"Deny","Action":"secretsmanager:*","Resource":"*","Condition":{cond}}}"#
    ))
}

/// An identity `Allow` of GetSecretValue with `cond`.
fn allow_when(cond: &str) -> PolicySet {
    identity(&format!(
        r#"{{"Effect":"Allow","Action":"{GET}","Resource":"*","Condition":{cond}}}"#
    ))
}

// ---------------------------------------------------------------------------------------
// §3.2 / §3.4 / §3.5: missing keys, IfExists, Null, set qualifiers, inside whole decisions

#[test]
fn negated_operators_on_a_missing_key_make_a_deny_fire() {
    let c = ctx(alice());
    for cond in [
        r#"{"StringNotEquals":{"aws:SourceVpce":"vpce-1"}}"#,
        r#"{"StringNotLike":{"aws:SourceVpce":"vpce-*"}}"#,
        r#"{"StringNotEqualsIgnoreCase":{"aws:SourceVpce":"VPCE-1"}}"#,
        r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
        r#"{"ArnNotLike":{"aws:SourceArn":"arn:aws:lambda:*:111111111111:function:*"}}"#,
        r#"{"ArnNotEquals":{"aws:SourceArn":"arn:aws:lambda:us-east-1:111111111111:function:f"}}"#,
        r#"{"NumericNotEquals":{"aws:MultiFactorAuthAge":"0"}}"#,
        r#"{"DateNotEquals":{"aws:TokenIssueTime":"2024-01-01T00:00:00Z"}}"#,
        r#"{"StringNotEqualsIfExists":{"aws:SourceVpce":"vpce-1"}}"#,
        r#"{"StringEqualsIfExists":{"aws:SourceVpce":"vpce-1"}}"#,
        r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":"a"}}"#,
        r#"{"ForAllValues:StringEquals":{"aws:TagKeys":"a"}}"#,
        r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":"a"}}"#,
        r#"{"Null":{"aws:SourceVpce":"true"}}"#,
        r#"{"Null":{"aws:SourceVpce":["true","false"]}}"#,
        // a principal tag the caller does not have
        r#"{"StringNotEquals":{"aws:PrincipalTag/cost":"x"}}"#,
    ] {
        assert_eq!(decide(&c, &deny_when(cond)), Effect::ExplicitDeny, "{cond}");
    }
    // control: positive operators on a missing key do not fire
    for cond in [
        r#"{"StringEquals":{"aws:SourceVpce":"vpce-1"}}"#,
        r#"{"StringLike":{"aws:SourceVpce":"*"}}"#,
        r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#,
        r#"{"ArnLike":{"aws:SourceArn":"*"}}"#,
        r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":"a"}}"#,
        r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"a"}}"#,
        r#"{"Null":{"aws:SourceVpce":"false"}}"#,
        r#"{"Bool":{"aws:MultiFactorAuthPresent":"false"}}"#,
    ] {
        assert_eq!(decide(&c, &deny_when(cond)), Effect::Allow, "{cond}");
    }
}

#[test]
fn positive_operators_on_a_missing_key_never_allow() {
    let c = ctx(alice());
    for cond in [
        r#"{"StringLike":{"aws:SourceVpce":"*"}}"#,
        r#"{"StringEquals":{"aws:SourceVpce":""}}"#,
        r#"{"IpAddress":{"aws:SourceIp":["0.0.0.0/0","::/0"]}}"#,
        r#"{"ArnLike":{"aws:SourceArn":"*"}}"#,
        r#"{"NumericGreaterThanEquals":{"aws:MultiFactorAuthAge":"0"}}"#,
        r#"{"DateGreaterThan":{"aws:TokenIssueTime":"1970-01-01"}}"#,
        r#"{"Bool":{"aws:MultiFactorAuthPresent":["true","false"]}}"#,
        r#"{"ForAnyValue:StringLike":{"aws:TagKeys":"*"}}"#,
        r#"{"Null":{"aws:SourceVpce":"false"}}"#,
    ] {
        assert_eq!(
            decide(&c, &allow_when(cond)),
            Effect::ImplicitDeny,
            "{cond}"
        );
    }
    // control: the same conditions with the key present allow
    let c = ctx(alice())
        .with("aws:SourceVpce", ["vpce-1"])
        .with("aws:SourceIp", ["203.0.113.7"])
        .with("aws:SourceArn", ["arn:aws:lambda:us-east-1:1:function:f"])
        .with("aws:MultiFactorAuthAge", ["30"])
        .with("aws:TokenIssueTime", ["2024-01-01T00:00:00Z"])
        .with("aws:MultiFactorAuthPresent", ["true"])
        .with("aws:TagKeys", ["a"]);
    for cond in [
        r#"{"StringLike":{"aws:SourceVpce":"*"}}"#,
        r#"{"IpAddress":{"aws:SourceIp":["0.0.0.0/0","::/0"]}}"#,
        r#"{"ArnLike":{"aws:SourceArn":"*"}}"#,
        r#"{"NumericGreaterThanEquals":{"aws:MultiFactorAuthAge":"0"}}"#,
        r#"{"DateGreaterThan":{"aws:TokenIssueTime":"1970-01-01"}}"#,
        r#"{"Bool":{"aws:MultiFactorAuthPresent":["true","false"]}}"#,
        r#"{"ForAnyValue:StringLike":{"aws:TagKeys":"*"}}"#,
        r#"{"Null":{"aws:SourceVpce":"false"}}"#,
    ] {
        assert_eq!(decide(&c, &allow_when(cond)), Effect::Allow, "{cond}");
    }
}

#[test]
fn an_empty_string_value_is_null_but_still_compared() {
    // IAM.md §3.4: an empty string counts as null for `Null`.
    let c = ctx(alice()).with("aws:SourceVpce", [""]);
    assert_eq!(
        decide(&c, &allow_when(r#"{"Null":{"aws:SourceVpce":"true"}}"#)),
        Effect::Allow
    );
    // A present "" is a value: StringEquals "" matches, StringNotEquals "x" is true.
    assert_eq!(
        decide(&c, &allow_when(r#"{"StringEquals":{"aws:SourceVpce":""}}"#)),
        Effect::Allow
    );
    assert_eq!(
        decide(
            &c,
            &deny_when(r#"{"StringNotEquals":{"aws:SourceVpce":"x"}}"#)
        ),
        Effect::ExplicitDeny
    );
}

#[test]
fn set_qualifiers_on_an_empty_present_set() {
    // aws:TagKeys present but empty: ForAllValues vacuous true, ForAnyValue false.
    let c = ctx(alice()).with("aws:TagKeys", Vec::<String>::new());
    assert_eq!(
        decide(
            &c,
            &allow_when(r#"{"ForAllValues:StringEquals":{"aws:TagKeys":"a"}}"#)
        ),
        Effect::Allow
    );
    assert_eq!(
        decide(
            &c,
            &allow_when(r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"a"}}"#)
        ),
        Effect::ImplicitDeny
    );
    // the documented fix: pair ForAllValues with Null false
    assert_eq!(
        decide(
            &c,
            &allow_when(
                r#"{"ForAllValues:StringEquals":{"aws:TagKeys":"a"},"Null":{"aws:TagKeys":"false"}}"#
            )
        ),
        Effect::ImplicitDeny
    );
    let c = ctx(alice()).with("aws:TagKeys", ["a"]);
    assert_eq!(
        decide(
            &c,
            &allow_when(
                r#"{"ForAllValues:StringEquals":{"aws:TagKeys":"a"},"Null":{"aws:TagKeys":"false"}}"#
            )
        ),
        Effect::Allow
    );
}

#[test]
fn several_values_under_a_negated_operator_are_anded() {
    let c = ctx(alice()).with("aws:SourceVpce", ["vpce-2"]);
    // vpce-2 is listed: the Deny does not fire
    assert_eq!(
        decide(
            &c,
            &deny_when(r#"{"StringNotEquals":{"aws:SourceVpce":["vpce-1","vpce-2"]}}"#)
        ),
        Effect::Allow
    );
    let c = ctx(alice()).with("aws:SourceVpce", ["vpce-3"]);
    assert_eq!(
        decide(
            &c,
            &deny_when(r#"{"StringNotEquals":{"aws:SourceVpce":["vpce-1","vpce-2"]}}"#)
        ),
        Effect::ExplicitDeny
    );
    // NotIpAddress over two blocks: inside either one means not denied
    let c = ctx(alice()).with("aws:SourceIp", ["192.168.1.1"]);
    assert_eq!(
        decide(
            &c,
            &deny_when(r#"{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}}"#)
        ),
        Effect::Allow
    );
    let c = ctx(alice()).with("aws:SourceIp", ["172.16.0.1"]);
    assert_eq!(
        decide(
            &c,
            &deny_when(r#"{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}}"#)
        ),
        Effect::ExplicitDeny
    );
}

#[test]
fn condition_keys_are_case_insensitive_values_are_not() {
    let c = ctx(alice()).with("aws:SourceVpce", ["vpce-1"]);
    assert_eq!(
        decide(
            &c,
            &allow_when(r#"{"StringEquals":{"AWS:SOURCEVPCE":"vpce-1"}}"#)
        ),
        Effect::Allow
    );
    assert_eq!(
        decide(
            &c,
            &allow_when(r#"{"StringEquals":{"aws:SourceVpce":"VPCE-1"}}"#)
        ),
        Effect::ImplicitDeny
    );
    // principal tag keys are case-insensitive too (the caller's tag is `team`)
    let c = ctx(alice());
    assert_eq!(
        decide(
            &c,
            &deny_when(r#"{"StringEquals":{"aws:PrincipalTag/TEAM":"blue"}}"#)
        ),
        Effect::ExplicitDeny
    );
    assert_eq!(
        decide(
            &c,
            &deny_when(r#"{"StringEquals":{"aws:PrincipalTag/TEAM":"Blue"}}"#)
        ),
        Effect::Allow
    );
}

// ---------------------------------------------------------------------------------------
// §3.3: typed operands, odd values

#[test]
fn odd_typed_policy_values_are_rejected_not_guessed() {
    for (op, v) in [
        ("NumericEquals", "1e3"),
        ("NumericEquals", "0x10"),
        ("NumericEquals", ""),
        ("NumericEquals", "1,000"),
        ("NumericEquals", "NaN"),
        ("NumericEquals", "Infinity"),
        ("DateLessThan", "01/01/2024"),
        ("DateLessThan", "2024-02-30"),
        ("DateLessThan", "tomorrow"),
        ("Bool", " true"),
        ("Bool", "1"),
        ("Bool", "yes"),
        ("IpAddress", "10.0.0.0/33"),
        ("IpAddress", "10.0.0"),
        ("IpAddress", "*"),
        ("Null", "1"),
    ] {
        let doc = text(&format!(
            r#"{{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{{"{op}":{{"k:x":"{v}"}}}}}}"#
        ));
        assert!(!parses(&doc, PolicyType::Identity), "{op} {v:?} accepted");
    }
    // control: the canonical forms parse
    for (op, v) in [
        ("NumericEquals", "10.50"),
        ("NumericEquals", "-3"),
        ("DateLessThan", "2024-01-01T00:00:00+01:00"),
        ("DateLessThan", "1704067200"),
        ("Bool", "TRUE"),
        ("IpAddress", "2001:db8::/32"),
        ("Null", "false"),
    ] {
        let doc = text(&format!(
            r#"{{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{{"{op}":{{"k:x":"{v}"}}}}}}"#
        ));
        assert!(parses(&doc, PolicyType::Identity), "{op} {v:?} rejected");
    }
}

#[test]
fn odd_request_values_never_satisfy_a_positive_operator() {
    for (key, v, cond) in [
        (
            "aws:MultiFactorAuthPresent",
            " true",
            r#"{"Bool":{"aws:MultiFactorAuthPresent":"true"}}"#,
        ),
        (
            "aws:MultiFactorAuthPresent",
            "1",
            r#"{"Bool":{"aws:MultiFactorAuthPresent":"true"}}"#,
        ),
        (
            "aws:MultiFactorAuthAge",
            "1e1",
            r#"{"NumericLessThan":{"aws:MultiFactorAuthAge":"3600"}}"#,
        ),
        (
            "aws:MultiFactorAuthAge",
            "0x10",
            r#"{"NumericLessThan":{"aws:MultiFactorAuthAge":"3600"}}"#,
        ),
        (
            "aws:SourceIp",
            "10.0.0.1.evil",
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
        ),
        (
            "aws:TokenIssueTime",
            "soon",
            r#"{"DateGreaterThan":{"aws:TokenIssueTime":"2020-01-01"}}"#,
        ),
    ] {
        let c = ctx(alice()).with(key, [v]);
        assert_eq!(
            decide(&c, &allow_when(cond)),
            Effect::ImplicitDeny,
            "{key}={v:?}"
        );
    }
    // control
    let c = ctx(alice()).with("aws:MultiFactorAuthAge", ["10.0"]);
    assert_eq!(
        decide(
            &c,
            &allow_when(r#"{"NumericLessThan":{"aws:MultiFactorAuthAge":"3600"}}"#)
        ),
        Effect::Allow
    );
}

#[test]
fn dates_with_offsets_compare_as_instants() {
    // 2024-01-01T00:30:00+01:00 is 2023-12-31T23:30Z: before 2024-01-01.
    let c = ctx(alice()).with("aws:CurrentTime", ["2024-01-01T00:30:00+01:00"]);
    assert_eq!(
        decide(
            &c,
            &allow_when(r#"{"DateLessThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}"#)
        ),
        Effect::Allow
    );
    assert_eq!(
        decide(
            &c,
            &allow_when(r#"{"DateGreaterThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}"#)
        ),
        Effect::ImplicitDeny
    );
    // epoch seconds policy value vs ISO request value
    let c = ctx(alice()).with("aws:CurrentTime", ["2024-01-01T00:00:01Z"]);
    assert_eq!(
        decide(
            &c,
            &allow_when(r#"{"DateGreaterThan":{"aws:CurrentTime":"1704067200"}}"#)
        ),
        Effect::Allow
    );
    assert_eq!(
        decide(
            &c,
            &allow_when(r#"{"DateLessThan":{"aws:CurrentTime":"1704067200"}}"#)
        ),
        Effect::ImplicitDeny
    );
}

#[test]
fn json_number_and_boolean_condition_values() {
    let c = ctx(alice()).with("aws:MultiFactorAuthPresent", ["true"]);
    assert_eq!(
        decide(
            &c,
            &allow_when(r#"{"Bool":{"aws:MultiFactorAuthPresent":true}}"#)
        ),
        Effect::Allow
    );
    assert_eq!(
        decide(
            &c,
            &allow_when(r#"{"Bool":{"aws:MultiFactorAuthPresent":false}}"#)
        ),
        Effect::ImplicitDeny
    );
    let c = ctx(alice()).with("aws:MultiFactorAuthAge", ["100"]);
    assert_eq!(
        decide(
            &c,
            &allow_when(r#"{"NumericLessThan":{"aws:MultiFactorAuthAge":1e3}}"#)
        ),
        Effect::Allow
    );
    assert_eq!(
        decide(
            &c,
            &allow_when(r#"{"NumericLessThan":{"aws:MultiFactorAuthAge":1e1}}"#)
        ),
        Effect::ImplicitDeny
    );
    // null, objects and nested arrays are not condition values
    for v in ["null", "{}", "[[\"a\"]]", "[]"] {
        let doc = text(&format!(
            r#"{{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{{"StringEquals":{{"k:x":{v}}}}}}}"#
        ));
        assert!(!parses(&doc, PolicyType::Identity), "{v}");
    }
}

// ---------------------------------------------------------------------------------------
// §4: policy variables

#[test]
fn variables_are_literal_under_2008_and_without_version() {
    let stmt = r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:${aws:username}-*"}"#;
    let secret = "arn:aws:secretsmanager:us-east-1:111111111111:secret:alice-AbCdEf";
    let literal = "arn:aws:secretsmanager:us-east-1:111111111111:secret:${aws:username}-AbCdEf";
    for version in [r#""Version":"2008-10-17","#, ""] {
        let p = Arc::new(
            Policy::parse(
                &format!(r#"{{{version}"Statement":[{stmt}]}}"#),
                PolicyType::Resource,
            )
            .unwrap(),
        );
        let set = PolicySet {
            resource: Some(p),
            ..PolicySet::default()
        };
        let c = RequestContext::new(alice(), GET, secret, None);
        assert_eq!(decide(&c, &set), Effect::ImplicitDeny, "{version}");
        let c = RequestContext::new(alice(), GET, literal, None);
        assert_eq!(decide(&c, &set), Effect::Allow, "{version}");
    }
    // control: 2012 substitutes
    let set = resource(stmt);
    let c = RequestContext::new(alice(), GET, secret, None);
    assert_eq!(decide(&c, &set), Effect::Allow);
    let c = RequestContext::new(alice(), GET, literal, None);
    assert_eq!(decide(&c, &set), Effect::ImplicitDeny);
}

#[test]
fn variables_in_conditions_are_literal_under_2008() {
    let stmt = r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"${aws:PrincipalTag/team}"}}}"#;
    let p = Arc::new(
        Policy::parse(
            &format!(r#"{{"Version":"2008-10-17","Statement":[{stmt}]}}"#),
            PolicyType::Resource,
        )
        .unwrap(),
    );
    let set = PolicySet {
        resource: Some(p),
        ..PolicySet::default()
    };
    assert_eq!(decide(&ctx(alice()), &set), Effect::ImplicitDeny);
    assert_eq!(decide(&ctx(alice()), &resource(stmt)), Effect::Allow);
}

#[test]
fn an_unresolved_variable_matches_nothing_but_its_negation_applies() {
    // A role session has no aws:username.
    let home = r#"arn:aws:secretsmanager:us-east-1:111111111111:secret:${aws:username}*"#;
    let set = identity(&format!(
        r#"{{"Effect":"Allow","Action":"{GET}","Resource":"{home}"}}"#
    ));
    assert_eq!(decide(&ctx(session()), &set), Effect::ImplicitDeny);
    // control: a user whose name prefixes the secret
    let c = RequestContext::new(user_in(A, "prod"), GET, SECRET, None);
    assert_eq!(decide(&c, &set), Effect::Allow);
    // a Deny with NotResource on the unresolved entry applies to everything
    let set = identity(&format!(
        r#"{ALLOW_ALL},{{"Effect":"Deny","Action":"{GET}","NotResource":"{home}"}}"#
    ));
    assert_eq!(decide(&ctx(session()), &set), Effect::ExplicitDeny);
    // a negated condition on an unresolved variable is true
    let set = deny_when(r#"{"StringNotEquals":{"aws:PrincipalTag/team":"${aws:username}"}}"#);
    assert_eq!(decide(&ctx(session()), &set), Effect::ExplicitDeny);
    // a default resolves it
    let set = allow_when(
        r#"{"StringEquals":{"aws:PrincipalTag/team":"${aws:PrincipalTag/missing, 'blue'}"}}"#,
    );
    assert_eq!(decide(&ctx(alice()), &set), Effect::Allow);
}

#[test]
fn substituted_values_are_literal_and_escapes_are_literal() {
    // a tag value with wildcards must not become a wildcard
    let mut p = alice();
    p.tags.insert("project".into(), "*".into());
    let set = identity(&format!(
        r#"{{"Effect":"Allow","Action":"{GET}","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:${{aws:PrincipalTag/project}}"}}"#
    ));
    assert_eq!(decide(&ctx(p.clone()), &set), Effect::ImplicitDeny);
    let set = allow_when(r#"{"StringLike":{"aws:SourceVpce":"${aws:PrincipalTag/project}"}}"#);
    let c = ctx(p.clone()).with("aws:SourceVpce", ["vpce-1"]);
    assert_eq!(decide(&c, &set), Effect::ImplicitDeny);
    let c = ctx(p).with("aws:SourceVpce", ["*"]);
    assert_eq!(decide(&c, &set), Effect::Allow);
    // ${*} / ${?} are literal in StringLike
    let set = allow_when(r#"{"StringLike":{"aws:SourceVpce":"v${*}${?}"}}"#);
    let c = ctx(alice()).with("aws:SourceVpce", ["v*?"]);
    assert_eq!(decide(&c, &set), Effect::Allow);
    let c = ctx(alice()).with("aws:SourceVpce", ["vab"]);
    assert_eq!(decide(&c, &set), Effect::ImplicitDeny);
    // `${$}` is a literal dollar
    let set = allow_when(r#"{"StringEquals":{"aws:SourceVpce":"${$}{x}"}}"#);
    let c = ctx(alice()).with("aws:SourceVpce", ["${x}"]);
    assert_eq!(decide(&c, &set), Effect::Allow);
}

#[test]
fn multivalued_keys_cannot_be_variables() {
    let set = allow_when(r#"{"StringEquals":{"aws:SourceVpce":"${aws:TagKeys}"}}"#);
    let c = ctx(alice())
        .with("aws:TagKeys", ["vpce-1"])
        .with("aws:SourceVpce", ["vpce-1"]);
    assert_eq!(decide(&c, &set), Effect::ImplicitDeny);
}

#[test]
fn variables_are_refused_in_actions_principals_and_typed_operators() {
    for stmt in [
        r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"NumericEquals":{"k:n":"${aws:username}"}}}"#,
        r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"${aws:SourceIp}"}}}"#,
        r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"${aws:CurrentTime}"}}}"#,
        r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:${aws:RequestedRegion}:111111111111:secret:*"}"#,
    ] {
        assert!(!parses(&text(stmt), PolicyType::Resource), "{stmt}");
    }
    // a variable in a Principal is not substituted (the entry is literal text)
    let set = grant(r#"{"AWS":"arn:aws:iam::111111111111:user/${aws:username}"}"#);
    assert_eq!(decide(&ctx(alice()), &set), Effect::ImplicitDeny);
    // a variable in an Action has a second colon: refused
    assert!(!parses(
        &text(r#"{"Effect":"Allow","Action":"secretsmanager:${aws:username}","Resource":"*"}"#),
        PolicyType::Identity
    ));
}

// ---------------------------------------------------------------------------------------
// §2: wildcards, Action / Resource

#[test]
fn actions_are_case_insensitive_and_globbed() {
    let c = ctx(alice());
    for a in [
        "secretsmanager:getsecretvalue",
        "SECRETSMANAGER:GETSECRETVALUE",
        "secretsmanager:?etSecretValue",
        "secretsmanager:*Secret*",
        "*:GetSecretValue",
        "secrets*:Get*",
        "SecretsManager:*",
    ] {
        let deny = identity(&format!(
            r#"{ALLOW_ALL},{{"Effect":"Deny","Action":"{a}","Resource":"*"}}"#
        ));
        assert_eq!(decide(&c, &deny), Effect::ExplicitDeny, "{a}");
    }
    for a in [
        "secretsmanager:GetSecretValu",
        "secretsmanager:GetSecretValue?",
        "secretsmanager:Get.ecretValue",
        "kms:GetSecretValue",
        "secretsmanager:BatchGetSecretValue",
    ] {
        let deny = identity(&format!(
            r#"{ALLOW_ALL},{{"Effect":"Deny","Action":"{a}","Resource":"*"}}"#
        ));
        assert_eq!(decide(&c, &deny), Effect::Allow, "{a}");
    }
}

#[test]
fn resource_wildcards_span_slashes_and_trailing_colons_only() {
    let c = RequestContext::new(
        alice(),
        GET,
        "arn:aws:secretsmanager:us-east-1:111111111111:secret:team/a/b:c-AbCdEf",
        None,
    );
    for r in [
        "arn:aws:secretsmanager:us-east-1:111111111111:secret:team/*",
        "arn:aws:secretsmanager:us-east-1:111111111111:secret:*-??????",
        "arn:aws:secretsmanager:*:111111111111:*",
        "arn:aws:secretsmanager:*",
        "arn:aws:*",
        "arn:*",
        "arn:aws:secretsmanager:us-east-1:*:secret:team/a/b:c-AbCdEf",
    ] {
        let set = identity(&format!(
            r#"{ALLOW_ALL},{{"Effect":"Deny","Action":"*","Resource":"{r}"}}"#
        ));
        assert_eq!(decide(&c, &set), Effect::ExplicitDeny, "{r}");
    }
    for r in [
        // * does not cross into the account segment
        "arn:aws:secretsmanager:*:secret:team/*",
        // a short pattern without a trailing * matches nothing
        "arn:aws:secretsmanager:us-east-1:111111111111",
        // the bare name never matches the suffixed ARN
        "arn:aws:secretsmanager:us-east-1:111111111111:secret:team/a/b:c",
        // case-sensitive resource part
        "arn:aws:secretsmanager:us-east-1:111111111111:secret:TEAM/*",
        // other account
        "arn:aws:secretsmanager:us-east-1:222222222222:secret:*",
        "arn:aws:secretsmanager:us-east-1:111111111111:secret:team/a/b:c-??????x",
    ] {
        let set = identity(&format!(
            r#"{ALLOW_ALL},{{"Effect":"Deny","Action":"*","Resource":"{r}"}}"#
        ));
        assert_eq!(decide(&c, &set), Effect::Allow, "{r}");
    }
}

#[test]
fn star_only_actions_need_a_star_resource() {
    let c = RequestContext::new(alice(), "secretsmanager:ListSecrets", "*", None);
    let set = identity(
        r#"{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"arn:aws:secretsmanager:*:*:secret:*"}"#,
    );
    assert_eq!(decide(&c, &set), Effect::ImplicitDeny);
    let set =
        identity(r#"{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"arn:*"}"#);
    assert_eq!(decide(&c, &set), Effect::ImplicitDeny);
    let set =
        identity(r#"{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}"#);
    assert_eq!(decide(&c, &set), Effect::Allow);
    // a Deny on a secret ARN pattern does not catch the `*` resource either; a Deny with
    // NotResource does
    let set = identity(&format!(
        r#"{ALLOW_ALL},{{"Effect":"Deny","Action":"*","NotResource":"arn:aws:secretsmanager:*:*:secret:public/*"}}"#
    ));
    assert_eq!(decide(&c, &set), Effect::ExplicitDeny);
}

#[test]
fn not_action_and_not_resource() {
    let c = ctx(alice());
    // Allow + NotAction over-grants other services' actions, and this one
    let set = identity(r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}"#);
    assert_eq!(decide(&c, &set), Effect::Allow);
    let set = identity(r#"{"Effect":"Allow","NotAction":"secretsmanager:Get*","Resource":"*"}"#);
    assert_eq!(decide(&c, &set), Effect::ImplicitDeny);
    // Deny + NotAction denies everything not listed
    let set = identity(&format!(
        r#"{ALLOW_ALL},{{"Effect":"Deny","NotAction":["secretsmanager:Describe*","secretsmanager:List*"],"Resource":"*"}}"#
    ));
    assert_eq!(decide(&c, &set), Effect::ExplicitDeny);
    let d = c.with_action("secretsmanager:DescribeSecret");
    assert_eq!(decide(&d, &set), Effect::Allow);
    // NotResource
    let set = identity(&format!(
        r#"{ALLOW_ALL},{{"Effect":"Deny","Action":"*","NotResource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:dev/*"}}"#
    ));
    assert_eq!(decide(&c, &set), Effect::ExplicitDeny);
    let d = RequestContext::new(
        alice(),
        GET,
        "arn:aws:secretsmanager:us-east-1:111111111111:secret:dev/x-AbCdEf",
        None,
    );
    assert_eq!(decide(&d, &set), Effect::Allow);
}

// ---------------------------------------------------------------------------------------
// §2.4 / §5.4: principals in resource policies

fn grant(principal: &str) -> PolicySet {
    resource(&format!(
        r#"{{"Effect":"Allow","Principal":{principal},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#
    ))
}

#[test]
fn resource_policy_principal_forms_same_account() {
    // direct grants bypass a missing identity Allow
    for (p, who) in [
        (r#""*""#, alice()),
        (r#"{"AWS":"*"}"#, alice()),
        (r#"{"AWS":"arn:aws:iam::111111111111:user/alice"}"#, alice()),
        (
            r#"{"AWS":"arn:aws:sts::111111111111:assumed-role/app/s1"}"#,
            session(),
        ),
        // role ARN (with its path): the session's identity step passes through it
        (
            r#"{"AWS":"arn:aws:iam::111111111111:role/team/app"}"#,
            session(),
        ),
    ] {
        assert_eq!(decide(&ctx(who), &grant(p)), Effect::Allow, "{p}");
    }
    for (p, who) in [
        // the account only delegates
        (r#"{"AWS":"111111111111"}"#, alice()),
        (r#"{"AWS":"arn:aws:iam::111111111111:root"}"#, alice()),
        (r#"{"AWS":"arn:aws:iam::111111111111:root"}"#, session()),
        // the role ARN without its path is another role
        (r#"{"AWS":"arn:aws:iam::111111111111:role/app"}"#, session()),
        // another session of the role
        (
            r#"{"AWS":"arn:aws:sts::111111111111:assumed-role/app/s2"}"#,
            session(),
        ),
        // user ARNs are case-sensitive
        (r#"{"AWS":"arn:aws:iam::111111111111:user/Alice"}"#, alice()),
        // another account's user of the same name
        (r#"{"AWS":"arn:aws:iam::222222222222:user/alice"}"#, alice()),
        // a service principal is not an IAM user
        (r#"{"Service":"lambda.amazonaws.com"}"#, alice()),
    ] {
        assert_eq!(decide(&ctx(who), &grant(p)), Effect::ImplicitDeny, "{p}");
    }
}

#[test]
fn partial_wildcards_and_odd_principals_are_refused() {
    for p in [
        r#"{"AWS":"arn:aws:iam::111111111111:user/*"}"#,
        r#"{"AWS":"arn:aws:iam::111111111111:role/?pp"}"#,
        r#"{"AWS":"arn:aws:sts::111111111111:assumed-role/app/*"}"#,
        r#"{"AWS":"1111111111*"}"#,
        r#"{"AWS":"*:root"}"#,
        r#"{"AWS":"11111111111"}"#,
        r#"{"AWS":"arn:aws:iam::111111111111:group/admins"}"#,
        r#"{"AWS":""}"#,
        r#"{"AWS":[]}"#,
        r#"{}"#,
        r#""**""#,
        r#"{"Service":"*"}"#,
        r#"{"Federated":"accounts.google.com"}"#,
        r#"{"CanonicalUser":"abc"}"#,
        r#"{"aws":"*"}"#,
    ] {
        let doc = text(&format!(
            r#"{{"Effect":"Allow","Principal":{p},"Action":"secretsmanager:*","Resource":"*"}}"#
        ));
        assert!(!parses(&doc, PolicyType::Resource), "{p}");
    }
}

#[test]
fn the_boundary_cuts_a_role_grant_but_not_a_session_grant() {
    let boundary = pol(
        PolicyType::PermissionsBoundary,
        r#"{"Effect":"Allow","Action":"secretsmanager:DescribeSecret","Resource":"*"}"#,
    );
    let with_boundary = |mut set: PolicySet| {
        set.boundary = Some(Arc::clone(&boundary));
        set
    };
    let role = with_boundary(grant(
        r#"{"AWS":"arn:aws:iam::111111111111:role/team/app"}"#,
    ));
    assert_eq!(decide(&ctx(session()), &role), Effect::ImplicitDeny);
    let sess = with_boundary(grant(
        r#"{"AWS":"arn:aws:sts::111111111111:assumed-role/app/s1"}"#,
    ));
    assert_eq!(decide(&ctx(session()), &sess), Effect::Allow);
    // the account delegation needs identity AND boundary
    let mut acct = with_boundary(grant(r#"{"AWS":"111111111111"}"#));
    acct.identity = Arc::new(PolicyGroup::new(vec![pol(PolicyType::Identity, ALLOW_ALL)]));
    assert_eq!(decide(&ctx(session()), &acct), Effect::ImplicitDeny);
    // session policies cut a role grant too
    let mut role = grant(r#"{"AWS":"arn:aws:iam::111111111111:role/team/app"}"#);
    role.session = Some(Arc::new(PolicyGroup::new(vec![pol(
        PolicyType::Session,
        r#"{"Effect":"Allow","Action":"secretsmanager:DescribeSecret","Resource":"*"}"#,
    )])));
    assert_eq!(decide(&ctx(session()), &role), Effect::ImplicitDeny);
}

#[test]
fn an_explicit_deny_anywhere_beats_a_direct_resource_grant() {
    let deny = r#"{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*"}"#;
    let base = || grant(r#"{"AWS":"arn:aws:sts::111111111111:assumed-role/app/s1"}"#);
    assert_eq!(decide(&ctx(session()), &base()), Effect::Allow);
    let mut s = base();
    s.identity = Arc::new(PolicyGroup::new(vec![pol(PolicyType::Identity, deny)]));
    assert_eq!(decide(&ctx(session()), &s), Effect::ExplicitDeny);
    let mut s = base();
    s.boundary = Some(pol(PolicyType::PermissionsBoundary, deny));
    assert_eq!(decide(&ctx(session()), &s), Effect::ExplicitDeny);
    let mut s = base();
    s.session = Some(Arc::new(PolicyGroup::new(vec![pol(
        PolicyType::Session,
        deny,
    )])));
    assert_eq!(decide(&ctx(session()), &s), Effect::ExplicitDeny);
    let mut s = base();
    s.scp = Some(vec![Arc::new(PolicyGroup::new(vec![pol(
        PolicyType::Scp,
        &format!("{ALLOW_ALL},{deny}"),
    )]))]);
    assert_eq!(decide(&ctx(session()), &s), Effect::ExplicitDeny);
    // an SCP level without an Allow blocks the resource grant too
    let mut s = base();
    s.scp = Some(vec![
        Arc::new(PolicyGroup::new(vec![pol(PolicyType::Scp, ALLOW_ALL)])),
        Arc::new(PolicyGroup::new(vec![pol(
            PolicyType::Scp,
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#,
        )])),
    ]);
    assert_eq!(decide(&ctx(session()), &s), Effect::ImplicitDeny);
    // a Deny in the resource policy itself, naming the role, catches the session
    let s = resource(
        r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*"},
           {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111111111111:role/team/app"},"Action":"secretsmanager:*","Resource":"*"}"#,
    );
    assert_eq!(decide(&ctx(session()), &s), Effect::ExplicitDeny);
    // ... and one naming the account catches every principal of it
    let s = resource(
        r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*"},
           {"Effect":"Deny","Principal":{"AWS":"111111111111"},"Action":"secretsmanager:*","Resource":"*"}"#,
    );
    for who in [alice(), session(), PrincipalInfo::root(A)] {
        assert_eq!(decide(&ctx(who), &s), Effect::ExplicitDeny);
    }
}

#[test]
fn scp_deny_list_with_not_action_and_allow_list() {
    let scp = |stmts: &str| {
        Some(vec![Arc::new(PolicyGroup::new(vec![pol(
            PolicyType::Scp,
            stmts,
        )]))])
    };
    let mut s = identity(ALLOW_ALL);
    s.scp = scp(&format!(
        r#"{ALLOW_ALL},{{"Effect":"Deny","NotAction":["secretsmanager:Describe*","secretsmanager:List*"],"Resource":"*"}}"#
    ));
    assert_eq!(decide(&ctx(alice()), &s), Effect::ExplicitDeny);
    assert_eq!(
        decide(
            &ctx(alice()).with_action("secretsmanager:DescribeSecret"),
            &s
        ),
        Effect::Allow
    );
    // root is bound by SCPs too
    assert_eq!(
        decide(&ctx(PrincipalInfo::root(A)), &s),
        Effect::ExplicitDeny
    );
    // allow-list SCP: only Describe
    let mut s = identity(ALLOW_ALL);
    s.scp = scp(r#"{"Effect":"Allow","Action":"secretsmanager:Describe*","Resource":"*"}"#);
    assert_eq!(decide(&ctx(alice()), &s), Effect::ImplicitDeny);
    assert_eq!(
        decide(&ctx(PrincipalInfo::root(A)), &s),
        Effect::ImplicitDeny
    );
}

#[test]
fn not_principal_deny() {
    let np = |list: &str| {
        resource(&format!(
            r#"{{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*"}},
               {{"Effect":"Deny","NotPrincipal":{{"AWS":{list}}},"Action":"secretsmanager:*","Resource":"*"}}"#
        ))
    };
    // the session, its role and the account listed: not denied
    let full = np(
        r#"["arn:aws:sts::111111111111:assumed-role/app/s1","arn:aws:iam::111111111111:role/team/app","111111111111"]"#,
    );
    assert_eq!(decide(&ctx(session()), &full), Effect::Allow);
    // everyone else is
    assert_eq!(decide(&ctx(alice()), &full), Effect::ExplicitDeny);
    assert_eq!(
        decide(&ctx(user_in(B, "mallory")).with_action(GET), &full),
        Effect::ExplicitDeny
    );
    // the role missing: the session is denied
    let partial = np(r#"["arn:aws:sts::111111111111:assumed-role/app/s1","111111111111"]"#);
    assert_eq!(decide(&ctx(session()), &partial), Effect::ExplicitDeny);
    // a principal with a boundary is always denied
    let mut b = np(
        r#"["arn:aws:sts::111111111111:assumed-role/app/s1","arn:aws:iam::111111111111:role/team/app","111111111111"]"#,
    );
    b.boundary = Some(pol(PolicyType::PermissionsBoundary, ALLOW_ALL));
    assert_eq!(decide(&ctx(session()), &b), Effect::ExplicitDeny);
    // NotPrincipal with Allow is refused in a secret policy
    let doc = text(
        r#"{"Effect":"Allow","NotPrincipal":{"AWS":"222222222222"},"Action":"secretsmanager:*","Resource":"*"}"#,
    );
    assert!(!parses(&doc, PolicyType::Resource));
}

// ---------------------------------------------------------------------------------------
// §5.5: cross-account

fn in_b(p: PrincipalInfo) -> RequestContext {
    RequestContext::new(p, GET, SECRET, None)
}

#[test]
fn cross_account_needs_both_sides() {
    let mallory = user_in(B, "mallory");
    let id = pol(PolicyType::Identity, ALLOW_ALL);
    let res = pol(
        PolicyType::Resource,
        r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:user/mallory"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}"#,
    );
    let only_res = PolicySet {
        resource: Some(Arc::clone(&res)),
        ..PolicySet::default()
    };
    assert_eq!(
        decide(&in_b(mallory.clone()), &only_res),
        Effect::ImplicitDeny
    );
    let only_id = PolicySet::identity(vec![Arc::clone(&id)]);
    assert_eq!(
        decide(&in_b(mallory.clone()), &only_id),
        Effect::ImplicitDeny
    );
    let both = PolicySet {
        resource: Some(Arc::clone(&res)),
        ..PolicySet::identity(vec![Arc::clone(&id)])
    };
    let d = authorize(&in_b(mallory.clone()), &both);
    assert_eq!(
        d.reason,
        Reason::Allowed(AllowBasis::IdentityAndResourcePolicy)
    );
    // "*" in the resource policy does not bypass the other account's identity side
    let star = grant(r#""*""#);
    assert_eq!(decide(&in_b(mallory.clone()), &star), Effect::ImplicitDeny);
    // the other account's root still needs the resource policy
    assert_eq!(
        decide(&in_b(PrincipalInfo::root(B)), &PolicySet::default()),
        Effect::ImplicitDeny
    );
    assert_eq!(
        decide(
            &in_b(PrincipalInfo::root(B)),
            &grant(r#"{"AWS":"222222222222"}"#)
        ),
        Effect::Allow
    );
    // A's root is not B's: a grant to account A does not let B in
    let s = PolicySet {
        resource: Some(pol(
            PolicyType::Resource,
            r#"{"Effect":"Allow","Principal":{"AWS":"111111111111"},"Action":"secretsmanager:*","Resource":"*"}"#,
        )),
        ..PolicySet::identity(vec![id])
    };
    assert_eq!(decide(&in_b(mallory), &s), Effect::ImplicitDeny);
}

#[test]
fn cross_account_session_grant_does_not_bypass_the_callers_boundary() {
    let sess = PrincipalInfo {
        kind: PrincipalType::AssumedRole,
        arn: format!("arn:aws:sts::{B}:assumed-role/ext/s1"),
        issuer_arn: Some(format!("arn:aws:iam::{B}:role/ext")),
        account: B.into(),
        user_name: None,
        user_id: Some("AROAEXT:s1".into()),
        tags: Default::default(),
    };
    let mut s = grant(r#"{"AWS":"arn:aws:sts::222222222222:assumed-role/ext/s1"}"#);
    s.identity = Arc::new(PolicyGroup::new(vec![pol(PolicyType::Identity, ALLOW_ALL)]));
    assert_eq!(decide(&in_b(sess.clone()), &s), Effect::Allow);
    s.boundary = Some(pol(
        PolicyType::PermissionsBoundary,
        r#"{"Effect":"Allow","Action":"secretsmanager:DescribeSecret","Resource":"*"}"#,
    ));
    assert_eq!(decide(&in_b(sess), &s), Effect::ImplicitDeny);
}

// ---------------------------------------------------------------------------------------
// §1: grammar

#[test]
fn duplicate_keys_are_rejected_wherever_they_occur() {
    for doc in [
        // two Effects (Deny then Allow)
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Effect":"Allow","Action":"a:b","Resource":"*"}]}"#,
        // two Conditions: the second must not silently replace the first
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}},"Condition":{}}]}"#,
        // the same operator twice
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringEquals":{"k:a":"1"},"StringEquals":{"k:b":"2"}}}]}"#,
        // the same key twice under one operator
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringEquals":{"k:a":"1","k:a":"2"}}}]}"#,
        // two Statements
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}],"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        // two Versions
        r#"{"Version":"2008-10-17","Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*"}]}"#,
        // a key escaped differently is the same key
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Eff\u0065ct":"Allow","Action":"a:b","Resource":"*"}]}"#,
        // Action and NotAction together
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","NotAction":"a:c","Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","NotResource":"arn:aws:s3:::x"}]}"#,
    ] {
        assert!(!parses(doc, PolicyType::Identity), "{doc}");
    }
    // Principal map with a duplicate service key
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"111111111111","AWS":"222222222222"},"Action":"a:b","Resource":"*"}]}"#;
    assert!(!parses(doc, PolicyType::Resource));
    // control: distinct keys that differ in case are distinct keys (and both AND-ed)
    let doc = text(
        r#"{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*","Condition":{"StringEquals":{"aws:SourceVpce":"vpce-1","AWS:SOURCEVPCE":"vpce-2"}}}"#,
    );
    let p = Arc::new(Policy::parse(&doc, PolicyType::Identity).unwrap());
    let c = ctx(alice()).with("aws:SourceVpce", ["vpce-1"]);
    assert_eq!(
        decide(&c, &PolicySet::identity(vec![p])),
        Effect::ImplicitDeny
    );
}

#[test]
fn element_names_and_values_are_strict() {
    for doc in [
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow ","Action":"a:b","Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"ALLOW","Action":"a:b","Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"effect":"Allow","Action":"a:b","Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","action":"a:b","Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Conditions":{}}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"stringequals":{"k:a":"1"}}}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringEquals ":{"k:a":"1"}}}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"ForAnyValue:Null":{"k:a":"true"}}}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"NullIfExists":{"k:a":"true"}}}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"ForSomeValues:StringEquals":{"k:a":"1"}}}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringEquals":{"nokey":"1"}}}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":[]}]}"#,
        r#"{"Version":"2012-10-17 ","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*"}],"Extra":1}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":[]}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"","Resource":"*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":""}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"secret:*"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[]}"#,
        r#"{"Version":"2012-10-17","Statement":"x"}"#,
        r#"{"Version":"2012-10-17","Statement":[null]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*"}]} x"#,
        r#"[{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*"}]}]"#,
    ] {
        assert!(!parses(doc, PolicyType::Identity), "{doc}");
    }
    // control: Statement as an object
    assert!(parses(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"a:b","Resource":"*"}}"#,
        PolicyType::Identity
    ));
}

#[test]
fn deep_and_large_inputs_fail_closed() {
    // deeply nested JSON must not crash the parser (serde_json's recursion limit)
    let deep = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{}{}}}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(!parses(&deep, PolicyType::Resource));
    // many statements: a Deny at the end is still seen (index path, > 16 statements)
    let mut stmts: Vec<String> = (0..100)
        .map(|i| {
            format!(
                r#"{{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:s{i}-??????"}}"#
            )
        })
        .collect();
    stmts.push(
        r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*"}"#.into(),
    );
    let allowed = resource(&stmts.join(","));
    assert_eq!(decide(&ctx(alice()), &allowed), Effect::Allow);
    stmts.push(
        r#"{"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111111111111:user/alice"},"Action":"secretsmanager:Get*","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-??????"}"#.into(),
    );
    let denied = resource(&stmts.join(","));
    assert_eq!(decide(&ctx(alice()), &denied), Effect::ExplicitDeny);
}

/// Statement index (> 16 statements) vs every shape of Deny that could be filed wrongly.
#[test]
fn the_statement_index_never_hides_a_deny() {
    let filler: Vec<String> = (0..40)
        .map(|i| {
            format!(
                r#"{{"Effect":"Allow","Action":"secretsmanager:DescribeSecret","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:f{i}-??????"}}"#
            )
        })
        .collect();
    let denies = [
        r#"{"Effect":"Deny","Action":"SecretsManager:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/*"}"#,
        r#"{"Effect":"Deny","Action":"secretsmanager:Get*","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-a1B2c3"}"#,
        r#"{"Effect":"Deny","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:111111111111:secret:prod/*"}"#,
        r#"{"Effect":"Deny","Action":"*:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:*"}"#,
        r#"{"Effect":"Deny","Action":"secrets?anager:GetSecretValue","Resource":"*"}"#,
        r#"{"Effect":"Deny","NotAction":"s3:*","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-a1B2c3"}"#,
        r#"{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","NotResource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:dev/*"}"#,
        r#"{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:${aws:PrincipalTag/team, 'prod'}/*"}"#,
        r#"{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:${*}${?}"}"#,
        r#"{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":["arn:aws:secretsmanager:us-east-1:111111111111:secret:x","arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-??????"]}"#,
        r#"{"Effect":"Deny","Action":["secretsmanager:PutSecretValue","secretsmanager:GetSecretValue"],"Resource":["arn:aws:secretsmanager:us-east-1:111111111111:secret:x","*"]}"#,
        r#"{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:prod*"}"#,
        r#"{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:*"}"#,
        r#"{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:*"}"#,
    ];
    let mut p = alice();
    p.tags.clear();
    for deny in denies {
        let mut stmts = filler.clone();
        stmts.push(ALLOW_ALL.to_owned());
        stmts.push(deny.to_owned());
        let set = identity_many(&stmts);
        let single = identity(&format!("{ALLOW_ALL},{deny}"));
        let c = ctx(p.clone());
        // the `${*}${?}` case denies only the literal `*?`; others deny the secret
        let want = decide(&c, &single);
        assert_eq!(decide(&c, &set), want, "{deny}");
        if !deny.contains("${*}") {
            assert_eq!(want, Effect::ExplicitDeny, "{deny}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The policies directory (src/identity/load.rs): documents read from files

/// A policies directory with one account and the user `alice` whose user file is `user`.
fn directory_with_user(user: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let account = root.path().join("accounts").join(A);
    std::fs::create_dir_all(account.join("users")).unwrap();
    std::fs::write(
        account.join("account.json"),
        format!(r#"{{"AccountId":"{A}"}}"#),
    )
    .unwrap();
    std::fs::write(account.join("users").join("alice.json"), user).unwrap();
    root
}

/// IAM.md §1.1/§8: duplicate keys in any JSON object are an error. The directory loader
/// reads files into `serde_json::Value` (last key wins) before the strict policy parser
/// sees them, so an inline policy `{"Effect":"Deny", …, "Effect":"Allow"}` loads as an Allow.
#[test]
fn a_directory_policy_with_duplicate_keys_is_refused() {
    let dup = r#"{"UserName":"alice","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
        {"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*","Effect":"Allow"}]}}}"#;
    // control: the same document written as text is refused by the policy parser
    let inline = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*","Effect":"Allow"}]}"#;
    assert!(!parses(inline, PolicyType::Identity));
    let root = directory_with_user(dup);
    match crate::identity::load_dir(root.path()) {
        Err(_) => {}
        Ok(dir) => {
            let user = dir.user(A, "alice").unwrap();
            let d = authorize(
                &ctx(alice()),
                &PolicySet {
                    identity: Arc::clone(&user.identity_group),
                    ..PolicySet::default()
                },
            );
            panic!(
                "a policy with two Effect keys was loaded; it decides {:?}",
                d.effect
            );
        }
    }
}

/// The same through a Condition given twice: the first (restrictive) block is dropped.
#[test]
fn a_directory_policy_with_two_conditions_is_refused() {
    let dup = r#"{"UserName":"alice","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
         "Condition":{"StringEquals":{"aws:SourceVpce":"vpce-1"}},
         "Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}}}"#;
    let root = directory_with_user(dup);
    if let Ok(dir) = crate::identity::load_dir(root.path()) {
        let user = dir.user(A, "alice").unwrap();
        let c = ctx(alice()).with("aws:SecureTransport", ["true"]);
        let d = authorize(
            &c,
            &PolicySet {
                identity: Arc::clone(&user.identity_group),
                ..PolicySet::default()
            },
        );
        panic!(
            "a policy with two Condition keys was loaded; without the VPC endpoint it decides {:?}",
            d.effect
        );
    }
}

/// Control for the two tests above: a clean directory loads and decides as written.
#[test]
fn a_clean_directory_policy_loads() {
    let ok = r#"{"UserName":"alice","InlinePolicies":{"p":{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*",
         "Condition":{"StringEquals":{"aws:SourceVpce":"vpce-1"}}}]}}}"#;
    let root = directory_with_user(ok);
    let dir = crate::identity::load_dir(root.path()).unwrap();
    let user = dir.user(A, "alice").unwrap();
    let set = PolicySet {
        identity: Arc::clone(&user.identity_group),
        ..PolicySet::default()
    };
    assert_eq!(decide(&ctx(alice()), &set), Effect::ImplicitDeny);
    let c = ctx(alice()).with("aws:SourceVpce", ["vpce-1"]);
    assert_eq!(decide(&c, &set), Effect::Allow);
}

// ---------------------------------------------------------------------------------------
// The request context the server builds (src/authz/context.rs), IAM.md §6.3

fn server_context(action: &str, resource: &str, resource_account: &str) -> RequestContext {
    let p = crate::auth::Principal::user(
        A,
        &format!("arn:aws:iam::{A}:user/alice"),
        "AIDAALICE",
        "alice",
        Default::default(),
        "AKIAALICE",
    );
    let facts = crate::authz::Facts {
        region: "us-east-1".into(),
        now_ms: 1_700_000_000_000,
        source_ip: Some("203.0.113.7".parse().unwrap()),
        secure_transport: Some(true),
    };
    crate::authz::request_context(
        &crate::identity::Directory::default(),
        &p,
        &facts,
        action,
        resource,
        resource_account,
    )
}

/// `aws:ResourceAccount` is "always" present for actions on a resource (IAM.md §6.3). The
/// data-perimeter guardrail `Deny … StringNotEquals aws:ResourceAccount
/// ${aws:PrincipalAccount}` must not deny a same-account read.
#[test]
fn the_server_context_has_aws_resource_account() {
    let c = server_context(GET, SECRET, A);
    // controls: the keys the server does fill in
    for key in [
        "aws:PrincipalArn",
        "aws:PrincipalAccount",
        "aws:username",
        "aws:RequestedRegion",
        "aws:SourceIp",
        "aws:SecureTransport",
        "aws:CurrentTime",
        "aws:EpochTime",
    ] {
        assert!(c.get(key).is_some(), "{key} missing");
    }
    let perimeter =
        deny_when(r#"{"StringNotEquals":{"aws:ResourceAccount":"${aws:PrincipalAccount}"}}"#);
    assert_eq!(
        decide(&c, &perimeter),
        Effect::Allow,
        "same-account read denied by the resource perimeter; aws:ResourceAccount = {:?}",
        c.get("aws:ResourceAccount")
    );
}

/// A set tells whether any of its policies reads a condition key (as the key of a condition,
/// in any case, or inside a value): the server skips looking up a key no policy reads
/// (`kms:ResourceAliases`), so every place a policy can read it must count.
#[test]
fn a_set_knows_every_place_a_condition_key_is_read() {
    let key = "kms:resourcealiases";
    let reads = r#"{"Effect":"Deny","Action":"kms:*","Resource":"*",
        "Condition":{"ForAnyValue:StringLike":{"KMS:ResourceAliases":"alias/prod-*"}}}"#;
    let in_value = r#"{"Effect":"Deny","Action":"kms:*","Resource":"*",
        "Condition":{"StringEquals":{"aws:PrincipalTag/x":"${kms:ResourceAliases}"}}}"#;
    let other = r#"{"Effect":"Allow","Action":"kms:*","Resource":"*",
        "Condition":{"StringEquals":{"kms:ViaService":"secretsmanager.us-east-1.amazonaws.com"}}}"#;
    let plain = PolicySet::identity(vec![pol(PolicyType::Identity, other)]);
    assert!(!plain.mentions_condition_key(key));
    assert!(PolicySet::identity(vec![pol(PolicyType::Identity, reads)]).mentions_condition_key(key));
    assert!(
        PolicySet::identity(vec![pol(PolicyType::Identity, in_value)]).mentions_condition_key(key)
    );
    let resource = r#"{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*",
        "Condition":{"ForAnyValue:StringLike":{"kms:ResourceAliases":"alias/prod-*"}}}"#;
    let with = |f: &dyn Fn(&mut PolicySet)| {
        let mut s = plain.clone();
        f(&mut s);
        s.mentions_condition_key(key)
    };
    assert!(with(
        &|s| s.resource = Some(pol(PolicyType::Resource, resource))
    ));
    assert!(with(
        &|s| s.boundary = Some(pol(PolicyType::Identity, reads))
    ));
    assert!(with(&|s| {
        s.session = Some(Arc::new(PolicyGroup::new(vec![pol(
            PolicyType::Identity,
            reads,
        )])));
    }));
    assert!(with(&|s| {
        s.scp = Some(vec![Arc::new(PolicyGroup::new(vec![pol(
            PolicyType::Scp,
            reads,
        )]))]);
    }));
    assert!(with(&|s| {
        s.rcp = Some(vec![Arc::new(PolicyGroup::new(vec![pol(
            PolicyType::Scp,
            reads,
        )]))]);
    }));
}
