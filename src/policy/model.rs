//! The policy document as written (IAM.md §1): a strict JSON tree (duplicate keys rejected,
//! order kept) and the element-level model on top of it (`OneOrMore`, Principal forms,
//! Action/NotAction, Resource/NotResource, Condition maps). Semantics live in `parse`.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::err::PolicyError;

/// A JSON value that keeps object key order and rejects duplicate keys.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number as written by `serde_json` (`10`, `10.5`).
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parse text, rejecting duplicate keys anywhere.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        serde_json::from_str(text).map_err(|e| PolicyError::Json(e.to_string()))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Json::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut out: Vec<(String, Json)> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(de::Error::custom(format_args!("duplicate key `{k}`")));
            }
            let v = map.next_value()?;
            out.push((k, v));
        }
        Ok(Json::Object(out))
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => s.serialize_unit(),
            Self::Bool(b) => s.serialize_bool(*b),
            Self::Number(n) => match serde_json::from_str::<serde_json::Number>(n) {
                Ok(num) => num.serialize(s),
                Err(_) => s.serialize_str(n),
            },
            Self::String(v) => s.serialize_str(v),
            Self::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Self::Object(o) => {
                let mut m = s.serialize_map(Some(o.len()))?;
                for (k, v) in o {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

/// A string or an array of strings (arrays must not be empty).
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneOrMore<T> {
    One(T),
    More(Vec<T>),
}

impl<T> OneOrMore<T> {
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        match self {
            Self::One(v) => std::slice::from_ref(v).iter(),
            Self::More(v) => v.iter(),
        }
    }
}

/// `Principal` / `NotPrincipal` as written.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalDocument {
    /// `"*"`
    Wildcard,
    /// `{"AWS": …, "Service": …, …}` in document order.
    Map(Vec<(String, OneOrMore<String>)>),
}

/// `operator → [(key, values as strings)]`, in document order.
pub type ConditionBlock = Vec<(String, Vec<(String, Vec<String>)>)>;

/// One statement as written.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatementDocument {
    pub sid: Option<String>,
    pub effect: Option<String>,
    pub principal: Option<PrincipalDocument>,
    pub not_principal: Option<PrincipalDocument>,
    pub action: Option<OneOrMore<String>>,
    pub not_action: Option<OneOrMore<String>>,
    pub resource: Option<OneOrMore<String>>,
    pub not_resource: Option<OneOrMore<String>>,
    /// `operator → [(key, values as strings)]`, in document order.
    pub condition: Option<ConditionBlock>,
}

/// A policy document as written.
// CAUTION: this type is publicly exported
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicyDocument {
    pub version: Option<String>,
    pub id: Option<String>,
    pub statements: Vec<StatementDocument>,
}

/// An element-level error, with the statement index it occurred in.
pub(crate) type ModelError = (Option<usize>, PolicyError);

impl PolicyDocument {
    /// Build from a strict JSON tree, checking element names and shapes.
    pub fn from_json(json: &Json) -> Result<Self, PolicyError> {
        Self::from_json_at(json).map_err(|(_, e)| e)
    }

    pub(crate) fn from_json_at(json: &Json) -> Result<Self, ModelError> {
        let Json::Object(top) = json else {
            return Err((None, wrong("policy", "an object")));
        };
        let mut doc = Self::default();
        let mut statement = None;
        for (k, v) in top {
            match k.as_str() {
                "Version" => doc.version = Some(string(v, "Version").map_err(|e| (None, e))?),
                "Id" => doc.id = Some(string(v, "Id").map_err(|e| (None, e))?),
                "Statement" => statement = Some(v),
                other => return Err((None, PolicyError::UnknownElement(other.to_owned()))),
            }
        }
        let items: Vec<&Json> = match statement {
            None => return Err((None, PolicyError::MissingStatement)),
            Some(Json::Array(a)) if a.is_empty() => {
                return Err((None, PolicyError::MissingStatement))
            }
            Some(Json::Array(a)) => a.iter().collect(),
            Some(o @ Json::Object(_)) => vec![o],
            Some(_) => return Err((None, wrong("Statement", "an object or an array"))),
        };
        for (i, item) in items.into_iter().enumerate() {
            doc.statements
                .push(StatementDocument::from_json(item).map_err(|e| (Some(i), e))?);
        }
        Ok(doc)
    }
}

impl StatementDocument {
    fn from_json(json: &Json) -> Result<Self, PolicyError> {
        let Json::Object(fields) = json else {
            return Err(wrong("Statement", "an object"));
        };
        let mut st = Self::default();
        for (k, v) in fields {
            match k.as_str() {
                "Sid" => st.sid = Some(string(v, "Sid")?),
                "Effect" => st.effect = Some(string(v, "Effect")?),
                "Principal" => st.principal = Some(principal(v, "Principal")?),
                "NotPrincipal" => st.not_principal = Some(principal(v, "NotPrincipal")?),
                "Action" => st.action = Some(one_or_more(v, "Action")?),
                "NotAction" => st.not_action = Some(one_or_more(v, "NotAction")?),
                "Resource" => st.resource = Some(one_or_more(v, "Resource")?),
                "NotResource" => st.not_resource = Some(one_or_more(v, "NotResource")?),
                "Condition" => st.condition = Some(condition(v)?),
                other => return Err(PolicyError::UnknownElement(other.to_owned())),
            }
        }
        Ok(st)
    }
}

fn wrong(element: &str, expected: &'static str) -> PolicyError {
    PolicyError::WrongType {
        element: element.to_owned(),
        expected,
    }
}

fn string(v: &Json, element: &str) -> Result<String, PolicyError> {
    match v {
        Json::String(s) => Ok(s.clone()),
        _ => Err(wrong(element, "a string")),
    }
}

fn one_or_more(v: &Json, element: &str) -> Result<OneOrMore<String>, PolicyError> {
    match v {
        Json::String(s) => Ok(OneOrMore::One(s.clone())),
        Json::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| string(x, element))
            .collect::<Result<Vec<_>, _>>()
            .map(OneOrMore::More),
        _ => Err(wrong(element, "a string or a non-empty array of strings")),
    }
}

fn principal(v: &Json, element: &str) -> Result<PrincipalDocument, PolicyError> {
    match v {
        Json::String(s) if s == "*" => Ok(PrincipalDocument::Wildcard),
        Json::Object(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| Ok((k.clone(), one_or_more(v, element)?)))
            .collect::<Result<Vec<_>, PolicyError>>()
            .map(PrincipalDocument::Map),
        _ => Err(wrong(element, "`*` or a non-empty object")),
    }
}

fn scalar(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.clone()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn condition(v: &Json) -> Result<ConditionBlock, PolicyError> {
    let Json::Object(ops) = v else {
        return Err(wrong("Condition", "an object"));
    };
    let mut out = Vec::new();
    for (op, keys) in ops {
        let Json::Object(keys) = keys else {
            return Err(wrong(op, "an object of condition keys"));
        };
        let mut ks = Vec::new();
        for (key, vals) in keys {
            let vals = match vals {
                Json::Array(a) => a
                    .iter()
                    .map(scalar)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| wrong(key, "strings, numbers or booleans"))?,
                other => vec![scalar(other)
                    .ok_or_else(|| wrong(key, "a string, number, boolean or an array of them"))?],
            };
            ks.push((key.clone(), vals));
        }
        out.push((op.clone(), ks));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_rejected_anywhere() {
        assert_eq!(
            Json::parse(r#"{"a":1,"a":2}"#).unwrap_err(),
            PolicyError::Json("duplicate key `a` at line 1 column 10".into())
        );
        assert_eq!(
            Json::parse(r#"{"a":{"b":1,"b":1}}"#).unwrap_err(),
            PolicyError::Json("duplicate key `b` at line 1 column 15".into())
        );
        assert!(Json::parse(r#"[{"a":1},{"a":1}]"#).is_ok());
    }

    #[test]
    fn statement_object_is_a_one_element_array() {
        let j = Json::parse(r#"{"Statement":{"Effect":"Allow","Action":"a:b","Resource":"*"}}"#)
            .unwrap();
        let d = PolicyDocument::from_json(&j).unwrap();
        assert_eq!(d.statements.len(), 1);
        let j = Json::parse(r#"{"Statement":[]}"#).unwrap();
        assert_eq!(
            PolicyDocument::from_json(&j),
            Err(PolicyError::MissingStatement)
        );
        let j = Json::parse(r#"{"Statement":[{"effect":"Allow"}]}"#).unwrap();
        assert_eq!(
            PolicyDocument::from_json(&j),
            Err(PolicyError::UnknownElement("effect".into()))
        );
    }

    #[test]
    fn condition_values_are_normalised_to_strings() {
        let j = Json::parse(
            r#"{"Statement":{"Effect":"Allow","Action":"a:b","Resource":"*",
               "Condition":{"Bool":{"aws:SecureTransport":true},"NumericLessThan":{"k:n":[1,2.5]}}}}"#,
        )
        .unwrap();
        let d = PolicyDocument::from_json(&j).unwrap();
        let c = d.statements[0].condition.clone().unwrap();
        assert_eq!(c[0].1[0].1, vec!["true".to_owned()]);
        assert_eq!(c[1].1[0].1, vec!["1".to_owned(), "2.5".to_owned()]);
        assert!(serde_json::to_string(&j).unwrap().contains("2.5"));
    }
}
