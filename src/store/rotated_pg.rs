//! The databases whose passwords the built-in rotators change (`rotation::postgres`): a
//! libpq connection to someone else's PostgreSQL, with the few statements the rotators run.
//! Blocking: the caller runs it on a thread of its own. No error here carries a password
//! (libpq's messages name the host and the user; statements that carry a password are never
//! echoed).

use std::path::PathBuf;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};
use zeroize::Zeroizing;

const CONNECT_TIMEOUT_SECS: u32 = 5;
/// The alternating user's suffix (`app` ↔ `app_clone`), as in AWS's templates.
pub const CLONE_SUFFIX: &str = "_clone";

/// How a connection protects itself.
#[derive(Debug, Clone)]
pub enum Tls {
    /// Plaintext (opted out explicitly).
    Disable,
    /// TLS, the certificate not verified.
    Require,
    /// TLS, the certificate verified against this CA file, and the host name.
    VerifyFull(PathBuf),
}

/// Where and as whom to log in.
pub struct Login<'a> {
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub tls: &'a Tls,
}

impl std::fmt::Debug for Login<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A logged-in connection.
pub struct Target(PgConnection);

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Target")
    }
}

/// A libpq connection-string value, quoted.
fn conninfo_value(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Log in (5 s to connect; each statement at most 15 s, so that a statement waiting on a
/// lock cannot hold a rotation's thread). The error is libpq's (it names the host and the
/// user, never the password).
pub fn connect(d: &Login<'_>) -> Result<Target, String> {
    let mut info = Zeroizing::new(format!(
        "host={} port={} dbname={} user={} password={} connect_timeout={CONNECT_TIMEOUT_SECS} application_name=strongroom-rotation options='-c statement_timeout=15000'",
        conninfo_value(d.host),
        d.port,
        conninfo_value(d.dbname),
        conninfo_value(d.user),
        conninfo_value(d.password),
    ));
    match d.tls {
        Tls::Disable => info.push_str(" sslmode=disable"),
        Tls::Require => info.push_str(" sslmode=require"),
        Tls::VerifyFull(ca) => info.push_str(&format!(
            " sslmode=verify-full sslrootcert={}",
            conninfo_value(&ca.to_string_lossy())
        )),
    }
    let conn = PgConnection::establish(&info).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.replace(d.password, "[REDACTED]");
        let one: Vec<&str> = msg.split_whitespace().collect();
        format!(
            "{} (as user `{}` on {}:{})",
            one.join(" "),
            d.user,
            d.host,
            d.port
        )
    })?;
    Ok(Target(conn))
}

impl Target {
    /// `SELECT NOW()`: the templates' test of a login.
    pub fn select_now(&mut self) -> Result<(), String> {
        self.0
            .batch_execute("SELECT NOW()")
            .map_err(|e| format!("SELECT NOW() failed: {}", db_error(&e)))
    }

    /// `ALTER USER user WITH PASSWORD password`, both quoted by the server.
    pub fn alter_password(&mut self, user: &str, password: &str) -> Result<(), String> {
        alter_password(&mut self.0, user, password)
    }

    /// See [`sync_clone`].
    pub fn sync_clone(&mut self, base: &str, pending: &str, password: &str) -> Result<(), String> {
        sync_clone(&mut self.0, base, pending, password)
    }
}

fn db_error(e: &diesel::result::Error) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(diesel::QueryableByName)]
struct Quoted {
    #[diesel(sql_type = diesel::sql_types::Text)]
    q: String,
}

#[derive(diesel::QueryableByName)]
struct Found {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    found: bool,
}

/// `s` quoted by the server as an identifier (`quote_ident`) or a literal (`quote_literal`).
fn quote(conn: &mut PgConnection, function: &str, s: &str) -> Result<Zeroizing<String>, String> {
    let sql = match function {
        "ident" => "SELECT quote_ident($1) AS q",
        _ => "SELECT quote_literal($1) AS q",
    };
    let row: Quoted = diesel::sql_query(sql)
        .bind::<diesel::sql_types::Text, _>(s)
        .get_result(conn)
        .map_err(|e| format!("quoting failed: {}", db_error(&e)))?;
    Ok(Zeroizing::new(row.q))
}

/// A statement that may carry a password: its error never echoes the statement.
fn execute(conn: &mut PgConnection, what: &str, sql: &str) -> Result<(), String> {
    conn.batch_execute(sql)
        .map_err(|e| format!("{what} failed: {}", db_error(&e)))
}

/// The SQL literal to give as a role's password: for a printable ASCII password (which
/// SASLprep leaves unchanged) its SCRAM-SHA-256 verifier, computed here, as psql's
/// `\password` and libpq's `PQencryptPasswordConn` do, so that the password itself never
/// reaches the server's statement log; for any other, the password quoted by the server.
fn password_literal(conn: &mut PgConnection, password: &str) -> Result<Zeroizing<String>, String> {
    if !password.is_empty() && password.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        if let Some(v) = scram_verifier(password) {
            // Base64, digits, `$` and `:` only: nothing to escape.
            return Ok(Zeroizing::new(format!("'{}'", *v)));
        }
    }
    quote(conn, "literal", password)
}

/// `SCRAM-SHA-256$4096:salt$StoredKey:ServerKey` (RFC 5802, PostgreSQL's stored form).
fn scram_verifier(password: &str) -> Option<Zeroizing<String>> {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use rand::RngCore as _;
    use sha2::{Digest, Sha256};
    const ITERATIONS: u32 = 4096;
    let hmac = |key: &[u8], data: &[u8]| -> Option<[u8; 32]> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
        m.update(data);
        Some(m.finalize().into_bytes().into())
    };
    let mut salt = [0_u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut salted = Zeroizing::new([0_u8; 32]);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(ITERATIONS)?,
        &salt,
        password.as_bytes(),
        salted.as_mut(),
    );
    let client_key = Zeroizing::new(hmac(salted.as_ref(), b"Client Key")?);
    let stored_key: [u8; 32] = Sha256::digest(client_key.as_ref()).into();
    let server_key = hmac(salted.as_ref(), b"Server Key")?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Some(Zeroizing::new(format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        b64.encode(salt),
        b64.encode(stored_key),
        b64.encode(server_key)
    )))
}

fn alter_password(conn: &mut PgConnection, user: &str, password: &str) -> Result<(), String> {
    let ident = quote(conn, "ident", user)?;
    let lit = password_literal(conn, password)?;
    let sql = Zeroizing::new(format!("ALTER USER {} WITH PASSWORD {}", *ident, *lit));
    execute(conn, "ALTER USER ... WITH PASSWORD", &sql)
}

fn role_exists(conn: &mut PgConnection, name: &str) -> Result<bool, String> {
    let row: Found =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS found")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(conn)
            .map_err(|e| format!("reading pg_roles failed: {}", db_error(&e)))?;
    Ok(row.found)
}

fn member_of(conn: &mut PgConnection, member: &str, role: &str) -> Result<bool, String> {
    let row: Found = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_auth_members m \
         JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member \
         WHERE r.rolname = $1 AND u.rolname = $2) AS found",
    )
    .bind::<diesel::sql_types::Text, _>(role)
    .bind::<diesel::sql_types::Text, _>(member)
    .get_result(conn)
    .map_err(|e| format!("reading pg_auth_members failed: {}", db_error(&e)))?;
    Ok(row.found)
}

/// As the master: give `pending` the new password, creating it if it is the clone and does
/// not exist, and keep the clone in step with the base user at every rotation: a member of
/// it (every privilege granted to the base, before or after, is the clone's too) whose
/// sessions run as the base role (objects it creates belong to the base).
fn sync_clone(
    conn: &mut PgConnection,
    base: &str,
    pending: &str,
    password: &str,
) -> Result<(), String> {
    let pending_ident = quote(conn, "ident", pending)?;
    let lit = password_literal(conn, password)?;
    if role_exists(conn, pending)? {
        let sql = Zeroizing::new(format!(
            "ALTER USER {} WITH LOGIN PASSWORD {}",
            *pending_ident, *lit
        ));
        execute(conn, "ALTER USER ... WITH PASSWORD", &sql)?;
    } else {
        let sql = Zeroizing::new(format!(
            "CREATE ROLE {} WITH LOGIN INHERIT PASSWORD {}",
            *pending_ident, *lit
        ));
        execute(conn, "CREATE ROLE", &sql)?;
    }
    let clone = format!("{base}{CLONE_SUFFIX}");
    if !role_exists(conn, &clone)? || !role_exists(conn, base)? {
        return Ok(());
    }
    let base_ident = quote(conn, "ident", base)?;
    let clone_ident = quote(conn, "ident", &clone)?;
    if !member_of(conn, &clone, base)? {
        execute(
            conn,
            "GRANT (the base user to the clone)",
            &format!("GRANT {} TO {}", *base_ident, *clone_ident),
        )?;
    }
    let base_lit = quote(conn, "literal", base)?;
    execute(
        conn,
        "ALTER ROLE ... SET role",
        &format!("ALTER ROLE {} SET role = {}", *clone_ident, *base_lit),
    )
}

#[cfg(test)]
mod tests {
    use super::{conninfo_value, scram_verifier};

    #[test]
    fn a_scram_verifier_has_postgresql_s_form_and_not_the_password() {
        let v = scram_verifier("hunter22-hunter22").unwrap();
        let parts: Vec<&str> = v.split(['$', ':']).collect();
        assert_eq!(parts.len(), 5, "{}", *v);
        assert_eq!((parts[0], parts[1]), ("SCRAM-SHA-256", "4096"));
        assert!(!v.contains("hunter22") && !v.contains('\'') && !v.contains('\\'));
        assert_ne!(
            *v,
            *scram_verifier("hunter22-hunter22").unwrap(),
            "a fresh salt"
        );
    }

    #[test]
    fn conninfo_values_are_quoted() {
        assert_eq!(conninfo_value(r"a'b\c d"), r"'a\'b\\c d'");
    }
}
