//! Statement index: finds the few statements that can apply to a request without scanning
//! them all. Each statement is filed under one discriminator, chosen at build time:
//!
//! 1. the literal prefixes of its `Resource` ARN patterns, when every pattern's literal prefix
//!    reaches into the resource part (after the fifth colon);
//! 2. otherwise its `Action` patterns: literal `service:action`, or the service of a
//!    `service:Prefix*` pattern;
//! 3. otherwise the always-checked bucket (`*`, `NotAction`, `NotResource`, …).
//!
//! A lookup hashes the request's action and service once (done in `RequestContext`) and walks
//! the resource ARN once, probing only the prefix lengths that exist in the index. Candidates
//! are then fully evaluated, so hash collisions only cost time, never correctness.
//! Small statement sets (≤ `LINEAR_MAX`) are scanned linearly.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::context::RequestContext;
use super::parse::{ActionRule, ResourcePattern, ResourceRule, Statement};
use super::pattern::{glob_toks, ArnPattern, Tok};
use super::template::Part;

const LINEAR_MAX: usize = 16;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bits.
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

fn prefix_key(h: u64, len: usize) -> u64 {
    h ^ u64::try_from(len)
        .unwrap_or(u64::MAX)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The keys are already hashes: mix and pass through.
#[derive(Debug, Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^ (x >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv(bytes) ^ self.0.rotate_left(5);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type IdMap = HashMap<u64, Vec<u32>, BuildHasherDefault<IdHasher>>;

#[derive(Debug, Clone, Default)]
pub(crate) struct StatementIndex {
    /// Number of ids when scanned linearly (`None` = use the maps).
    linear: Option<u32>,
    actions: IdMap,
    services: IdMap,
    prefixes: IdMap,
    /// Distinct prefix lengths, ascending.
    prefix_lens: Vec<usize>,
    always: Vec<u32>,
}

enum Key {
    Prefixes(Vec<String>),
    Actions(Vec<(bool, u64)>),
    Always,
    Nowhere,
}

impl StatementIndex {
    /// Build over `(id, statement)` pairs; ids are what `candidates` returns.
    pub(crate) fn build<'a>(stmts: impl Iterator<Item = (u32, &'a Statement)>) -> Self {
        let stmts: Vec<(u32, &Statement)> = stmts.collect();
        if stmts.len() <= LINEAR_MAX {
            let n = stmts.iter().map(|(id, _)| id + 1).max().unwrap_or(0);
            return Self {
                linear: Some(n),
                ..Self::default()
            };
        }
        let mut ix = Self::default();
        let mut lens = std::collections::BTreeSet::new();
        for (id, st) in stmts {
            match key_of(st) {
                Key::Prefixes(ps) => {
                    for p in ps {
                        lens.insert(p.len());
                        let k = prefix_key(fnv(p.as_bytes()), p.len());
                        ix.prefixes.entry(k).or_default().push(id);
                    }
                }
                Key::Actions(keys) => {
                    for (literal, h) in keys {
                        let map = if literal {
                            &mut ix.actions
                        } else {
                            &mut ix.services
                        };
                        map.entry(h).or_default().push(id);
                    }
                }
                Key::Always => ix.always.push(id),
                Key::Nowhere => {}
            }
        }
        ix.prefix_lens = lens.into_iter().collect();
        ix
    }

    /// Ids of the statements that may apply, ascending and without duplicates.
    pub(crate) fn candidates(&self, ctx: &RequestContext, out: &mut Vec<u32>) {
        out.clear();
        if let Some(n) = self.linear {
            out.extend(0..n);
            return;
        }
        out.extend_from_slice(&self.always);
        if let Some(v) = self.actions.get(&ctx.action_hash) {
            out.extend_from_slice(v);
        }
        if let Some(v) = self.services.get(&ctx.service_hash) {
            out.extend_from_slice(v);
        }
        if !self.prefix_lens.is_empty() {
            let bytes = ctx.resource().as_bytes();
            let mut h = FNV_OFFSET;
            let mut lens = self.prefix_lens.iter().peekable();
            for (i, &b) in bytes.iter().enumerate() {
                h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
                let len = i + 1;
                while lens.next_if(|&&l| l < len).is_some() {}
                if lens.next_if(|&&l| l == len).is_some() {
                    if let Some(v) = self.prefixes.get(&prefix_key(h, len)) {
                        out.extend_from_slice(v);
                    }
                }
                if lens.peek().is_none() {
                    break;
                }
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

fn key_of(st: &Statement) -> Key {
    if let ResourceRule::Resource(pats) = &st.resource {
        let mut prefixes = Vec::new();
        let mut indexable = true;
        for p in pats {
            match resource_prefix(p) {
                Some(Some(prefix)) if prefix.matches(':').count() >= 5 => prefixes.push(prefix),
                Some(None) => {} // never matches
                _ => indexable = false,
            }
        }
        if indexable {
            return if prefixes.is_empty() {
                Key::Nowhere
            } else {
                Key::Prefixes(prefixes)
            };
        }
    }
    if let ActionRule::Action(pats) = &st.action {
        let mut keys = Vec::new();
        for p in pats {
            if p.is_literal() {
                keys.push((true, fnv(p.literal_prefix().as_bytes())));
            } else if let Some((service, _)) = p.literal_prefix().split_once(':') {
                keys.push((false, fnv(service.as_bytes())));
            } else {
                return Key::Always;
            }
        }
        return Key::Actions(keys);
    }
    Key::Always
}

/// `Some(Some(prefix))`: every match starts with `prefix`; `Some(None)`: never matches;
/// `None`: no useful prefix.
fn resource_prefix(p: &ResourcePattern) -> Option<Option<String>> {
    match p {
        ResourcePattern::Static(ArnPattern::Never) => Some(None),
        ResourcePattern::Static(ArnPattern::Any) => None,
        ResourcePattern::Static(a) => a.literal_prefix().map(Some),
        ResourcePattern::Dyn(t) => match t.parts().first() {
            Some(Part::Text(text)) => match glob_toks(text).first() {
                Some(Tok::Lit(l)) => Some(Some(l.clone())),
                _ => None,
            },
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::context::{PrincipalInfo, RequestContext};
    use crate::policy::parse::{Policy, PolicyType};

    #[test]
    fn finds_only_the_relevant_statements() {
        let mut stmts = Vec::new();
        for i in 0..100 {
            stmts.push(format!(
                r#"{{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:app{i}-??????"}}"#
            ));
        }
        stmts.push(
            r#"{"Effect":"Allow","Action":"secretsmanager:Describe*","Resource":"*"}"#.into(),
        );
        stmts.push(
            r#"{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}"#.into(),
        );
        stmts.push(r#"{"Effect":"Deny","NotAction":"iam:*","Resource":"*"}"#.into());
        stmts.push(r#"{"Effect":"Deny","Action":"*","Resource":"arn:aws:secretsmanager:us-east-1:111111111111:secret:x"}"#.into());
        // several policies (one is limited to 6,144 characters), one merged index
        let policies: Vec<Policy> = stmts
            .chunks(20)
            .map(|c| {
                let text = format!(
                    r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
                    c.join(",")
                );
                Policy::parse(&text, PolicyType::Identity).unwrap()
            })
            .collect();
        let all: Vec<&Statement> = policies
            .iter()
            .flat_map(|p| p.statements().iter())
            .collect();
        let index = StatementIndex::build(all.iter().enumerate().map(|(i, s)| (i as u32, *s)));
        let ctx = RequestContext::new(
            PrincipalInfo::root("111111111111"),
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:111111111111:secret:app7-AbCdEf",
            None,
        );
        let mut out = Vec::new();
        index.candidates(&ctx, &mut out);
        // `Describe*` is filed under its service, so it is a (non-applying) candidate too
        assert_eq!(out, vec![7, 100, 102]);
        let ctx = ctx.with_action("secretsmanager:DescribeSecret");
        index.candidates(&ctx, &mut out);
        assert_eq!(out, vec![7, 100, 102]);
        let ctx = ctx.with_action("secretsmanager:ListSecrets");
        let ctx = RequestContext::new(ctx.principal().clone(), ctx.action(), "*", None);
        index.candidates(&ctx, &mut out);
        assert_eq!(out, vec![100, 101, 102]);
    }
}
