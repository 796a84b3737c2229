//! Who is calling, checked against the store and the live principals directory: long-term
//! access keys (looked up, cached a few seconds), session tokens the server sealed, and
//! `Authorization: Bearer` JWTs (a web identity session of the role the request names).
//! The signature checks themselves are `auth::sigv4`'s; the token's trust policy decision is
//! `ops::sts::web_identity`'s, through `authz`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use crate::audit::Draft;
use crate::auth::session;
use crate::auth::sigv4::{self, SigningKeyCache};
use crate::auth::{AuthError, Credential, Principal, RequestHead, SecretAccessKey};
use crate::authz::Authz;
use crate::crypto::envelope;
use crate::error::ApiError;
use crate::identity::Directory;
use crate::ops::{self, Ctx};
use crate::protocol::Service;

/// An access key as stored: its secret, owner and status.
#[derive(Debug)]
struct StoredKey {
    secret: Arc<SecretAccessKey>,
    account: String,
    user_name: Option<String>,
    active: bool,
}

/// A stored key in the credential cache, with the principal built from it under the
/// directory that was in force then. The principal is built again when the directory has
/// been reloaded since (a reload takes effect at once); the weak reference keeps the old
/// directory's allocation, not its contents, so the comparison cannot meet a new directory
/// at a reused address.
#[derive(Debug)]
struct CachedKey {
    key: Arc<StoredKey>,
    read_at_ms: i64,
    principal: Option<(Weak<Directory>, Arc<Principal>)>,
}

impl CachedKey {
    /// The cached principal, if it was built under `dir`.
    fn principal_under(&self, dir: &Arc<Directory>) -> Option<Arc<Principal>> {
        self.principal
            .as_ref()
            .filter(|(built_under, _)| std::ptr::eq(built_under.as_ptr(), Arc::as_ptr(dir)))
            .map(|(_, p)| Arc::clone(p))
    }
}

/// How long a looked-up credential is trusted before it is read again.
const CREDENTIAL_TTL_MS: i64 = 5_000;

/// Put `value` in `cache`, emptied first once it holds 10,000 entries (callers with many
/// distinct keys or roles cannot grow it without bound; emptying it only costs the next
/// lookups a read).
fn insert_bounded<K: std::hash::Hash + Eq, V>(cache: &Mutex<HashMap<K, V>>, key: K, value: V) {
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() > 10_000 {
        cache.clear();
    }
    cache.insert(key, value);
}

/// A role's id as the database kept it, read under the directory then in force
/// ([`Authenticator::stored_role_id`]).
#[derive(Debug)]
struct CachedRoleId {
    id: Option<String>,
    read_at_ms: i64,
    read_under: Weak<Directory>,
}

/// Authenticates requests; shared by every request of a server.
#[derive(Debug, Clone)]
pub struct Authenticator {
    ctx: Ctx,
    authz: Authz,
    regions: Arc<Vec<String>>,
    signing_keys: Arc<SigningKeyCache>,
    credentials: Arc<Mutex<HashMap<String, CachedKey>>>,
    /// Role ids kept in the database, by (account, role name), trusted for
    /// [`CREDENTIAL_TTL_MS`] and under the directory they were read under.
    role_ids: Arc<Mutex<HashMap<(String, String), CachedRoleId>>>,
    /// The server's default account, whose root key the server installs: its root key is
    /// accepted without the account being declared in the policies directory.
    default_account: Option<String>,
}

/// The bearer token of `Authorization: Bearer <jwt>`, if the request carries one.
pub fn bearer_token(head: &RequestHead) -> Option<&str> {
    head.header("authorization")
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .map(str::trim)
}

impl Authenticator {
    pub fn new(ctx: Ctx, authz: Authz, regions: Arc<Vec<String>>) -> Self {
        Self {
            ctx,
            authz,
            regions,
            signing_keys: Arc::new(SigningKeyCache::new()),
            credentials: Arc::new(Mutex::new(HashMap::new())),
            role_ids: Arc::new(Mutex::new(HashMap::new())),
            default_account: None,
        }
    }

    /// Set the server's default account (see the field).
    pub fn set_default_account(&mut self, account: &str) {
        self.default_account = Some(account.to_owned());
    }

    pub async fn authenticate(
        &self,
        head: &RequestHead,
        body: &[u8],
        service: Service,
        draft: &mut Draft,
    ) -> Result<Arc<Principal>, ApiError> {
        if let Some(token) = bearer_token(head) {
            return self.authenticate_bearer(head, token, draft);
        }
        let parsed = sigv4::parse(head)?;
        draft.region = parsed.region.clone();
        if parsed.service != service.signing_name() {
            return Err(ApiError::InvalidSignature(format!(
                "Credential should be scoped to correct service: '{}'. ",
                service.signing_name()
            )));
        }
        if !self.regions.contains(&parsed.region) {
            let shown: String = parsed.region.chars().take(64).collect();
            return Err(ApiError::InvalidRequest(format!(
                "This Strongroom server does not serve region '{shown}'. It serves: {}.",
                self.regions.join(", ")
            )));
        }
        let cred = if parsed.access_key_id.starts_with("ASIA") {
            self.session_credential(head, &parsed.access_key_id).await?
        } else if head.header("x-amz-security-token").is_some() {
            // A long-term key with a session token is not a credential AWS accepts.
            return Err(AuthError::UnknownKey.into());
        } else {
            self.credential(&parsed.access_key_id).await?
        };
        if !cred.active {
            return Err(AuthError::UnknownKey.into());
        }
        let now_s = self.ctx.now_ms().div_euclid(1000);
        sigv4::verify(head, body, &parsed, &cred.secret, now_s, &self.signing_keys)?;
        Ok(cred.principal)
    }

    /// The web console's sign-in with an access key pair: the principal of the long-term key
    /// `access_key_id` when it is active and `secret` is its secret (compared in constant
    /// time). Every failure is the same `UnrecognizedClientException`, so the form tells
    /// nobody which keys exist.
    pub async fn verify_key_pair(
        &self,
        access_key_id: &str,
        secret: &str,
    ) -> Result<Arc<Principal>, ApiError> {
        use subtle::ConstantTimeEq;
        if !access_key_id.starts_with("AKIA") {
            return Err(AuthError::UnknownKey.into());
        }
        let cred = self.credential(access_key_id).await?;
        let matches: bool = cred
            .secret
            .expose()
            .as_bytes()
            .ct_eq(secret.as_bytes())
            .into();
        if !matches || !cred.active {
            return Err(AuthError::UnknownKey.into());
        }
        Ok(cred.principal)
    }

    /// The principal of the long-term key `access_key_id` if it is still active and its user
    /// still declared: a console session signed in with that key is re-derived from it on
    /// every request, so deactivating the key or removing the user ends the session.
    pub async fn principal_of_active_key(
        &self,
        access_key_id: &str,
    ) -> Result<Arc<Principal>, ApiError> {
        let cred = self.credential(access_key_id).await?;
        if !cred.active {
            return Err(AuthError::UnknownKey.into());
        }
        Ok(cred.principal)
    }

    /// The web console's sign-in with a JWT (and how a console session signed in so is
    /// checked again on every request): the principal of a web identity session of
    /// `role_arn` (or of the role the provider's role claim names), after that role's trust
    /// policy allowed the token, exactly as for an `Authorization: Bearer` request.
    pub fn principal_of_web_identity(
        &self,
        token: &str,
        role_arn: Option<&str>,
        region: &str,
        draft: &mut Draft,
    ) -> Result<Arc<Principal>, ApiError> {
        let mut headers = vec![("x-strongroom-region".to_owned(), region.to_owned())];
        if let Some(role) = role_arn.filter(|r| !r.is_empty()) {
            headers.push(("x-strongroom-role".to_owned(), role.to_owned()));
        }
        let head = RequestHead {
            method: "POST".to_owned(),
            path: "/".to_owned(),
            query: String::new(),
            headers,
        };
        self.authenticate_bearer(&head, token, draft)
    }

    /// `Authorization: Bearer <jwt>`: the call runs as a session of the role the request
    /// names (`X-Strongroom-Role`, or the provider's role claim), after the trust policy
    /// allowed the token as for AssumeRoleWithWebIdentity.
    pub fn authenticate_bearer(
        &self,
        head: &RequestHead,
        token: &str,
        draft: &mut Draft,
    ) -> Result<Arc<Principal>, ApiError> {
        let region = head
            .header("x-strongroom-region")
            .map(str::to_owned)
            .or_else(|| self.regions.first().cloned())
            .unwrap_or_default();
        if !self.regions.contains(&region) {
            return Err(ApiError::InvalidRequest(format!(
                "This Strongroom server does not serve region '{}'. It serves: {}.",
                region.chars().take(64).collect::<String>(),
                self.regions.join(", ")
            )));
        }
        draft.region = region;
        let dir = self.authz.identities().get();
        // Read (untrusted) only to pick the role and session name; the token is verified in
        // `session_for_token` before anything is decided.
        let unverified = crate::identity::jwt::unverified_claims(token)
            .map_err(|e| ApiError::InvalidIdentityToken(e.0))?;
        let claim_str = |name: &str| {
            unverified
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let role_arn = match head.header("x-strongroom-role") {
            Some(r) => r.to_owned(),
            None => {
                let issuer = claim_str("iss").unwrap_or_default();
                let claim = dir
                    .providers_for_issuer(&issuer)
                    .find_map(|p| p.spec.role_claim.clone())
                    .ok_or_else(|| {
                        ApiError::InvalidIdentityToken(
                            "No role named: send X-Strongroom-Role or configure the provider's RoleClaim.".into(),
                        )
                    })?;
                claim_str(&claim).ok_or_else(|| {
                    ApiError::InvalidIdentityToken(format!(
                        "The token has no `{claim}` claim naming a role."
                    ))
                })?
            }
        };
        let sub = claim_str("sub").unwrap_or_else(|| "web-identity".to_owned());
        let name = ops::sts::web_identity::session_name_from(&sub);
        let (claims, verified, role) = ops::sts::web_identity::session_for_token(
            &self.authz,
            token,
            &role_arn,
            &name,
            900,
            None,
            draft,
        )?;
        let mut principal = claims.principal(&role.tags);
        principal.access_key_id = "bearer-token".into();
        // Each call is a session of its own, but the token is what was issued: its `iat` is
        // the session's issue time (`aws:TokenIssueTime`), so that a policy revoking the
        // sessions issued before a time (AWS's "revoke active sessions") refuses tokens
        // issued before it too. A token that does not say when it was issued counts as
        // issued long ago (the epoch), never as issued now.
        if let Some(session) = principal.session.as_mut() {
            let iat_ms = verified
                .claims
                .get("iat")
                .and_then(serde_json::Value::as_i64)
                .map_or(0, |s| s.saturating_mul(1000));
            session.created_ms = iat_ms.min(session.created_ms).max(0);
        }
        Ok(Arc::new(principal))
    }

    /// The credential of a temporary (STS) access key: the session token carries it.
    async fn session_credential(
        &self,
        head: &RequestHead,
        akid: &str,
    ) -> Result<Credential, ApiError> {
        let token = head
            .header("x-amz-security-token")
            .ok_or(AuthError::UnknownKey)?;
        let keyring = &self.ctx.keyring;
        let claims = session::decode_token(token, akid, self.ctx.now_ms(), |id, sealed| {
            keyring
                .open_with_master(id, sealed, session::TOKEN_AAD)
                .ok()
        })
        .map_err(|e| match e {
            session::TokenError::Expired => ApiError::ExpiredToken(
                "The security token included in the request is expired".into(),
            ),
            session::TokenError::Invalid => AuthError::UnknownKey.into(),
        })?;
        let live = self.authz.identities();
        let dir = live.get();
        let role = if live.keeps_role_ids() {
            // The role's id kept in the database decides, not the one this server read at
            // its last reload: servers sharing a database reload their files at their own
            // times, and a role removed and declared again through another one (a new id,
            // its earlier sessions ended) may look unchanged here.
            let role = dir
                .role_by_arn(&claims.role_arn)
                .ok_or(AuthError::UnknownKey)?;
            let current = self.stored_role_id(&role.account, &role.name, &dir).await?;
            if current.as_deref() != Some(claims.role_id.as_str()) {
                return Err(AuthError::UnknownKey.into());
            }
            role
        } else {
            dir.role_for_session(&claims.role_arn, &claims.role_id)
                .ok_or(AuthError::UnknownKey)?
        };
        Ok(Credential {
            secret: Arc::new(claims.secret_key()),
            principal: Arc::new(claims.principal(&role.tags)),
            active: true,
        })
    }

    /// The id the database keeps for role `name` of `account`. Read again at most
    /// [`CREDENTIAL_TTL_MS`] after it was last read, as an access key is (a role removed and
    /// declared again through another server ends its earlier sessions here within that
    /// time), and at once after this server's own reload (`dir` is not the directory it was
    /// read under), which is where the role's new id is written.
    async fn stored_role_id(
        &self,
        account: &str,
        name: &str,
        dir: &Arc<Directory>,
    ) -> Result<Option<String>, ApiError> {
        let now = self.ctx.now_ms();
        let key = (account.to_owned(), name.to_owned());
        if let Some(c) = self
            .role_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .filter(|c| {
                (0..CREDENTIAL_TTL_MS).contains(&(now - c.read_at_ms))
                    && std::ptr::eq(c.read_under.as_ptr(), Arc::as_ptr(dir))
            })
        {
            return Ok(c.id.clone());
        }
        let (a, n) = key.clone();
        let id = self
            .ctx
            .store
            .read_point(move |tx| Ok(tx.role_id(&a, &n)?))
            .await?;
        insert_bounded(
            &self.role_ids,
            key,
            CachedRoleId {
                id: id.clone(),
                read_at_ms: now,
                read_under: Arc::downgrade(dir),
            },
        );
        Ok(id)
    }

    /// The principal owning a stored key, under directory `dir`. A key whose user is no
    /// longer declared is refused like an unknown key, and so is a root key of an account
    /// no longer declared (but for the server's default account).
    fn principal_of(
        &self,
        key: &StoredKey,
        access_key_id: &str,
        dir: &Directory,
    ) -> Option<Arc<Principal>> {
        let principal = match &key.user_name {
            None => {
                let declared = dir.accounts.contains_key(&key.account)
                    || self.default_account.as_deref() == Some(key.account.as_str());
                if !declared {
                    return None;
                }
                Principal::root(&key.account, access_key_id)
            }
            Some(name) => {
                let u = dir.user(&key.account, name)?;
                Principal::user(
                    &u.account,
                    &u.arn,
                    &u.user_id,
                    &u.name,
                    u.tags.clone(),
                    access_key_id,
                )
            }
        };
        Some(Arc::new(principal))
    }

    /// The credential of an access key id: the stored key is cached for a few seconds, its
    /// principal for as long as the directory it was built under is in force.
    async fn credential(&self, access_key_id: &str) -> Result<Credential, ApiError> {
        let now = self.ctx.now_ms();
        let dir = self.authz.identities().get();
        let cached = self
            .credentials
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(access_key_id)
            // An entry read at a later clock reading (the wall clock stepped back) is no
            // younger than the TTL: it is read again, not trusted until the clock catches up.
            .filter(|c| (0..CREDENTIAL_TTL_MS).contains(&(now - c.read_at_ms)))
            .map(|c| (Arc::clone(&c.key), c.principal_under(&dir)));
        let (key, principal) = match cached {
            Some((key, Some(principal))) => (key, principal),
            Some((key, None)) => {
                let principal = self
                    .principal_of(&key, access_key_id, &dir)
                    .ok_or(AuthError::UnknownKey)?;
                let mut cache = self
                    .credentials
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(entry) = cache
                    .get_mut(access_key_id)
                    .filter(|c| Arc::ptr_eq(&c.key, &key))
                {
                    entry.principal = Some((Arc::downgrade(&dir), Arc::clone(&principal)));
                }
                (key, principal)
            }
            None => {
                let key = Arc::new(
                    self.load_key(access_key_id)
                        .await?
                        .ok_or(AuthError::UnknownKey)?,
                );
                let principal = self.principal_of(&key, access_key_id, &dir);
                insert_bounded(
                    &self.credentials,
                    access_key_id.to_owned(),
                    CachedKey {
                        key: Arc::clone(&key),
                        read_at_ms: now,
                        principal: principal
                            .as_ref()
                            .map(|p| (Arc::downgrade(&dir), Arc::clone(p))),
                    },
                );
                (key, principal.ok_or(AuthError::UnknownKey)?)
            }
        };
        Ok(Credential {
            secret: Arc::clone(&key.secret),
            principal,
            active: key.active,
        })
    }

    async fn load_key(&self, access_key_id: &str) -> Result<Option<StoredKey>, ApiError> {
        let id = access_key_id.to_owned();
        let keyring = self.ctx.keyring.clone();
        self.ctx
            .store
            .read(move |tx| {
                let Some(row) = tx.access_key(&id)? else {
                    return Ok(None);
                };
                let secret = keyring.open_with_master(
                    row.master_key_id,
                    &row.secret_sealed,
                    &envelope::access_key_aad(&row.access_key_id),
                )?;
                let secret = String::from_utf8(secret.to_vec()).map_err(ApiError::internal)?;
                Ok(Some(StoredKey {
                    secret: Arc::new(SecretAccessKey::new(secret)),
                    account: row.account_id,
                    user_name: row.user_name,
                    active: row.status == "Active",
                }))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;
    use crate::crypto::master::MasterKeyring;
    use crate::identity::live::Live;
    use crate::kms::Keyring;
    use crate::store::rows::AccessKeyRow;
    use crate::store::Store;

    const AKID: &str = "AKIACACHETEST0000001";

    /// An authenticator over a fresh store holding one active root key, on a clock the test
    /// moves.
    fn authenticator(dir: &std::path::Path) -> (Authenticator, Store, Arc<AtomicI64>) {
        authenticator_for(dir, Live::open(None).unwrap(), None)
    }

    /// An authenticator over a fresh store holding one active key of `user` (the root's
    /// when `None`), with the principals directory `live`, on a clock the test moves.
    fn authenticator_for(
        dir: &std::path::Path,
        live: Live,
        user: Option<&str>,
    ) -> (Authenticator, Store, Arc<AtomicI64>) {
        let store = Store::open(&format!("sqlite://{}/a.db", dir.display())).unwrap();
        let keyring = Keyring::new(MasterKeyring::generate());
        let (sealed, mid) = keyring
            .seal_with_master(b"secret", &envelope::access_key_aad(AKID))
            .unwrap();
        let row = AccessKeyRow {
            access_key_id: AKID.into(),
            account_id: "111122223333".into(),
            user_name: user.map(str::to_owned),
            secret_sealed: sealed,
            master_key_id: mid,
            status: "Active".into(),
            created_at: 0,
        };
        store
            .write_blocking(|tx| Ok(tx.insert_access_key(&row)?))
            .unwrap();
        let now = Arc::new(AtomicI64::new(1_000_000));
        let clock = Arc::clone(&now);
        let ctx = Ctx {
            store: store.clone(),
            keyring,
            clock: Arc::new(move || clock.load(Ordering::SeqCst)),
            rotation: crate::rotation::Wiring::default(),
            regions: Arc::new(vec!["us-east-1".into()]),
            peers: Arc::new(Vec::new()),
        };
        let authz = Authz::new(ctx.clone(), Arc::new(live));
        let mut a = Authenticator::new(ctx, authz, Arc::new(vec!["us-east-1".into()]));
        // The root key's account is the server's default one (no directory declares it).
        a.set_default_account("111122223333");
        (a, store, now)
    }

    #[tokio::test]
    async fn a_root_key_needs_its_account_declared_or_the_default_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut a, _store, _now) = authenticator(dir.path());
        assert!(a.credential(AKID).await.is_ok());
        a.default_account = Some("444455556666".into());
        a.credentials
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        let e = a.credential(AKID).await.unwrap_err();
        assert_eq!(e.code(), "UnrecognizedClientException", "{e:?}");
    }

    #[tokio::test]
    async fn a_looked_up_key_is_trusted_for_the_ttl_then_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let (a, store, now) = authenticator(dir.path());
        assert!(a.credential(AKID).await.unwrap().active);
        store
            .write_blocking(|tx| Ok(tx.set_access_key_status(AKID, "Inactive")?))
            .unwrap();
        // Within the TTL the cached key answers (the change is not read yet)...
        now.fetch_add(CREDENTIAL_TTL_MS - 1, Ordering::SeqCst);
        assert!(a.credential(AKID).await.unwrap().active);
        // ...and once it has passed, the stored key is read again.
        now.fetch_add(1, Ordering::SeqCst);
        assert!(!a.credential(AKID).await.unwrap().active);
        // A deleted key is unknown once the entry has expired.
        store
            .write_blocking(|tx| Ok(tx.delete_access_key(AKID)?))
            .unwrap();
        now.fetch_add(CREDENTIAL_TTL_MS, Ordering::SeqCst);
        let e = a.credential(AKID).await.unwrap_err();
        assert_eq!(e.code(), "UnrecognizedClientException", "{e:?}");
    }

    /// The wall clock stepped back (NTP, an operator) after a key was looked up: the entry's
    /// age is negative, and the key is read again at once instead of being trusted until the
    /// clock is back where it was.
    #[tokio::test]
    async fn a_key_looked_up_at_a_later_clock_reading_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let (a, store, now) = authenticator(dir.path());
        assert!(a.credential(AKID).await.unwrap().active);
        store
            .write_blocking(|tx| Ok(tx.set_access_key_status(AKID, "Inactive")?))
            .unwrap();
        now.fetch_sub(3_600_000, Ordering::SeqCst);
        assert!(!a.credential(AKID).await.unwrap().active);
        // Positive control: read at the new clock, the entry is trusted for the TTL again.
        store
            .write_blocking(|tx| Ok(tx.set_access_key_status(AKID, "Active")?))
            .unwrap();
        now.fetch_add(CREDENTIAL_TTL_MS, Ordering::SeqCst);
        assert!(a.credential(AKID).await.unwrap().active);
        store
            .write_blocking(|tx| Ok(tx.set_access_key_status(AKID, "Inactive")?))
            .unwrap();
        now.fetch_add(CREDENTIAL_TTL_MS - 1, Ordering::SeqCst);
        assert!(a.credential(AKID).await.unwrap().active);
    }

    #[tokio::test]
    async fn a_cached_key_s_principal_follows_every_reload_of_the_directory() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("policies");
        crate::identity::live::copy_tree(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
            &root,
        );
        let (a, _store, _now) =
            authenticator_for(t.path(), Live::open(Some(&root)).unwrap(), Some("alice"));
        let first = a.credential(AKID).await.unwrap().principal;
        assert_eq!(
            first.arn,
            "arn:aws:iam::111122223333:user/engineering/alice"
        );
        assert_eq!(first.tags.get("team").map(String::as_str), Some("payments"));
        // The same directory in force: the principal built once is handed out again.
        let again = a.credential(AKID).await.unwrap().principal;
        assert!(Arc::ptr_eq(&first, &again));
        // A reload that changes the user's tags: the next request sees the new tags at
        // once, though the stored key is still within its cache time.
        let file = root.join("accounts/111122223333/users/alice.json");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            text.replace(r#""team": "payments""#, r#""team": "ledger""#),
        )
        .unwrap();
        let live = a.authz.identities();
        assert!(matches!(
            live.reload(true),
            crate::identity::live::Reload::Accepted { .. }
        ));
        let retagged = a.credential(AKID).await.unwrap().principal;
        assert_eq!(
            retagged.tags.get("team").map(String::as_str),
            Some("ledger")
        );
        // A reload that removes the user: its key is refused at once.
        std::fs::remove_file(&file).unwrap();
        assert!(matches!(
            live.reload(true),
            crate::identity::live::Reload::Accepted { .. }
        ));
        let e = a.credential(AKID).await.unwrap_err();
        assert_eq!(e.code(), "UnrecognizedClientException", "{e:?}");
    }
}
