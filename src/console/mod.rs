//! The web console (`serve --console`): server-rendered pages at `/console/` for the people
//! who audit and author policies: sign-in, secrets, the audit trail, the principals directory
//! (read-only), the policy simulator.
//!
//! Every action runs as the signed-in principal through [`Pipeline::handle_as`]: the same
//! parsing, authorization, operation and audit record as a signed API call (revealing a value
//! is a `GetSecretValue` by that principal). The console has no authorization of its own; it
//! only holds the session (see [`session`]) that stands in for the request's signature.
//!
//! May depend on: `pipeline`, `authn` (sign-in), `audit` (the `ConsoleLogin` record), `kms`
//! (sealing the cookie), `server` (transport facts). Never on `store` or `policy`.

mod audit_pages;
mod directory;
mod integrity;
mod principals;
mod secrets;
pub mod session;
mod simulate;
mod throttle;
mod xml;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::audit::Draft;
use crate::auth::Principal;
use crate::pipeline::{ConsoleCall, Peer, Pipeline};
use crate::protocol::Service;
use session::SessionClaims;

/// The stylesheet, served by the binary (no CDN).
const CSS: &str = include_str!("console.css");

/// The headers of every console response: a strict Content-Security-Policy (no inline
/// script or style, nothing from elsewhere, no framing), no caching (pages show secret
/// values), no sniffing, no referrer.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// The console's state: the pipeline it calls and the sessions signed out before their
/// expiry (kept in memory until they expire).
#[derive(Debug, Clone)]
pub struct Console {
    pipeline: Pipeline,
    revoked: Arc<Mutex<HashMap<String, i64>>>,
    throttle: Arc<throttle::Throttle>,
    integrity: integrity::Cache,
}

/// The signed-in user shown in the header.
#[derive(Debug, Clone)]
pub(crate) struct Nav {
    pub arn: String,
    pub csrf: String,
    pub expires: String,
}

/// A request with a valid console session.
#[derive(Debug)]
pub(crate) struct Signed {
    pub claims: SessionClaims,
    pub principal: Arc<Principal>,
    pub peer: Peer,
    pub user_agent: Option<String>,
}

impl Signed {
    pub fn nav(&self) -> Option<Nav> {
        Some(Nav {
            arn: self.principal.arn.clone(),
            csrf: self.claims.csrf.clone(),
            expires: format!("{} UTC", short_time(self.claims.expires_ms)),
        })
    }
}

/// An API error as the console shows it: AWS's code and message, as the API answers them.
#[derive(Debug, Clone)]
pub(crate) struct CallError {
    pub status: u16,
    pub text: String,
}

impl Console {
    pub fn new(pipeline: Pipeline) -> Self {
        Self {
            pipeline,
            revoked: Arc::new(Mutex::new(HashMap::new())),
            throttle: Arc::new(throttle::Throttle::default()),
            integrity: integrity::Cache::default(),
        }
    }

    /// The console's routes, under `/console`.
    pub fn register(self, cfg: &mut web::ServiceConfig) {
        cfg.route(
            "/console",
            web::get().to(|| async { redirect("/console/") }),
        )
        .service(
            web::scope("/console")
                .app_data(web::Data::new(self))
                .app_data(web::FormConfig::default().limit(64 * 1024))
                .route("/", web::get().to(index))
                .route("/console.css", web::get().to(css))
                .route("/signin", web::post().to(signin))
                .route("/signin/jwt", web::post().to(signin_jwt))
                .route("/signout", web::post().to(signout))
                .route("/secrets", web::get().to(secrets::list))
                .route("/secret", web::get().to(secrets::show))
                .route("/secret/reveal", web::post().to(secrets::reveal))
                .route("/audit", web::get().to(audit_pages::list))
                .route("/audit/event", web::get().to(audit_pages::event))
                .route("/audit/export", web::get().to(audit_pages::export))
                .route("/audit/integrity", web::get().to(integrity::show))
                .route("/principals", web::get().to(principals::list))
                .route("/organization", web::get().to(directory::organization))
                .route("/providers", web::get().to(directory::providers))
                .route("/reload", web::get().to(directory::reload))
                .route("/simulate", web::get().to(simulate::form))
                .route("/simulate", web::post().to(simulate::run))
                .default_service(web::to(not_found)),
        );
    }

    fn peer(&self, req: &HttpRequest) -> (Peer, Option<String>) {
        let head = crate::server::head_of(req);
        let peer = crate::server::peer_of(
            req.peer_addr().map(|a| a.ip()),
            &head,
            &self.pipeline.trusted_proxies,
            self.pipeline.secure,
        );
        let ua = head.header("user-agent").map(str::to_owned);
        (peer, ua)
    }

    /// The request's console session, or the response that sends the browser to sign in.
    pub(crate) async fn signed_in(&self, req: &HttpRequest) -> Result<Signed, HttpResponse> {
        let (peer, user_agent) = self.peer(req);
        let to_signin = || {
            let mut r = redirect("/console/");
            clear_session_cookie(&mut r, peer.secure);
            r
        };
        // Over TLS only the `__Host-` cookie: the plain name is one that another host of the
        // site (or, without HSTS, the network) can plant.
        let value = if peer.secure {
            cookie(req, session::COOKIE_TLS)
        } else {
            cookie(req, session::COOKIE_TLS).or_else(|| cookie(req, session::COOKIE))
        };
        let Some(value) = value else {
            return Err(to_signin());
        };
        let now = self.pipeline.ctx.now_ms();
        let Ok(claims) = session::open(&self.pipeline.ctx.keyring, &value, now) else {
            return Err(to_signin());
        };
        // A session of a region this server does not serve (sealed under the same master key
        // by another server, or before the regions changed) is not one here.
        if self.is_revoked(&claims.sid, now) || !self.pipeline.regions.contains(&claims.region) {
            return Err(to_signin());
        }
        let principal = match &claims.web_identity {
            Some(w) => self
                .pipeline
                .authn
                .principal_of_web_identity(
                    &w.token,
                    w.role_arn.as_deref(),
                    &claims.region,
                    &mut request_draft(&peer),
                )
                .map(|p| issued_at_sign_in(p, claims.issued_ms)),
            None => {
                self.pipeline
                    .authn
                    .principal_of_active_key(&claims.akid)
                    .await
            }
        };
        let Ok(principal) = principal else {
            return Err(to_signin());
        };
        Ok(Signed {
            claims,
            principal,
            peer,
            user_agent,
        })
    }

    fn is_revoked(&self, sid: &str, now: i64) -> bool {
        let mut revoked = self
            .revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        revoked.retain(|_, expires| *expires > now);
        revoked.contains_key(sid)
    }

    /// Call operation `op` of `service` as the session's principal, through the pipeline.
    pub(crate) async fn call(
        &self,
        s: &Signed,
        service: Service,
        op: &str,
        input: &Value,
    ) -> Result<Value, CallError> {
        let body = serde_json::to_vec(input).unwrap_or_default();
        let reply = self
            .pipeline
            .handle_as(
                &s.principal,
                ConsoleCall {
                    service,
                    op,
                    region: &s.claims.region,
                    body: &body,
                    peer: &s.peer,
                    user_agent: s.user_agent.as_deref(),
                },
            )
            .await;
        let value: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        if reply.status == 200 {
            return Ok(value);
        }
        let code = value["__type"].as_str().unwrap_or("InternalServiceError");
        let message = value["Message"]
            .as_str()
            .or_else(|| value["message"].as_str())
            .unwrap_or("");
        Err(CallError {
            status: reply.status,
            text: format!("{code}: {message}"),
        })
    }

    /// Call an IAM Query-protocol operation (the simulator) as the session's principal.
    pub(crate) async fn call_query(
        &self,
        s: &Signed,
        form: &[(String, String)],
    ) -> Result<String, CallError> {
        let reply = self
            .pipeline
            .handle_query_as(
                &s.principal,
                form,
                &s.claims.region,
                &s.peer,
                s.user_agent.as_deref(),
            )
            .await;
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        if reply.status == 200 {
            return Ok(text);
        }
        Err(CallError {
            status: reply.status,
            text: format!(
                "{}: {}",
                xml_text(&text, "Code"),
                xml_text(&text, "Message")
            ),
        })
    }
}

/// What a web identity decision knows of the console request `peer` made: its source
/// address and transport (`aws:SourceIp`, `aws:SecureTransport` in the trust policy), as
/// for an `Authorization: Bearer` request.
fn request_draft(peer: &Peer) -> Draft {
    Draft {
        source_ip: peer.source_ip.clone(),
        secure_transport: peer.secure,
        ..Draft::default()
    }
}

/// A console web identity session's principal, issued when the session signed in
/// (`aws:TokenIssueTime`): the token is verified again on every request, but the session is
/// the one the sign-in started, and a policy revoking sessions issued before a time ends it.
fn issued_at_sign_in(principal: Arc<Principal>, issued_ms: i64) -> Arc<Principal> {
    let mut p = Arc::unwrap_or_clone(principal);
    if let Some(session) = p.session.as_mut() {
        session.created_ms = issued_ms;
    }
    Arc::new(p)
}

/// The text of the first `<tag>` element of `xml` (entities decoded), or "".
pub(crate) fn xml_text(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    xml.split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&close))
        .map(|(inner, _)| unescape_xml(inner))
        .unwrap_or_default()
}

pub(crate) fn unescape_xml(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A cookie of the request, by name.
fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all("cookie")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(r: &mut HttpResponse, value: &str) {
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(value) {
        r.headers_mut()
            .append(actix_web::http::header::SET_COOKIE, v);
    }
}

/// The session cookie: HttpOnly, SameSite=Strict, and over TLS `Secure` with the `__Host-`
/// prefix (Path=/, as that prefix requires).
fn session_cookie(value: &str, secure: bool) -> String {
    let max_age = session::SESSION_MS / 1000;
    if secure {
        format!(
            "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict; Secure",
            session::COOKIE_TLS
        )
    } else {
        format!(
            "{}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict",
            session::COOKIE
        )
    }
}

fn clear_session_cookie(r: &mut HttpResponse, secure: bool) {
    if secure {
        set_cookie(
            r,
            &format!(
                "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure",
                session::COOKIE_TLS
            ),
        );
    }
    set_cookie(
        r,
        &format!(
            "{}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict",
            session::COOKIE
        ),
    );
}

fn with_security_headers(mut r: HttpResponse) -> HttpResponse {
    for (k, v) in SECURITY_HEADERS {
        if let (Ok(k), Ok(v)) = (
            actix_web::http::header::HeaderName::from_bytes(k.as_bytes()),
            actix_web::http::header::HeaderValue::from_str(v),
        ) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

/// A 303 to `to`.
pub(crate) fn redirect(to: &str) -> HttpResponse {
    with_security_headers(
        HttpResponse::SeeOther()
            .insert_header(("location", to))
            .finish(),
    )
}

/// A rendered page with status `status`.
pub(crate) fn page(status: u16, t: &impl Template) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let r = match t.render() {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!("console template failed: {e}");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("The page could not be rendered.")
        }
    };
    with_security_headers(r)
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage {
    pub nav: Option<Nav>,
    pub section: &'static str,
    pub heading: String,
    pub message: String,
}

/// A page saying what went wrong.
pub(crate) fn message(status: u16, nav: Option<Nav>, heading: &str, text: &str) -> HttpResponse {
    page(
        status,
        &MessagePage {
            nav,
            section: "",
            heading: heading.to_owned(),
            message: text.to_owned(),
        },
    )
}

/// The refusal of a state-changing form without this session's CSRF token.
pub(crate) fn csrf_refused(s: &Signed) -> HttpResponse {
    message(
        403,
        s.nav(),
        "Request refused",
        "The form's security token is missing or not this session's. Reload the page and try again.",
    )
}

async fn not_found() -> HttpResponse {
    message(404, None, "Not found", "There is no console page here.")
}

async fn css() -> HttpResponse {
    with_security_headers(
        HttpResponse::Ok()
            .content_type("text/css; charset=utf-8")
            .body(CSS),
    )
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    nav: Option<Nav>,
    section: &'static str,
    error: Option<String>,
    signin_token: String,
    regions: Vec<String>,
}

/// The sign-in page, with a fresh sign-in token in its form and in a cookie.
fn signin_page(c: &Console, status: u16, error: Option<String>, secure: bool) -> HttpResponse {
    let token = session::random_token();
    let mut r = page(
        status,
        &SigninPage {
            nav: None,
            section: "",
            error,
            signin_token: token.clone(),
            regions: c.pipeline.regions.as_ref().clone(),
        },
    );
    set_cookie(&mut r, &signin_cookie(&token, 3600, secure));
    r
}

/// The sign-in token cookie: over TLS with the `__Host-` prefix (Secure, Path=/), like the
/// session cookie, so that no other host of the site can plant one; `Max-Age=0` clears it.
fn signin_cookie(token: &str, max_age: i64, secure: bool) -> String {
    if secure {
        format!(
            "{}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict; Secure",
            session::PRE_COOKIE_TLS
        )
    } else {
        format!(
            "{}={token}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict",
            session::PRE_COOKIE
        )
    }
}

async fn index(req: HttpRequest, c: web::Data<Console>) -> HttpResponse {
    match c.signed_in(&req).await {
        Ok(_) => redirect("/console/secrets"),
        Err(_) => {
            let (peer, _) = c.peer(&req);
            signin_page(&c, 200, None, peer.secure)
        }
    }
}

#[derive(Deserialize)]
struct SigninForm {
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    secret_access_key: String,
    #[serde(default)]
    signin_token: String,
    region: Option<String>,
}

impl Drop for SigninForm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret_access_key);
    }
}

/// Whether the sign-in form's token matches its cookie (against login CSRF); over TLS the
/// `__Host-` cookie only.
fn signin_token_ok(req: &HttpRequest, token: &str, secure: bool) -> bool {
    let name = if secure {
        session::PRE_COOKIE_TLS
    } else {
        session::PRE_COOKIE
    };
    let expected = cookie(req, name).unwrap_or_default();
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(token.as_bytes()))
}

/// The region a sign-in asks for, if this server serves it.
fn signin_region(c: &Console, asked: Option<&String>) -> Option<String> {
    let regions = &c.pipeline.regions;
    match asked {
        Some(r) if regions.contains(r) => Some(r.clone()),
        Some(_) => None,
        None => regions.first().cloned(),
    }
}

/// Record a `ConsoleLogin` (CloudTrail's sign-in event): `principal` is who signed in, or on
/// failure the owner of the credential presented when known. Never the credential.
async fn record_login(
    c: &Console,
    peer: &Peer,
    user_agent: Option<String>,
    region: &str,
    principal: Option<Arc<Principal>>,
    failure: Option<&str>,
) -> Result<(), HttpResponse> {
    let success = failure.is_none();
    let draft = Draft {
        request_id: uuid::Uuid::new_v4().to_string(),
        event_time_ms: c.pipeline.ctx.now_ms(),
        event_source: "signin.amazonaws.com".into(),
        event_name: "ConsoleLogin".into(),
        region: region.to_owned(),
        source_ip: peer.source_ip.clone(),
        secure_transport: peer.secure,
        user_agent: user_agent.map(|u| u.chars().take(256).collect()),
        read_only: Some(false),
        event_type: Some("AwsConsoleSignIn".into()),
        principal,
        response_elements: Some(serde_json::json!({
            "ConsoleLogin": if success { "Success" } else { "Failure" }
        })),
        error_message: failure.map(str::to_owned),
        ..Draft::default()
    };
    // A failed sign-in is a caller the server does not know (the key's owner, when shown,
    // is who was targeted): recorded one by one within its source's budget, else counted
    // for the source's summary (`audit::unauthenticated`).
    if !success && !c.pipeline.unauthenticated.admit(&draft) {
        return Ok(());
    }
    c.pipeline.auditor.record(&draft).await.map_err(|e| {
        tracing::error!(request_id = %draft.request_id, "audit write failed, failing closed: {e:?}");
        message(500, None, "Sign-in failed", "The sign-in could not be recorded.")
    })
}

/// Start the session `claims` for `principal`: the cookie, and on to the secrets.
fn start_session(
    c: &Console,
    peer: &Peer,
    principal: &Principal,
    claims: &SessionClaims,
) -> HttpResponse {
    let value = match session::seal(&c.pipeline.ctx.keyring, claims) {
        Ok(v) if v.len() <= session::MAX_COOKIE => v,
        Ok(_) => {
            return signin_page(
                c,
                400,
                Some("The token is too large to hold in a console session cookie.".into()),
                peer.secure,
            )
        }
        Err(_) => {
            return message(
                500,
                None,
                "Sign-in failed",
                "The session could not be created.",
            )
        }
    };
    tracing::info!(principal = %principal.arn, "console sign-in");
    let mut r = redirect("/console/secrets");
    set_cookie(&mut r, &session_cookie(&value, peer.secure));
    set_cookie(&mut r, &signin_cookie("", 0, peer.secure));
    r
}

/// The refusal of a sign-in form without its token.
fn signin_expired(c: &Console, peer: &Peer) -> HttpResponse {
    signin_page(
        c,
        403,
        Some("The sign-in form expired. Sign in again.".into()),
        peer.secure,
    )
}

/// The `errorMessage` of a failed `ConsoleLogin` (CloudTrail's).
const FAILED_AUTHENTICATION: &str = "Failed authentication";
/// The `errorMessage` of a sign-in refused by the failed sign-in throttle.
const TOO_MANY_FAILURES: &str = "Too many failed sign-in attempts";

/// The refusal of a sign-in while its address or key has too many recent failures
/// ([`throttle`]): recorded as a failed `ConsoleLogin`, the credential not checked.
async fn throttled(
    c: &Console,
    peer: &Peer,
    user_agent: Option<String>,
    region: &str,
    shown: Option<Arc<Principal>>,
    wait_ms: i64,
) -> HttpResponse {
    if let Err(r) = record_login(c, peer, user_agent, region, shown, Some(TOO_MANY_FAILURES)).await
    {
        return r;
    }
    let minutes = (wait_ms + 59_999) / 60_000;
    let mut r = signin_page(
        c,
        429,
        Some(format!(
            "Sign-in refused: too many failed sign-ins from this address or with this access key. \
             Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        )),
        peer.secure,
    );
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&(wait_ms / 1000 + 1).to_string())
    {
        r.headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, v);
    }
    r
}

async fn signin(
    req: HttpRequest,
    c: web::Data<Console>,
    form: web::Form<SigninForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let (peer, user_agent) = c.peer(&req);
    if !signin_token_ok(&req, &form.signin_token, peer.secure) {
        return signin_expired(&c, &peer);
    }
    let Some(region) = signin_region(&c, form.region.as_ref()) else {
        return signin_page(
            &c,
            400,
            Some("That region is not served here.".into()),
            peer.secure,
        );
    };
    let akid = form.access_key_id.trim().to_owned();
    let ip = peer.source_ip.clone().unwrap_or_default();
    let now = c.pipeline.ctx.now_ms();
    if let Err(wait_ms) = c.throttle.attempt(&ip, Some(&akid), now) {
        // The key's owner sees the refusals in their trail, as they see failures.
        let shown = c.pipeline.authn.principal_of_active_key(&akid).await.ok();
        return throttled(&c, &peer, user_agent, &region, shown, wait_ms).await;
    }
    let secret = Zeroizing::new(form.secret_access_key.clone());
    let verified = c.pipeline.authn.verify_key_pair(&akid, &secret).await;
    let shown = match &verified {
        Ok(p) => Some(p.clone()),
        // The key's owner, when the key exists and is active (a wrong secret): the failure
        // shows in that account's trail. An unknown key has no account.
        Err(_) => c.pipeline.authn.principal_of_active_key(&akid).await.ok(),
    };
    let failure = verified.is_err().then_some(FAILED_AUTHENTICATION);
    if let Err(r) = record_login(&c, &peer, user_agent, &region, shown, failure).await {
        return r;
    }
    let Ok(principal) = verified else {
        return signin_page(
            &c,
            401,
            Some("Sign-in failed: the access key ID or the secret access key is not valid.".into()),
            peer.secure,
        );
    };
    c.throttle.succeeded(&ip, Some(&akid), now);
    let claims = SessionClaims::new(&akid, &region, c.pipeline.ctx.now_ms());
    start_session(&c, &peer, &principal, &claims)
}

#[derive(Deserialize)]
struct JwtSigninForm {
    #[serde(default)]
    web_identity_token: String,
    #[serde(default)]
    role_arn: String,
    #[serde(default)]
    signin_token: String,
    region: Option<String>,
}

impl Drop for JwtSigninForm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.web_identity_token);
    }
}

/// Sign-in with a JWT of a declared identity provider: a web identity session of the role
/// named (or of the provider's role claim), allowed by that role's trust policy.
async fn signin_jwt(
    req: HttpRequest,
    c: web::Data<Console>,
    form: web::Form<JwtSigninForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let (peer, user_agent) = c.peer(&req);
    if !signin_token_ok(&req, &form.signin_token, peer.secure) {
        return signin_expired(&c, &peer);
    }
    let Some(region) = signin_region(&c, form.region.as_ref()) else {
        return signin_page(
            &c,
            400,
            Some("That region is not served here.".into()),
            peer.secure,
        );
    };
    let ip = peer.source_ip.clone().unwrap_or_default();
    let now = c.pipeline.ctx.now_ms();
    if let Err(wait_ms) = c.throttle.attempt(&ip, None, now) {
        return throttled(&c, &peer, user_agent, &region, None, wait_ms).await;
    }
    let token = Zeroizing::new(form.web_identity_token.trim().to_owned());
    let role = Some(form.role_arn.trim().to_owned()).filter(|r| !r.is_empty());
    let verified = c.pipeline.authn.principal_of_web_identity(
        &token,
        role.as_deref(),
        &region,
        &mut request_draft(&peer),
    );
    let shown = verified.as_ref().ok().cloned();
    let failure = verified.is_err().then_some(FAILED_AUTHENTICATION);
    if let Err(r) = record_login(&c, &peer, user_agent, &region, shown, failure).await {
        return r;
    }
    let principal = match verified {
        Ok(p) => p,
        Err(e) => {
            return signin_page(
                &c,
                401,
                Some(format!("Sign-in failed: {}: {}", e.code(), e.message())),
                peer.secure,
            );
        }
    };
    c.throttle.succeeded(&ip, None, now);
    // The token is verified again on every request: its expiry ends the session too.
    let mut claims = SessionClaims::new("", &region, c.pipeline.ctx.now_ms());
    claims.web_identity = Some(session::WebIdentity {
        token: token.to_string(),
        role_arn: role,
    });
    start_session(&c, &peer, &principal, &claims)
}

/// A form carrying only the CSRF token.
#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

async fn signout(
    req: HttpRequest,
    c: web::Data<Console>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let s = match c.signed_in(&req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !s.claims.csrf_matches(&form.csrf) {
        return csrf_refused(&s);
    }
    {
        let mut revoked = c
            .revoked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        revoked.insert(s.claims.sid.clone(), s.claims.expires_ms);
    }
    let mut r = redirect("/console/");
    clear_session_cookie(&mut r, s.peer.secure);
    r
}

/// Epoch milliseconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) fn short_time(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// An epoch-seconds JSON number (as the API answers dates) as [`short_time`]; "" if absent.
pub(crate) fn api_time(v: &Value) -> String {
    v.as_f64()
        .map(|s| {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::as_conversions,
                reason = "API timestamps are seconds well inside i64 milliseconds"
            )]
            let ms = (s * 1000.0) as i64;
            short_time(ms)
        })
        .unwrap_or_default()
}
