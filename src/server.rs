//! The HTTP edge: actix-web, `POST /` only, a body limit, the request id header, TLS.
//! Also start-up: open the store, load the master key, bootstrap root credentials, start
//! background jobs.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;

use crate::audit::{Auditor, Draft};
use crate::auth::RequestHead;
use crate::config::{ServeConfig, StoreConfig};
use crate::crypto::envelope;
use crate::crypto::master::MasterKeyring;
use crate::error::ApiError;
use crate::identity::live::{Live, Reload};
use crate::kms::Keyring;
use crate::ops::{system_now_ms, Ctx};
use crate::pipeline::Pipeline;
use crate::store::rows::AccessKeyRow;
use crate::store::Store;

/// Largest request body accepted (a 64 KiB secret in base64 plus everything else fits).
pub const MAX_BODY: usize = 1024 * 1024;

/// How long a request's body may take to arrive once its head has: the head has its own
/// limit (`client_request_timeout`), and without this one a caller that stops sending
/// mid-body would hold its connection (and a file descriptor) for as long as it likes.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long data the server sent may stay unacknowledged (`TCP_USER_TIMEOUT` on every
/// accepted connection, inherited from the listening socket), a window the client keeps
/// shut included: a client that sends requests and never reads the answers would otherwise
/// hold its connection for as long as it likes.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The API's limits on slow clients (see [`BODY_TIMEOUT`], [`SEND_TIMEOUT`]); not flags,
/// tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    pub body: std::time::Duration,
    pub send: std::time::Duration,
}

impl Default for ClientTimeouts {
    fn default() -> Self {
        Self {
            body: BODY_TIMEOUT,
            send: SEND_TIMEOUT,
        }
    }
}

/// Listening sockets on every address `listen` resolves to (as actix-web's `bind`: those
/// that bind, an error when none does), each with `TCP_USER_TIMEOUT` set to `send_timeout`
/// so that the connections it accepts inherit it.
fn listeners(
    listen: &str,
    send_timeout: std::time::Duration,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let timeout_ms = u32::try_from(send_timeout.as_millis()).unwrap_or(u32::MAX);
    let one = |addr: std::net::SocketAddr| -> std::io::Result<std::net::TcpListener> {
        let family = if addr.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        let fd = rustix::net::socket_with(
            family,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            Some(rustix::net::ipproto::TCP),
        )?;
        sockopt::set_socket_reuseaddr(&fd, true)?;
        sockopt::set_tcp_user_timeout(&fd, timeout_ms)?;
        rustix::net::bind(&fd, &addr)?;
        // actix-web's backlog.
        rustix::net::listen(&fd, 2048)?;
        let listener = std::net::TcpListener::from(fd);
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    let mut bound = Vec::new();
    let mut last_err = None;
    for addr in std::net::ToSocketAddrs::to_socket_addrs(listen)? {
        match one(addr) {
            Ok(l) => bound.push(l),
            Err(e) => last_err = Some(e),
        }
    }
    match (bound.is_empty(), last_err) {
        (false, _) => Ok(bound),
        (true, Some(e)) => Err(e),
        (true, None) => Err(std::io::Error::other("the address resolves to nothing")),
    }
}

/// `payload`, failing with a `TimedOut` I/O error once `limit` has passed (and ending
/// there): every route's body, the API's and the console's forms alike, is read through it.
fn body_with_deadline(
    payload: actix_web::dev::Payload,
    limit: std::time::Duration,
) -> actix_web::dev::Payload {
    let deadline = tokio::time::Instant::now() + limit;
    let stream = futures_util::stream::unfold(Some(payload), move |state| async move {
        let mut payload = state?;
        match tokio::time::timeout_at(deadline, payload.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(payload))),
            Ok(None) => None,
            Err(_) => Some((
                Err(actix_web::error::PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request body timed out",
                ))),
                None,
            )),
        }
    });
    let boxed: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>>>,
    > = Box::pin(stream);
    actix_web::dev::Payload::from(boxed)
}

/// Create the data dir (and missing parents) when it does not exist: owner-only (0700), like
/// the files the server keeps in it. An existing directory keeps its mode.
fn create_data_dir(dir: &Path) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| format!("cannot create data dir `{}`: {e}", dir.display()))
}

/// A new file readable and writable by its owner only (0600 on Unix); an existing one is
/// truncated when `truncate`.
fn owner_only(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Open the store and the master keyring for a command.
pub fn open(cfg: &StoreConfig) -> Result<(Store, Keyring), String> {
    create_data_dir(&cfg.data_dir)?;
    let master = MasterKeyring::load_or_create(&cfg.master_key_file).map_err(|e| e.to_string())?;
    let store = Store::open_configured(&cfg.database_url, cfg.read_mmap_bytes, cfg.pg_change_check)
        .map_err(|e| e.to_string())?;
    Ok((store, Keyring::new(master)))
}

/// The chain id of this server's audit records, kept in the data dir.
fn chain_id(data_dir: &Path) -> Result<String, String> {
    let p = data_dir.join("server-id");
    match std::fs::read_to_string(&p) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            owner_only(&p, true)
                .and_then(|mut f| f.write_all(id.as_bytes()))
                .map_err(|e| format!("cannot write `{}`: {e}", p.display()))?;
            Ok(id)
        }
    }
}

/// On the first start with an empty store, install the root access key of the default
/// account. A store that has held an access key before installs nothing, even when it holds
/// none now: every key was deleted on purpose (with the CLI), and the pair in the environment
/// or a newly minted one would undo that at every restart, or whenever a server with a data
/// directory of its own (another server on the same PostgreSQL, a container whose data
/// directory is not kept) starts on it. The database records that it held a key
/// ([`crate::store::Tx::access_keys_ever_held`]); a server that has started on this data
/// directory before (its `server-id` is there) installs nothing either (a database older
/// than that record, whose keys were all deleted before it).
fn bootstrap_root(store: &Store, keyring: &Keyring, cfg: &ServeConfig) -> Result<(), String> {
    let (count, held) = store
        .read_blocking(|tx| Ok((tx.count_access_keys()?, tx.access_keys_ever_held()?)))
        .map_err(|e| format!("{e:?}"))?;
    if count > 0 {
        return Ok(());
    }
    if held || cfg.store.data_dir.join("server-id").exists() {
        tracing::warn!(
            account = %cfg.account_id,
            "the store holds no access key and has held one before (or this server has started \
             before): no root key is installed (`strongroom access-key create` mints one)"
        );
        return Ok(());
    }
    let (akid, secret, generated) = match (
        std::env::var("STRONGROOM_ROOT_ACCESS_KEY_ID"),
        std::env::var("STRONGROOM_ROOT_SECRET_ACCESS_KEY"),
    ) {
        (Ok(a), Ok(s)) if !a.is_empty() && !s.is_empty() => (a, zeroize::Zeroizing::new(s), false),
        _ => {
            let (akid, secret) = crate::cli::new_key_pair();
            (akid, secret, true)
        }
    };
    let (sealed, mid) = keyring
        .seal_with_master(secret.as_bytes(), &envelope::access_key_aad(&akid))
        .map_err(|e| format!("{e:?}"))?;
    let row = AccessKeyRow {
        access_key_id: akid.clone(),
        account_id: cfg.account_id.clone(),
        user_name: None,
        secret_sealed: sealed,
        master_key_id: mid,
        status: "Active".into(),
        created_at: system_now_ms(),
    };
    // Checked again in the transaction that installs it: two servers starting together on
    // a new database install one key between them.
    let installed = store
        .write_blocking(|tx| {
            if tx.count_access_keys()? > 0 || tx.access_keys_ever_held()? {
                return Ok(false);
            }
            tx.insert_access_key(&row)?;
            Ok(true)
        })
        .map_err(|e| format!("{e:?}"))?;
    if !installed {
        return Ok(());
    }
    if generated {
        let json = zeroize::Zeroizing::new(
            serde_json::json!({
                "AccountId": cfg.account_id,
                "AccessKeyId": akid,
                "SecretAccessKey": secret.as_str(),
            })
            .to_string(),
        );
        let path = cfg.store.data_dir.join("root-credentials.json");
        let mut f = owner_only(&path, true)
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        f.write_all(json.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        // Printed once, on stdout (not through tracing, which may be shipped elsewhere).
        println!(
            "Generated root credentials for account {} (also in {}):",
            cfg.account_id,
            path.display()
        );
        println!("{}", json.as_str());
    }
    tracing::info!(access_key_id = %akid, account = %cfg.account_id, "bootstrap root access key installed");
    Ok(())
}

/// Purge secrets whose recovery window has ended, recording one audit event each (in the
/// transaction that deletes the secret).
async fn purge_once(ctx: &Ctx, auditor: &Auditor) -> Result<usize, ApiError> {
    let now = ctx.now_ms();
    let due = ctx
        .store
        .read(move |tx| Ok(tx.secrets_due_for_purge(now)?))
        .await?;
    let mut n = 0;
    for s in due {
        let sid = s.secret_id.clone();
        let draft = Draft {
            request_id: uuid::Uuid::new_v4().to_string(),
            event_time_ms: now,
            event_source: "secretsmanager.amazonaws.com".into(),
            event_name: "EndSecretDeletion".into(),
            region: s.region.clone(),
            read_only: Some(false),
            resource_arn: Some(s.arn.clone()),
            decision: Some("Service".into()),
            event_type: Some("AwsServiceEvent".into()),
            ..Draft::default()
        };
        // Recorded only when the transaction did purge (returned `true`).
        let record = auditor.in_transaction(
            draft,
            Box::new(|purged, _| purged.downcast_ref::<bool>().copied().unwrap_or(true)),
        );
        let store = match &record {
            Some(r) => ctx.store.with_hook(r.clone()),
            None => ctx.store.clone(),
        };
        let purged = store
            .write(move |tx| match tx.secret_by_id(&sid)? {
                Some(cur) if cur.purge_at.is_some_and(|p| p <= now) => {
                    tx.delete_secret(&sid)?;
                    Ok(true)
                }
                _ => Ok(false),
            })
            .await?;
        if purged {
            n += 1;
        }
    }
    Ok(n)
}

/// Record a policy-set reload (accepted or refused) in the log and the audit trail.
async fn record_reload(pipeline: &Pipeline, outcome: Reload, trigger: &str) {
    if let (Some(m), Reload::Accepted { .. } | Reload::Refused { .. }) =
        (&pipeline.metrics, &outcome)
    {
        m.reload(matches!(outcome, Reload::Accepted { .. }));
    }
    let (decision, message) = match &outcome {
        Reload::Unchanged => return,
        Reload::Accepted { fingerprint } => {
            tracing::info!(trigger, fingerprint = %fingerprint, "policies reloaded");
            ("Accepted", None)
        }
        Reload::Refused { errors } => {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            tracing::error!(
                trigger,
                "policies reload refused; previous set stays in force:\n{}",
                lines.join("\n")
            );
            ("Refused", Some(lines.join("; ")))
        }
    };
    let draft = Draft {
        request_id: uuid::Uuid::new_v4().to_string(),
        event_time_ms: pipeline.ctx.now_ms(),
        event_source: "strongroom.local".into(),
        event_name: "ReloadPolicies".into(),
        read_only: Some(false),
        decision: Some(decision.into()),
        decision_reason: Some(trigger.into()),
        error_code: message.as_ref().map(|_| "PolicySetRefused".to_owned()),
        error_message: message,
        ..Draft::default()
    };
    if let Err(e) = pipeline.auditor.record(&draft).await {
        tracing::error!("could not audit a policy reload: {e:?}");
    }
}

/// Reload the policies directory when its files change (polled) and on SIGHUP.
fn spawn_policy_watcher(pipeline: &Pipeline) {
    if pipeline.identities.root().is_none() {
        return;
    }
    let p = pipeline.clone();
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tick.tick().await;
            let ids = Arc::clone(&p.identities);
            if let Ok(outcome) = tokio::task::spawn_blocking(move || ids.reload(false)).await {
                record_reload(&p, outcome, "file change").await;
            }
        }
    });
    #[cfg(unix)]
    {
        let p = pipeline.clone();
        actix_web::rt::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::error!("cannot listen for SIGHUP");
                return;
            };
            while hup.recv().await.is_some() {
                let ids = Arc::clone(&p.identities);
                if let Ok(outcome) = tokio::task::spawn_blocking(move || ids.reload(true)).await {
                    record_reload(&p, outcome, "SIGHUP").await;
                }
            }
        });
    }
}

/// Turn an actix request into the pipeline's head.
/// Record the summaries of unauthenticated refusals as their sources' minutes end (looked
/// at every tenth of the window, at most every 5 s).
fn spawn_unauthenticated_summaries(pipeline: &Pipeline) {
    let pipeline = pipeline.clone();
    let limits = pipeline.unauthenticated.limits();
    if limits.per_source == 0 {
        return;
    }
    let every = (limits.window / 10).clamp(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_secs(5),
    );
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            pipeline.record_unauthenticated_summaries(false).await;
        }
    });
}

pub(crate) fn head_of(req: &HttpRequest) -> RequestHead {
    let mut head = RequestHead {
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or("").to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                let v = v.as_bytes();
                (
                    n.as_str().to_ascii_lowercase(),
                    match std::str::from_utf8(v) {
                        Ok(s) => s.to_owned(),
                        Err(_) => String::from_utf8_lossy(v).into_owned(),
                    },
                )
            })
            .collect(),
    };
    // HTTP/2 carries the host as `:authority`; SigV4 signs it as `host`.
    if head.header("host").is_none() {
        if let Some(auth) = req.uri().authority() {
            head.headers.push(("host".into(), auth.as_str().to_owned()));
        }
    }
    head
}

fn reply_as(status: u16, body: Vec<u8>, request_id: &str, content_type: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .insert_header(("x-amzn-RequestId", request_id))
        .insert_header(("content-type", content_type))
        .body(body)
}

async fn entry(
    req: HttpRequest,
    mut payload: web::Payload,
    pipeline: web::Data<Pipeline>,
) -> HttpResponse {
    let head = head_of(&req);
    let peer = peer_of(
        req.peer_addr().map(|a| a.ip()),
        &head,
        &pipeline.trusted_proxies,
        pipeline.secure,
    );
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let refused = match chunk {
            Ok(c) if body.len() + c.len() <= MAX_BODY => {
                body.extend_from_slice(&c);
                continue;
            }
            Ok(_) => ApiError::RequestEntityTooLarge(format!(
                "Request body exceeds the maximum of {MAX_BODY} bytes."
            )),
            Err(actix_web::error::PayloadError::Io(e))
                if e.kind() == std::io::ErrorKind::TimedOut =>
            {
                ApiError::RequestTimeout(
                    "Your socket connection to the server was not read from or written to \
                     within the timeout period."
                        .into(),
                )
            }
            Err(_) => ApiError::Serialization("The request body could not be read.".into()),
        };
        // Recorded too: every request gets its audit record.
        let r = pipeline.refuse(&head, peer, refused).await;
        let mut reply = reply_as(r.status, r.body, &r.request_id, r.content_type);
        // The rest of the body is not read: the connection cannot carry another request.
        reply
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        return reply;
    }
    let r = pipeline.handle(head, peer, &body).await;
    reply_as(r.status, r.body, &r.request_id, r.content_type)
}

/// The transport facts of a request: its `aws:SourceIp` (see [`source_ip`]) and whether it
/// came over TLS: the TLS listener, or, from a trusted proxy only, `X-Forwarded-Proto: https`
/// as the list's rightmost entry (the nearest proxy terminated TLS; every line of the header
/// counts, see [`RequestHead::header_list`]). An untrusted peer's forwarding headers are
/// ignored. An IPv4 caller on a dual-stack listener arrives as `::ffff:a.b.c.d`: addresses
/// are taken in their canonical form, so that IPv4 CIDRs (policies, trusted proxies) match.
pub fn peer_of(
    peer: Option<std::net::IpAddr>,
    head: &RequestHead,
    trusted: &[ipnet::IpNet],
    tls_listener: bool,
) -> crate::pipeline::Peer {
    let peer = peer.map(|ip| ip.to_canonical());
    let from_proxy = peer.is_some_and(|ip| trusted.iter().any(|n| n.contains(&ip)));
    let forwarded_tls = from_proxy
        && head.header_list("x-forwarded-proto").is_some_and(|p| {
            p.rsplit(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        });
    crate::pipeline::Peer {
        source_ip: peer.map(|ip| {
            source_ip(ip, head.header_list("x-forwarded-for").as_deref(), trusted).to_string()
        }),
        secure: tls_listener || forwarded_tls,
    }
}

/// `aws:SourceIp`: the peer, unless the peer is a trusted proxy; then the rightmost
/// X-Forwarded-For address that is not itself a trusted proxy (addresses in their canonical
/// form: an IPv4-mapped IPv6 address is its IPv4 address).
pub fn source_ip(
    peer: std::net::IpAddr,
    xff: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(xff) = xff else { return peer };
    for hop in xff.rsplit(',') {
        match hop
            .trim()
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.to_canonical())
        {
            Ok(ip) if is_trusted(&ip) => continue,
            Ok(ip) => return ip,
            Err(_) => return peer,
        }
    }
    peer
}

fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read `{}`: {e}", p.display()));
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad certificate PEM: {e}"))?;
    let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| format!("bad key PEM: {e}"))?
        .ok_or("no private key in the key file")?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS setup: {e}"))
}

/// The environment variable that switches audit writing off in the **benchmark-only** build
/// (`cargo build --features bench-audit-off`, which scripts/bench.sh makes for its audit-off
/// runs and uses for nothing else). The default build has no off switch: it neither reads
/// this variable nor contains the code that would stop recording.
#[cfg(feature = "bench-audit-off")]
pub const BENCH_NO_AUDIT: &str = "STRONGROOM_BENCHMARK_ONLY_DISABLE_AUDIT";

/// The benchmark build's auditor when [`BENCH_NO_AUDIT`] is `1`: one that records nothing.
#[cfg(feature = "bench-audit-off")]
fn bench_auditor(cfg: &ServeConfig) -> Result<Option<Auditor>, String> {
    if !std::env::var(BENCH_NO_AUDIT).is_ok_and(|v| v == "1") {
        return Ok(None);
    }
    tracing::warn!(
        "{BENCH_NO_AUDIT}=1 in a bench-audit-off build: audit writing is OFF. Benchmarks only: requests are not recorded."
    );
    Ok(Some(Auditor::disabled(chain_id(&cfg.store.data_dir)?)))
}

/// The server's auditor: its chain, digests signed with the key beside the master key (and
/// written to the digest directory, if one is set).
fn signing_auditor(store: &Store, cfg: &ServeConfig) -> Result<Auditor, String> {
    Auditor::with_options(
        store.clone(),
        chain_id(&cfg.store.data_dir)?,
        &crate::audit::keys::key_path_beside(&cfg.store.master_key_file),
        crate::audit::AuditOptions {
            digest_dir: cfg.audit_digest_dir.clone(),
            ..crate::audit::AuditOptions::default()
        },
    )
}

/// Build the pipeline for a config (opens the store, bootstraps credentials).
/// The lock file beside the master key: servers hold it shared, a rotation exclusively.
fn master_key_lock_path(master_key_file: &Path) -> std::path::PathBuf {
    let mut name = master_key_file.as_os_str().to_owned();
    name.push(".lock");
    std::path::PathBuf::from(name)
}

fn open_master_key_lock(master_key_file: &Path) -> Result<std::fs::File, String> {
    let path = master_key_lock_path(master_key_file);
    owner_only(&path, false).map_err(|e| format!("cannot open `{}`: {e}", path.display()))
}

pub fn build(cfg: &ServeConfig) -> Result<Pipeline, String> {
    create_data_dir(&cfg.store.data_dir)?;
    let lock = open_master_key_lock(&cfg.store.master_key_file)?;
    if let Err(e) = lock.try_lock_shared() {
        return Err(format!(
            "a master-key rotation is running on `{}` ({e}); start the server when it has finished",
            cfg.store.master_key_file.display()
        ));
    }
    let (store, keyring) = open(&cfg.store)?;
    bootstrap_root(&store, &keyring, cfg)?;
    #[cfg(feature = "bench-audit-off")]
    let auditor = match bench_auditor(cfg)? {
        Some(disabled) => disabled,
        None => signing_auditor(&store, cfg)?,
    };
    #[cfg(not(feature = "bench-audit-off"))]
    let auditor = signing_auditor(&store, cfg)?;
    let ctx = Ctx {
        store,
        keyring,
        clock: Arc::new(system_now_ms),
        rotation: crate::rotation::Wiring::default(),
        regions: Arc::new(cfg.regions.clone()),
        peers: Arc::new(cfg.peers.regions()),
    };
    let role_ids: Arc<dyn crate::identity::RoleIds> = Arc::new(StoredRoleIds(ctx.store.clone()));
    let identities =
        Live::open_with(cfg.policies.as_deref(), Some(role_ids)).map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            format!("the policies directory has errors:\n{}", lines.join("\n"))
        })?;
    let identities = Arc::new(identities);
    ctx.rotation.set_identities(Arc::clone(&identities));
    let mut pipeline = Pipeline::new(ctx, auditor, cfg.regions.clone(), identities);
    pipeline.authn.set_default_account(&cfg.account_id);
    pipeline.master_key_lock = Some(Arc::new(lock));
    pipeline.secure = cfg.tls.is_some();
    pipeline.trusted_proxies = Arc::new(cfg.trusted_proxies.clone());
    if cfg.metrics_listen.is_some() {
        let metrics = crate::metrics::Metrics::new()?;
        pipeline
            .auditor
            .observe_commits(metrics.audit_commit_histogram());
        pipeline.metrics = Some(Arc::new(metrics));
    }
    pipeline.quotas = cfg
        .quotas
        .clone()
        .map(|q| Arc::new(crate::quota::Quotas::new(q)));
    pipeline.unauthenticated = Arc::new(crate::audit::unauthenticated::Budget::new(
        cfg.audit_unauthenticated,
    ));
    Ok(pipeline)
}

/// Role ids kept in the database (see [`crate::identity::RoleIds`]): every server sharing it
/// gives a role the same id.
#[derive(Debug)]
struct StoredRoleIds(Store);

impl crate::identity::RoleIds for StoredRoleIds {
    fn sync(
        &self,
        roles: &[(String, String)],
    ) -> Result<std::collections::BTreeMap<(String, String), String>, String> {
        self.0
            .write_blocking(|tx| {
                Ok(tx.sync_role_ids(roles, system_now_ms(), crate::identity::new_role_id)?)
            })
            .map_err(|e| match e {
                // The operator reads this in the reload's log and audit record: the cause.
                ApiError::Internal(detail) => detail,
                other => other.message().to_owned(),
            })
    }

    fn retire_user_keys(
        &self,
        users: &[(String, String)],
        loaded_at_ms: i64,
    ) -> Result<(), String> {
        let declared: std::collections::BTreeSet<(String, String)> =
            users.iter().cloned().collect();
        self.0
            .write_blocking(move |tx| {
                for key in tx.access_keys()? {
                    let Some(user) = &key.user_name else { continue };
                    if key.status == "Active"
                        && key.created_at < loaded_at_ms
                        && !declared.contains(&(key.account_id.clone(), user.clone()))
                    {
                        tx.set_access_key_status(&key.access_key_id, "Inactive")?;
                        tracing::warn!(
                            access_key_id = %key.access_key_id,
                            account = %key.account_id,
                            user = %user,
                            "access key deactivated: its user is no longer declared"
                        );
                    }
                }
                Ok(())
            })
            .map_err(|e| match e {
                ApiError::Internal(detail) => detail,
                other => other.message().to_owned(),
            })
    }
}

/// Run the server until it is stopped. `on_bound` gets the bound address (tests use port 0).
pub async fn run(
    cfg: ServeConfig,
    on_bound: impl FnOnce(std::net::SocketAddr),
) -> Result<(), String> {
    run_with_handle(cfg, |addr, _| on_bound(addr)).await
}

/// [`run`], also handing out the server's handle (to stop it: tests, embedders).
pub async fn run_with_handle(
    cfg: ServeConfig,
    on_bound: impl FnOnce(std::net::SocketAddr, actix_web::dev::ServerHandle),
) -> Result<(), String> {
    let pipeline = build(&cfg)?;
    let purge_pipeline = pipeline.clone();
    let interval = cfg.purge_interval_secs;
    actix_web::rt::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(interval));
        loop {
            tick.tick().await;
            if let Err(e) = purge_once(&purge_pipeline.ctx, &purge_pipeline.auditor).await {
                tracing::error!("purge job failed: {e:?}");
            }
        }
    });
    if let Some(r) = &cfg.audit_retention {
        actix_web::rt::spawn(crate::audit::retention::run_forever(
            pipeline.ctx.store.clone(),
            pipeline.auditor.clone(),
            r.export_dir.clone(),
            r.max_age,
            r.every,
            Arc::clone(&pipeline.ctx.clock),
        ));
    }
    spawn_policy_watcher(&pipeline);
    spawn_unauthenticated_summaries(&pipeline);
    let metrics_server = match &cfg.metrics_listen {
        Some(addr) => Some(crate::metrics::bind(addr, pipeline.clone())?),
        None => None,
    };
    let metrics_handle = metrics_server.as_ref().map(actix_web::dev::Server::handle);
    if let Some(server) = metrics_server {
        actix_web::rt::spawn(server);
    }
    if !cfg.peers.peers.is_empty() {
        let tls = crate::replication::client::tls_config(cfg.peers.ca_file.as_deref())?;
        actix_web::rt::spawn(crate::replication::worker::run(
            pipeline.ctx.clone(),
            Arc::new(cfg.peers.clone()),
            tls,
            Arc::clone(&pipeline.replication),
        ));
    }
    let auditor = pipeline.auditor.clone();
    let summaries = pipeline.clone();
    let rotation_pipeline = pipeline.clone();
    let console = cfg
        .console
        .then(|| crate::console::Console::new(pipeline.clone()));
    let data = web::Data::new(pipeline);
    let body_timeout = cfg.client_timeouts.body;
    let server = HttpServer::new(move || {
        let console = console.clone();
        App::new()
            .app_data(data.clone())
            .configure(move |c| {
                if let Some(console) = console {
                    console.register(c);
                }
            })
            .default_service(web::to(entry))
            .wrap_fn(move |mut req, srv| {
                let payload = actix_web::HttpMessage::take_payload(&mut req);
                req.set_payload(body_with_deadline(payload, body_timeout));
                actix_web::dev::Service::call(srv, req)
            })
    })
    .client_request_timeout(std::time::Duration::from_secs(10))
    .client_disconnect_timeout(std::time::Duration::from_secs(5));
    let cannot = |e: std::io::Error| format!("cannot listen on {}: {e}", cfg.listen);
    let tls = match &cfg.tls {
        Some((cert, key)) => Some(tls_config(cert, key)?),
        None => None,
    };
    let mut server = server;
    for listener in listeners(&cfg.listen, cfg.client_timeouts.send).map_err(cannot)? {
        server = match &tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls.clone()),
            None => server.listen(listener),
        }
        .map_err(cannot)?;
    }
    let addr = server.addrs().first().copied();
    let running = server.run();
    if let Some(addr) = addr {
        let host = if addr.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            addr.ip()
        };
        let scheme = if cfg.tls.is_some() { "https" } else { "http" };
        let endpoint = format!(
            "{scheme}://{}",
            std::net::SocketAddr::new(host, addr.port())
        );
        actix_web::rt::spawn(
            crate::rotation::engine::Engine::new(
                rotation_pipeline.ctx.clone(),
                rotation_pipeline.auditor.clone(),
                endpoint,
            )
            .with_metrics(rotation_pipeline.metrics.clone())
            .with_pipeline(rotation_pipeline.clone())
            .with_settings(cfg.rotation)
            .run(),
        );
        tracing::info!(address = %addr, regions = ?cfg.regions, database = %crate::store::redact_url(&cfg.store.database_url), "strongroom listening");
        on_bound(addr, running.handle());
    }
    let result = running.await.map_err(|e| e.to_string());
    if let Some(h) = metrics_handle {
        h.stop(true).await;
    }
    // Count what was counted, commit what is pending and sign a digest of the tail before
    // exiting.
    summaries.record_unauthenticated_summaries(true).await;
    if let Err(e) = auditor.flush().await {
        tracing::error!("audit flush at shutdown failed: {e:?}");
    }
    result
}

/// `strongroom master-key rotate`: add a new master key, re-wrap every row, retire the old key
/// (it only opens the STS session tokens it sealed, until the longest session has expired).
pub fn rotate_master_key(cfg: &StoreConfig) -> Result<usize, String> {
    // A running server keeps sealing with the key it loaded: rotating beside it would leave
    // rows under a key that is then retired. Its shared lock makes this refuse.
    let lock = open_master_key_lock(&cfg.master_key_file)?;
    if let Err(e) = lock.try_lock() {
        return Err(format!(
            "the master key `{}` is in use by a running server ({e}); stop every server using it, then rotate",
            cfg.master_key_file.display()
        ));
    }
    let mut master = MasterKeyring::load(&cfg.master_key_file).map_err(|e| e.to_string())?;
    master.add_new_active();
    // 1. the file holds old and new keys: every row stays readable whatever happens next.
    master
        .save(&cfg.master_key_file)
        .map_err(|e| e.to_string())?;
    let store = Store::open(&cfg.database_url).map_err(|e| e.to_string())?;
    let keyring = Keyring::new(master.clone());
    // 2. re-wrap every row in one transaction.
    let n = store
        .write_blocking(|tx| keyring.reseal_all(tx))
        .map_err(|e| format!("{e:?}"))?;
    // 3. only the new key is needed by rows; live session tokens keep the old one retired.
    master.retire_others_for_sessions();
    master
        .save(&cfg.master_key_file)
        .map_err(|e| e.to_string())?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::source_ip;

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let proxy: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
        let t = [proxy];
        let peer = "10.1.2.3".parse().unwrap();
        let outside: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(source_ip(outside, Some("1.2.3.4"), &t), outside);
        assert_eq!(
            source_ip(peer, Some("1.2.3.4, 10.9.9.9"), &t).to_string(),
            "1.2.3.4"
        );
        assert_eq!(
            source_ip(peer, Some("6.6.6.6, 1.2.3.4"), &t).to_string(),
            "1.2.3.4"
        );
        assert_eq!(source_ip(peer, None, &t), peer);
        assert_eq!(source_ip(peer, Some("garbage"), &t), peer);
        assert_eq!(source_ip(peer, Some("1.2.3.4"), &[]), peer);
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_address() {
        let t: [ipnet::IpNet; 1] = ["10.0.0.0/8".parse().unwrap()];
        let mapped: std::net::IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        // A mapped trusted proxy is recognised, and a mapped hop is its IPv4 address.
        assert_eq!(
            source_ip(mapped, Some("::ffff:1.2.3.4"), &t).to_string(),
            "1.2.3.4"
        );
        let outside: std::net::IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!(source_ip(outside, None, &[]).to_string(), "203.0.113.9");
        // A real IPv6 address stays.
        let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(source_ip(v6, None, &t), v6);
    }

    #[test]
    fn every_line_of_a_forwarding_header_counts() {
        let head = |lines: &[(&str, &str)]| crate::auth::RequestHead {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: lines
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let t: [ipnet::IpNet; 1] = ["127.0.0.2/32".parse().unwrap()];
        let proxy = Some("127.0.0.2".parse().unwrap());
        let h = head(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "http"),
        ]);
        let p = super::peer_of(proxy, &h, &t, false);
        assert_eq!(p.source_ip.as_deref(), Some("203.0.113.9"));
        assert!(!p.secure);
        // One line each: as before.
        let h = head(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "https"),
        ]);
        let p = super::peer_of(proxy, &h, &t, false);
        assert_eq!(p.source_ip.as_deref(), Some("198.51.100.7"));
        assert!(p.secure);
        // From a peer that is not a trusted proxy, neither header counts.
        let p = super::peer_of(Some("127.0.0.3".parse().unwrap()), &h, &t, false);
        assert_eq!(p.source_ip.as_deref(), Some("127.0.0.3"));
        assert!(!p.secure);
    }
}
