//! The MySQL and MariaDB databases whose passwords the built-in rotators change
//! (`rotation::postgres`, the MySQL/MariaDB built-ins): a connection (the `mysql` crate, TLS
//! by rustls) to someone else's server, with the few statements the rotators run.
//! Blocking: the caller runs it on a thread of its own. No error here carries a password
//! (the server's messages name the user and the host; statements that carry a password are
//! never echoed).
//!
//! TLS: with [`Tls::Require`] or [`Tls::VerifyFull`] the client refuses a server that does not
//! offer TLS before sending anything (REQUIRE SSL on the client side); there is no plaintext
//! fallback.

use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, SslOpts};
use zeroize::Zeroizing;

pub use super::rotated_pg::{Login, Tls};

/// The account host the alternating users are created with, as in AWS's templates.
pub const CLONE_HOST: &str = "%";

/// A logged-in connection.
pub struct Target(Conn);

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Target")
    }
}

fn one_line(e: &mysql::Error, password: &str) -> String {
    let msg = e.to_string();
    let msg = if password.is_empty() {
        msg
    } else {
        msg.replace(password, "[REDACTED]")
    };
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Log in (5 s to connect; each read or write at most 15 s). TCP only (never the server's
/// Unix socket, where TLS does not apply).
pub fn connect(d: &Login<'_>) -> Result<Target, String> {
    // The `mysql` crate builds its TLS client from the process's default provider: ring,
    // as everywhere in this server (an error only says one is installed already).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ssl = match d.tls {
        Tls::Disable => None,
        Tls::Require => Some(
            SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        Tls::VerifyFull(ca) => Some(SslOpts::default().with_root_cert_path(Some(ca.clone()))),
    };
    let opts = OptsBuilder::new()
        .ip_or_hostname(Some(d.host))
        .tcp_port(d.port)
        .user(Some(d.user))
        .pass(Some(d.password))
        .db_name((!d.dbname.is_empty()).then_some(d.dbname))
        .prefer_socket(false)
        .tcp_connect_timeout(Some(Duration::from_secs(5)))
        .read_timeout(Some(Duration::from_secs(15)))
        .write_timeout(Some(Duration::from_secs(15)))
        .ssl_opts(ssl);
    let mut conn = Conn::new(opts).map_err(|e| {
        format!(
            "{} (as user `{}` on {}:{})",
            one_line(&e, d.password),
            d.user,
            d.host,
            d.port
        )
    })?;
    // Backslash escapes on, whatever the server's default: `literal` relies on them.
    conn.query_drop(
        "SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')",
    )
    .map_err(|e| format!("setting sql_mode failed: {}", one_line(&e, "")))?;
    Ok(Target(conn))
}

/// A string literal for a connection whose sql_mode has backslash escapes (utf8mb4): every
/// byte that could end or alter the literal escaped.
fn literal(s: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(s.len() + 2));
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x1a' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// An account name `'user'@'host'`.
fn account(user: &str, host: &str) -> String {
    format!("{}@{}", *literal(user), *literal(host))
}

/// How the server prints an account in `SHOW GRANTS` (backtick-quoted).
fn printed_account(user: &str, host: &str) -> String {
    format!(
        "`{}`@`{}`",
        user.replace('`', "``"),
        host.replace('`', "``")
    )
}

impl Target {
    /// `SELECT NOW()`: the templates' test of a login.
    pub fn select_now(&mut self) -> Result<(), String> {
        self.0
            .query_drop("SELECT NOW()")
            .map_err(|e| format!("SELECT NOW() failed: {}", one_line(&e, "")))
    }

    /// The logged-in account changes its own password (`SET PASSWORD`, for the account
    /// the server matched: `CURRENT_USER()`).
    pub fn alter_password(&mut self, password: &str) -> Result<(), String> {
        let sql = Zeroizing::new(format!("SET PASSWORD = PASSWORD({})", *literal(password)));
        self.0
            .query_drop(sql.as_str())
            .or_else(|_| {
                // MySQL 8 has no PASSWORD(): its own syntax.
                let sql = Zeroizing::new(format!(
                    "ALTER USER CURRENT_USER() IDENTIFIED BY {}",
                    *literal(password)
                ));
                self.0.query_drop(sql.as_str())
            })
            .map_err(|e| format!("SET PASSWORD failed: {}", one_line(&e, password)))
    }

    /// As the master: give `pending` (`'pending'@'%'`) the new password, creating it if it
    /// does not exist, and replay the grants of `current` (`SHOW GRANTS`) onto it, as AWS's
    /// template does at every rotation.
    pub fn sync_clone(
        &mut self,
        current: &str,
        pending: &str,
        password: &str,
    ) -> Result<(), String> {
        let pending_acct = account(pending, CLONE_HOST);
        let exists: Option<u8> = self
            .0
            .exec_first(
                "SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?",
                (pending, CLONE_HOST),
            )
            .map_err(|e| format!("reading mysql.user failed: {}", one_line(&e, "")))?;
        let sql = Zeroizing::new(if exists.is_some() {
            format!(
                "ALTER USER {pending_acct} IDENTIFIED BY {}",
                *literal(password)
            )
        } else {
            format!(
                "CREATE USER {pending_acct} IDENTIFIED BY {}",
                *literal(password)
            )
        });
        self.0.query_drop(sql.as_str()).map_err(|e| {
            format!(
                "{} failed: {}",
                if exists.is_some() {
                    "ALTER USER"
                } else {
                    "CREATE USER"
                },
                one_line(&e, password)
            )
        })?;
        let grants: Vec<String> = self
            .0
            .query(format!("SHOW GRANTS FOR {}", account(current, CLONE_HOST)))
            .map_err(|e| format!("SHOW GRANTS failed: {}", one_line(&e, "")))?;
        let to = format!(" TO {}", printed_account(current, CLONE_HOST));
        for g in grants {
            // The privileges part; the account's own clauses (password hash, TLS) stay its own.
            let Some(at) = g.rfind(&to) else { continue };
            let what = &g[..at];
            if what.ends_with(" ON *.*") && what.starts_with("GRANT USAGE ") {
                continue;
            }
            let suffix = if g[at + to.len()..].contains("WITH GRANT OPTION") {
                " WITH GRANT OPTION"
            } else {
                ""
            };
            let sql = format!("{what} TO {pending_acct}{suffix}");
            self.0
                .query_drop(sql.as_str())
                .map_err(|e| format!("copying a grant failed: {}", one_line(&e, "")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{account, literal, printed_account};

    #[test]
    fn literals_and_accounts_are_escaped() {
        assert_eq!(*literal(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(*literal("x\0y"), r"'x\0y'");
        assert_eq!(account("u'; DROP", "%"), r"'u\'; DROP'@'%'");
        assert_eq!(printed_account("a`b", "%"), "`a``b`@`%`");
    }
}
