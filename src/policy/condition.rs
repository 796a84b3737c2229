//! Condition operators (IAM.md §3): every family, `…IfExists`, `Null`, the set qualifiers
//! `ForAnyValue:`/`ForAllValues:` and policy variables in String/Arn/Bool values.
//!
//! Semantics, per key (§3.2, §3.5, §3.6):
//! * `m(v)` for one request value: positive operator ⇒ some policy value matches;
//!   negated operator ⇒ no policy value matches (the positive comparison fails for all).
//! * unqualified: key absent (or empty) ⇒ `IfExists` true, positive false, negated true;
//!   a multivalued key ⇒ no match [?: iam-simulate]; otherwise `m(v)`.
//! * `ForAnyValue`: empty ⇒ false (true with `IfExists`); else some `m(v)`.
//! * `ForAllValues`: empty ⇒ true; else every `m(v)`.
//! * An unparseable request value makes `m(v)` false (positive and negated alike).
//! * An unresolved variable without default makes that policy value compare false, so a
//!   positive operator does not match it and a negated one does.

use ipnet::IpNet;

use super::context::RequestContext;
use super::err::PolicyError;
use super::pattern::{ArnPattern, Pattern};
use super::template::Template;
use super::value::{parse_binary, parse_bool, parse_cidr, parse_date, parse_ip, Decimal};

/// `ForAnyValue:` / `ForAllValues:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

/// The base operator, without qualifier or `IfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseOp {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

const ALL_OPS: [BaseOp; 27] = {
    use BaseOp as B;
    [
        B::StringEquals,
        B::StringNotEquals,
        B::StringEqualsIgnoreCase,
        B::StringNotEqualsIgnoreCase,
        B::StringLike,
        B::StringNotLike,
        B::NumericEquals,
        B::NumericNotEquals,
        B::NumericLessThan,
        B::NumericLessThanEquals,
        B::NumericGreaterThan,
        B::NumericGreaterThanEquals,
        B::DateEquals,
        B::DateNotEquals,
        B::DateLessThan,
        B::DateLessThanEquals,
        B::DateGreaterThan,
        B::DateGreaterThanEquals,
        B::Bool,
        B::BinaryEquals,
        B::IpAddress,
        B::NotIpAddress,
        B::ArnEquals,
        B::ArnLike,
        B::ArnNotEquals,
        B::ArnNotLike,
        B::Null,
    ]
};

impl BaseOp {
    pub fn name(self) -> &'static str {
        use BaseOp as B;
        match self {
            B::StringEquals => "StringEquals",
            B::StringNotEquals => "StringNotEquals",
            B::StringEqualsIgnoreCase => "StringEqualsIgnoreCase",
            B::StringNotEqualsIgnoreCase => "StringNotEqualsIgnoreCase",
            B::StringLike => "StringLike",
            B::StringNotLike => "StringNotLike",
            B::NumericEquals => "NumericEquals",
            B::NumericNotEquals => "NumericNotEquals",
            B::NumericLessThan => "NumericLessThan",
            B::NumericLessThanEquals => "NumericLessThanEquals",
            B::NumericGreaterThan => "NumericGreaterThan",
            B::NumericGreaterThanEquals => "NumericGreaterThanEquals",
            B::DateEquals => "DateEquals",
            B::DateNotEquals => "DateNotEquals",
            B::DateLessThan => "DateLessThan",
            B::DateLessThanEquals => "DateLessThanEquals",
            B::DateGreaterThan => "DateGreaterThan",
            B::DateGreaterThanEquals => "DateGreaterThanEquals",
            B::Bool => "Bool",
            B::BinaryEquals => "BinaryEquals",
            B::IpAddress => "IpAddress",
            B::NotIpAddress => "NotIpAddress",
            B::ArnEquals => "ArnEquals",
            B::ArnLike => "ArnLike",
            B::ArnNotEquals => "ArnNotEquals",
            B::ArnNotLike => "ArnNotLike",
            B::Null => "Null",
        }
    }

    /// Negated operators: several values are AND-ed negations; a missing key is true.
    pub fn is_negated(self) -> bool {
        use BaseOp as B;
        matches!(
            self,
            B::StringNotEquals
                | B::StringNotEqualsIgnoreCase
                | B::StringNotLike
                | B::NumericNotEquals
                | B::DateNotEquals
                | B::NotIpAddress
                | B::ArnNotEquals
                | B::ArnNotLike
        )
    }

    /// Whether policy variables are substituted in this operator's values.
    fn takes_variables(self) -> bool {
        use BaseOp as B;
        matches!(
            self,
            B::StringEquals
                | B::StringNotEquals
                | B::StringEqualsIgnoreCase
                | B::StringNotEqualsIgnoreCase
                | B::StringLike
                | B::StringNotLike
                | B::ArnEquals
                | B::ArnLike
                | B::ArnNotEquals
                | B::ArnNotLike
                | B::Bool
        )
    }
}

/// A full operator: qualifier, base and `IfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    pub qualifier: Qualifier,
    pub base: BaseOp,
    pub if_exists: bool,
}

impl Operator {
    /// Parse an operator name; canonical case only [?: §10].
    pub fn parse(name: &str) -> Option<Self> {
        let (qualifier, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (Qualifier::ForAnyValue, r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (Qualifier::ForAllValues, r)
        } else {
            (Qualifier::None, name)
        };
        let (if_exists, base_name) = match rest.strip_suffix("IfExists") {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let base = ALL_OPS.iter().copied().find(|op| op.name() == base_name)?;
        if base == BaseOp::Null && (if_exists || qualifier != Qualifier::None) {
            return None;
        }
        Some(Self {
            qualifier,
            base,
            if_exists,
        })
    }
}

#[derive(Debug, Clone)]
enum StrVal {
    Static(String),
    Dyn(Template),
}

#[derive(Debug, Clone)]
enum GlobVal {
    Static(Pattern),
    Dyn(Template),
}

#[derive(Debug, Clone)]
enum ArnVal {
    Static(ArnPattern),
    Dyn(Template),
}

#[derive(Debug, Clone)]
enum BoolVal {
    Static(bool),
    Dyn(Template),
}

#[derive(Debug, Clone)]
enum Values {
    Str(Vec<StrVal>),
    Glob(Vec<GlobVal>),
    Arn(Vec<ArnVal>),
    Num(Vec<Decimal>),
    Date(Vec<i128>),
    Bool(Vec<BoolVal>),
    Binary(Vec<Vec<u8>>),
    Ip(Vec<IpNet>),
    Null(Vec<bool>),
}

/// One `operator: {key: values}` entry, compiled.
#[derive(Debug, Clone)]
pub struct Condition {
    pub(crate) op: Operator,
    pub(crate) op_name: String,
    /// The key as written.
    pub(crate) key_name: String,
    /// The key, lowercased (lookup form).
    pub(crate) key: String,
    key_hash: u64,
    /// The values as written (for lints and public checks).
    pub(crate) raw_values: Vec<String>,
    values: Values,
}

/// Something worth reporting that happened while evaluating a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Note {
    UnresolvedVariable,
    UnparseableRequestValue,
    MultivaluedWithoutQualifier,
}

fn invalid(op: &str, value: &str, reason: &'static str) -> PolicyError {
    PolicyError::InvalidConditionValue {
        operator: op.to_owned(),
        value: value.to_owned(),
        reason,
    }
}

impl Condition {
    /// Compile one entry. `vars`: the policy is Version 2012-10-17.
    pub(crate) fn compile(
        op_name: &str,
        key_name: &str,
        raw_values: Vec<String>,
        vars: bool,
    ) -> Result<Self, PolicyError> {
        let op = Operator::parse(op_name)
            .ok_or_else(|| PolicyError::UnknownOperator(op_name.to_owned()))?;
        if !key_name
            .split_once(':')
            .is_some_and(|(v, k)| !v.is_empty() && !k.is_empty())
        {
            return Err(PolicyError::ConditionKeyVendor(key_name.to_owned()));
        }
        if raw_values.is_empty() {
            return Err(PolicyError::EmptyConditionValues {
                operator: op_name.to_owned(),
                key: key_name.to_owned(),
            });
        }
        let tmpl = |v: &str| -> Result<Option<Template>, PolicyError> {
            if !vars {
                return Ok(None);
            }
            let t = Template::parse(v).map_err(|b| PolicyError::InvalidVariable(b.0))?;
            if t.as_ref().is_some_and(Template::has_variables) && !op.base.takes_variables() {
                return Err(PolicyError::VariableNotAllowed(op_name.to_owned()));
            }
            Ok(t)
        };
        use BaseOp as B;
        let values = match op.base {
            B::StringEquals
            | B::StringNotEquals
            | B::StringEqualsIgnoreCase
            | B::StringNotEqualsIgnoreCase => Values::Str(
                raw_values
                    .iter()
                    .map(|v| {
                        Ok(match tmpl(v)? {
                            None => StrVal::Static(v.clone()),
                            Some(t) => match t.static_text() {
                                Some(s) => StrVal::Static(s),
                                None => StrVal::Dyn(t),
                            },
                        })
                    })
                    .collect::<Result<_, PolicyError>>()?,
            ),
            B::StringLike | B::StringNotLike => Values::Glob(
                raw_values
                    .iter()
                    .map(|v| {
                        Ok(match tmpl(v)? {
                            None => GlobVal::Static(Pattern::glob(v)),
                            Some(t) => match t.static_toks() {
                                Some(toks) => GlobVal::Static(Pattern::from_toks(toks)),
                                None => GlobVal::Dyn(t),
                            },
                        })
                    })
                    .collect::<Result<_, PolicyError>>()?,
            ),
            B::ArnEquals | B::ArnLike | B::ArnNotEquals | B::ArnNotLike => Values::Arn(
                raw_values
                    .iter()
                    .map(|v| {
                        Ok(match tmpl(v)? {
                            None => ArnVal::Static(ArnPattern::glob(v)),
                            Some(t) => match t.static_toks() {
                                Some(toks) => ArnVal::Static(ArnPattern::from_toks(toks)),
                                None => ArnVal::Dyn(t),
                            },
                        })
                    })
                    .collect::<Result<_, PolicyError>>()?,
            ),
            B::NumericEquals
            | B::NumericNotEquals
            | B::NumericLessThan
            | B::NumericLessThanEquals
            | B::NumericGreaterThan
            | B::NumericGreaterThanEquals => Values::Num(
                raw_values
                    .iter()
                    .map(|v| {
                        Decimal::parse(v)
                            .map_or_else(|| reject(&tmpl, op_name, v, "not a number"), Ok)
                    })
                    .collect::<Result<_, _>>()?,
            ),
            B::DateEquals
            | B::DateNotEquals
            | B::DateLessThan
            | B::DateLessThanEquals
            | B::DateGreaterThan
            | B::DateGreaterThanEquals => Values::Date(
                raw_values
                    .iter()
                    .map(|v| {
                        parse_date(v).map_or_else(|| reject(&tmpl, op_name, v, "not a date"), Ok)
                    })
                    .collect::<Result<_, _>>()?,
            ),
            B::Bool => Values::Bool(
                raw_values
                    .iter()
                    .map(|v| match tmpl(v)? {
                        Some(t) if t.has_variables() => Ok(BoolVal::Dyn(t)),
                        _ => parse_bool(v)
                            .map(BoolVal::Static)
                            .ok_or_else(|| invalid(op_name, v, "not a boolean")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            B::BinaryEquals => Values::Binary(
                raw_values
                    .iter()
                    .map(|v| {
                        parse_binary(v).map_or_else(|| reject(&tmpl, op_name, v, "not base64"), Ok)
                    })
                    .collect::<Result<_, _>>()?,
            ),
            B::IpAddress | B::NotIpAddress => Values::Ip(
                raw_values
                    .iter()
                    .map(|v| {
                        parse_cidr(v).map_or_else(
                            || reject(&tmpl, op_name, v, "not an ip address or cidr"),
                            Ok,
                        )
                    })
                    .collect::<Result<_, _>>()?,
            ),
            B::Null => Values::Null(
                raw_values
                    .iter()
                    .map(|v| {
                        parse_bool(v)
                            .ok_or_else(|| invalid(op_name, v, "must be `true` or `false`"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Self {
            op,
            op_name: op_name.to_owned(),
            key_name: key_name.to_owned(),
            key: key_name.to_lowercase(),
            key_hash: super::index::fnv(key_name.to_lowercase().as_bytes()),
            raw_values,
            values,
        })
    }

    /// Evaluate against the request; notes go to `notes`.
    pub(crate) fn eval(&self, ctx: &RequestContext, notes: &mut Vec<Note>) -> bool {
        let present = ctx.get_hashed(self.key_hash, &self.key);
        if let Values::Null(want) = &self.values {
            let is_null = present.is_none_or(|v| v.values.iter().all(String::is_empty));
            return want.contains(&is_null);
        }
        let vals: &[String] = present.map_or(&[], |v| v.values.as_slice());
        let negated = self.op.base.is_negated();
        match self.op.qualifier {
            Qualifier::None => {
                if vals.is_empty() {
                    return self.op.if_exists || negated;
                }
                if present.is_some_and(|v| v.ty.is_multivalued()) || vals.len() > 1 {
                    notes.push(Note::MultivaluedWithoutQualifier);
                    return false;
                }
                vals.iter().all(|v| self.per_value(v, ctx, notes))
            }
            Qualifier::ForAnyValue => {
                if vals.is_empty() {
                    return self.op.if_exists;
                }
                vals.iter().any(|v| self.per_value(v, ctx, notes))
            }
            Qualifier::ForAllValues => vals.iter().all(|v| self.per_value(v, ctx, notes)),
        }
    }

    /// `m(v)`.
    fn per_value(&self, v: &str, ctx: &RequestContext, notes: &mut Vec<Note>) -> bool {
        let negated = self.op.base.is_negated();
        match self.compare(v, ctx, notes) {
            None => {
                notes.push(Note::UnparseableRequestValue);
                false
            }
            Some(any) => any != negated,
        }
    }

    /// Whether some policy value matches `v` under the positive form of the operator;
    /// `None` when `v` cannot be read as the operator's type.
    fn compare(&self, v: &str, ctx: &RequestContext, notes: &mut Vec<Note>) -> Option<bool> {
        use BaseOp as B;
        let base = self.op.base;
        let unresolved = |notes: &mut Vec<Note>| {
            notes.push(Note::UnresolvedVariable);
            false
        };
        Some(match &self.values {
            Values::Str(ps) => {
                let ic = matches!(
                    base,
                    B::StringEqualsIgnoreCase | B::StringNotEqualsIgnoreCase
                );
                let eq = |p: &str| {
                    if ic {
                        eq_ignore_case(p, v)
                    } else {
                        p == v
                    }
                };
                ps.iter().any(|p| match p {
                    StrVal::Static(s) => eq(s),
                    StrVal::Dyn(t) => match t.resolve_text(ctx) {
                        Some(s) => eq(&s),
                        None => unresolved(notes),
                    },
                })
            }
            Values::Glob(ps) => ps.iter().any(|p| match p {
                GlobVal::Static(pat) => pat.matches(v),
                GlobVal::Dyn(t) => match t.resolve_toks(ctx) {
                    Some(toks) => Pattern::from_toks(toks).matches(v),
                    None => unresolved(notes),
                },
            }),
            Values::Arn(ps) => {
                let parts = super::pattern::split_arn(v).filter(|p| p[0] == "arn")?;
                ps.iter().any(|p| match p {
                    ArnVal::Static(pat) => pat.matches_parts(Some(&parts)),
                    ArnVal::Dyn(t) => match t.resolve_toks(ctx) {
                        Some(toks) => ArnPattern::from_toks(toks).matches_parts(Some(&parts)),
                        None => unresolved(notes),
                    },
                })
            }
            Values::Num(ps) => {
                let x = Decimal::parse(v)?;
                ps.iter().any(|p| ordered(base, x.cmp(p)))
            }
            Values::Date(ps) => {
                let x = parse_date(v)?;
                ps.iter().any(|p| ordered(base, x.cmp(p)))
            }
            Values::Bool(ps) => {
                let x = parse_bool(v)?;
                ps.iter().any(|p| match p {
                    BoolVal::Static(b) => *b == x,
                    BoolVal::Dyn(t) => match t.resolve_text(ctx).as_deref().and_then(parse_bool) {
                        Some(b) => b == x,
                        None => unresolved(notes),
                    },
                })
            }
            Values::Binary(ps) => {
                let x = parse_binary(v)?;
                ps.contains(&x)
            }
            Values::Ip(ps) => {
                let x = parse_ip(v)?;
                ps.iter().any(|net| net.contains(&x))
            }
            Values::Null(_) => false,
        })
    }
}

/// The error for an unreadable typed policy value (a variable there is reported as such).
fn reject<T>(
    tmpl: &dyn Fn(&str) -> Result<Option<Template>, PolicyError>,
    op_name: &str,
    v: &str,
    reason: &'static str,
) -> Result<T, PolicyError> {
    tmpl(v)?;
    Err(invalid(op_name, v, reason))
}

/// Numeric/Date comparison of request value `x` against policy value `p` (`ord = x.cmp(p)`).
fn ordered(base: BaseOp, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering as O;
    use BaseOp as B;
    match base {
        B::NumericEquals | B::NumericNotEquals | B::DateEquals | B::DateNotEquals => {
            ord == O::Equal
        }
        B::NumericLessThan | B::DateLessThan => ord == O::Less,
        B::NumericLessThanEquals | B::DateLessThanEquals => ord != O::Greater,
        B::NumericGreaterThan | B::DateGreaterThan => ord == O::Greater,
        B::NumericGreaterThanEquals | B::DateGreaterThanEquals => ord != O::Less,
        _ => false,
    }
}

/// Unicode simple case folding via `to_lowercase`, without allocating.
fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::context::{PrincipalInfo, RequestContext};

    fn ctx(pairs: &[(&str, &[&str])]) -> RequestContext {
        let mut c = RequestContext::new(PrincipalInfo::root("1"), "a:b", "*", None);
        for (k, v) in pairs {
            c = c.with(k, v.iter().copied());
        }
        c
    }

    fn eval(op: &str, key: &str, vals: &[&str], c: &RequestContext) -> bool {
        let cond = Condition::compile(
            op,
            key,
            vals.iter().map(|s| (*s).to_owned()).collect(),
            true,
        )
        .unwrap();
        cond.eval(c, &mut Vec::new())
    }

    #[test]
    fn operator_names() {
        assert!(Operator::parse("StringEqualsIfExists").is_some_and(|o| o.if_exists));
        assert!(Operator::parse("ForAllValues:StringLike").is_some());
        assert!(Operator::parse("NullIfExists").is_none());
        assert!(Operator::parse("ForAnyValue:Null").is_none());
        assert!(Operator::parse("stringequals").is_none());
        assert!(Operator::parse("StringEqualz").is_none());
    }

    #[test]
    fn set_qualifier_truth_table() {
        // IAM.md §3.5 worked table: P = [a, b]
        let cases: [(&str, [bool; 4]); 4] = [
            ("ForAnyValue:StringEquals", [true, false, true, false]),
            ("ForAllValues:StringEquals", [true, false, false, true]),
            ("ForAnyValue:StringNotEquals", [false, true, true, false]),
            ("ForAllValues:StringNotEquals", [false, true, false, true]),
        ];
        let sets: [Option<&[&str]>; 4] = [Some(&["a"]), Some(&["c"]), Some(&["a", "c"]), None];
        for (op, want) in cases {
            for (set, w) in sets.iter().zip(want) {
                let c = match set {
                    Some(s) => ctx(&[("aws:TagKeys", s)]),
                    None => ctx(&[]),
                };
                assert_eq!(eval(op, "aws:TagKeys", &["a", "b"], &c), w, "{op} {set:?}");
            }
        }
    }

    #[test]
    fn missing_keys() {
        let c = ctx(&[]);
        assert!(!eval("StringEquals", "aws:SourceVpce", &["v"], &c));
        assert!(eval("StringNotEquals", "aws:SourceVpce", &["v"], &c));
        assert!(eval("StringEqualsIfExists", "aws:SourceVpce", &["v"], &c));
        assert!(eval("Null", "aws:SourceVpce", &["true"], &c));
        assert!(!eval("Null", "aws:SourceVpce", &["false"], &c));
        assert!(eval(
            "ForAnyValue:StringEqualsIfExists",
            "aws:TagKeys",
            &["a"],
            &c
        ));
        let empty = ctx(&[("aws:TagKeys", &[])]);
        assert!(eval("Null", "aws:TagKeys", &["true"], &empty));
    }

    #[test]
    fn multivalued_key_without_qualifier_never_matches() {
        let c = ctx(&[("aws:TagKeys", &["a"])]);
        assert!(!eval("StringEquals", "aws:TagKeys", &["a"], &c));
        assert!(!eval("StringNotEquals", "aws:TagKeys", &["b"], &c));
    }

    #[test]
    fn typed_families() {
        let c = ctx(&[
            ("k:n", &["10.0"]),
            ("aws:CurrentTime", &["2024-06-01T00:00:00Z"]),
            ("aws:SourceIp", &["10.1.2.3"]),
            ("aws:SecureTransport", &["TRUE"]),
            ("k:bin", &["aGk="]),
            ("k:s", &["Hello"]),
        ]);
        assert!(eval("NumericEquals", "k:n", &["10"], &c));
        assert!(eval("NumericLessThan", "k:n", &["10.5"], &c));
        assert!(!eval("NumericGreaterThan", "k:n", &["10"], &c));
        assert!(eval("NumericGreaterThanEquals", "k:n", &["10"], &c));
        assert!(eval("NumericNotEquals", "k:n", &["1", "2"], &c));
        assert!(eval(
            "DateGreaterThan",
            "aws:CurrentTime",
            &["2024-01-01"],
            &c
        ));
        assert!(eval("DateLessThan", "aws:CurrentTime", &["1719792000"], &c));
        assert!(eval("IpAddress", "aws:SourceIp", &["10.0.0.0/8"], &c));
        assert!(!eval("IpAddress", "aws:SourceIp", &["::/0"], &c));
        assert!(eval(
            "NotIpAddress",
            "aws:SourceIp",
            &["192.168.0.0/16"],
            &c
        ));
        assert!(eval("Bool", "aws:SecureTransport", &["true"], &c));
        assert!(eval("BinaryEquals", "k:bin", &["aGk="], &c));
        assert!(eval("StringEqualsIgnoreCase", "k:s", &["hELLO"], &c));
        assert!(!eval("StringEquals", "k:s", &["hello"], &c));
        assert!(eval("StringLike", "k:s", &["H?l*"], &c));
        assert!(eval("StringNotLike", "k:s", &["x*", "y*"], &c));
        assert!(!eval("StringEquals", "k:s", &["H*"], &c));
        // unparseable request value: false for positive and negated alike
        let bad = ctx(&[("k:n", &["ten"])]);
        assert!(!eval("NumericEquals", "k:n", &["10"], &bad));
        assert!(!eval("NumericNotEquals", "k:n", &["10"], &bad));
    }

    #[test]
    fn invalid_policy_values_are_rejected() {
        let c = |op: &str, v: &str| Condition::compile(op, "k:x", vec![v.to_owned()], true);
        for (op, value, reason) in [
            ("NumericEquals", "abc", "not a number"),
            ("DateEquals", "soon", "not a date"),
            ("IpAddress", "10.0.0.0/33", "not an ip address or cidr"),
            ("Bool", "yes", "not a boolean"),
            ("Null", "maybe", "must be `true` or `false`"),
            ("BinaryEquals", "***", "not base64"),
        ] {
            assert_eq!(
                c(op, value).unwrap_err(),
                PolicyError::InvalidConditionValue {
                    operator: op.into(),
                    value: value.into(),
                    reason,
                }
            );
        }
        assert_eq!(
            c("NumericEquals", "${aws:username}").unwrap_err(),
            PolicyError::VariableNotAllowed("NumericEquals".into())
        );
        assert_eq!(
            Condition::compile("StringEquals", "nokey", vec!["x".into()], true).unwrap_err(),
            PolicyError::ConditionKeyVendor("nokey".into())
        );
        assert_eq!(
            Condition::compile("StringEquals", "k:x", vec![], true).unwrap_err(),
            PolicyError::EmptyConditionValues {
                operator: "StringEquals".into(),
                key: "k:x".into(),
            }
        );
    }

    #[test]
    fn variables_in_values() {
        let c = ctx(&[("aws:username", &["alice"]), ("k:s", &["alice"])]);
        assert!(eval("StringEquals", "k:s", &["${aws:username}"], &c));
        assert!(eval("StringLike", "k:s", &["${aws:userName}"], &c));
        assert!(!eval("StringEquals", "k:s", &["${aws:PrincipalTag/x}"], &c));
        assert!(eval(
            "StringNotEquals",
            "k:s",
            &["${aws:PrincipalTag/x}"],
            &c
        ));
        assert!(eval(
            "StringEquals",
            "k:s",
            &["${aws:PrincipalTag/x, 'alice'}"],
            &c
        ));
        let star = ctx(&[("k:s", &["a*"])]);
        assert!(eval("StringLike", "k:s", &["a${*}"], &star));
        let other = ctx(&[("k:s", &["ab"])]);
        assert!(!eval("StringLike", "k:s", &["a${*}"], &other));
    }
}
