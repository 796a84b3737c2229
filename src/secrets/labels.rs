//! Staging label transitions as pure functions over a `stage -> version_id` map.
//!
//! Invariants kept: each label is on at most one version (the map's keys); AWSCURRENT moves
//! only when asked and then AWSPREVIOUS follows the version that had it; a secret carries at
//! most 20 distinct labels.

use std::collections::BTreeMap;

use super::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use crate::error::ApiError;

pub type StageMap = BTreeMap<String, String>;

pub const MAX_LABELS: usize = 20;

fn check_limit(map: &StageMap) -> Result<(), ApiError> {
    if map.len() > MAX_LABELS {
        return Err(ApiError::LimitExceeded(format!(
            "A secret can have at most {MAX_LABELS} staging labels attached to its versions."
        )));
    }
    Ok(())
}

/// Attach `stage` to `version`, moving it from wherever it was; moving AWSCURRENT puts
/// AWSPREVIOUS on the version that had it.
fn attach(map: &mut StageMap, stage: &str, version: &str) {
    let previous = map.insert(stage.to_owned(), version.to_owned());
    if stage == AWSCURRENT {
        if let Some(old) = previous {
            if old != version {
                map.insert(AWSPREVIOUS.to_owned(), old);
            }
        }
    }
}

/// The stage map after a new version `version` is added with `requested` labels
/// (PutSecretValue / CreateSecret / UpdateSecret). The first version of a secret always
/// gets AWSCURRENT. When the new version takes AWSCURRENT from a version that also held
/// AWSPENDING, that version keeps AWSPREVIOUS only, as on AWS.
pub fn after_new_version(
    current: &StageMap,
    version: &str,
    requested: &[String],
) -> Result<StageMap, ApiError> {
    let mut map = current.clone();
    let first = !map.contains_key(AWSCURRENT);
    // AWSCURRENT goes last so that AWSPREVIOUS, if also requested, is then overridden.
    for stage in requested.iter().filter(|s| s.as_str() != AWSCURRENT) {
        attach(&mut map, stage, version);
    }
    if first || requested.iter().any(|s| s == AWSCURRENT) {
        let old = map
            .get(AWSCURRENT)
            .filter(|o| o.as_str() != version)
            .cloned();
        if old.is_some() && map.get(AWSPENDING) == old.as_ref() {
            map.remove(AWSPENDING);
        }
        attach(&mut map, AWSCURRENT, version);
    }
    check_limit(&map)?;
    Ok(map)
}

/// UpdateSecretVersionStage: move or remove `stage`.
pub fn update_stage(
    current: &StageMap,
    stage: &str,
    remove_from: Option<&str>,
    move_to: Option<&str>,
) -> Result<StageMap, ApiError> {
    let mut map = current.clone();
    let attached = map.get(stage).cloned();
    if let Some(from) = remove_from {
        if attached.as_deref() != Some(from) {
            return Err(ApiError::InvalidParameter(format!(
                "Version stage {stage} not found in version {from}"
            )));
        }
    }
    match move_to {
        Some(to) => {
            if let Some(at) = attached.as_deref() {
                if at != to && remove_from.is_none() {
                    return Err(ApiError::InvalidParameter(format!(
                        "The parameter RemoveFromVersionId can't be empty. Staging label {stage} is currently attached to version {at}, so you must explicitly reference that version in RemoveFromVersionId."
                    )));
                }
            }
            attach(&mut map, stage, to);
        }
        None => {
            if remove_from.is_none() {
                return Err(ApiError::InvalidParameter(
                    "You must specify either MoveToVersionId or RemoveFromVersionId.".into(),
                ));
            }
            if stage == AWSCURRENT {
                return Err(ApiError::InvalidParameter(
                    "You can't remove the staging label AWSCURRENT from a version without moving it to another version with MoveToVersionId.".into(),
                ));
            }
            map.remove(stage);
        }
    }
    check_limit(&map)?;
    Ok(map)
}

/// Which versions to drop: unlabelled ones, oldest first, while there are more than
/// `max_versions` of the secret's `total`, never one younger than `min_age_ms`. `versions`
/// is `(id, created_at)` oldest first: all of them, or at least every one old enough.
pub fn versions_to_prune(
    total: usize,
    versions: &[(String, i64)],
    map: &StageMap,
    now_ms: i64,
    max_versions: usize,
    min_age_ms: i64,
) -> Vec<String> {
    let labelled: std::collections::BTreeSet<&str> = map.values().map(String::as_str).collect();
    let mut excess = total.saturating_sub(max_versions);
    let mut out = Vec::new();
    for (id, created) in versions {
        if excess == 0 {
            break;
        }
        if !labelled.contains(id.as_str()) && now_ms.saturating_sub(*created) >= min_age_ms {
            out.push(id.clone());
            excess -= 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> StageMap {
        pairs
            .iter()
            .map(|(s, v)| ((*s).to_owned(), (*v).to_owned()))
            .collect()
    }
    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn first_version_gets_current_whatever_was_asked() {
        let map = after_new_version(&StageMap::new(), "v1", &s(&["AWSPENDING"])).unwrap();
        assert_eq!(map, m(&[("AWSCURRENT", "v1"), ("AWSPENDING", "v1")]));
    }

    #[test]
    fn new_current_moves_previous() {
        let map = m(&[("AWSCURRENT", "v1")]);
        let map = after_new_version(&map, "v2", &s(&["AWSCURRENT"])).unwrap();
        assert_eq!(map, m(&[("AWSCURRENT", "v2"), ("AWSPREVIOUS", "v1")]));
        let map = after_new_version(&map, "v3", &s(&["AWSCURRENT"])).unwrap();
        assert_eq!(map, m(&[("AWSCURRENT", "v3"), ("AWSPREVIOUS", "v2")]));
    }

    #[test]
    fn new_current_takes_pending_off_the_old_current() {
        let cur = m(&[("AWSCURRENT", "v1"), ("AWSPENDING", "v1")]);
        let next = after_new_version(&cur, "v2", &s(&["AWSCURRENT"])).unwrap();
        assert_eq!(next, m(&[("AWSCURRENT", "v2"), ("AWSPREVIOUS", "v1")]));
        // AWSPENDING elsewhere stays where it is
        let cur = m(&[("AWSCURRENT", "v1"), ("AWSPENDING", "v0")]);
        let next = after_new_version(&cur, "v2", &s(&["AWSCURRENT"])).unwrap();
        assert_eq!(
            next,
            m(&[
                ("AWSCURRENT", "v2"),
                ("AWSPENDING", "v0"),
                ("AWSPREVIOUS", "v1")
            ])
        );
        // a new version that asks for AWSPENDING only moves it, AWSCURRENT stays
        let cur = m(&[("AWSCURRENT", "v1"), ("AWSPENDING", "v1")]);
        let next = after_new_version(&cur, "v2", &s(&["AWSPENDING"])).unwrap();
        assert_eq!(next, m(&[("AWSCURRENT", "v1"), ("AWSPENDING", "v2")]));
    }

    #[test]
    fn pending_does_not_move_current() {
        let map = m(&[("AWSCURRENT", "v1")]);
        let map = after_new_version(&map, "v2", &s(&["AWSPENDING"])).unwrap();
        assert_eq!(map, m(&[("AWSCURRENT", "v1"), ("AWSPENDING", "v2")]));
    }

    #[test]
    fn update_stage_rules() {
        let map = m(&[("AWSCURRENT", "v1"), ("AWSPENDING", "v2")]);
        let err = update_stage(&map, "AWSCURRENT", None, Some("v2")).unwrap_err();
        assert_eq!(err.message(), "The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently attached to version v1, so you must explicitly reference that version in RemoveFromVersionId.");
        let err = update_stage(&map, "AWSCURRENT", Some("v2"), Some("v2")).unwrap_err();
        assert_eq!(
            err.message(),
            "Version stage AWSCURRENT not found in version v2"
        );
        let moved = update_stage(&map, "AWSCURRENT", Some("v1"), Some("v2")).unwrap();
        assert_eq!(
            moved,
            m(&[
                ("AWSCURRENT", "v2"),
                ("AWSPENDING", "v2"),
                ("AWSPREVIOUS", "v1")
            ])
        );
        let removed = update_stage(&moved, "AWSPENDING", Some("v2"), None).unwrap();
        assert_eq!(removed, m(&[("AWSCURRENT", "v2"), ("AWSPREVIOUS", "v1")]));
        let e = update_stage(&removed, "AWSCURRENT", Some("v2"), None).unwrap_err();
        assert_eq!(e.code(), "InvalidParameterException", "{e:?}");
        assert!(
            e.message()
                .contains("You can't remove the staging label AWSCURRENT"),
            "{e:?}"
        );
        let custom = update_stage(&removed, "blue", None, Some("v1")).unwrap();
        assert_eq!(custom.get("blue").map(String::as_str), Some("v1"));
    }

    #[test]
    fn label_limit() {
        let mut map = m(&[("AWSCURRENT", "v1")]);
        for i in 0..19 {
            map = after_new_version(&map, "v2", &s(&[&format!("l{i}")])).unwrap();
        }
        let e = after_new_version(&map, "v3", &s(&["one-too-many"])).unwrap_err();
        assert_eq!(e.code(), "LimitExceededException", "{e:?}");
        assert!(e.message().contains("at most 20 staging labels"), "{e:?}");
    }

    #[test]
    fn pruning_keeps_labelled_and_young() {
        let day = DEPRECATED_DAY;
        let versions: Vec<(String, i64)> = (0..103).map(|i| (format!("v{i}"), i)).collect();
        let map = m(&[("AWSCURRENT", "v102"), ("AWSPREVIOUS", "v0")]);
        // all young: nothing pruned
        assert!(versions_to_prune(versions.len(), &versions, &map, 1000, 100, day).is_empty());
        // all old: the three oldest unlabelled go
        let out = versions_to_prune(versions.len(), &versions, &map, day * 10, 100, day);
        assert_eq!(out, s(&["v1", "v2", "v3"]));
    }

    const DEPRECATED_DAY: i64 = 24 * 3600 * 1000;
}
