//! `strongroom agent`: a local caching HTTP service compatible with the AWS Secrets Manager
//! Agent. It answers `GET /secretsmanager/get?secretId=...` and `GET <path_prefix><secretId>`
//! (default `/v1/`) with GetSecretValue's JSON, requires the SSRF token header, caches answers
//! for a TTL with a size bound, and reads AWS's agent configuration file (TOML).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::cache::{Cache, Lookup};
use super::{CallError, EndpointArgs, SecretRequest};

/// `strongroom agent` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// AWS's agent configuration file (TOML: `http_port`, `ttl_seconds`, `cache_size`,
    /// `ssrf_headers`, `ssrf_env_variables`, `path_prefix`, `max_conn`, `region`, ...).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen here (`ADDR:PORT`) instead of the file's `http_address`/`http_port`; port 0
    /// picks a free port (the agent prints the address it listens on).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Allow a listening address that is not loopback (the agent serves secrets to whoever
    /// presents the token).
    #[arg(long)]
    pub allow_non_loopback: bool,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
}

/// The settings AWS's agent reads from its configuration file, with its defaults and ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub log_level: String,
    pub http_address: IpAddr,
    pub http_port: u16,
    pub ttl: Duration,
    pub cache_size: usize,
    pub ssrf_headers: Vec<String>,
    pub ssrf_env_variables: Vec<String>,
    pub path_prefix: String,
    pub max_conn: usize,
    pub region: Option<String>,
    pub ignore_transient_errors: bool,
    pub validate_credentials: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            log_level: "info".into(),
            http_address: IpAddr::from([127, 0, 0, 1]),
            http_port: 2773,
            ttl: Duration::from_secs(300),
            cache_size: 1000,
            ssrf_headers: vec![
                "X-Aws-Parameters-Secrets-Token".into(),
                "X-Vault-Token".into(),
            ],
            ssrf_env_variables: vec![
                "AWS_TOKEN".into(),
                "AWS_SESSION_TOKEN".into(),
                "AWS_CONTAINER_AUTHORIZATION_TOKEN".into(),
            ],
            path_prefix: "/v1/".into(),
            max_conn: 800,
            region: None,
            ignore_transient_errors: true,
            validate_credentials: true,
        }
    }
}

/// A number written as a TOML integer or, as AWS's samples do, a string.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum Num {
    Int(i64),
    Text(String),
}

impl Num {
    fn get(&self, key: &str, range: std::ops::RangeInclusive<i64>) -> Result<i64, String> {
        let n = match self {
            Num::Int(n) => Some(*n),
            Num::Text(s) => s.trim().parse().ok(),
        };
        match n {
            Some(n) if range.contains(&n) => Ok(n),
            _ => Err(format!(
                "`{key}` must be a number from {} to {}",
                range.start(),
                range.end()
            )),
        }
    }
}

/// The file's keys; an unknown key is an error, as in AWS's agent.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    log_level: Option<String>,
    http_address: Option<String>,
    log_to_file: Option<bool>,
    http_port: Option<Num>,
    ttl_seconds: Option<Num>,
    cache_size: Option<Num>,
    ssrf_headers: Option<Vec<String>>,
    ssrf_env_variables: Option<Vec<String>>,
    path_prefix: Option<String>,
    max_conn: Option<Num>,
    region: Option<String>,
    ignore_transient_errors: Option<bool>,
    validate_credentials: Option<bool>,
}

impl AgentConfig {
    /// Parse AWS's agent configuration file; keys it omits keep their defaults.
    pub fn parse(text: &str) -> Result<Self, String> {
        let f: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut c = Self::default();
        if let Some(l) = f.log_level {
            let l = l.to_ascii_lowercase();
            if !["debug", "info", "warn", "error", "none"].contains(&l.as_str()) {
                return Err("`log_level` must be DEBUG, INFO, WARN, ERROR or NONE".into());
            }
            c.log_level = l;
        }
        if let Some(a) = f.http_address {
            c.http_address = a
                .parse()
                .map_err(|_| format!("`http_address` `{a}` is not an IP address"))?;
        }
        // Strongroom's agent logs to standard error only; `log_to_file = true` is accepted
        // (it is AWS's default) and changes nothing.
        let _ = f.log_to_file;
        if let Some(p) = f.http_port {
            let p = p.get("http_port", 1024..=65535)?;
            c.http_port = u16::try_from(p).map_err(|e| e.to_string())?;
        }
        if let Some(t) = f.ttl_seconds {
            c.ttl = Duration::from_secs(t.get("ttl_seconds", 0..=3600)?.unsigned_abs());
        }
        if let Some(n) = f.cache_size {
            c.cache_size =
                usize::try_from(n.get("cache_size", 1..=1000)?).map_err(|e| e.to_string())?;
        }
        if let Some(h) = f.ssrf_headers {
            if h.is_empty() {
                return Err("`ssrf_headers` must name at least one header".into());
            }
            c.ssrf_headers = h;
        }
        if let Some(v) = f.ssrf_env_variables {
            if v.is_empty() {
                return Err("`ssrf_env_variables` must name at least one variable".into());
            }
            c.ssrf_env_variables = v;
        }
        if let Some(p) = f.path_prefix {
            if !p.starts_with('/') {
                return Err("`path_prefix` must begin with /".into());
            }
            c.path_prefix = p;
        }
        if let Some(m) = f.max_conn {
            c.max_conn =
                usize::try_from(m.get("max_conn", 1..=1000)?).map_err(|e| e.to_string())?;
        }
        c.region = f.region.or(c.region);
        if let Some(b) = f.ignore_transient_errors {
            c.ignore_transient_errors = b;
        }
        if let Some(b) = f.validate_credentials {
            c.validate_credentials = b;
        }
        Ok(c)
    }

    /// Read the file at `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("`{}`: {e}", path.display()))
    }

    /// The tracing filter for `log_level`.
    pub fn log_filter(&self) -> &'static str {
        match self.log_level.as_str() {
            "debug" => "debug",
            "warn" => "warn",
            "error" => "error",
            "none" => "off",
            _ => "info",
        }
    }
}

/// The SSRF token: the first of `vars` that is set; a value `file://PATH` names a file whose
/// trimmed content is the token (as AWS's agent reads it).
pub fn ssrf_token(
    vars: &[String],
    get: impl Fn(&str) -> Option<String>,
) -> Result<Zeroizing<String>, String> {
    let Some((name, val)) = vars
        .iter()
        .find_map(|n| get(n).map(|v| (n, Zeroizing::new(v))))
    else {
        return Err(format!(
            "no SSRF token: set one of {} (a value `file://PATH` reads the token from a file)",
            vars.join(", ")
        ));
    };
    let token = match val.strip_prefix("file://") {
        Some(path) => {
            let text =
                Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    format!("cannot read the SSRF token file named by {name}: {e}")
                })?);
            Zeroizing::new(text.trim().to_owned())
        }
        None => val,
    };
    if token.is_empty() {
        return Err(format!("the SSRF token from {name} is empty"));
    }
    Ok(token)
}

/// What the handlers share.
#[derive(Debug)]
struct State {
    client: aws_sdk_secretsmanager::Client,
    /// The runtime the SDK's calls run on (actix's workers run their own).
    sdk: tokio::runtime::Handle,
    cache: Cache,
    token: Zeroizing<String>,
    ssrf_headers: Vec<String>,
    path_prefix: String,
    max_conn: usize,
    in_flight: AtomicUsize,
    ignore_transient_errors: bool,
}

/// An answer that is not a secret: a status and a plain body.
fn plain(status: u16, body: impl Into<String>) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .body(body.into())
}

/// The query of a GetSecretValue request, parsed as AWS's agent does: unknown parameters and
/// a bad `refreshNow` are 400s.
fn parse_query(
    secret_id: Option<String>,
    query: &str,
) -> Result<(SecretRequest, bool), (u16, String)> {
    let mut id = secret_id;
    let mut version_id = None;
    let mut version_stage = None;
    let mut refresh = false;
    let path_form = id.is_some();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k);
        let v = decode(v);
        match k.as_str() {
            "secretId" if !path_form => id = Some(v),
            "versionId" => version_id = Some(v),
            "versionStage" => version_stage = Some(v),
            "refreshNow" => {
                refresh = match v.to_ascii_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err((400, "invalid refreshNow value".into())),
                }
            }
            other => return Err((400, format!("unknown parameter: {other}"))),
        }
    }
    match id {
        Some(secret_id) if !secret_id.is_empty() => Ok((
            SecretRequest {
                secret_id,
                version_id,
                version_stage,
            },
            refresh,
        )),
        _ if path_form => Err((400, "missing secret ID".into())),
        _ => Err((400, "missing parameter secretId".into())),
    }
}

fn decode_path(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Releases an in-flight slot when the request ends.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let path = req.path().to_owned();
    let in_flight = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let _slot = Slot(&state.in_flight);
    if path == "/ping" {
        if req.method() != actix_web::http::Method::GET {
            return plain(405, "Not allowed");
        }
        return plain(200, "healthy");
    }
    if in_flight > state.max_conn {
        return plain(429, "Connection limit exceeded");
    }
    let headers = req.headers();
    if headers.contains_key("x-forwarded-for") {
        tracing::warn!("agent: refused a request with X-Forwarded-For");
        return plain(400, "Forwarded");
    }
    let token_ok = state.ssrf_headers.iter().any(|h| {
        headers
            .get_all(h.as_str())
            .any(|v| bool::from(v.as_bytes().ct_eq(state.token.as_bytes())))
    });
    if !token_ok {
        tracing::warn!("agent: refused a request without the right SSRF token");
        return plain(403, "Bad Token");
    }
    if req.method() != actix_web::http::Method::GET {
        return plain(405, "Not allowed");
    }
    let query = req.query_string();
    let parsed = if path == "/secretsmanager/get" {
        parse_query(None, query)
    } else if let Some(id) = path.strip_prefix(state.path_prefix.as_str()) {
        // The path form takes the id as it appears in the path (percent-decoded; a `+` is
        // itself there, as secret names may contain it, not a space as in a query).
        parse_query(Some(decode_path(id)), query)
    } else {
        return plain(404, "Not found");
    };
    let (sreq, refresh) = match parsed {
        Ok(p) => p,
        Err((status, msg)) => return plain(status, msg),
    };
    let stale = if refresh {
        None
    } else {
        match state.cache.get(&sreq) {
            Lookup::Fresh(body) => return json(&body),
            Lookup::Stale(body) => Some(body),
            Lookup::Missing => None,
        }
    };
    let client = state.client.clone();
    let call = sreq.clone();
    let fetched = state
        .sdk
        .spawn(async move {
            super::get_secret_value(&client, &call)
                .await
                .map(|f| f.to_json())
        })
        .await;
    match fetched {
        Ok(Ok(body)) if !body.is_empty() => {
            let body = Arc::new(body);
            state.cache.put(sreq, Arc::clone(&body));
            json(&body)
        }
        Ok(Err(e)) => {
            if let (true, Some(body)) = (e.is_transient() && state.ignore_transient_errors, stale) {
                tracing::warn!(
                    code = %e.code,
                    "agent: refresh failed transiently; serving the cached entry"
                );
                return json(&body);
            }
            tracing::info!(status = e.status, code = %e.code, "agent: GetSecretValue failed");
            error(&e)
        }
        _ => error(&CallError {
            status: 500,
            code: "InternalFailure".into(),
            message: String::new(),
        }),
    }
}

fn json(body: &Zeroizing<Vec<u8>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.to_vec())
}

fn error(e: &CallError) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(e.body())
}

/// Check the configuration, then serve until the process is stopped (SIGINT/SIGTERM).
pub fn run(args: &AgentArgs, cfg: &AgentConfig) -> Result<(), String> {
    let addr = args
        .listen
        .unwrap_or_else(|| SocketAddr::new(cfg.http_address, cfg.http_port));
    if !addr.ip().is_loopback() && !args.allow_non_loopback {
        return Err(format!(
            "refusing to listen on {addr}, which is not a loopback address (give \
             --allow-non-loopback to serve secrets over the network)"
        ));
    }
    let token = ssrf_token(&cfg.ssrf_env_variables, |n| std::env::var(n).ok())?;

    let sdk_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("agent-sdk")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the client runtime: {e}"))?;
    let mut endpoint = args.endpoint.clone();
    if endpoint.region.is_none() {
        endpoint.region.clone_from(&cfg.region);
    }
    let conf = sdk_rt.block_on(super::sdk_config(&endpoint));
    let client = super::secrets_client(&conf)?;
    if cfg.validate_credentials {
        let sts = aws_sdk_sts::Client::new(&conf);
        sdk_rt
            .block_on(sts.get_caller_identity().send())
            .map_err(|e| {
                format!(
                    "the credentials did not validate (STS GetCallerIdentity: {}); set \
                     validate_credentials = false in the configuration file to skip this check",
                    aws_sdk_sts::error::DisplayErrorContext(&e)
                )
            })?;
    }

    let state = web::Data::new(State {
        client,
        sdk: sdk_rt.handle().clone(),
        cache: Cache::new(cfg.ttl, cfg.cache_size),
        token,
        ssrf_headers: cfg.ssrf_headers.clone(),
        path_prefix: cfg.path_prefix.clone(),
        max_conn: cfg.max_conn,
        in_flight: AtomicUsize::new(0),
        ignore_transient_errors: cfg.ignore_transient_errors,
    });
    let r = actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .default_service(web::to(handle))
        })
        .workers(2)
        .bind(addr)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let bound = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| format!("cannot listen on {addr}"))?;
        println!("strongroom agent: listening on {bound}");
        tracing::info!(%bound, "agent listening");
        server
            .run()
            .await
            .map_err(|e| format!("the agent stopped: {e}"))
    });
    sdk_rt.shutdown_timeout(Duration::from_secs(1));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_defaults_and_file_keys() {
        let d = AgentConfig::parse("").unwrap();
        assert_eq!(d, AgentConfig::default());
        let c = AgentConfig::parse(
            "log_level = \"DEBUG\"\nhttp_port = \"2775\"\nttl_seconds = 10\ncache_size = \"5\"\n\
             ssrf_headers = [\"X-Token\"]\nssrf_env_variables = [\"MY_TOKEN\"]\n\
             path_prefix = \"/secrets/\"\nmax_conn = \"3\"\nregion = \"eu-west-1\"\n\
             validate_credentials = false\n",
        )
        .unwrap();
        assert_eq!(c.http_port, 2775);
        assert_eq!(c.ttl, Duration::from_secs(10));
        assert_eq!(c.cache_size, 5);
        assert_eq!(c.ssrf_headers, vec!["X-Token".to_owned()]);
        assert_eq!(c.path_prefix, "/secrets/");
        assert_eq!(c.max_conn, 3);
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.log_filter(), "debug");
        assert!(!c.validate_credentials);
    }

    #[test]
    fn out_of_range_and_unknown_keys_are_refused() {
        for bad in [
            "ttl_seconds = 3601",
            "cache_size = 0",
            "cache_size = 1001",
            "http_port = 80",
            "max_conn = 0",
            "path_prefix = \"v1\"",
            "ssrf_headers = []",
            "log_level = \"loud\"",
            "ttlSeconds = 5",
        ] {
            assert!(AgentConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_from_the_first_set_variable_or_a_file() {
        let vars = vec!["A".to_owned(), "B".to_owned()];
        let t = ssrf_token(&vars, |n| (n == "B").then(|| "tok".to_owned())).unwrap();
        assert_eq!(t.as_str(), "tok");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, "from-file\n").unwrap();
        let t = ssrf_token(&vars, |n| {
            (n == "A").then(|| format!("file://{}", f.display()))
        })
        .unwrap();
        assert_eq!(t.as_str(), "from-file");
        assert!(ssrf_token(&vars, |_| None).is_err());
    }

    #[test]
    fn queries_as_aws_parses_them() {
        let (r, refresh) = parse_query(
            None,
            "secretId=prod%2Fdb&versionStage=AWSPREVIOUS&refreshNow=TRUE",
        )
        .unwrap();
        assert_eq!(r.secret_id, "prod/db");
        assert_eq!(r.version_stage.as_deref(), Some("AWSPREVIOUS"));
        assert!(refresh);
        assert!(parse_query(None, "secretId=a&refreshNow=yes").is_err());
        assert!(parse_query(None, "secretId=a&other=1").is_err());
        assert!(parse_query(None, "versionId=x").is_err());
        assert!(parse_query(Some(String::new()), "").is_err());
        assert!(parse_query(Some("a".into()), "secretId=b").is_err());
    }
}
