//! Temporary credentials: the session token is self-contained (the session's claims and its
//! secret key, sealed by the server), so verifying a session needs no database row.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Principal, PrincipalKind, SecretAccessKey, SessionContext};

/// What a session token carries.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The ASIA access key id the token belongs to.
    pub akid: String,
    /// The session's secret access key.
    pub secret: String,
    pub account: String,
    /// The role's ARN, with its path.
    pub role_arn: String,
    pub role_name: String,
    pub role_id: String,
    pub session_name: String,
    /// Epoch milliseconds.
    pub issued_ms: i64,
    pub expires_ms: i64,
    /// `sts.amazonaws.com` or the JWT issuer.
    pub issuer: String,
    /// Session tags (override the role's tags).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The inline session policy, if one was passed.
    #[serde(default)]
    pub session_policy: Option<String>,
    /// Who assumed the role (for audit).
    pub source: String,
}

impl std::fmt::Debug for SessionClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionClaims")
            .field("akid", &self.akid)
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

impl Drop for SessionClaims {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

/// The AAD binding a sealed token to its purpose.
pub const TOKEN_AAD: &[u8] = b"strongroom:sts-session:v1";

/// Serialize claims, seal them with `seal` (returns the sealed bytes and the sealing key id),
/// and encode as the session token string.
pub fn encode_token<E>(
    claims: &SessionClaims,
    seal: impl FnOnce(&[u8]) -> Result<(Vec<u8>, i32), E>,
) -> Result<String, E> {
    let json = Zeroizing::new(serde_json::to_vec(claims).unwrap_or_default());
    let (sealed, key_id) = seal(&json)?;
    let mut raw = key_id.to_be_bytes().to_vec();
    raw.extend_from_slice(&sealed);
    Ok(base64::engine::general_purpose::STANDARD.encode(raw))
}

/// Why a session token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token of ours, tampered with, or for another key id.
    Invalid,
    /// Past its expiry.
    Expired,
}

/// Decode and open a token; checks it belongs to `akid` and has not expired at `now_ms`.
pub fn decode_token(
    token: &str,
    akid: &str,
    now_ms: i64,
    open: impl FnOnce(i32, &[u8]) -> Option<Zeroizing<Vec<u8>>>,
) -> Result<SessionClaims, TokenError> {
    if token.len() > 16 * 1024 {
        return Err(TokenError::Invalid);
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| TokenError::Invalid)?;
    let (id, sealed) = raw.split_at_checked(4).ok_or(TokenError::Invalid)?;
    let id = i32::from_be_bytes(id.try_into().map_err(|_| TokenError::Invalid)?);
    let json = open(id, sealed).ok_or(TokenError::Invalid)?;
    let claims: SessionClaims = serde_json::from_slice(&json).map_err(|_| TokenError::Invalid)?;
    if claims.akid != akid {
        return Err(TokenError::Invalid);
    }
    if now_ms >= claims.expires_ms {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

impl SessionClaims {
    /// The session's principal; `role_tags` are the role's own tags (session tags win,
    /// keys compared case-insensitively as condition keys are: a session tag `TEAM`
    /// replaces the role's `team`).
    pub fn principal(&self, role_tags: &BTreeMap<String, String>) -> Principal {
        let mut tags = role_tags.clone();
        if !self.tags.is_empty() {
            let session: std::collections::HashSet<String> =
                self.tags.keys().map(|k| k.to_lowercase()).collect();
            tags.retain(|k, _| !session.contains(&k.to_lowercase()));
        }
        tags.extend(self.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        Principal {
            account_id: self.account.clone(),
            arn: format!(
                "arn:aws:sts::{}:assumed-role/{}/{}",
                self.account, self.role_name, self.session_name
            ),
            kind: PrincipalKind::AssumedRole,
            user_id: format!("{}:{}", self.role_id, self.session_name),
            access_key_id: self.akid.clone(),
            name: Some(self.session_name.clone()),
            role_arn: Some(self.role_arn.clone()),
            tags,
            session: Some(SessionContext {
                issuer: self.issuer.clone(),
                created_ms: self.issued_ms,
                expires_ms: self.expires_ms,
                policy: self.session_policy.clone(),
            }),
        }
    }

    /// The secret key as a credential secret.
    pub fn secret_key(&self) -> SecretAccessKey {
        SecretAccessKey::new(self.secret.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> SessionClaims {
        SessionClaims {
            akid: "ASIAEXAMPLE".into(),
            secret: "s3cr3t".into(),
            account: "111122223333".into(),
            role_arn: "arn:aws:iam::111122223333:role/service/app".into(),
            role_name: "app".into(),
            role_id: "AROAEXAMPLE".into(),
            session_name: "job-1".into(),
            issued_ms: 0,
            expires_ms: 1000,
            issuer: "sts.amazonaws.com".into(),
            tags: BTreeMap::new(),
            session_policy: None,
            source: "arn:aws:iam::111122223333:user/ci".into(),
        }
    }

    #[test]
    fn a_session_tag_replaces_the_role_tag_of_the_same_key_in_any_case() {
        let mut c = claims();
        c.tags.insert("TEAM".into(), "eng".into());
        let role: BTreeMap<String, String> = [("team", "admin"), ("cost-center", "7")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let p = c.principal(&role);
        let tags: Vec<(&str, &str)> = p
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(tags, [("TEAM", "eng"), ("cost-center", "7")]);
        // Without session tags the role's stand.
        assert_eq!(claims().principal(&role).tags, role);
    }

    #[test]
    fn round_trip_expiry_and_binding() {
        let key = crate::crypto::Key256::random();
        let token = encode_token(&claims(), |b| key.seal(b, TOKEN_AAD).map(|s| (s, 1))).unwrap();
        let open = |_: i32, s: &[u8]| key.open(s, TOKEN_AAD).ok();
        let c = decode_token(&token, "ASIAEXAMPLE", 10, open).unwrap();
        assert_eq!(c.session_name, "job-1");
        let p = c.principal(&BTreeMap::new());
        assert_eq!(p.arn, "arn:aws:sts::111122223333:assumed-role/app/job-1");
        assert_eq!(
            p.role_arn.as_deref(),
            Some("arn:aws:iam::111122223333:role/service/app")
        );
        let open = |_: i32, s: &[u8]| key.open(s, TOKEN_AAD).ok();
        assert_eq!(
            decode_token(&token, "ASIAOTHER", 10, open).unwrap_err(),
            TokenError::Invalid
        );
        let open = |_: i32, s: &[u8]| key.open(s, TOKEN_AAD).ok();
        assert_eq!(
            decode_token(&token, "ASIAEXAMPLE", 1000, open).unwrap_err(),
            TokenError::Expired
        );
        // Valid to the last millisecond before its expiry, expired at it.
        let open = |_: i32, s: &[u8]| key.open(s, TOKEN_AAD).ok();
        assert!(decode_token(&token, "ASIAEXAMPLE", 999, open).is_ok());
        let open = |_: i32, s: &[u8]| key.open(s, TOKEN_AAD).ok();
        assert_eq!(
            decode_token(&token, "ASIAEXAMPLE", 1000, open).unwrap_err(),
            TokenError::Expired
        );
        let mut bad = token.clone();
        bad.replace_range(10..11, if &token[10..11] == "A" { "B" } else { "A" });
        let open = |_: i32, s: &[u8]| key.open(s, TOKEN_AAD).ok();
        assert_eq!(
            decode_token(&bad, "ASIAEXAMPLE", 10, open).unwrap_err(),
            TokenError::Invalid
        );
        let open = |_: i32, s: &[u8]| key.open(s, TOKEN_AAD).ok();
        assert_eq!(
            decode_token("!!!", "ASIAEXAMPLE", 10, open).unwrap_err(),
            TokenError::Invalid
        );
        assert!(!format!("{:?}", claims()).contains("s3cr3t"));
    }
}
