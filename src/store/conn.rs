//! Connections: one `MultiConnection` over SQLite and PostgreSQL, pools, pragmas, migrations.

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::StoreError;

/// Either backend, behind one type so queries are written once.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Sqlite(SqliteConnection),
    Postgresql(PgConnection),
}

impl std::fmt::Debug for AnyConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(_) => f.write_str("AnyConnection::Sqlite"),
            Self::Postgresql(_) => f.write_str("AnyConnection::Postgresql"),
        }
    }
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// The audit trail's lookup index (`sql/audit_lookup.sql`): a PostgreSQL migration; on
/// SQLite, the schema of the separate index file.
const AUDIT_LOOKUP_DDL: &str = include_str!("sql/audit_lookup.sql");

/// The schema name the SQLite audit lookup index file is attached as.
const SQLITE_INDEX_SCHEMA: &str = "auditidx";

/// The audit chain's tables on SQLite (`sql/audit_chain.sql`): the schema of the chain file.
const AUDIT_CHAIN_DDL: &str = include_str!("sql/audit_chain.sql");

/// The schema name the SQLite audit chain file is attached as.
const SQLITE_CHAIN_SCHEMA: &str = "auditchain";

/// Which version of `sql/audit_chain.sql` built a chain file (its `user_version`).
const CHAIN_SCHEMA_VERSION: i32 = 1;

/// Per-connection settings for SQLite: WAL, full fsync, a busy timeout, foreign keys; and
/// the audit chain file and the audit lookup index file attached (see [`audit_chain_path`],
/// [`audit_index_path`]).
#[derive(Debug, Clone)]
struct SqlitePragmas {
    /// `PRAGMA main.mmap_size` (0: no memory map; the attached chain and index files are
    /// never mapped: the chain grows with every audit commit).
    mmap_size: u64,
    /// The audit chain file to attach.
    chain_path: String,
    /// The audit lookup index file to attach.
    index_path: String,
    /// `PRAGMA cache_size` in KiB of the main database, when not SQLite's default (2 MiB;
    /// the chain file keeps the default: appends touch its B-trees' right edges only).
    cache_kib: Option<u32>,
    /// `PRAGMA wal_autocheckpoint` in pages, when not SQLite's default (1,000).
    autocheckpoint: Option<u32>,
}

impl SqlitePragmas {
    /// The settings of a connection to the SQLite database at `db_path`.
    fn new(db_path: &str, mmap_size: u64, cache_kib: Option<u32>) -> Self {
        Self {
            mmap_size,
            chain_path: audit_chain_path(db_path),
            index_path: audit_index_path(db_path),
            cache_kib,
            autocheckpoint: None,
        }
    }
}

impl CustomizeConnection<AnyConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), diesel::r2d2::Error> {
        if let AnyConnection::Sqlite(c) = conn {
            // The busy timeout first: switching a new file to WAL takes a lock that the pool's
            // other connections, opening at the same time, may hold.
            c.batch_execute(&format!(
                "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                 PRAGMA main.mmap_size = {};",
                self.mmap_size
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
            // The chain: as durable as the main database (every commit fsynced).
            let chain = SQLITE_CHAIN_SCHEMA;
            c.batch_execute(&format!(
                "ATTACH DATABASE '{}' AS {chain}; PRAGMA {chain}.journal_mode = WAL; \
                 PRAGMA {chain}.synchronous = FULL;",
                self.chain_path.replace('\'', "''")
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
            sqlite_chain_schema(c).map_err(diesel::r2d2::Error::QueryError)?;
            if let Some(pages) = self.autocheckpoint {
                c.batch_execute(&format!("PRAGMA wal_autocheckpoint = {pages};"))
                    .map_err(diesel::r2d2::Error::QueryError)?;
            }
            if let Some(kib) = self.cache_kib {
                // The writer also keeps its savepoints' sub-journals in memory (`batch`
                // reruns a batch with a failed write in savepoints): they never spill to a
                // temporary file.
                c.batch_execute(&format!(
                    "PRAGMA cache_size = -{kib}; PRAGMA temp_store = MEMORY;"
                ))
                .map_err(diesel::r2d2::Error::QueryError)?;
            }
            // Derived data (rebuilt from audit_events when lost): WAL without an fsync per
            // commit. Its state table lives in the same file, so what it says is indexed
            // is indexed, whatever a crash took. A small page cache: every connection has
            // one for each attached file, and only the indexer and queries read this one
            // (the operating system's cache holds it between batches).
            let schema = SQLITE_INDEX_SCHEMA;
            c.batch_execute(&format!(
                "ATTACH DATABASE '{}' AS {schema}; PRAGMA {schema}.journal_mode = WAL; \
                 PRAGMA {schema}.synchronous = NORMAL; PRAGMA {schema}.cache_size = -{INDEX_CACHE_KIB};",
                self.index_path.replace('\'', "''")
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
            sqlite_index_schema(c).map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// Create the attached chain file's tables when it is new (its `user_version` 0). Unlike the
/// lookup index, the chain is primary data: a file some other version built is never
/// rebuilt, only refused.
fn sqlite_chain_schema(c: &mut diesel::SqliteConnection) -> diesel::QueryResult<()> {
    let schema = SQLITE_CHAIN_SCHEMA;
    let version = user_version(c, schema)?;
    if version == CHAIN_SCHEMA_VERSION {
        return Ok(());
    }
    c.immediate_transaction(|c| match user_version(c, schema)? {
        0 => {
            c.batch_execute(&attached_ddl(AUDIT_CHAIN_DDL, schema))?;
            c.batch_execute(&format!(
                "PRAGMA {schema}.user_version = {CHAIN_SCHEMA_VERSION};"
            ))
        }
        CHAIN_SCHEMA_VERSION => Ok(()),
        other => Err(diesel::result::Error::QueryBuilderError(
            format!(
                "the audit chain file was built by another version of strongroom \
                 (layout {other}, this one reads {CHAIN_SCHEMA_VERSION})"
            )
            .into(),
        )),
    })
}

/// The `user_version` of the attached file `schema`.
fn user_version(c: &mut diesel::SqliteConnection, schema: &str) -> diesel::QueryResult<i32> {
    use diesel::RunQueryDsl;
    diesel::sql_query(format!("PRAGMA {schema}.user_version"))
        .get_result::<UserVersion>(c)
        .map(|v| v.user_version)
}

/// `ddl` with every table and index created in the attached file `schema`.
fn attached_ddl(ddl: &str, schema: &str) -> String {
    ddl.replace(
        "CREATE TABLE IF NOT EXISTS ",
        &format!("CREATE TABLE IF NOT EXISTS {schema}."),
    )
    .replace(
        "CREATE INDEX IF NOT EXISTS ",
        &format!("CREATE INDEX IF NOT EXISTS {schema}."),
    )
}

/// Which version of `sql/audit_lookup.sql` built an index file (its `user_version`).
/// 1: the first (no blocks); 2: resource indexes bucketed by block; 3: no secondary indexes,
/// a block-level term index instead.
const INDEX_SCHEMA_VERSION: i32 = 3;

#[derive(diesel::QueryableByName)]
struct UserVersion {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    user_version: i32,
}

/// Create the attached index file's tables, or rebuild them when an older version built them
/// (the index is derived data: the indexer refills it from audit_events). Under the file's
/// write lock, so that connections opening at once do not race.
fn sqlite_index_schema(c: &mut diesel::SqliteConnection) -> diesel::QueryResult<()> {
    let schema = SQLITE_INDEX_SCHEMA;
    if user_version(c, schema)? == INDEX_SCHEMA_VERSION {
        return Ok(());
    }
    c.immediate_transaction(|c| {
        let version = user_version(c, schema)?;
        if version == INDEX_SCHEMA_VERSION {
            return Ok(());
        }
        // Version 0: a new file, or one built before versions were recorded (1). Another
        // version (older, or a newer binary's) is rebuilt in this one's layout.
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS {schema}.audit_lookup; \
             DROP TABLE IF EXISTS {schema}.audit_lookup_blocks; \
             DROP TABLE IF EXISTS {schema}.audit_lookup_terms; \
             DROP TABLE IF EXISTS {schema}.audit_index_state;"
        ))?;
        c.batch_execute(&sqlite_index_ddl())?;
        c.batch_execute(&format!(
            "PRAGMA {schema}.user_version = {INDEX_SCHEMA_VERSION};"
        ))
    })
}

/// The lookup index's DDL with every table and index created in the attached index file.
fn sqlite_index_ddl() -> String {
    attached_ddl(
        &AUDIT_LOOKUP_DDL.replace("/*SQLITE: WITHOUT ROWID*/", "WITHOUT ROWID"),
        SQLITE_INDEX_SCHEMA,
    )
}

/// Where a SQLite database's audit chain lives: a file beside it (`sql/audit_chain.sql`).
pub fn audit_chain_path(db_path: &str) -> String {
    format!("{db_path}-audit")
}

/// Where a SQLite database's audit lookup index lives: a file beside it.
pub fn audit_index_path(db_path: &str) -> String {
    format!("{db_path}-audit-index")
}

/// By default read connections do not map the database file (`PRAGMA mmap_size = 0`;
/// `--sqlite-read-mmap-mib` changes it). Measured (docs/performance.md) with the audit chain in a
/// file of its own (a mapped reader re-maps only when a secret write grew the main file):
/// mapped reads are faster (GetSecretValue +15 %, audit off +19 %, BatchGetSecretValue
/// +25 %), but the pages each of the pool's mappings touches count again in the server's
/// RSS (+50 to +125 MB in the benchmark's GetSecretValue run, +130 MB in its
/// BatchGetSecretValue run, against a 150 MB target). With the chain in the main file, every
/// audit commit would grow it, and mapping would cost more CPU (munmap + page faults) than it
/// saved.
pub(super) const READ_MMAP_BYTES: u64 = 0;

/// Turn `sqlite://PATH` / `postgres://...` into (backend, URL diesel understands).
fn parse_url(url: &str) -> Result<(Backend, String), StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(StoreError::Url(url.to_owned()));
        }
        Ok((Backend::Sqlite, path.to_owned()))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok((Backend::Postgres, url.to_owned()))
    } else {
        Err(StoreError::Url(redact_url(url)))
    }
}

/// A URL fit for logs and errors: the password (if any) removed, wherever libpq would read
/// one: the user information (`user:password@`), a `password` or `sslpassword` parameter of
/// the query (`?password=...`), or a `password=...` of a `key=value` connection string.
pub fn redact_url(url: &str) -> String {
    let url = match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let (head, rest) = url.split_at(s + 3);
            let creds_end = at - (s + 3);
            let (creds, tail) = rest.split_at(creds_end);
            let user = creds.split(':').next().unwrap_or("");
            format!("{head}{user}:***{tail}")
        }
        _ => url.to_owned(),
    };
    redact_password_values(&url)
}

/// `text` with the value of every `...password=VALUE` (a query parameter, up to `&`, `#` or
/// white space; or a connection-string keyword, quoted or up to white space) replaced by
/// `***`, the name compared without case.
fn redact_password_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(found) = lower[i..].find("password=") {
        let value_start = i + found + "password=".len();
        out.push_str(&text[i..value_start]);
        out.push_str("***");
        let rest = &text[value_start..];
        let value_len = if let Some(quoted) = rest.strip_prefix('\'') {
            // A quoted connection-string value: up to the closing quote (`\'` escapes one).
            let mut escaped = false;
            quoted
                .char_indices()
                .find(|&(_, c)| {
                    let end = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                })
                .map_or(rest.len(), |(j, _)| j + 2)
        } else {
            rest.find(|c: char| c == '&' || c == '#' || c.is_whitespace())
                .unwrap_or(rest.len())
        };
        i = value_start + value_len;
    }
    out.push_str(&text[i..]);
    out
}

/// A pool of `max` connections to `conn_url` (SQLite connections set up by `pragmas`).
fn build_pool(
    backend: Backend,
    conn_url: &str,
    max: u32,
    pragmas: SqlitePragmas,
) -> Result<Pool<ConnectionManager<AnyConnection>>, StoreError> {
    let manager = ConnectionManager::<AnyConnection>::new(conn_url);
    let builder = Pool::builder()
        .connection_timeout(std::time::Duration::from_secs(10))
        .max_size(max);
    match backend {
        Backend::Sqlite => builder.connection_customizer(Box::new(pragmas)),
        Backend::Postgres => builder,
    }
    .build(manager)
    .map_err(|e| StoreError::Pool(e.to_string()))
}

/// The pool for read transactions, opened after [`open_pool`] migrated the database. SQLite:
/// its own connections, so reads never wait for a connection behind writers queued on the
/// write lock; 4 are plenty on a small machine (short reads run on the two request threads,
/// scans on the blocking pool). PostgreSQL: the same pool as writes.
pub(super) fn open_read_pool(
    url: &str,
    write_pool: &Pool<ConnectionManager<AnyConnection>>,
    mmap_bytes: u64,
) -> Result<Pool<ConnectionManager<AnyConnection>>, StoreError> {
    let (backend, conn_url) = parse_url(url)?;
    match backend {
        Backend::Sqlite => build_pool(
            backend,
            &conn_url,
            4,
            SqlitePragmas::new(&conn_url, mmap_bytes, None),
        ),
        Backend::Postgres => Ok(write_pool.clone()),
    }
}

/// SQLite: the read cache's sentinel, one connection that only asks
/// [`data_version`] (see `Store::cache_generation`). The connection is kept for the store's
/// life (no maximum lifetime, no idle timeout): `data_version`'s values are comparable only
/// on one connection, and a new one could answer the very number the old one last gave
/// although other connections committed in between (the cache would then serve what they
/// replaced).
pub(super) fn open_sentinel(
    url: &str,
) -> Result<Pool<ConnectionManager<AnyConnection>>, StoreError> {
    let (_, conn_url) = parse_url(url)?;
    Pool::builder()
        .connection_timeout(std::time::Duration::from_secs(10))
        .max_size(1)
        .max_lifetime(None)
        .idle_timeout(None)
        // Not replaced behind the store's back when a check fails either: a query that
        // fails makes the store trust nothing it had seen (`changes::Changes::lost`).
        .test_on_check_out(false)
        .connection_customizer(Box::new(SqlitePragmas::new(&conn_url, 0, None)))
        .build(ConnectionManager::<AnyConnection>::new(&conn_url))
        .map_err(|e| StoreError::Pool(e.to_string()))
}

#[derive(diesel::QueryableByName)]
struct DataVersion {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    data_version: i64,
}

/// SQLite's `PRAGMA main.data_version` on `c`: a number that differs from the one `c` gave
/// before whenever another connection (of this process or another) committed to the main
/// database in between. The audit chain and index files are attached schemas: their
/// commits do not change it.
pub(super) fn data_version(c: &mut AnyConnection) -> Result<i64, diesel::result::Error> {
    use diesel::RunQueryDsl;
    diesel::sql_query("PRAGMA main.data_version")
        .get_result::<DataVersion>(c)
        .map(|r| r.data_version)
}

/// The connection write transactions run on. SQLite: one connection (writes are serialised
/// in-process anyway), so its page cache stays valid from one write to the next: SQLite
/// empties a connection's cache whenever another connection has committed since its last
/// transaction, so with writes spread over a pool every write would begin by re-reading its
/// pages.
/// A larger cache than the default (8 MiB), since every write and every audit commit goes
/// through it.
/// PostgreSQL: the same pool as everything else.
pub(super) fn open_write_pool(
    url: &str,
    pool: &Pool<ConnectionManager<AnyConnection>>,
) -> Result<Pool<ConnectionManager<AnyConnection>>, StoreError> {
    let (backend, conn_url) = parse_url(url)?;
    match backend {
        Backend::Sqlite => build_pool(
            backend,
            &conn_url,
            1,
            // The writer's own checkpoint (SQLite runs it inside the COMMIT that takes the WAL
            // past this many pages, under the write lock) only finishes what the store's
            // background checkpointer did not copy yet, and lets the WAL restart.
            SqlitePragmas {
                autocheckpoint: Some(WRITER_AUTOCHECKPOINT_PAGES),
                ..SqlitePragmas::new(&conn_url, 0, Some(WRITER_CACHE_KIB))
            },
        ),
        Backend::Postgres => Ok(pool.clone()),
    }
}

/// The SQLite writer connection's page cache.
const WRITER_CACHE_KIB: u32 = 8 * 1024;

/// WAL pages after which the writer connection checkpoints (16 MiB; SQLite's default is
/// 1,000). See [`checkpoint_passive`]: the background checkpointer copies the WAL into the
/// database every [`CHECKPOINT_EVERY`], off the write path.
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 4000;

/// How often the background checkpointer runs (see [`checkpoint_passive`]).
pub(super) const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Copy what the main database's and the chain file's WALs hold into their database files,
/// without waiting for (or blocking) the writer or readers: SQLite's PASSIVE checkpoint, with
/// the fsyncs of `synchronous = FULL`. Run by the store's checkpointer thread on its own
/// connection, it takes most of the checkpoint's copying and its database fsync out of the
/// write path, where SQLite's automatic checkpoint would run them under the write lock. A
/// WAL file can only restart (be reused from its start) at a write transaction after a
/// checkpoint that copied everything, which a checkpoint running beside the writer rarely
/// does: the writer's own automatic checkpoint, at [`WRITER_AUTOCHECKPOINT_PAGES`], does that
/// part, with little left to copy.
pub(super) fn checkpoint_passive(conn: &mut AnyConnection) -> diesel::QueryResult<()> {
    match conn {
        // "database is locked": a checkpoint is already running (the writer's); next time.
        AnyConnection::Sqlite(c) => {
            for schema in ["main", SQLITE_CHAIN_SCHEMA] {
                match c.batch_execute(&format!("PRAGMA {schema}.wal_checkpoint(PASSIVE);")) {
                    Err(diesel::result::Error::DatabaseError(_, info))
                        if info.message().contains("locked") => {}
                    r => r?,
                }
            }
            Ok(())
        }
        AnyConnection::Postgresql(_) => Ok(()),
    }
}

/// Checkpoint the audit chain file's WAL on the write connection `conn`, outside any
/// transaction, while the caller holds the store's write lock. No transaction appends to the
/// chain meanwhile, so this PASSIVE checkpoint copies what the background checkpointer did not
/// yet and completes, and the next commit restarts the WAL from its start: the writer
/// connection's own automatic checkpoint ([`WRITER_AUTOCHECKPOINT_PAGES`]), which SQLite
/// runs inside a COMMIT while that group's requests wait for it, is not reached.
/// "Database is locked": the background checkpointer is running one; the next will do.
pub(super) fn checkpoint_chain_between_writes(conn: &mut AnyConnection) -> diesel::QueryResult<()> {
    match conn {
        AnyConnection::Sqlite(c) => {
            match c.batch_execute(&format!(
                "PRAGMA {SQLITE_CHAIN_SCHEMA}.wal_checkpoint(PASSIVE);"
            )) {
                Err(diesel::result::Error::DatabaseError(_, info))
                    if info.message().contains("locked") =>
                {
                    Ok(())
                }
                r => r,
            }
        }
        AnyConnection::Postgresql(_) => Ok(()),
    }
}

/// Each connection's page cache for the attached audit lookup index file.
const INDEX_CACHE_KIB: u32 = 512;

/// SQLite: make the database files of `db_path` (the database, the audit chain file and the
/// lookup index file, each with its WAL, shared-memory and journal files) readable and
/// writable by their owner only, like the master key. Files that do not exist yet are created
/// empty with mode 0600 (an empty file is a new SQLite database); SQLite creates a database's
/// WAL and shared-memory files with the database file's mode. Files an older version created
/// with group or other permissions lose them.
///
/// An existing file is never opened here, only changed by its path: closing any descriptor
/// of a database file drops every POSIX lock this process holds on it, SQLite's included. A
/// store opened while another store of the same process has the file open (a command beside
/// an embedded server, a test beside its server) would otherwise leave that store's
/// connections unlocked, and another process's last connection could then checkpoint and
/// remove the WAL they still read.
#[cfg(unix)]
fn restrict_sqlite_files(db_path: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // In-memory and URI databases have no files of their own to protect here.
    if db_path.starts_with(':') || db_path.starts_with("file:") {
        return Ok(());
    }
    let fail = |p: &str, e: std::io::Error| {
        StoreError::Pool(format!("cannot restrict the permissions of `{p}`: {e}"))
    };
    for base in [
        db_path.to_owned(),
        audit_chain_path(db_path),
        audit_index_path(db_path),
    ] {
        // `create_new`: O_EXCL, which fails on an existing file without opening it.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&base)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(&base, e)),
        }
        for file in [
            base.clone(),
            format!("{base}-wal"),
            format!("{base}-shm"),
            format!("{base}-journal"),
        ] {
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o700))
                    .map_err(|e| fail(&file, e))?;
            }
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_sqlite_files(_db_path: &str) -> Result<(), StoreError> {
    Ok(())
}

pub(super) fn open_pool(
    url: &str,
) -> Result<(Backend, Pool<ConnectionManager<AnyConnection>>), StoreError> {
    let (backend, conn_url) = parse_url(url)?;
    if backend == Backend::Sqlite {
        restrict_sqlite_files(&conn_url)?;
    }
    let max = match backend {
        Backend::Sqlite => 8,
        Backend::Postgres => 16,
    };
    let pool = build_pool(
        backend,
        &conn_url,
        max,
        SqlitePragmas::new(&conn_url, 0, None),
    )?;

    let mut conn = pool.get().map_err(|e| StoreError::Pool(e.to_string()))?;
    let migrations = match backend {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
    };
    if backend == Backend::Postgres {
        // Several servers may start together: serialise migrations with an advisory lock.
        conn.batch_execute("SELECT pg_advisory_lock(7347201)")
            .map_err(|e| StoreError::Migration(e.to_string()))?;
    }
    let res = conn
        .run_pending_migrations(migrations)
        .map(|_| ())
        .map_err(|e| StoreError::Migration(e.to_string()));
    if backend == Backend::Postgres {
        let _ = conn.batch_execute("SELECT pg_advisory_unlock(7347201)");
    }
    res?;
    if let AnyConnection::Sqlite(c) = &mut *conn {
        move_chain_to_own_file(c).map_err(|e| StoreError::Migration(e.to_string()))?;
        // Write records whose change committed but whose chain insert did not (the process
        // died between the two files' commits): into the chain before anything else.
        // Looked for first, without a lock: a store opened beside a running server (the CLI,
        // an auditor's query) takes the write lock only when there is something to adopt.
        let pending = diesel::RunQueryDsl::get_result::<Count>(
            diesel::sql_query(
                "SELECT count(*) AS n FROM (SELECT 1 FROM main.audit_pending LIMIT 1)",
            ),
            c,
        )
        .map_err(|e| StoreError::Migration(format!("looking for pending audit records: {e}")))?;
        if pending.n > 0 {
            // Two transactions, the copy into the chain first: the main file commits before
            // the chain file, so dropping the copies in the same transaction could lose them
            // when the chain file's commit fails (a full disk) or the process dies between
            // the two commits.
            c.immediate_transaction(|c| c.batch_execute(&ADOPT_PENDING_SQL))
                .and_then(|()| c.immediate_transaction(|c| c.batch_execute(&DROP_ADOPTED_SQL)))
                .map_err(|e| {
                    StoreError::Migration(format!("adopting pending audit records: {e}"))
                })?;
        }
    }
    Ok((backend, pool))
}

/// The chain table's columns, in order (`sql/audit_chain.sql`, and main's `audit_pending`).
const CHAIN_COLUMNS: &str = "chain_id, seq, event_id, event_time, event_name, principal_arn, \
     access_key_id, source_ip, resource_arn, error_code, decision, record, prev_hash, hash, \
     account_id, event_source, read_only, user_name, resource_type, resource_name";

/// The digest table's columns, in order.
const DIGEST_COLUMNS: &str = "chain_id, kind, seq_from, seq_to, last_hash, record_count, \
     created_at, key_id, public_key, signature";

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A database the migrations (or an older version) left with the chain in the main file:
/// copy its records and digests into the chain file, then drop them from the main file. Two
/// transactions, the copy first: a crash between them leaves both copies, and the next
/// start copies again (ignoring what is there) and drops.
fn move_chain_to_own_file(c: &mut diesel::SqliteConnection) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    let in_main = diesel::sql_query(
        "SELECT count(*) AS n FROM main.sqlite_master \
         WHERE type = 'table' AND name = 'audit_events'",
    )
    .get_result::<Count>(c)?
    .n;
    if in_main == 0 {
        return Ok(());
    }
    let chain = SQLITE_CHAIN_SCHEMA;
    c.immediate_transaction(|c| {
        c.batch_execute(&format!(
            "INSERT OR IGNORE INTO {chain}.audit_events ({CHAIN_COLUMNS}) \
               SELECT {CHAIN_COLUMNS} FROM main.audit_events; \
             INSERT OR IGNORE INTO {chain}.audit_digests ({DIGEST_COLUMNS}) \
               SELECT {DIGEST_COLUMNS} FROM main.audit_digests;"
        ))
    })?;
    c.immediate_transaction(|c| {
        c.batch_execute("DROP TABLE main.audit_events; DROP TABLE main.audit_digests;")
    })
}

/// SQLite: where the chain of a pending copy (aliased `alias`) ends: its last record, else
/// its prune anchor.
fn chain_end_of(alias: &str) -> String {
    let chain = SQLITE_CHAIN_SCHEMA;
    format!(
        "max(coalesce((SELECT max(e.seq) FROM {chain}.audit_events e \
                       WHERE e.chain_id = {alias}.chain_id), 0), \
             coalesce((SELECT max(d.seq_to) FROM {chain}.audit_digests d \
                       WHERE d.chain_id = {alias}.chain_id AND d.kind = 'anchor'), 0))"
    )
}

/// SQLite: append to each chain the write records of `main.audit_pending` past the chain's
/// end, in order. The copies stay: the main file commits before the chain file, so a
/// transaction that also dropped them would lose them whenever the chain file's commit
/// failed (a full disk) after the main file's. They are dropped once the chain holds them
/// committed ([`DROP_ADOPTED_SQL`] in a later transaction, or [`DropPending`]). See the
/// migration `2026-12-01-000000_audit_chain_file`. Built once.
pub(super) static ADOPT_PENDING_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO {SQLITE_CHAIN_SCHEMA}.audit_events ({CHAIN_COLUMNS}) \
           SELECT {CHAIN_COLUMNS} FROM main.audit_pending p WHERE p.seq > {} \
           ORDER BY p.chain_id, p.seq;",
        chain_end_of("p")
    )
});

/// SQLite: drop every pending copy the chain holds, in a transaction after the one that
/// adopted them ([`ADOPT_PENDING_SQL`]) committed. Built once.
static DROP_ADOPTED_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "DELETE FROM main.audit_pending AS q WHERE q.seq <= {};",
        chain_end_of("q")
    )
});

/// SQLite: after a write transaction inserted record `seq` of `chain` (bound in that order)
/// into the chain file, its copy in the main database (see [`ADOPT_PENDING_SQL`]). It runs in
/// every write transaction: built once, and prepared once per connection (`store::fixed`).
pub(super) struct KeepPending;

impl super::fixed::FixedSql for KeepPending {
    fn pieces() -> &'static [&'static str] {
        static HEAD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "INSERT INTO main.audit_pending ({CHAIN_COLUMNS}) \
                   SELECT {CHAIN_COLUMNS} FROM {SQLITE_CHAIN_SCHEMA}.audit_events \
                   WHERE chain_id = "
            )
        });
        static PIECES: std::sync::LazyLock<[&'static str; 3]> =
            std::sync::LazyLock::new(|| [HEAD.as_str(), " AND seq = ", ""]);
        &*PIECES
    }
}

super::fixed::fixed_sql!(
    /// SQLite: drop the pending copies of `chain`'s records through `seq` (bound in that
    /// order), which the chain file holds, committed.
    DropPending = ["DELETE FROM main.audit_pending WHERE chain_id = ", " AND seq <= ", ""]
);

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's migration holds the lookup index's statements verbatim (a migration cannot
    /// include a file); they must not drift from what SQLite's index file gets.
    #[test]
    fn the_postgres_migration_carries_the_lookup_index_ddl() {
        let migration =
            include_str!("../../migrations/postgres/2026-12-02-000000_audit_lookup_terms/up.sql");
        let ddl = AUDIT_LOOKUP_DDL
            .find("CREATE TABLE")
            .map(|i| &AUDIT_LOOKUP_DDL[i..])
            .unwrap();
        assert!(
            migration.contains(ddl),
            "sql/audit_lookup.sql and the migration differ"
        );
        assert!(sqlite_index_ddl().contains("CREATE TABLE IF NOT EXISTS auditidx.audit_lookup"));
        assert!(sqlite_index_ddl().contains("WITHOUT ROWID"));
    }

    #[derive(diesel::QueryableByName)]
    struct MmapSize {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        mmap_size: i64,
    }

    /// `--sqlite-read-mmap-mib` maps the main database in read connections only, never the
    /// chain or index files; the default maps nothing.
    #[test]
    fn read_connections_map_the_main_database_when_asked() {
        use diesel::RunQueryDsl;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/m.db", dir.path().display());
        let size = |store: &crate::store::Store, schema: &'static str| {
            store
                .read_blocking(move |tx| {
                    let rows: Vec<MmapSize> =
                        diesel::sql_query(format!("PRAGMA {schema}.mmap_size"))
                            .load(tx.conn)
                            .map_err(StoreError::Db)?;
                    Ok(rows[0].mmap_size)
                })
                .unwrap()
        };
        let mapped = crate::store::Store::open_with(&url, 64 << 20).unwrap();
        assert_eq!(size(&mapped, "main"), 64 << 20);
        assert_eq!(size(&mapped, SQLITE_CHAIN_SCHEMA), 0);
        drop(mapped);
        let plain = crate::store::Store::open(&url).unwrap();
        assert_eq!(size(&plain, "main"), 0);
    }

    /// A store opened beside a running server (an auditor's `audit query`, the CLI) needs no
    /// write lock when no record waits for adoption: it opens while another connection holds
    /// the write lock, where it used to wait out the busy timeout and fail.
    #[test]
    fn opening_beside_a_writer_needs_no_write_lock() {
        use diesel::{Connection, RunQueryDsl};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let url = format!("sqlite://{}", path.display());
        drop(crate::store::Store::open(&url).unwrap());
        let mut writer = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        // The dropped store's background threads may still hold the file for a moment.
        diesel::sql_query("PRAGMA busy_timeout = 5000")
            .execute(&mut writer)
            .unwrap();
        diesel::sql_query("BEGIN IMMEDIATE")
            .execute(&mut writer)
            .unwrap();
        let opened = crate::store::Store::open(&url);
        diesel::sql_query("COMMIT").execute(&mut writer).unwrap();
        assert!(opened.is_ok(), "{:?}", opened.err());
    }

    #[derive(diesel::QueryableByName)]
    struct CompileOption {
        #[diesel(sql_type = diesel::sql_types::Text)]
        compile_options: String,
    }

    /// `.cargo/config.toml` builds the bundled SQLite without the shared page cache (one
    /// global mutex on every page fetch of every connection) and without the allocator's
    /// statistics mutex. A build that lost the setting (run outside the crate's directory,
    /// or with `LIBSQLITE3_FLAGS` overridden) fails here instead of quietly running slower.
    #[test]
    fn the_bundled_sqlite_has_no_process_wide_page_cache_lock() {
        use diesel::{Connection, RunQueryDsl};
        let mut c = diesel::SqliteConnection::establish(":memory:").unwrap();
        let opts: Vec<String> = diesel::sql_query("PRAGMA compile_options")
            .load::<CompileOption>(&mut c)
            .unwrap()
            .into_iter()
            .map(|o| o.compile_options)
            .collect();
        assert!(opts.iter().any(|o| o == "THREADSAFE=1"), "{opts:?}");
        assert!(
            !opts.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "{opts:?}"
        );
        assert!(opts.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{opts:?}");
    }

    /// `data_version` is comparable on one connection only: a connection opened after other
    /// connections committed can answer the number an older one gave before those commits.
    /// So the sentinel keeps its one connection (never retired for its age or idleness).
    #[test]
    fn the_sentinel_keeps_its_connection_as_data_version_needs() {
        use diesel::connection::SimpleConnection;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/s.db", dir.path().display());
        let (_, pool) = open_pool(&url).unwrap();
        pool.get()
            .unwrap()
            .batch_execute("CREATE TABLE IF NOT EXISTS dv_t (x INTEGER)")
            .unwrap();
        let sentinel = open_sentinel(&url).unwrap();
        assert_eq!(sentinel.max_lifetime(), None);
        assert_eq!(sentinel.idle_timeout(), None);
        assert!(!sentinel.test_on_check_out());
        let old = data_version(&mut sentinel.get().unwrap()).unwrap();
        pool.get()
            .unwrap()
            .batch_execute("INSERT INTO dv_t VALUES (1)")
            .unwrap();
        // The kept connection sees the commit; a new connection may answer the old number.
        assert_ne!(data_version(&mut sentinel.get().unwrap()).unwrap(), old);
        let fresh = open_sentinel(&url).unwrap();
        assert_eq!(data_version(&mut fresh.get().unwrap()).unwrap(), old);
    }

    #[test]
    fn urls() {
        assert_eq!(parse_url("sqlite:///tmp/x.db").unwrap().0, Backend::Sqlite);
        assert_eq!(parse_url("postgres://u@h/db").unwrap().0, Backend::Postgres);
        for bad in ["mysql://x", "sqlite://"] {
            assert!(
                matches!(parse_url(bad), Err(StoreError::Url(u)) if u == bad),
                "{bad}"
            );
        }
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        let e = parse_url("oracle://u:pw@h").unwrap_err().to_string();
        assert!(!e.contains("pw@"), "{e}");
    }

    #[test]
    fn a_password_is_redacted_wherever_libpq_reads_one() {
        for (url, shown) in [
            (
                "postgres://u@h/db?password=pw-q1&sslmode=require",
                "postgres://u:***@h/db?password=***&sslmode=require",
            ),
            (
                "postgresql://u@h/db?sslmode=require&PASSWORD=pw-q2",
                "postgresql://u:***@h/db?sslmode=require&PASSWORD=***",
            ),
            (
                "postgres://u@h/db?sslpassword=pw-q3",
                "postgres://u:***@h/db?sslpassword=***",
            ),
            (
                "postgres://u:pw-u1@h/db?password=pw-q4",
                "postgres://u:***@h/db?password=***",
            ),
            (
                "host=h user=u password=pw-c1 dbname=db",
                "host=h user=u password=*** dbname=db",
            ),
            (
                "host=h password='pw c2 \\' still' dbname=db",
                "host=h password=*** dbname=db",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        let e = parse_url("host=h user=u password=pw-c3")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("pw-c3"), "{e}");
        // Nothing else changes.
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
