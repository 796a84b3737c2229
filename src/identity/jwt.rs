//! JWT issuers: verification keys loaded with the directory, and token verification.
//! Unsigned (`alg: none`), expired, not-yet-valid, wrong-issuer, wrong-audience and badly
//! signed tokens are refused; the token itself never appears in an error.
//!
//! A token is only ever checked against keys of its algorithm's family (RSA for RS256, P-256
//! for ES256, Ed25519 for EdDSA, the HMAC secret for HS256), and against a JWKS key only when
//! the key's own `alg` (if it names one) is the token's: an HS256 token "signed" with a
//! provider's RSA public key is refused, whatever the provider's algorithm list says.

use std::path::Path;

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::model::IdentityProviderFile;
use crate::policy::{KeyType, RequestContext};

/// The kind of a verification key, which decides the one algorithm it verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA public key: RS256.
    Rsa,
    /// P-256 public key: ES256.
    EcP256,
    /// Ed25519 public key: EdDSA.
    Ed25519,
    /// HMAC secret: HS256.
    Hmac,
}

impl KeyKind {
    /// The only algorithm (of those accepted) this kind of key verifies.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::Rsa => Algorithm::RS256,
            Self::EcP256 => Algorithm::ES256,
            Self::Ed25519 => Algorithm::EdDSA,
            Self::Hmac => Algorithm::HS256,
        }
    }
}

/// One verification key.
#[derive(Clone)]
pub struct VerifyKey {
    pub kid: Option<String>,
    pub kind: KeyKind,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        "HS256" => Some(Algorithm::HS256),
        _ => None,
    }
}

/// A JWKS entry as a verification key: `Ok(None)` for a key this server does not verify with
/// (an encryption key, another curve or algorithm), `Err` for a malformed or secret key.
fn jwk_key(k: &Jwk) -> Result<Option<VerifyKey>, String> {
    if matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    let kind = match &k.algorithm {
        AlgorithmParameters::RSA(_) => KeyKind::Rsa,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => KeyKind::EcP256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            KeyKind::Ed25519
        }
        AlgorithmParameters::EllipticCurve(_) | AlgorithmParameters::OctetKeyPair(_) => {
            return Ok(None)
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err(
                "a JWKS holds public keys; put an HMAC secret in HmacSecretFile instead".into(),
            )
        }
    };
    let declared = match k.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        Some(_) => return Ok(None),
    };
    if declared.is_some_and(|a| a != kind.algorithm()) {
        return Err(format!(
            "its alg {declared:?} does not fit its key type (a {kind:?} key verifies {:?})",
            kind.algorithm()
        ));
    }
    let key = DecodingKey::from_jwk(k).map_err(|e| format!("unusable key: {e}"))?;
    Ok(Some(VerifyKey {
        kid: k.common.key_id.clone(),
        kind,
        key,
    }))
}

/// A PEM public key file as a verification key.
fn pem_key(f: &str, pem: &[u8]) -> Result<VerifyKey, String> {
    if pem.windows(11).any(|w| w == b"PRIVATE KEY") {
        return Err(format!(
            "`{f}` holds a private key: give the issuer's public key (never its private key)"
        ));
    }
    let (kind, key) = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        (KeyKind::Rsa, k)
    } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        (KeyKind::EcP256, k)
    } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        (KeyKind::Ed25519, k)
    } else {
        return Err(format!(
            "`{f}` is not an RSA, EC or Ed25519 public key in PEM"
        ));
    };
    Ok(VerifyKey {
        kid: None,
        kind,
        key,
    })
}

/// Load a provider's keys (paths relative to its file). Errors name the file, not key bytes.
pub fn load_keys(spec: &IdentityProviderFile, base: &Path) -> Result<Vec<VerifyKey>, String> {
    let read =
        |rel: &str| std::fs::read(base.join(rel)).map_err(|e| format!("cannot read `{rel}`: {e}"));
    let mut out = vec![];
    if let Some(j) = &spec.jwks_file {
        let doc: Value = serde_json::from_slice(&read(j)?)
            .map_err(|e| format!("`{j}` is not a JWKS document: {e}"))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("`{j}` is not a JWKS document: no `keys` array"))?;
        for (i, k) in keys.iter().enumerate() {
            // A key of a type or algorithm this server does not know is skipped, not fatal.
            let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
                continue;
            };
            match jwk_key(&jwk) {
                Ok(Some(key)) => out.push(key),
                Ok(None) => {}
                Err(e) => return Err(format!("`{j}`: keys[{i}]: {e}")),
            }
        }
    }
    for f in &spec.public_key_files {
        out.push(pem_key(f, &read(f)?)?);
    }
    if let Some(h) = &spec.hmac_secret_file {
        let secret = zeroize::Zeroizing::new(read(h)?);
        let trimmed: &[u8] = secret.trim_ascii();
        if trimmed.len() < 32 {
            return Err(format!("`{h}`: an HMAC secret must be at least 32 bytes"));
        }
        out.push(VerifyKey {
            kid: None,
            kind: KeyKind::Hmac,
            key: DecodingKey::from_secret(trimmed),
        });
    }
    if out.is_empty() {
        return Err("no verification key".into());
    }
    Ok(out)
}

/// The clock leeway on `exp` and `nbf` when a provider file declares none.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 60;
/// The most leeway a provider file may declare (the five minutes of clock skew OIDC and
/// Kerberos tolerate): more would accept tokens long expired.
pub const MAX_LEEWAY_SECONDS: u64 = 300;

/// [`TokenRefused`]'s reason for a token past its `exp` (and the leeway).
pub const TOKEN_EXPIRED: &str = "The token is expired.";

/// A verified token.
#[derive(Debug, Clone)]
pub struct Verified {
    pub issuer: String,
    pub subject: String,
    pub audience: String,
    pub expires: i64,
    pub claims: Map<String, Value>,
}

/// Why a token was refused (client-visible, never containing the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRefused(pub String);

/// A token's claims, read without verifying it (to pick the provider and role only).
pub fn unverified_claims(token: &str) -> Result<Map<String, Value>, TokenRefused> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| TokenRefused("The token is not a JWT (header.payload.signature).".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| TokenRefused("The token payload is not base64url.".into()))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(TokenRefused(
            "The token payload is not a JSON object.".into(),
        )),
    }
}

/// The issuer a token claims, read without trusting it (to pick the provider).
pub fn unverified_issuer(token: &str) -> Result<String, TokenRefused> {
    unverified_claims(token)?
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| TokenRefused("The token has no iss claim.".into()))
}

/// Verify `token` against a provider's spec and keys.
pub fn verify(
    token: &str,
    spec: &IdentityProviderFile,
    keys: &[VerifyKey],
) -> Result<Verified, TokenRefused> {
    if token.len() > 16 * 1024 {
        return Err(TokenRefused("The token is too large.".into()));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| {
        TokenRefused("The token header is invalid or names an unsupported algorithm (unsigned tokens are refused).".into())
    })?;
    let allowed: Vec<Algorithm> = spec
        .algorithms
        .iter()
        .filter_map(|a| algorithm(a))
        .collect();
    if !allowed.contains(&header.alg) {
        return Err(TokenRefused(format!(
            "The token's algorithm {:?} is not accepted for issuer {}.",
            header.alg, spec.issuer
        )));
    }
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[spec.issuer.as_str()]);
    validation.set_audience(&spec.audiences);
    validation.leeway = spec
        .leeway_seconds
        .unwrap_or(DEFAULT_LEEWAY_SECONDS)
        .min(MAX_LEEWAY_SECONDS);
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // Only keys of the token's algorithm; the one its `kid` names when the provider has it
    // (PEM keys have no id, so a token's kid naming none of them tries each of them).
    let fitting: Vec<&VerifyKey> = keys
        .iter()
        .filter(|k| k.kind.algorithm() == header.alg)
        .collect();
    let candidates: Vec<&VerifyKey> = match &header.kid {
        Some(kid) if keys.iter().any(|k| k.kid.as_deref() == Some(kid)) => fitting
            .into_iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .collect(),
        _ => fitting,
    };
    if candidates.is_empty() {
        return Err(TokenRefused(format!(
            "No verification key of issuer {} fits the token's algorithm {:?} and key id.",
            spec.issuer, header.alg
        )));
    }
    let mut last = TokenRefused("The token signature is invalid.".into());
    for k in candidates {
        match jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &validation) {
            Ok(data) => {
                let claims = data.claims;
                check_claim_names(&claims, spec)?;
                // The validation above skips an `nbf` it cannot read as a NumericDate (a
                // string, a negative or too large number): such a token is refused, not
                // taken as valid from any time.
                if claims.get("nbf").is_some_and(|v| !is_numeric_date(v)) {
                    return Err(TokenRefused(
                        "The token's nbf claim is not a NumericDate.".into(),
                    ));
                }
                let subject = claims
                    .get("sub")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let audience = match claims.get("aud") {
                    Some(Value::String(a)) => a.clone(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .find(|x| spec.audiences.iter().any(|s| s == x))
                        .unwrap_or_default()
                        .to_owned(),
                    _ => String::new(),
                };
                return Ok(Verified {
                    issuer: spec.issuer.clone(),
                    subject,
                    audience,
                    expires: claims
                        .get("exp")
                        .and_then(Value::as_i64)
                        .unwrap_or_default(),
                    claims,
                });
            }
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                last = TokenRefused(
                    match e.kind() {
                        ErrorKind::ExpiredSignature => TOKEN_EXPIRED,
                        ErrorKind::ImmatureSignature => "The token is not valid yet (nbf).",
                        ErrorKind::InvalidAudience => "The token's audience is not accepted.",
                        ErrorKind::InvalidIssuer => "The token's issuer is not accepted.",
                        ErrorKind::MissingRequiredClaim(_) => {
                            "The token lacks a required claim (exp, iss, aud, sub)."
                        }
                        ErrorKind::InvalidSignature => "The token signature is invalid.",
                        _ => "The token could not be verified.",
                    }
                    .into(),
                );
                if !matches!(e.kind(), ErrorKind::InvalidSignature) {
                    return Err(last);
                }
            }
        }
    }
    Err(last)
}

/// Whether `v` is a JWT NumericDate as the `exp`/`nbf` validation reads one: a JSON number of
/// seconds, not negative, below 2^64 (a fraction is rounded).
fn is_numeric_date(v: &Value) -> bool {
    v.as_u64().is_some()
        || v.as_f64().is_some_and(|f| {
            #[expect(
                clippy::cast_precision_loss,
                reason = "the bound, as jsonwebtoken reads it"
            )]
            let max = u64::MAX as f64;
            f.is_finite() && f >= 0.0 && f < max
        })
}

/// The name condition keys use for an issuer: the URL without its scheme
/// (`https://token.actions.githubusercontent.com` → `token.actions.githubusercontent.com`).
pub fn issuer_key_prefix(issuer: &str) -> String {
    issuer
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// The claims every provider offers as condition keys, by exact (case-sensitive) name: those
/// AWS maps for OIDC web identity (IAM's "Available keys for AWS OIDC federation": `sub`,
/// `aud`, `oaud`, `amr`, `email`), and `azp`. `aud` is the audience the provider accepted,
/// `oaud` every value of the token's `aud` claim.
pub const STANDARD_CONDITION_CLAIMS: [&str; 6] = ["sub", "aud", "oaud", "amr", "email", "azp"];

/// Whether a claim name feeds a condition key of `spec`'s issuer (`aud` feeds `aud` and
/// `oaud`) or a session tag (`aws:PrincipalTag/…`). Compared without case, as IAM compares
/// condition key names.
fn feeds_condition_key(name_lc: &str, spec: &IdentityProviderFile) -> bool {
    STANDARD_CONDITION_CLAIMS.contains(&name_lc)
        || spec
            .condition_claims
            .iter()
            .chain(spec.session_tag_claims.keys())
            .any(|c| c.to_lowercase() == name_lc)
}

/// Refuse a token with two claims whose names differ only in case when one of them feeds a
/// condition key or a session tag: IAM compares key names without case, so `SUB` beside
/// `sub` could only be an attempt to stand in for the subject.
fn check_claim_names(
    claims: &Map<String, Value>,
    spec: &IdentityProviderFile,
) -> Result<(), TokenRefused> {
    let mut seen: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for name in claims.keys() {
        *seen.entry(name.to_lowercase()).or_default() += 1;
    }
    match seen
        .iter()
        .find(|(lc, n)| **n > 1 && feeds_condition_key(lc, spec))
    {
        Some((lc, _)) => Err(TokenRefused(format!(
            "The token has several claims named `{}` (in different cases).",
            lc.chars().take(64).collect::<String>()
        ))),
        None => Ok(()),
    }
}

/// A claim's values as condition key values: a string, number or boolean is one value; an
/// array gives each of its scalar elements; objects and null give none.
fn claim_values(v: &Value) -> Vec<String> {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match v {
        Value::Array(a) => a.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    }
}

/// The `ISSUER:<key>` condition keys of a verified token: [`STANDARD_CONDITION_CLAIMS`] and
/// the claims its provider declares in `ConditionClaims`, each under its exact claim name;
/// no other claim becomes a key. `(key, type, values)`; a claim the token lacks gives no key.
pub fn condition_keys(
    verified: &Verified,
    spec: &IdentityProviderFile,
) -> Vec<(String, KeyType, Vec<String>)> {
    let host = issuer_key_prefix(&verified.issuer);
    let mut out = vec![
        (
            format!("{host}:sub"),
            KeyType::String,
            vec![verified.subject.clone()],
        ),
        (
            format!("{host}:aud"),
            KeyType::String,
            vec![verified.audience.clone()],
        ),
    ];
    if let Some(aud) = verified.claims.get("aud") {
        let values = claim_values(aud);
        let ty = if matches!(aud, Value::Array(_)) {
            KeyType::ArrayOfString
        } else {
            KeyType::String
        };
        out.push((format!("{host}:oaud"), ty, values));
    }
    if let Some(amr) = verified.claims.get("amr") {
        out.push((
            format!("{host}:amr"),
            KeyType::ArrayOfString,
            claim_values(amr),
        ));
    }
    for name in ["email", "azp"]
        .into_iter()
        .chain(spec.condition_claims.iter().map(String::as_str))
    {
        let Some(v) = verified.claims.get(name) else {
            continue;
        };
        let values = claim_values(v);
        if values.is_empty() {
            continue;
        }
        let ty = if matches!(v, Value::Array(_)) {
            KeyType::ArrayOfString
        } else {
            KeyType::String
        };
        out.push((format!("{host}:{name}"), ty, values));
    }
    out
}

/// `ctx` with the condition keys of a verified token (see [`condition_keys`]).
pub fn with_condition_keys(
    mut ctx: RequestContext,
    verified: &Verified,
    spec: &IdentityProviderFile,
) -> RequestContext {
    for (key, ty, values) in condition_keys(verified, spec) {
        ctx = ctx.with_typed(&key, ty, values);
    }
    ctx
}

/// Problems with a provider's `ConditionClaims` (`(json path, message)`): every name must be
/// a claim name that no standard key and no other declared claim has, ignoring case.
pub fn check_condition_claims(spec: &IdentityProviderFile) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut seen: Vec<String> = vec![];
    for (i, c) in spec.condition_claims.iter().enumerate() {
        let lc = c.to_lowercase();
        let path = format!("$.ConditionClaims[{i}]");
        if c.is_empty() || c.len() > 128 || c.chars().any(|ch| ch.is_control()) {
            out.push((path, "a claim name is 1-128 printable characters".into()));
        } else if STANDARD_CONDITION_CLAIMS.contains(&lc.as_str()) {
            out.push((
                path,
                format!("`{c}` is a condition key every provider has; list only further claims"),
            ));
        } else if ["iss", "exp", "nbf", "iat", "jti"].contains(&lc.as_str()) {
            out.push((
                path,
                format!("`{c}` is checked when the token is verified; it is not a condition key"),
            ));
        } else if seen.contains(&lc) {
            out.push((
                path,
                format!("`{c}` is listed twice (condition key names are compared without case)"),
            ));
        }
        seen.push(lc);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spec(condition_claims: &[&str]) -> IdentityProviderFile {
        serde_json::from_value(serde_json::json!({
            "Issuer": "https://ci.example.test", "Audiences": ["strongroom"],
            "HmacSecretFile": "x.hmac", "Algorithms": ["HS256"],
            "ConditionClaims": condition_claims,
            "SessionTagClaims": {"namespace": "ns"},
        }))
        .unwrap()
    }

    fn verified(claims: serde_json::Value) -> Verified {
        let Value::Object(claims) = claims else {
            panic!("not an object")
        };
        Verified {
            issuer: "https://ci.example.test".into(),
            subject: claims["sub"].as_str().unwrap().into(),
            audience: "strongroom".into(),
            expires: 0,
            claims,
        }
    }

    #[test]
    fn only_standard_and_declared_claims_become_keys() {
        let v = verified(serde_json::json!({
            "iss": "https://ci.example.test", "sub": "repo:a", "aud": ["strongroom", "other"],
            "amr": ["pwd", "mfa"], "email": "a@example.test", "azp": "client",
            "repo": "a/b", "run": 42, "groups": ["x", "y"], "nested": {"k": "v"}, "Team": "t",
        }));
        let keys: BTreeMap<String, (KeyType, Vec<String>)> =
            condition_keys(&v, &spec(&["repo", "run", "groups", "nested"]))
                .into_iter()
                .map(|(k, t, vs)| (k, (t, vs)))
                .collect();
        let get = |k: &str| keys.get(&format!("ci.example.test:{k}")).cloned();
        assert_eq!(get("sub"), Some((KeyType::String, vec!["repo:a".into()])));
        assert_eq!(
            get("aud"),
            Some((KeyType::String, vec!["strongroom".into()]))
        );
        assert_eq!(
            get("oaud"),
            Some((
                KeyType::ArrayOfString,
                vec!["strongroom".into(), "other".into()]
            ))
        );
        assert_eq!(
            get("amr"),
            Some((KeyType::ArrayOfString, vec!["pwd".into(), "mfa".into()]))
        );
        assert_eq!(get("email").unwrap().1, vec!["a@example.test".to_owned()]);
        assert_eq!(get("azp").unwrap().1, vec!["client".to_owned()]);
        assert_eq!(get("repo").unwrap().1, vec!["a/b".to_owned()]);
        assert_eq!(get("run").unwrap().1, vec!["42".to_owned()]);
        assert_eq!(get("groups").unwrap().0, KeyType::ArrayOfString);
        assert_eq!(get("nested"), None);
        assert_eq!(get("Team"), None);
        assert_eq!(get("iss"), None);
        assert_eq!(keys.len(), 9, "{keys:?}");
    }

    #[test]
    fn case_twins_of_mapped_claims_are_refused() {
        let claims = |extra: serde_json::Value| {
            let mut c = serde_json::json!({"sub": "s", "aud": "strongroom"});
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            c.as_object().unwrap().clone()
        };
        let s = spec(&["repo"]);
        assert!(check_claim_names(&claims(serde_json::json!({})), &s).is_ok());
        for twin in [
            serde_json::json!({"SUB": "x"}),
            serde_json::json!({"Aud": "x"}),
            serde_json::json!({"email": "a", "EMAIL": "b"}),
            serde_json::json!({"repo": "a", "REPO": "b"}),
            serde_json::json!({"namespace": "a", "Namespace": "b"}),
        ] {
            assert!(
                check_claim_names(&claims(twin.clone()), &s).is_err(),
                "{twin}"
            );
        }
        // twins of a claim that feeds no key do not matter
        assert!(
            check_claim_names(&claims(serde_json::json!({"team": "a", "TEAM": "b"})), &s).is_ok()
        );
    }

    #[test]
    fn declared_claims_are_checked() {
        assert!(check_condition_claims(&spec(&["repo", "ref"])).is_empty());
        for bad in [&["AUD"][..], &["repo", "Repo"], &["iat"], &[""]] {
            assert_eq!(check_condition_claims(&spec(bad)).len(), 1, "{bad:?}");
        }
    }
}
