//! Compiled resource and session policies, shared by every request.

use std::collections::HashMap;
use std::sync::Arc;

use crate::policy;

use super::Authz;

/// Compiled resource and session policies, by a hash of (kind, text); a hit is confirmed by
/// comparing the text. Keyed by text, not by secret: a policy text attached to many secrets
/// (a template) is compiled and kept once, and each use gets it under its own label
/// (`Policy::relabelled`, which shares the compiled body). Keyed by secret instead, the
/// benchmark's 10,000 secrets with one policy text each would hold 10,000 copies of about
/// 6 KB each: 50-60 MB of the server's RSS after seeding or a BatchGetSecretValue run.
pub(super) type PolicyCache = HashMap<u64, Vec<CachedPolicy>>;

/// One compiled policy of the [`PolicyCache`], with the last label it was handed out under.
#[derive(Debug)]
pub(super) struct CachedPolicy {
    kind: policy::PolicyType,
    text: String,
    policy: policy::Policy,
    /// `policy` under the label of its last use: handed out again to the next use under the
    /// same label (the same secret's decisions) instead of relabelled.
    last: Arc<policy::Policy>,
}

/// Whether `label` is `parts.0` followed by `parts.1`.
fn is_label(label: &str, parts: (&str, &str)) -> bool {
    label.len() == parts.0.len() + parts.1.len()
        && label.starts_with(parts.0)
        && label.ends_with(parts.1)
}

/// Most compiled policies kept (the cache is emptied when it grows past this).
const POLICY_CACHE_MAX: usize = 20_000;

impl Authz {
    /// A session policy, compiled once per distinct text.
    pub fn compiled_session_policy(&self, text: &str) -> Result<Arc<policy::Policy>, String> {
        self.compiled(text, policy::PolicyType::Session, ("session-policy", ""))
    }

    /// A secret's resource policy, compiled once per distinct text.
    pub(super) fn compiled_resource_policy(
        &self,
        arn: &str,
        text: &str,
    ) -> Result<Arc<policy::Policy>, String> {
        self.compiled(
            text,
            policy::PolicyType::Resource,
            (arn, ":resource-policy"),
        )
    }

    /// `text` compiled as a `kind` policy labelled `label.0 + label.1`, from the cache when
    /// it was compiled before (under any label).
    fn compiled(
        &self,
        text: &str,
        kind: policy::PolicyType,
        label: (&str, &str),
    ) -> Result<Arc<policy::Policy>, String> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        kind.hash(&mut h);
        text.hash(&mut h);
        let key = h.finish();
        let same = |e: &CachedPolicy| e.kind == kind && e.text == text;
        let parts = label;
        {
            let mut cache = self
                .policies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(e) = cache
                .get_mut(&key)
                .and_then(|v| v.iter_mut().find(|e| same(e)))
            {
                if !is_label(e.last.label(), parts) {
                    e.last = Arc::new(e.policy.relabelled(&[parts.0, parts.1].concat()));
                }
                return Ok(Arc::clone(&e.last));
            }
        }
        let label = [parts.0, parts.1].concat();
        let compiled = policy::Policy::parse(text, kind).map_err(|e| e.aws_message())?;
        let labelled = Arc::new(compiled.relabelled(&label));
        let mut cache = self
            .policies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() > POLICY_CACHE_MAX {
            cache.clear();
        }
        let bucket = cache.entry(key).or_default();
        if !bucket.iter().any(same) {
            bucket.push(CachedPolicy {
                kind,
                text: text.to_owned(),
                policy: compiled,
                last: Arc::clone(&labelled),
            });
        }
        Ok(labelled)
    }
}
