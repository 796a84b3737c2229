//! Benchmark only (`strongroom bench-seed --audit-records N`, benches/load/scale.py): audit
//! records written straight to the store, so that a benchmark can start a server over a
//! store that already holds a million of them without serving a million requests first.
//! The secrets themselves are seeded by `create_secret::seed_for_benchmark`.

use crate::audit::{row_for, Draft, Index, GENESIS};
use crate::auth::{Principal, PrincipalKind};
use crate::error::ApiError;
use crate::store::Store;

/// The chain the seeded records are appended to (a server's own chain is its server id, so
/// a server started on the seeded store appends its records to a chain of its own, as a
/// second server sharing a PostgreSQL database would).
pub const SEED_CHAIN: &str = "bench-seed";

/// Records per INSERT transaction.
const BATCH: u64 = 20_000;

/// Append `count` audit records to the chain [`SEED_CHAIN`] (continuing it when it exists),
/// shaped as bench.py's traffic would leave them: GetSecretValue (every fifth one
/// DescribeSecret) on the secrets `bench/appNN/secret-IIIII` numbered below `secrets`, by
/// 1,000 IAM users `bench-user-NNN` of `account`, from 256 source addresses, every seventh
/// one denied (`AccessDeniedException`), record `i` of the chain (counting from 0) always the
/// same shape. Their times are spread evenly over the 90 days before now (after the chain's
/// last record, when it has some), oldest first, up to a minute ago. Then brings the lookup
/// index up to date, as the server's indexer would have, so that a server started afterwards
/// has no backlog to index. Answers how many records were appended.
pub fn seed_audit_for_benchmark(
    store: &Store,
    account: &str,
    region: &str,
    secrets: u64,
    count: u64,
) -> Result<u64, ApiError> {
    let secrets = secrets.max(1);
    let last = store.read_blocking(|tx| Ok(tx.last_audit(SEED_CHAIN)?))?;
    let now = super::system_now_ms();
    let end = now.saturating_sub(60_000);
    let start = end.saturating_sub(90 * 86_400_000);
    let (mut seq, mut prev, start) = match last {
        Some(r) => (r.seq, r.hash, start.max(r.event_time.saturating_add(1))),
        None => (0, GENESIS.to_owned(), start),
    };
    let total = i64::try_from(count).map_err(ApiError::internal)?.max(1);
    let step = end.saturating_sub(start).max(0) / total;
    let first = u64::try_from(seq).map_err(ApiError::internal)?;
    let mut done = 0_u64;
    while done < count {
        let n = BATCH.min(count.saturating_sub(done));
        let mut rows = Vec::with_capacity(usize::try_from(n).map_err(ApiError::internal)?);
        for k in done..done.saturating_add(n) {
            let at = start
                .saturating_add(step.saturating_mul(i64::try_from(k).map_err(ApiError::internal)?));
            let d = draft(account, region, first.saturating_add(k), secrets, at);
            let event_id = uuid::Uuid::now_v7().to_string();
            let text = d.to_record(&event_id).to_string();
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(ApiError::internal)?;
            let ix = Index::of(&value);
            seq = seq.saturating_add(1);
            let row = row_for(SEED_CHAIN, seq, &prev, &text, &ix);
            prev.clone_from(&row.hash);
            rows.push(row);
        }
        store.write_blocking(|tx| Ok(tx.insert_audits(&rows)?))?;
        done = done.saturating_add(n);
    }
    store.index_audit_blocking(Some(SEED_CHAIN), usize::MAX)?;
    Ok(done)
}

/// Seeded record `i`.
fn draft(account: &str, region: &str, i: u64, secrets: u64, at_ms: i64) -> Draft {
    let user = format!("bench-user-{:03}", i % 1_000);
    let secret = (i.wrapping_mul(7_919)) % secrets;
    let name = format!("bench/app{:02}/secret-{secret:05}", secret % 100);
    let denied = i % 7 == 3;
    let event = if i % 5 == 4 {
        "DescribeSecret"
    } else {
        "GetSecretValue"
    };
    Draft {
        request_id: uuid::Uuid::new_v4().to_string(),
        event_time_ms: at_ms,
        event_source: "secretsmanager.amazonaws.com".into(),
        event_name: event.into(),
        region: region.into(),
        source_ip: Some(format!("10.1.0.{}", i % 256)),
        user_agent: Some("aws-sdk-rust/bench-seed".into()),
        principal: Some(std::sync::Arc::new(Principal {
            kind: PrincipalKind::User,
            arn: format!("arn:aws:iam::{account}:user/{user}"),
            user_id: format!("AIDABENCH{:011}", i % 1_000),
            access_key_id: format!("AKIABENCH{:011}", i % 1_000),
            name: Some(user),
            ..Principal::root(account, "AKIABENCHSEED0000000")
        })),
        read_only: Some(true),
        resource_arn: Some(format!(
            "arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf"
        )),
        request_parameters: serde_json::json!({ "SecretId": name }),
        decision: Some(if denied { "Deny" } else { "Allow" }.into()),
        error_code: denied.then(|| "AccessDeniedException".to_owned()),
        error_message: denied.then(|| "bench-seed: denied".to_owned()),
        ..Draft::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::master::MasterKeyring;
    use crate::kms::Keyring;
    use crate::store::rows::AuditFilter;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "us-east-1";

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(&format!("sqlite://{}/s.db", dir.path().display())).unwrap()
    }

    #[test]
    fn seeded_records_extend_one_chain_that_verifies_and_are_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        assert_eq!(
            seed_audit_for_benchmark(&store, ACCOUNT, REGION, 100, 2_500).unwrap(),
            2_500
        );
        assert_eq!(
            seed_audit_for_benchmark(&store, ACCOUNT, REGION, 100, 500).unwrap(),
            500
        );
        let (seq, _) = store
            .read_blocking(|tx| Ok(tx.audit_head(SEED_CHAIN)?))
            .unwrap()
            .unwrap();
        assert_eq!(seq, 3_000);
        assert_eq!(
            store
                .read_blocking(|tx| Ok(tx.audit_index_mark(SEED_CHAIN)?))
                .unwrap(),
            Some(3_000)
        );
        assert_eq!(crate::audit::verify(&store).unwrap(), 3_000);
        // One user in 1,000, one secret in 100 (7,919 is prime to 100), one record in 7 denied.
        let by_user = store
            .query_audit_blocking(&AuditFilter {
                user_name: Some("bench-user-007".into()),
                limit: 100,
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(by_user.len(), 3);
        let by_secret = store
            .query_audit_blocking(&AuditFilter {
                resource_name: Some("bench/app07/secret-00007".into()),
                account_id: Some(ACCOUNT.into()),
                limit: 100,
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(by_secret.len(), 30);
        let denied = store
            .query_audit_blocking(&AuditFilter {
                denied_only: true,
                limit: 10_000,
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(denied.len(), 429);
    }

    #[test]
    fn seeded_versions_are_labelled_as_put_secret_value_labels_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let keyring = Keyring::new(MasterKeyring::generate());
        let n = super::super::create_secret::seed_for_benchmark(
            &store,
            &keyring,
            ACCOUNT,
            REGION,
            0..3,
            4,
            None,
        )
        .unwrap();
        assert_eq!(n, 3);
        store
            .read_blocking(|tx| {
                let s = tx
                    .find_secret(ACCOUNT, REGION, "bench/app01/secret-00001")?
                    .unwrap();
                assert_eq!(tx.count_versions(&s.secret_id)?, 4);
                let stages = tx.stages(&s.secret_id)?;
                assert_eq!(stages.len(), 2, "{stages:?}");
                let current = stages.get(crate::secrets::AWSCURRENT).unwrap();
                let previous = stages.get(crate::secrets::AWSPREVIOUS).unwrap();
                let versions = tx.versions(&s.secret_id)?;
                for (id, n) in [(current, 4), (previous, 3)] {
                    let v = versions.iter().find(|v| &v.version_id == id).unwrap();
                    let plain = super::super::values::open_version(tx, &keyring, &s, v)?;
                    let text = String::from_utf8(plain.expose().to_vec()).unwrap();
                    assert!(
                        text.starts_with(&format!("{{\"id\":1,\"version\":{n},")),
                        "{id}: version {n} expected"
                    );
                    assert_eq!(text.len(), 1024);
                }
                Ok(())
            })
            .unwrap();
    }
}
