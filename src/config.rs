//! Configuration: command-line flags, each also settable as `STRONGROOM_<NAME>` and in an
//! optional TOML file (`--config`). Precedence: flag, then environment, then file, then default.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// Strongroom: a self-hosted secrets manager speaking the AWS Secrets Manager API.
#[derive(Debug, Parser)]
#[command(name = "strongroom", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Master key management.
    MasterKey {
        #[command(subcommand)]
        command: MasterKeyCommand,
    },
    /// Access keys of declared users.
    AccessKey {
        #[command(subcommand)]
        command: AccessKeyCommand,
    },
    /// Policy documents: simulate decisions, lint a document.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The principals-as-code directory.
    Policies {
        #[command(subcommand)]
        command: PoliciesCommand,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// A local caching agent compatible with the AWS Secrets Manager Agent.
    Agent(crate::client::agent::AgentArgs),
    /// Run a command with secrets in its environment (ECS `valueFrom` references).
    Exec(crate::client::exec::ExecArgs),
    /// Rotation tools: clients of the server's API, signed with the caller's credentials.
    Rotation {
        #[command(subcommand)]
        command: RotationCommand,
    },
    /// Benchmark only: create secrets straight in the store (benches/load/scale.py).
    #[command(hide = true)]
    BenchSeed(BenchSeedArgs),
}

/// `strongroom bench-seed`: see `ops::create_secret::seed_for_benchmark`.
#[derive(Debug, Clone, Args)]
pub struct BenchSeedArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long)]
    pub account: String,
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The first secret's number.
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// How many secrets (0: none, to seed audit records only).
    #[arg(long)]
    pub count: u64,
    /// Versions per secret (1 KB each, the newest AWSCURRENT, the one before AWSPREVIOUS).
    #[arg(long, default_value_t = 1)]
    pub versions: u32,
    /// Audit records to append (`ops::bench_seed::seed_audit_for_benchmark`), after the
    /// secrets.
    #[arg(long, default_value_t = 0)]
    pub audit_records: u64,
    /// The secrets the audit records name (`bench/appNN/secret-IIIII` below this number).
    #[arg(long, default_value_t = 10_000)]
    pub audit_secrets: u64,
    /// A file holding the resource policy every secret gets.
    #[arg(long)]
    pub resource_policy: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RotationCommand {
    /// Restore the previous value: move AWSCURRENT to the AWSPREVIOUS version (refused while
    /// a rotation is in progress or failed). Prints the versions as JSON.
    Rollback(crate::client::rollback::RollbackArgs),
}

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Re-wrap every KMS key and access key under a new master key.
    Rotate(StoreArgs),
}

#[derive(Debug, Subcommand)]
pub enum AccessKeyCommand {
    /// Mint a key for a user declared in the policies directory, or (`--root`) for the root
    /// user of an account; prints it as JSON once.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// The principals-as-code directory.
        #[arg(long, env = "STRONGROOM_POLICIES", default_value = "./policies")]
        policies: PathBuf,
        #[arg(long)]
        account: String,
        /// A user declared in the account.
        #[arg(long, required_unless_present = "root", conflicts_with = "root")]
        user: Option<String>,
        /// The account's root user (an account declared in the policies directory, or the one
        /// whose bootstrap root key the store holds).
        #[arg(long)]
        root: bool,
    },
    /// List keys (never their secrets), one JSON object per line.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
    /// Make a key inactive (requests with it are refused).
    Deactivate {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        access_key_id: String,
    },
    /// Make an inactive key active again.
    Activate {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        access_key_id: String,
    },
    /// Delete a key for good.
    Delete {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        access_key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run decision cases (the shared vectors schema) through the evaluator; exits non-zero
    /// when a case's decision differs from its `expected`.
    Simulate {
        /// A JSON file of cases.
        #[arg(long)]
        cases: PathBuf,
    },
    /// Lint one policy document: errors and warnings; exits non-zero on errors.
    Validate {
        /// The policy document (JSON).
        file: PathBuf,
        /// identity, resource, scp, rcp, pb or session.
        #[arg(long, default_value = "identity")]
        kind: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Check a policies directory offline; exits non-zero on any problem.
    Validate {
        /// The directory to check.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "a command line, parsed once per process: the size of its largest variant is no cost"
)]
pub enum AuditCommand {
    /// Check the hash chains and signed digests; report the first record modified, deleted,
    /// inserted or reordered (and truncation or forged digests); exit non-zero if any.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Trust digests signed by this public key file (hex); repeatable. Default: the
        /// `audit-signing.pub` beside the master key.
        #[arg(long = "public-key")]
        public_keys: Vec<PathBuf>,
        /// Only this chain (a server id).
        #[arg(long)]
        chain: Option<String>,
        /// Digests kept outside the database: a digest directory (`serve
        /// --audit-digest-dir`) or a file of `audit digests export` lines; repeatable. The
        /// database must still hold each one, and the records it vouches for (a cut tail is
        /// reported).
        #[arg(long = "anchor")]
        anchors: Vec<PathBuf>,
    },
    /// The signed digests, to keep outside the database.
    Digests {
        #[command(subcommand)]
        command: AuditDigestsCommand,
    },
    /// Rebuild the lookup index that LookupEvents and `audit query` search, from the chain
    /// (after `audit verify` reported it altered).
    Reindex {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this chain (a server id).
        #[arg(long)]
        chain: Option<String>,
    },
    /// Search the records, newest first.
    Query {
        #[command(flatten)]
        store: StoreArgs,
        /// Only calls by this principal ARN.
        #[arg(long)]
        principal: Option<String>,
        /// Only denied requests.
        #[arg(long)]
        denied: bool,
        /// Only requests that failed with this error code.
        #[arg(long)]
        error_code: Option<String>,
        /// Only requests from this address.
        #[arg(long)]
        source_ip: Option<String>,
        /// Only requests on secrets whose ARN (if it starts with `arn:`) or name starts so.
        #[arg(long)]
        secret: Option<String>,
        /// Only events with this name (`GetSecretValue`), as LookupEvents' `EventName`.
        #[arg(long)]
        event_name: Option<String>,
        /// Only events from this service (`secretsmanager.amazonaws.com`), as `EventSource`.
        #[arg(long)]
        event_source: Option<String>,
        /// Only calls by this user name (an IAM user's name, a role session's name), as
        /// `Username`.
        #[arg(long)]
        user_name: Option<String>,
        /// Only calls signed with this access key id, as `AccessKeyId`.
        #[arg(long)]
        access_key_id: Option<String>,
        /// Only reads (`true`) or only writes (`false`), as `ReadOnly`.
        #[arg(long, value_parser = ["true", "false"])]
        read_only: Option<String>,
        /// Only events on resources of this type (`AWS::SecretsManager::Secret`), as
        /// `ResourceType`.
        #[arg(long)]
        resource_type: Option<String>,
        /// Only events recorded for this account (`recipientAccountId`, what LookupEvents
        /// shows an account).
        #[arg(long)]
        account: Option<String>,
        /// Not before this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Not after this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// `table` or `jsonl` (one CloudTrail record per line).
        #[arg(long, default_value = "table", value_parser = ["table", "jsonl"])]
        format: String,
    },
    /// Write new records as CloudTrail-style gzip'd JSON files (incremental).
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// The export directory (also holds the export state).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check an export directory against the signed digests beside its files: every file
    /// present as signed, unaltered, and linked to the one before; exit non-zero if not.
    VerifyExport {
        #[command(flatten)]
        store: StoreArgs,
        /// The export directory.
        #[arg(long)]
        dir: PathBuf,
        /// Trust digests signed by this public key file (hex); repeatable. Default: the
        /// `audit-signing.pub` beside the master key.
        #[arg(long = "public-key")]
        public_keys: Vec<PathBuf>,
    },
    /// Export, then delete records older than a number of days under a signed anchor.
    Prune {
        #[command(flatten)]
        store: StoreArgs,
        /// Age in days beyond which records are removed.
        #[arg(long)]
        older_than: u32,
        /// The export directory records go to before deletion.
        #[arg(long)]
        out: PathBuf,
        /// Digests kept outside the database (as for `audit verify --anchor`): a chain that
        /// disagrees with them is not pruned. Repeatable.
        #[arg(long = "anchor")]
        anchors: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditDigestsCommand {
    /// Print the signed digests (not the prune anchors), one JSON object per line, oldest
    /// first; or write them as digest files into a directory (`--out`), as `serve
    /// --audit-digest-dir` does.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this chain (a server id).
        #[arg(long)]
        chain: Option<String>,
        /// Only digests ending after this seq.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Write digest files into this directory instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Where the data lives (shared by every command).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// TOML config file.
    #[arg(long, env = "STRONGROOM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite database, the master key and generated credentials.
    #[arg(long, env = "STRONGROOM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://...` (default: SQLite inside the data dir).
    #[arg(long, env = "STRONGROOM_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The master key file (default: DATA_DIR/master.key).
    #[arg(long, env = "STRONGROOM_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// SQLite: memory-map up to this many MiB of the database in each read connection
    /// (default 0: reads copy pages in with `pread`). Faster reads; the mapped pages count
    /// in the server's RSS once per read connection.
    #[arg(long, env = "STRONGROOM_SQLITE_READ_MMAP_MIB")]
    pub sqlite_read_mmap_mib: Option<u64>,
    /// PostgreSQL: check for other servers' writes every this many milliseconds, on a
    /// thread of its own, instead of before every cached read (default 0: before every
    /// cached read). Another server's acknowledged write is then seen here up to about this
    /// much later; this server's own writes at once.
    #[arg(long, env = "STRONGROOM_PG_CHANGE_CHECK_MS", value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub pg_change_check_ms: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "STRONGROOM_LISTEN")]
    pub listen: Option<String>,
    /// TLS certificate chain (PEM); TLS is on when both --tls-cert and --tls-key are given.
    #[arg(long, env = "STRONGROOM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "STRONGROOM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// The account of the bootstrap root credentials.
    #[arg(long, env = "STRONGROOM_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// Comma-separated regions this server serves.
    #[arg(long, env = "STRONGROOM_REGIONS")]
    pub regions: Option<String>,
    /// Seconds between runs of the purge job (secrets past their recovery window).
    #[arg(long, env = "STRONGROOM_PURGE_INTERVAL")]
    pub purge_interval: Option<u64>,
    /// The principals-as-code directory (accounts, users, roles, policies).
    #[arg(long, env = "STRONGROOM_POLICIES")]
    pub policies: Option<PathBuf>,
    /// Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed for
    /// `aws:SourceIp` (default: none; the peer address is the source).
    #[arg(long, env = "STRONGROOM_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Audit retention: records older than this many days are exported (gzip CloudTrail
    /// JSON) to --audit-export-dir and deleted, under a signed anchor (default: kept forever).
    #[arg(long, env = "STRONGROOM_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u32>,
    /// Where retention exports records before deleting them (default: DATA_DIR/audit-export).
    #[arg(long, env = "STRONGROOM_AUDIT_EXPORT_DIR")]
    pub audit_export_dir: Option<PathBuf>,
    /// Seconds between retention runs (default 3600).
    #[arg(long, env = "STRONGROOM_AUDIT_RETENTION_INTERVAL")]
    pub audit_retention_interval: Option<u64>,
    /// A directory outside the database where each signed audit digest is also written
    /// (`<chain>/<seq>-digest.json`), to ship off the host; `audit verify --anchor DIR`
    /// then detects a chain cut short with its digests (default: none).
    #[arg(long, env = "STRONGROOM_AUDIT_DIGEST_DIR")]
    pub audit_digest_dir: Option<PathBuf>,
    /// Requests refused before their caller is known (no or bad credentials) recorded one by
    /// one per source address (an IPv4 address or IPv6 /64) and minute, and ten times that
    /// from all sources; the rest are counted into one `UnauthenticatedRequestsSummarized`
    /// record per source and minute (default 600; 0 records every one).
    #[arg(long, env = "STRONGROOM_AUDIT_UNAUTHENTICATED_PER_MINUTE")]
    pub audit_unauthenticated_per_minute: Option<u32>,
    /// Address of the metrics and health listener (`/metrics`, `/healthz`, `/readyz`);
    /// must differ from --listen (default: none, no metrics).
    #[arg(long, env = "STRONGROOM_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Request-rate quotas per account and region: `aws` (AWS's published numbers) or `off`
    /// (default); the config file's `[quota_groups]` and `[quota_accounts.ID]` tables
    /// override them per operation group and per account.
    #[arg(long, env = "STRONGROOM_QUOTAS")]
    pub quotas: Option<String>,
    /// Serve the web console at `/console/` on the API listener (sign-in with an access key
    /// pair; every action runs as that principal). Off by default; `--console=false` (or
    /// STRONGROOM_CONSOLE=false) turns off a console the config file turns on.
    // An `Option` so that an explicit `false` from the flag or the environment is told apart
    // from no setting at all, and wins over the file as every other setting does.
    #[arg(
        long,
        env = "STRONGROOM_CONSOLE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub console: Option<bool>,
    /// A region served by a peer server, as `REGION=https://host:port` (repeatable):
    /// replication to that region goes through the outbox to the peer.
    #[arg(long = "peer", env = "STRONGROOM_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// PEM CA certificates trusted for the peers' TLS certificates (default: the system's).
    #[arg(long, env = "STRONGROOM_PEER_CA")]
    pub peer_ca: Option<PathBuf>,
    /// Accept `http://127.0.0.1:PORT` peers (tests only; the values travel in clear).
    #[arg(long)]
    pub peer_allow_plain_http_loopback: bool,
    /// The access key id of the replication principal declared on the peers (its secret:
    /// STRONGROOM_PEER_SECRET_ACCESS_KEY in the environment).
    #[arg(long, env = "STRONGROOM_PEER_ACCESS_KEY_ID")]
    pub peer_access_key_id: Option<String>,
    /// Rotations this server runs at once, 1-256 (default 4): each holds at most one
    /// connection to the rotated database, so this bounds them too.
    #[arg(long, env = "STRONGROOM_ROTATION_CONCURRENCY")]
    pub rotation_concurrency: Option<u64>,
    /// Milliseconds between the rotation engine's looks for due rotations and retries when
    /// nothing wakes it, 100-600000 (default 1000).
    #[arg(long, env = "STRONGROOM_ROTATION_TICK_MS")]
    pub rotation_tick_ms: Option<u64>,
    /// Milliseconds a rotation step's lease outlasts its function's timeout, 1000-3600000
    /// (default 10000): a job whose server died inside a step is taken up again after them.
    #[arg(long, env = "STRONGROOM_ROTATION_LEASE_GRACE_MS")]
    pub rotation_lease_grace_ms: Option<u64>,
}

/// The optional TOML file: the same names as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    master_key_file: Option<PathBuf>,
    sqlite_read_mmap_mib: Option<u64>,
    pg_change_check_ms: Option<u64>,
    account_id: Option<String>,
    regions: Option<Vec<String>>,
    purge_interval: Option<u64>,
    policies: Option<PathBuf>,
    trusted_proxies: Option<Vec<String>>,
    audit_retention_days: Option<u32>,
    audit_export_dir: Option<PathBuf>,
    audit_retention_interval: Option<u64>,
    audit_digest_dir: Option<PathBuf>,
    audit_unauthenticated_per_minute: Option<u32>,
    metrics_listen: Option<String>,
    quotas: Option<String>,
    console: Option<bool>,
    /// Requests per second per account and region, by quota group.
    quota_groups: Option<std::collections::HashMap<String, f64>>,
    /// One account's own rates, by quota group.
    quota_accounts:
        Option<std::collections::HashMap<String, std::collections::HashMap<String, f64>>>,
    /// Peer servers by region (`[peers]` table: `eu-west-1 = "https://..."`).
    peers: Option<std::collections::BTreeMap<String, String>>,
    peer_ca: Option<PathBuf>,
    peer_allow_plain_http_loopback: Option<bool>,
    peer_access_key_id: Option<String>,
    rotation_concurrency: Option<u64>,
    rotation_tick_ms: Option<u64>,
    rotation_lease_grace_ms: Option<u64>,
}

/// Resolved store settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub master_key_file: PathBuf,
    /// SQLite read connections' memory map, in bytes (0: none).
    pub read_mmap_bytes: u64,
    /// PostgreSQL: the read cache's change check interval (zero: before every cached read).
    pub pg_change_check: std::time::Duration,
}

/// Resolved server settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub store: StoreConfig,
    pub listen: String,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub account_id: String,
    pub regions: Vec<String>,
    pub purge_interval_secs: u64,
    /// The principals-as-code directory; `None` or missing means root credentials only.
    pub policies: Option<PathBuf>,
    /// Proxies whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Audit retention at serve time; `None`: records are kept.
    pub audit_retention: Option<AuditRetention>,
    /// Where each signed audit digest is also written (outside the database), if anywhere.
    pub audit_digest_dir: Option<PathBuf>,
    /// How many refusals of unknown callers are recorded one by one (the window is not a
    /// flag: tests shorten it).
    pub audit_unauthenticated: crate::audit::unauthenticated::Limits,
    /// The metrics and health listener's address, if any.
    pub metrics_listen: Option<String>,
    /// Request-rate quotas; `None`: no limit.
    pub quotas: Option<crate::quota::QuotaConfig>,
    /// Whether the web console is served at `/console/`.
    pub console: bool,
    /// Peer servers serving other regions (replication through the outbox).
    pub peers: crate::replication::PeerConfig,
    /// The rotation engine's concurrency and tick.
    pub rotation: crate::rotation::engine::Settings,
    /// The limits on slow clients ([`crate::server::ClientTimeouts`]; not flags: tests
    /// shorten them).
    pub client_timeouts: crate::server::ClientTimeouts,
}

/// Audit retention: every `every`, records older than `max_age` are exported to `export_dir`
/// and deleted (see `audit::retention`).
#[derive(Debug, Clone)]
pub struct AuditRetention {
    pub max_age: std::time::Duration,
    pub every: std::time::Duration,
    pub export_dir: PathBuf,
}

fn load_file(path: Option<&Path>) -> Result<FileConfig, String> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file `{}`: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file `{}`: {e}", path.display()))
}

fn resolve_store(a: &StoreArgs, f: &FileConfig) -> Result<StoreConfig, String> {
    let data_dir = a
        .data_dir
        .clone()
        .or_else(|| f.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("./data"));
    let database_url = a
        .database_url
        .clone()
        .or_else(|| f.database_url.clone())
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("strongroom.db").display()));
    let master_key_file = a
        .master_key_file
        .clone()
        .or_else(|| f.master_key_file.clone())
        .unwrap_or_else(|| data_dir.join("master.key"));
    let read_mmap_mib = a
        .sqlite_read_mmap_mib
        .or(f.sqlite_read_mmap_mib)
        .unwrap_or(0);
    let pg_change_check_ms = a.pg_change_check_ms.or(f.pg_change_check_ms).unwrap_or(0);
    if pg_change_check_ms > 60_000 {
        // The flag refuses it (clap's range); the file the same way.
        return Err(format!(
            "pg_change_check_ms = {pg_change_check_ms}: at most 60000 (milliseconds)"
        ));
    }
    Ok(StoreConfig {
        data_dir,
        database_url,
        master_key_file,
        read_mmap_bytes: read_mmap_mib.saturating_mul(1 << 20),
        pg_change_check: std::time::Duration::from_millis(pg_change_check_ms),
    })
}

impl StoreArgs {
    pub fn resolve(&self) -> Result<StoreConfig, String> {
        let f = load_file(self.config.as_deref())?;
        resolve_store(self, &f)
    }
}

fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl ServeArgs {
    fn resolve_peers(
        &self,
        file_peers: &Option<std::collections::BTreeMap<String, String>>,
        file_ca: Option<PathBuf>,
        file_allow: Option<bool>,
        file_akid: Option<String>,
        regions: &[String],
    ) -> Result<crate::replication::PeerConfig, String> {
        let allow = self.peer_allow_plain_http_loopback || file_allow == Some(true);
        let mut peers = Vec::new();
        if self.peers.is_empty() {
            for (region, url) in file_peers.iter().flatten() {
                peers.push(crate::replication::Peer::new(region, url, allow)?);
            }
        } else {
            for spec in &self.peers {
                peers.push(crate::replication::Peer::parse(spec, allow)?);
            }
        }
        for (i, p) in peers.iter().enumerate() {
            if !valid_region(&p.region) {
                return Err(format!("`{}` is not a region name", p.region));
            }
            if regions.contains(&p.region) {
                return Err(format!(
                    "--peer {}: this server serves {} itself",
                    p.region, p.region
                ));
            }
            if peers.iter().take(i).any(|q| q.region == p.region) {
                return Err(format!("--peer {} is given more than once", p.region));
            }
        }
        let credentials = if peers.is_empty() {
            None
        } else {
            let akid = self.peer_access_key_id.clone().or(file_akid).ok_or(
                "--peer needs the replication principal's access key: --peer-access-key-id (or STRONGROOM_PEER_ACCESS_KEY_ID) and STRONGROOM_PEER_SECRET_ACCESS_KEY",
            )?;
            let secret = std::env::var("STRONGROOM_PEER_SECRET_ACCESS_KEY").map_err(|_| {
                "--peer needs STRONGROOM_PEER_SECRET_ACCESS_KEY (the replication principal's secret access key) in the environment".to_owned()
            })?;
            Some(crate::replication::PeerCredentials {
                access_key_id: akid,
                secret_access_key: zeroize::Zeroizing::new(secret),
            })
        };
        Ok(crate::replication::PeerConfig {
            peers,
            ca_file: self.peer_ca.clone().or(file_ca),
            credentials,
        })
    }

    pub fn resolve(&self) -> Result<ServeConfig, String> {
        let f = load_file(self.store.config.as_deref())?;
        let store = resolve_store(&self.store, &f)?;
        let listen = self
            .listen
            .clone()
            .or(f.listen)
            .unwrap_or_else(|| "127.0.0.1:4599".into());
        let tls = match (
            self.tls_cert.clone().or(f.tls_cert),
            self.tls_key.clone().or(f.tls_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err("--tls-cert and --tls-key must be given together".into()),
        };
        let account_id = self
            .account_id
            .clone()
            .or(f.account_id)
            .unwrap_or_else(|| "000000000000".into());
        if account_id.len() != 12 || !account_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("account id `{account_id}` must be 12 digits"));
        }
        let regions: Vec<String> = match (&self.regions, f.regions) {
            (Some(list), _) => list
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            (None, Some(v)) => v,
            (None, None) => vec!["us-east-1".into()],
        };
        if regions.is_empty() {
            return Err("--regions needs at least one region".into());
        }
        if let Some(bad) = regions.iter().find(|r| !valid_region(r)) {
            return Err(format!("`{bad}` is not a region name"));
        }
        let audit_retention = match self.audit_retention_days.or(f.audit_retention_days) {
            None => None,
            Some(0) => return Err("--audit-retention-days must be at least 1".into()),
            Some(days) => Some(AuditRetention {
                max_age: std::time::Duration::from_secs(u64::from(days) * 86_400),
                every: std::time::Duration::from_secs(
                    self.audit_retention_interval
                        .or(f.audit_retention_interval)
                        .unwrap_or(3600)
                        .max(1),
                ),
                export_dir: self
                    .audit_export_dir
                    .clone()
                    .or(f.audit_export_dir)
                    .unwrap_or_else(|| store.data_dir.join("audit-export")),
            }),
        };
        let metrics_listen = self.metrics_listen.clone().or(f.metrics_listen);
        if metrics_listen.as_deref() == Some(listen.as_str()) {
            return Err("--metrics-listen must differ from --listen (metrics are never served on the API port)".into());
        }
        let quotas = crate::quota::QuotaConfig::resolve(
            self.quotas.as_deref().or(f.quotas.as_deref()),
            &f.quota_groups.unwrap_or_default(),
            &f.quota_accounts.unwrap_or_default(),
        )?;
        let peers = self.resolve_peers(
            &f.peers,
            f.peer_ca.clone(),
            f.peer_allow_plain_http_loopback,
            f.peer_access_key_id.clone(),
            &regions,
        )?;
        let rotation = crate::rotation::engine::Settings::resolve(
            self.rotation_concurrency.or(f.rotation_concurrency),
            self.rotation_tick_ms.or(f.rotation_tick_ms),
            self.rotation_lease_grace_ms.or(f.rotation_lease_grace_ms),
        )?;
        Ok(ServeConfig {
            rotation,
            client_timeouts: crate::server::ClientTimeouts::default(),
            console: self.console.or(f.console).unwrap_or(false),
            peers,
            metrics_listen,
            quotas,
            audit_retention,
            audit_digest_dir: self.audit_digest_dir.clone().or(f.audit_digest_dir),
            audit_unauthenticated: crate::audit::unauthenticated::Limits {
                per_source: self
                    .audit_unauthenticated_per_minute
                    .or(f.audit_unauthenticated_per_minute)
                    .unwrap_or(crate::audit::unauthenticated::DEFAULT_PER_MINUTE),
                ..Default::default()
            },
            store,
            listen,
            tls,
            account_id,
            regions,
            purge_interval_secs: self
                .purge_interval
                .or(f.purge_interval)
                .unwrap_or(60)
                .max(1),
            policies: Some(
                self.policies
                    .clone()
                    .or(f.policies)
                    .unwrap_or_else(|| PathBuf::from("./policies")),
            ),
            trusted_proxies: {
                let list: Vec<String> = match (&self.trusted_proxies, f.trusted_proxies) {
                    (Some(s), _) => s
                        .split(',')
                        .map(|x| x.trim().to_owned())
                        .filter(|x| !x.is_empty())
                        .collect(),
                    (None, Some(v)) => v,
                    (None, None) => vec![],
                };
                list.iter()
                    .map(|c| {
                        c.parse::<ipnet::IpNet>()
                            .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                            .map_err(|_| format!("`{c}` is not a CIDR or an IP address"))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ServeArgs {
        let mut v = vec!["strongroom", "serve"];
        v.extend_from_slice(args);
        match Cli::parse_from(v).command {
            Command::Serve(a) => a,
            _ => panic!("not serve"),
        }
    }

    #[test]
    fn rotation_concurrency_tick_and_lease_grace_come_from_flags_or_the_file_and_are_checked() {
        let c = parse(&[]).resolve().unwrap();
        assert_eq!(c.rotation.concurrency, 4);
        assert_eq!(c.rotation.tick, std::time::Duration::from_secs(1));
        let c = parse(&["--rotation-concurrency", "16", "--rotation-tick-ms", "250"])
            .resolve()
            .unwrap();
        assert_eq!(c.rotation.concurrency, 16);
        assert_eq!(c.rotation.tick, std::time::Duration::from_millis(250));
        assert_eq!(c.rotation.lease_grace, std::time::Duration::from_secs(10));
        let c = parse(&["--rotation-lease-grace-ms", "1500"])
            .resolve()
            .unwrap();
        assert_eq!(
            c.rotation.lease_grace,
            std::time::Duration::from_millis(1500)
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "rotation_concurrency = 2\nrotation_tick_ms = 5000\n").unwrap();
        let f = file.to_str().unwrap();
        let c = parse(&["--config", f]).resolve().unwrap();
        assert_eq!(c.rotation.concurrency, 2);
        assert_eq!(c.rotation.tick, std::time::Duration::from_secs(5));
        // The flag wins over the file.
        let c = parse(&["--config", f, "--rotation-concurrency", "8"])
            .resolve()
            .unwrap();
        assert_eq!(c.rotation.concurrency, 8);
        for (args, says) in [
            (
                &["--rotation-concurrency", "0"][..],
                "--rotation-concurrency",
            ),
            (&["--rotation-concurrency", "257"][..], "between 1 and 256"),
            (&["--rotation-tick-ms", "99"][..], "--rotation-tick-ms"),
            (
                &["--rotation-tick-ms", "600001"][..],
                "between 100 and 600000",
            ),
            (
                &["--rotation-lease-grace-ms", "999"][..],
                "--rotation-lease-grace-ms",
            ),
            (
                &["--rotation-lease-grace-ms", "3600001"][..],
                "between 1000 and 3600000",
            ),
        ] {
            let e = parse(args).resolve().unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
        }
        std::fs::write(&file, "rotation_concurrency = 0\n").unwrap();
        let e = parse(&["--config", f]).resolve().unwrap_err();
        assert!(e.contains("--rotation-concurrency"), "{e}");
    }

    #[test]
    fn defaults_and_file_precedence() {
        let c = parse(&[]).resolve().unwrap();
        assert_eq!(c.listen, "127.0.0.1:4599");
        assert_eq!(c.account_id, "000000000000");
        assert_eq!(c.regions, vec!["us-east-1"]);
        assert!(c.store.database_url.starts_with("sqlite://"));
        assert_eq!(c.store.read_mmap_bytes, 0);
        let mmap = |args: &[&str]| parse(args).resolve().unwrap().store.read_mmap_bytes;
        assert_eq!(mmap(&["--sqlite-read-mmap-mib", "256"]), 256 << 20);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1\"\nregions = [\"eu-west-1\", \"us-east-1\"]\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let c = parse(&["--config", f]).resolve().unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.regions, vec!["eu-west-1", "us-east-1"]);
        let c = parse(&["--config", f, "--listen", "127.0.0.1:2"])
            .resolve()
            .unwrap();
        assert_eq!(c.listen, "127.0.0.1:2");
        std::fs::write(&file, "sqlite_read_mmap_mib = 64\n").unwrap();
        assert_eq!(mmap(&["--config", f]), 64 << 20);
        assert_eq!(mmap(&["--config", f, "--sqlite-read-mmap-mib", "0"]), 0);

        let check = |args: &[&str]| parse(args).resolve().unwrap().store.pg_change_check;
        assert_eq!(check(&[]), std::time::Duration::ZERO);
        assert_eq!(
            check(&["--pg-change-check-ms", "5"]),
            std::time::Duration::from_millis(5)
        );
        std::fs::write(&file, "pg_change_check_ms = 20\n").unwrap();
        assert_eq!(
            check(&["--config", f]),
            std::time::Duration::from_millis(20)
        );
        assert_eq!(
            check(&["--config", f, "--pg-change-check-ms", "0"]),
            std::time::Duration::ZERO
        );
        std::fs::write(&file, "pg_change_check_ms = 60001\n").unwrap();
        let e = parse(&["--config", f]).resolve().unwrap_err();
        assert!(e.contains("at most 60000"), "{e}");

        std::fs::write(&file, "bogus = 1\n").unwrap();
        let e = parse(&["--config", f]).resolve().unwrap_err();
        assert!(e.contains("unknown field `bogus`"), "{e}");
        assert_eq!(
            parse(&["--account-id", "12"]).resolve().unwrap_err(),
            "account id `12` must be 12 digits"
        );
        assert_eq!(
            parse(&["--regions", "US EAST"]).resolve().unwrap_err(),
            "`US EAST` is not a region name"
        );
    }

    #[test]
    fn audit_retention_is_off_by_default_and_set_by_flag_or_file() {
        assert!(parse(&[]).resolve().unwrap().audit_retention.is_none());
        let r = parse(&["--data-dir", "/d", "--audit-retention-days", "30"])
            .resolve()
            .unwrap()
            .audit_retention
            .unwrap();
        assert_eq!(r.max_age, std::time::Duration::from_secs(30 * 86_400));
        assert_eq!(r.every, std::time::Duration::from_secs(3600));
        assert_eq!(r.export_dir, PathBuf::from("/d/audit-export"));
        assert_eq!(
            parse(&["--audit-retention-days", "0"])
                .resolve()
                .unwrap_err(),
            "--audit-retention-days must be at least 1"
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "audit_retention_days = 7\naudit_export_dir = \"/trail\"\naudit_retention_interval = 60\n",
        )
        .unwrap();
        let r = parse(&["--config", file.to_str().unwrap()])
            .resolve()
            .unwrap()
            .audit_retention
            .unwrap();
        assert_eq!(r.max_age, std::time::Duration::from_secs(7 * 86_400));
        assert_eq!(r.every, std::time::Duration::from_secs(60));
        assert_eq!(r.export_dir, PathBuf::from("/trail"));
    }

    #[test]
    fn metrics_and_quotas_are_off_by_default_and_set_by_flag_or_file() {
        let c = parse(&[]).resolve().unwrap();
        assert_eq!(c.metrics_listen, None);
        assert_eq!(c.quotas, None);
        let c = parse(&["--metrics-listen", "127.0.0.1:9599", "--quotas", "aws"])
            .resolve()
            .unwrap();
        assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:9599"));
        assert!(c.quotas.is_some());
        assert!(parse(&["--metrics-listen", "127.0.0.1:4599"])
            .resolve()
            .is_err());
        assert!(parse(&["--quotas", "many"]).resolve().is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "metrics_listen = \"127.0.0.1:9\"\n[quota_groups]\nwrite = 5\n[quota_accounts.111122223333]\nread = 2.5\n",
        )
        .unwrap();
        let c = parse(&["--config", file.to_str().unwrap()])
            .resolve()
            .unwrap();
        assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:9"));
        let q = c.quotas.unwrap();
        let write = crate::quota::group_of("PutSecretValue").unwrap();
        let read = crate::quota::group_of("GetSecretValue").unwrap();
        assert_eq!(q.rates[write], Some(5.0));
        assert_eq!(q.rates[read], None);
        assert_eq!(q.accounts["111122223333"][read], Some(2.5));
        assert_eq!(q.accounts["111122223333"][write], Some(5.0));
    }

    #[test]
    fn the_console_follows_the_flag_then_the_environment_then_the_file() {
        assert!(!parse(&[]).resolve().unwrap().console);
        assert!(parse(&["--console"]).resolve().unwrap().console);
        assert!(parse(&["--console=true"]).resolve().unwrap().console);
        assert!(!parse(&["--console=false"]).resolve().unwrap().console);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "console = true\n").unwrap();
        let f = file.to_str().unwrap();
        assert!(parse(&["--config", f]).resolve().unwrap().console);
        assert!(
            !parse(&["--config", f, "--console=false"])
                .resolve()
                .unwrap()
                .console
        );
        // The environment is read by the same argument: an explicit false there is a setting
        // too, over the file's.
        std::env::set_var("STRONGROOM_CONSOLE", "false");
        let from_env = parse(&["--config", f]).resolve().unwrap().console;
        let flag_over_env = parse(&["--config", f, "--console"])
            .resolve()
            .unwrap()
            .console;
        std::env::remove_var("STRONGROOM_CONSOLE");
        assert!(!from_env);
        assert!(flag_over_env);
        std::fs::write(&file, "console = false\n").unwrap();
        assert!(
            parse(&["--config", f, "--console"])
                .resolve()
                .unwrap()
                .console
        );
    }

    #[test]
    fn the_audit_digest_dir_is_off_by_default_and_set_by_flag_or_file() {
        assert_eq!(parse(&[]).resolve().unwrap().audit_digest_dir, None);
        let r = parse(&["--audit-digest-dir", "/digests"])
            .resolve()
            .unwrap();
        assert_eq!(r.audit_digest_dir, Some(PathBuf::from("/digests")));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "audit_digest_dir = \"/from-file\"\n").unwrap();
        let r = parse(&["--config", file.to_str().unwrap()])
            .resolve()
            .unwrap();
        assert_eq!(r.audit_digest_dir, Some(PathBuf::from("/from-file")));
    }

    #[test]
    fn peers_come_from_flags_or_the_file_and_need_credentials() {
        std::env::set_var(
            "STRONGROOM_PEER_SECRET_ACCESS_KEY",
            "peer-secret-for-config-test",
        );
        let c = parse(&[
            "--peer",
            "eu-west-1=https://peer.example:8443",
            "--peer-access-key-id",
            "AKIAREPLICATOR000001",
        ])
        .resolve()
        .unwrap();
        assert_eq!(c.peers.regions(), vec!["eu-west-1"]);
        assert_eq!(
            c.peers.credentials.as_ref().unwrap().access_key_id,
            "AKIAREPLICATOR000001"
        );
        assert!(!format!("{:?}", c.peers).contains("peer-secret-for-config-test"));
        let e = parse(&["--peer", "eu-west-1=https://peer.example"])
            .resolve()
            .unwrap_err();
        assert!(e.contains("--peer-access-key-id"), "{e}");
        let e = parse(&[
            "--peer",
            "us-east-1=https://peer.example",
            "--peer-access-key-id",
            "AKIAREPLICATOR000001",
        ])
        .resolve()
        .unwrap_err();
        assert!(e.contains("serves us-east-1 itself"), "{e}");
        let e = parse(&[
            "--peer",
            "eu-west-1=http://127.0.0.1:9",
            "--peer-access-key-id",
            "AKIAREPLICATOR000001",
        ])
        .resolve()
        .unwrap_err();
        assert!(e.contains("not https"), "{e}");
        let c = parse(&[
            "--peer",
            "eu-west-1=http://127.0.0.1:9",
            "--peer-allow-plain-http-loopback",
            "--peer-access-key-id",
            "AKIAREPLICATOR000001",
        ])
        .resolve()
        .unwrap();
        assert!(!c.peers.peers[0].tls);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "peer_access_key_id = \"AKIAREPLICATOR000002\"\npeer_ca = \"/etc/peer-ca.pem\"\n[peers]\n\"eu-west-1\" = \"https://eu.example\"\n\"ap-south-1\" = \"https://ap.example:9443\"\n",
        )
        .unwrap();
        let c = parse(&["--config", file.to_str().unwrap()])
            .resolve()
            .unwrap();
        assert_eq!(c.peers.regions(), vec!["ap-south-1", "eu-west-1"]);
        assert_eq!(c.peers.ca_file, Some(PathBuf::from("/etc/peer-ca.pem")));
        assert_eq!(
            c.peers.credentials.unwrap().access_key_id,
            "AKIAREPLICATOR000002"
        );
    }
}
