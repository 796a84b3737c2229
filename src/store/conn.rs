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

/// Per-connection settings for SQLite: WAL, full fsync, a busy timeout, foreign keys; and
/// the audit lookup index file attached (see [`audit_index_path`]).
#[derive(Debug, Clone)]
struct SqlitePragmas {
    /// `PRAGMA mmap_size` (0: no memory map).
    mmap_size: u64,
    /// The audit lookup index file to attach.
    index_path: String,
    /// `PRAGMA cache_size` in KiB, when not SQLite's default (2 MiB).
    cache_kib: Option<u32>,
    /// `PRAGMA wal_autocheckpoint` in pages, when not SQLite's default (1,000).
    autocheckpoint: Option<u32>,
}

impl SqlitePragmas {
    /// The settings of a connection to the SQLite database at `db_path`.
    fn new(db_path: &str, mmap_size: u64, cache_kib: Option<u32>) -> Self {
        Self {
            mmap_size,
            index_path: audit_index_path(db_path),
            cache_kib,
            autocheckpoint: None,
        }
    }
}

impl CustomizeConnection<AnyConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), diesel::r2d2::Error> {
        if let AnyConnection::Sqlite(c) = conn {
            c.batch_execute(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; \
                 PRAGMA mmap_size = {};",
                self.mmap_size
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
            if let Some(pages) = self.autocheckpoint {
                c.batch_execute(&format!("PRAGMA wal_autocheckpoint = {pages};"))
                    .map_err(diesel::r2d2::Error::QueryError)?;
            }
            if let Some(kib) = self.cache_kib {
                // The writer also keeps its savepoints' sub-journals in memory (`batch`
                // runs every write in a savepoint): they never spill to a temporary file.
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

/// Which version of `sql/audit_lookup.sql` built an index file (its `user_version`).
/// 1: the first (no blocks); 2: resource indexes bucketed by block.
const INDEX_SCHEMA_VERSION: i32 = 2;

#[derive(diesel::QueryableByName)]
struct UserVersion {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    user_version: i32,
}

/// Create the attached index file's tables, or rebuild them when an older version built them
/// (the index is derived data: the indexer refills it from audit_events). Under the file's
/// write lock, so that connections opening at once do not race.
fn sqlite_index_schema(c: &mut diesel::SqliteConnection) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    let schema = SQLITE_INDEX_SCHEMA;
    let current = |c: &mut diesel::SqliteConnection| {
        diesel::sql_query(format!("PRAGMA {schema}.user_version"))
            .get_result::<UserVersion>(c)
            .map(|v| v.user_version)
    };
    if current(c)? == INDEX_SCHEMA_VERSION {
        return Ok(());
    }
    c.immediate_transaction(|c| {
        let version = current(c)?;
        if version == INDEX_SCHEMA_VERSION {
            return Ok(());
        }
        // Version 0: a new file, or one built before versions were recorded (1). Another
        // version (older, or a newer binary's) is rebuilt in this one's layout.
        c.batch_execute(&format!(
            "DROP TABLE IF EXISTS {schema}.audit_lookup; \
             DROP TABLE IF EXISTS {schema}.audit_lookup_blocks; \
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
    AUDIT_LOOKUP_DDL
        .replace("/*SQLITE: WITHOUT ROWID*/", "WITHOUT ROWID")
        .replace(
            "CREATE TABLE IF NOT EXISTS ",
            &format!("CREATE TABLE IF NOT EXISTS {SQLITE_INDEX_SCHEMA}."),
        )
        .replace(
            "CREATE INDEX IF NOT EXISTS ",
            &format!("CREATE INDEX IF NOT EXISTS {SQLITE_INDEX_SCHEMA}."),
        )
}

/// Where a SQLite database's audit lookup index lives: a file beside it.
pub fn audit_index_path(db_path: &str) -> String {
    format!("{db_path}-audit-index")
}

/// Read connections do not map the database file (`PRAGMA mmap_size = 0`). Measured: every
/// audit commit grows the file, so each mapped reader re-maps it (munmap + page faults:
/// more CPU than the `pread`s it saves), and the pages each of the pool's mappings touches
/// count again in the server's RSS.
const READ_MMAP_BYTES: u64 = 0;

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

/// A URL fit for logs and errors: the password (if any) removed.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let (head, rest) = url.split_at(s + 3);
            let creds_end = at - (s + 3);
            let (creds, tail) = rest.split_at(creds_end);
            let user = creds.split(':').next().unwrap_or("");
            format!("{head}{user}:***{tail}")
        }
        _ => url.to_owned(),
    }
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
) -> Result<Pool<ConnectionManager<AnyConnection>>, StoreError> {
    let (backend, conn_url) = parse_url(url)?;
    match backend {
        Backend::Sqlite => build_pool(
            backend,
            &conn_url,
            4,
            SqlitePragmas::new(&conn_url, READ_MMAP_BYTES, None),
        ),
        Backend::Postgres => Ok(write_pool.clone()),
    }
}

/// The connection write transactions run on. SQLite: one connection (writes are serialised
/// in-process anyway), so its page cache stays valid from one write to the next: SQLite
/// empties a connection's cache whenever another connection has committed since its last
/// transaction, and with writes spread over a pool every write began by re-reading its pages.
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

/// Copy what the main database's WAL holds into the database file, without waiting for
/// (or blocking) the writer or readers: SQLite's PASSIVE checkpoint, with the fsyncs of
/// `synchronous = FULL`. Run by the store's checkpointer thread on its own connection, it
/// takes most of the checkpoint's copying and its database fsync out of the write path,
/// where SQLite's automatic checkpoint would run them under the write lock. The WAL file
/// can only restart (be reused from its start) at a write transaction after a checkpoint
/// that copied everything, which a checkpoint running beside the writer rarely does: the
/// writer's own automatic checkpoint, at [`WRITER_AUTOCHECKPOINT_PAGES`], does that part,
/// with little left to copy.
pub(super) fn checkpoint_passive(conn: &mut AnyConnection) -> diesel::QueryResult<()> {
    match conn {
        // "database is locked": a checkpoint is already running (the writer's); next time.
        AnyConnection::Sqlite(c) => match c.batch_execute("PRAGMA main.wal_checkpoint(PASSIVE);") {
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("locked") =>
            {
                Ok(())
            }
            r => r,
        },
        AnyConnection::Postgresql(_) => Ok(()),
    }
}

/// Each connection's page cache for the attached audit lookup index file.
const INDEX_CACHE_KIB: u32 = 512;

pub(super) fn open_pool(
    url: &str,
) -> Result<(Backend, Pool<ConnectionManager<AnyConnection>>), StoreError> {
    let (backend, conn_url) = parse_url(url)?;
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
    Ok((backend, pool))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's migration holds the lookup index's statements verbatim (a migration cannot
    /// include a file); they must not drift from what SQLite's index file gets.
    #[test]
    fn the_postgres_migration_carries_the_lookup_index_ddl() {
        let migration =
            include_str!("../../migrations/postgres/2026-11-30-000000_audit_lookup_blocks/up.sql");
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

    #[test]
    fn urls() {
        assert_eq!(parse_url("sqlite:///tmp/x.db").unwrap().0, Backend::Sqlite);
        assert_eq!(parse_url("postgres://u@h/db").unwrap().0, Backend::Postgres);
        assert!(parse_url("mysql://x").is_err());
        assert!(parse_url("sqlite://").is_err());
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        let e = parse_url("oracle://u:pw@h").unwrap_err().to_string();
        assert!(!e.contains("pw@"), "{e}");
    }
}
