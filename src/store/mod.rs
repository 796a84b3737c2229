//! The only module that knows diesel and SQL.
//!
//! One schema, two backends (SQLite bundled, PostgreSQL) through one `MultiConnection`.
//! Operations run closures over a [`Tx`] inside one transaction: `Store::write` for changes
//! (serialised in-process on SQLite; SERIALIZABLE with retries on PostgreSQL) and
//! `Store::read` for consistent reads. Blocking work runs on tokio's blocking pool.
//!
//! May depend on: `error` (for the closure's error type), `secrets` and `audit` row types.
//! Never on actix or `policy`.

mod audit;
mod conn;
mod keys;
mod kms;
pub mod rows;
mod schema;
mod secrets;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::Connection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

pub use conn::{redact_url, AnyConnection, Backend};

use crate::error::ApiError;

/// Why a store call failed. Messages never carry secret values.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] DieselError),
    #[error("connection pool: {0}")]
    Pool(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("bad database url `{0}`")]
    Url(String),
    #[error("blocking task failed: {0}")]
    Join(String),
    #[error("too many concurrent write conflicts; giving up")]
    Conflict,
}

impl StoreError {
    /// Whether this is a unique-constraint violation (a concurrent insert of the same key).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Self::Db(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

fn is_retryable(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => {
            // SQLite: another process holds the write lock past busy_timeout.
            let m = info.message();
            m.contains("database is locked") || m.contains("deadlock detected")
        }
        _ => false,
    }
}

/// A transaction in progress. Its methods live in the `store::*` submodules.
#[derive(Debug)]
pub struct Tx<'c> {
    conn: &'c mut AnyConnection,
    /// Set when a statement failed with a retryable conflict; the whole closure is retried.
    conflict: bool,
}

impl<'c> Tx<'c> {
    /// Map a diesel error, remembering retryable conflicts.
    fn db(&mut self, e: DieselError) -> StoreError {
        if is_retryable(&e) {
            self.conflict = true;
        }
        StoreError::Db(e)
    }
}

enum TxFail {
    Api(ApiError),
    Db(DieselError),
}

impl From<DieselError> for TxFail {
    fn from(e: DieselError) -> Self {
        Self::Db(e)
    }
}

/// The store: a connection pool plus, for SQLite, the in-process write lock.
#[derive(Clone)]
pub struct Store {
    pool: Pool<ConnectionManager<AnyConnection>>,
    backend: Backend,
    write_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

const MAX_RETRIES: u32 = 20;

impl Store {
    /// Open (and migrate) the database at `url` (`sqlite://PATH` or `postgres://...`).
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let (backend, pool) = conn::open_pool(url)?;
        Ok(Self {
            pool,
            backend,
            write_lock: Arc::new(Mutex::new(())),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn conn(&self) -> Result<PooledConnection<ConnectionManager<AnyConnection>>, StoreError> {
        self.pool.get().map_err(|e| StoreError::Pool(e.to_string()))
    }

    /// Run `f` in one write transaction. Retried on PostgreSQL serialization failures
    /// (so `f` must be repeatable); committed only when `f` returns `Ok`.
    pub async fn write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T, ApiError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_blocking(f))
            .await
            .map_err(|e| ApiError::from(StoreError::Join(e.to_string())))?
    }

    /// The blocking body of [`Store::write`], for background jobs and the CLI.
    pub fn write_blocking<T, F>(&self, mut f: F) -> Result<T, ApiError>
    where
        F: FnMut(&mut Tx<'_>) -> Result<T, ApiError>,
    {
        let mut conn = self.conn()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conflict = false;
            let result = {
                let _guard = match self.backend {
                    Backend::Sqlite => Some(
                        self.write_lock
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                    ),
                    Backend::Postgres => None,
                };
                let c: &mut AnyConnection = &mut conn;
                c.transaction::<T, TxFail, _>(|c| {
                    if self.backend == Backend::Postgres {
                        diesel::RunQueryDsl::execute(
                            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
                            c,
                        )?;
                    }
                    let mut tx = Tx {
                        conn: c,
                        conflict: false,
                    };
                    let r = f(&mut tx);
                    conflict = tx.conflict;
                    r.map_err(TxFail::Api)
                })
            };
            match result {
                Ok(v) => return Ok(v),
                Err(TxFail::Db(e)) if is_retryable(&e) || conflict => {
                    if attempt >= MAX_RETRIES {
                        return Err(StoreError::Conflict.into());
                    }
                }
                Err(TxFail::Api(_)) if conflict => {
                    if attempt >= MAX_RETRIES {
                        return Err(StoreError::Conflict.into());
                    }
                }
                Err(TxFail::Api(e)) => return Err(e),
                Err(TxFail::Db(e)) => return Err(StoreError::Db(e).into()),
            }
            std::thread::sleep(Duration::from_millis(u64::from(attempt.min(10)) * 3));
        }
    }

    /// Run `f` in a read transaction (a consistent snapshot).
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, ApiError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(f))
            .await
            .map_err(|e| ApiError::from(StoreError::Join(e.to_string())))?
    }

    /// The blocking body of [`Store::read`].
    pub fn read_blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<T, ApiError>,
    {
        let mut conn = self.conn()?;
        let c: &mut AnyConnection = &mut conn;
        let r = c.transaction::<T, TxFail, _>(|c| {
            let mut tx = Tx {
                conn: c,
                conflict: false,
            };
            f(&mut tx).map_err(TxFail::Api)
        });
        match r {
            Ok(v) => Ok(v),
            Err(TxFail::Api(e)) => Err(e),
            Err(TxFail::Db(e)) => Err(StoreError::Db(e).into()),
        }
    }
}
