//! Policy variables (IAM.md §4): `${key}`, `${key, 'default'}` and the escapes `${*}`,
//! `${?}`, `${$}`. Only recognised under Version `2012-10-17`; elsewhere the text is literal.
//! Substituted text is always literal (a user name `a*` is not a wildcard).

use super::context::RequestContext;
use super::pattern::{glob_toks, Tok};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// Policy text (wildcards keep their meaning in glob contexts).
    Text(String),
    /// `${*}`, `${?}`, `${$}`: a literal character.
    Escaped(char),
    /// `${key}` or `${key, 'default'}`; `key` is lowercased, `hash` is its `fnv` hash.
    Var {
        key: String,
        hash: u64,
        default: Option<String>,
    },
}

/// Policy text containing at least one `${…}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

/// Why a `${…}` could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadVariable(pub String);

impl Template {
    /// Parse `text`; `Ok(None)` when it holds no variable or escape.
    pub(crate) fn parse(text: &str) -> Result<Option<Self>, BadVariable> {
        if !text.contains("${") {
            return Ok(None);
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let (before, after) = rest.split_at(start);
            lit.push_str(before);
            let body = after.get(2..).unwrap_or("");
            let Some(end) = closing_brace(body) else {
                // no closing brace: the rest is literal text
                lit.push_str(after);
                rest = "";
                break;
            };
            let inner = body.get(..end).unwrap_or("");
            rest = body.get(end + 1..).unwrap_or("");
            let part = parse_inner(inner).ok_or_else(|| BadVariable(format!("${{{inner}}}")))?;
            if !lit.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut lit)));
            }
            parts.push(part);
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Some(Self { parts }))
    }

    pub(crate) fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Whether any part is a real variable (not just an escape).
    pub(crate) fn has_variables(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Var { .. }))
    }

    /// Resolve to plain text; `None` if a variable is unresolved and has no default.
    pub(crate) fn resolve_text(&self, ctx: &RequestContext) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Escaped(c) => out.push(*c),
                Part::Var { key, hash, default } => {
                    out.push_str(lookup(ctx, *hash, key, default.as_deref())?)
                }
            }
        }
        Some(out)
    }

    /// Resolve to glob tokens (policy text keeps wildcards; everything else is literal).
    pub(crate) fn resolve_toks(&self, ctx: &RequestContext) -> Option<Vec<Tok>> {
        let mut out = Vec::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.extend(glob_toks(t)),
                Part::Escaped(c) => out.push(Tok::Lit(c.to_string())),
                Part::Var { key, hash, default } => out.push(Tok::Lit(
                    lookup(ctx, *hash, key, default.as_deref())?.to_owned(),
                )),
            }
        }
        Some(out)
    }

    /// Tokens with no context: escapes as literals, variables must not occur.
    pub(crate) fn static_toks(&self) -> Option<Vec<Tok>> {
        let mut out = Vec::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.extend(glob_toks(t)),
                Part::Escaped(c) => out.push(Tok::Lit(c.to_string())),
                Part::Var { .. } => return None,
            }
        }
        Some(out)
    }

    /// Text with no context: escapes as literals, variables must not occur.
    pub(crate) fn static_text(&self) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Escaped(c) => out.push(*c),
                Part::Var { .. } => return None,
            }
        }
        Some(out)
    }
}

fn lookup<'a>(
    ctx: &'a RequestContext,
    hash: u64,
    key: &str,
    default: Option<&'a str>,
) -> Option<&'a str> {
    ctx.single_value_hashed(hash, key).or(default)
}

/// Byte offset of the `}` closing a variable body (quotes may contain `}`).
fn closing_brace(body: &str) -> Option<usize> {
    let mut in_quote = false;
    for (i, c) in body.char_indices() {
        match c {
            '\'' => in_quote = !in_quote,
            '}' if !in_quote => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_inner(inner: &str) -> Option<Part> {
    match inner {
        "*" => return Some(Part::Escaped('*')),
        "?" => return Some(Part::Escaped('?')),
        "$" => return Some(Part::Escaped('$')),
        _ => {}
    }
    let (key, default) = match inner.split_once(',') {
        None => (inner.trim(), None),
        Some((k, d)) => {
            let d = d.trim();
            let quoted = d
                .strip_prefix('\'')
                .and_then(|d| d.strip_suffix('\''))
                .filter(|d| !d.contains('\''))?;
            (k.trim(), Some(quoted.to_owned()))
        }
    };
    let valid_key = key
        .split_once(':')
        .is_some_and(|(vendor, name)| !vendor.is_empty() && !name.is_empty())
        && !key.chars().any(char::is_whitespace);
    if !valid_key {
        return None;
    }
    let key = key.to_lowercase();
    Some(Part::Var {
        hash: super::index::fnv(key.as_bytes()),
        key,
        default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_variables_defaults_and_escapes() {
        let t = Template::parse("a/${aws:username}/${aws:PrincipalTag/team , 'x}y'}${*}${?}${$}")
            .unwrap()
            .unwrap();
        assert_eq!(
            t.parts(),
            &[
                Part::Text("a/".into()),
                Part::Var {
                    key: "aws:username".into(),
                    hash: crate::policy::index::fnv(b"aws:username"),
                    default: None
                },
                Part::Text("/".into()),
                Part::Var {
                    key: "aws:principaltag/team".into(),
                    hash: crate::policy::index::fnv(b"aws:principaltag/team"),
                    default: Some("x}y".into())
                },
                Part::Escaped('*'),
                Part::Escaped('?'),
                Part::Escaped('$'),
            ]
        );
        assert!(Template::parse("plain").unwrap().is_none());
        for bad in ["${nocolon}", "${aws:x, noquote}"] {
            assert_eq!(Template::parse(bad).unwrap_err(), BadVariable(bad.into()));
        }
        let open = Template::parse("a${aws:x").unwrap().unwrap();
        assert_eq!(open.static_text().as_deref(), Some("a${aws:x"));
    }
}
