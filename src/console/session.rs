//! The console session: a cookie the server sealed (AES-256-GCM under the master key, with
//! an AAD of its own), so it can be neither read nor forged nor altered by the browser. It
//! names the access key that signed in (the principal is derived from it again on every
//! request), its expiry, and the CSRF token that every state-changing form must echo.

use base64::Engine;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::kms::Keyring;

/// The session cookie's name. The `__Host-` prefix (Secure, Path=/, no Domain) is used when
/// the request came over TLS; browsers refuse that prefix on plain HTTP.
pub const COOKIE: &str = "strongroom_console";
/// The TLS form of [`COOKIE`].
pub const COOKIE_TLS: &str = "__Host-strongroom_console";
/// The sign-in form's own token cookie (against login CSRF: a forged sign-in into the
/// attacker's account).
pub const PRE_COOKIE: &str = "strongroom_console_signin";
/// The TLS form of [`PRE_COOKIE`].
pub const PRE_COOKIE_TLS: &str = "__Host-strongroom_console_signin";

/// The longest cookie value sent: browsers keep cookies of up to about 4096 bytes.
pub const MAX_COOKIE: usize = 3900;

/// How long a console session lasts.
pub const SESSION_MS: i64 = 30 * 60 * 1000;

/// The AAD binding a sealed cookie to its purpose (an STS session token does not open as a
/// console session, nor the reverse).
const AAD: &[u8] = b"strongroom:console-session:v1";

/// What a console session cookie carries.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionClaims {
    /// A random id (sign-out revokes it).
    pub sid: String,
    /// The long-term access key that signed in.
    pub akid: String,
    /// The region the console works in.
    pub region: String,
    /// Epoch milliseconds.
    pub issued_ms: i64,
    pub expires_ms: i64,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    /// For a sign-in with a JWT: the token and the role named (the session is that role's
    /// web identity session, the token verified again on every request). `akid` is empty.
    #[serde(default)]
    pub web_identity: Option<WebIdentity>,
}

/// A console session's web identity: a JWT and the role it signs in to.
#[derive(Clone, Serialize, Deserialize)]
pub struct WebIdentity {
    pub token: String,
    #[serde(default)]
    pub role_arn: Option<String>,
}

impl std::fmt::Debug for WebIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebIdentity")
            .field("role_arn", &self.role_arn)
            .finish_non_exhaustive()
    }
}

impl Drop for WebIdentity {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token);
    }
}

impl std::fmt::Debug for SessionClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionClaims")
            .field("sid", &self.sid)
            .field("akid", &self.akid)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

/// A fresh random token (hex), for session ids and CSRF tokens.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}

impl SessionClaims {
    /// A new session for `akid`, from `now_ms`.
    pub fn new(akid: &str, region: &str, now_ms: i64) -> Self {
        Self {
            sid: random_token(),
            akid: akid.to_owned(),
            region: region.to_owned(),
            issued_ms: now_ms,
            expires_ms: now_ms.saturating_add(SESSION_MS),
            csrf: random_token(),
            web_identity: None,
        }
    }

    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        !token.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// Seal `claims` as a cookie value (URL-safe base64 of the master key id and the sealed
/// JSON).
pub fn seal(keyring: &Keyring, claims: &SessionClaims) -> Result<String, crate::error::ApiError> {
    let json =
        Zeroizing::new(serde_json::to_vec(claims).map_err(crate::error::ApiError::internal)?);
    let (sealed, key_id) = keyring.seal_with_master(&json, AAD)?;
    let mut raw = key_id.to_be_bytes().to_vec();
    raw.extend_from_slice(&sealed);
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

/// Why a cookie does not hold a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieError {
    /// Not a cookie this server sealed, or altered.
    Invalid,
    /// Past its expiry.
    Expired,
}

/// Open a cookie value; refuses anything not sealed by this server's master key, and an
/// expired session.
pub fn open(keyring: &Keyring, value: &str, now_ms: i64) -> Result<SessionClaims, CookieError> {
    if value.len() > MAX_COOKIE {
        return Err(CookieError::Invalid);
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value.trim())
        .map_err(|_| CookieError::Invalid)?;
    let (id, sealed) = raw.split_at_checked(4).ok_or(CookieError::Invalid)?;
    let id = i32::from_be_bytes(id.try_into().map_err(|_| CookieError::Invalid)?);
    let json = keyring
        .open_with_master(id, sealed, AAD)
        .map_err(|_| CookieError::Invalid)?;
    let claims: SessionClaims = serde_json::from_slice(&json).map_err(|_| CookieError::Invalid)?;
    if now_ms >= claims.expires_ms {
        return Err(CookieError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::master::MasterKeyring;

    #[test]
    fn sealed_cookies_open_only_unaltered_unexpired_and_for_their_purpose() {
        let keyring = Keyring::new(MasterKeyring::generate());
        let c = SessionClaims::new("AKIAEXAMPLE", "us-east-1", 1_000);
        let v = seal(&keyring, &c).unwrap();
        let back = open(&keyring, &v, 2_000).unwrap();
        assert_eq!(back.akid, "AKIAEXAMPLE");
        assert!(back.csrf_matches(&c.csrf));
        assert!(!back.csrf_matches(""));
        assert!(!back.csrf_matches(&random_token()));
        assert_eq!(
            open(&keyring, &v, 1_000 + SESSION_MS).unwrap_err(),
            CookieError::Expired
        );
        // One flipped character anywhere is refused.
        let mut bytes = v.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            open(&keyring, &tampered, 2_000).unwrap_err(),
            CookieError::Invalid
        );
        // Another server's key does not open it.
        let other = Keyring::new(MasterKeyring::generate());
        assert_eq!(open(&other, &v, 2_000).unwrap_err(), CookieError::Invalid);
        // An STS session token's sealing (another AAD) is not a console session.
        let (sealed, id) = keyring
            .seal_with_master(
                &serde_json::to_vec(&c).unwrap(),
                crate::auth::session::TOKEN_AAD,
            )
            .unwrap();
        let mut raw = id.to_be_bytes().to_vec();
        raw.extend_from_slice(&sealed);
        let sts = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(
            open(&keyring, &sts, 2_000).unwrap_err(),
            CookieError::Invalid
        );
        assert!(!format!("{c:?}").contains(&c.csrf));
    }
}
