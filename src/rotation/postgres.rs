//! The built-in rotators, in the shape of AWS's templates
//! (`SecretsManagerRDSPostgreSQLRotationSingleUser` and `...MultiUser`, and the MySQL and
//! MariaDB ones): the same secret JSON (`engine`, `host`, `port`, `username`, `password`,
//! `dbname`, `ssl`, `masterarn`), the same four steps, the same Secrets Manager calls made as
//! the function's execution role (in process, through the request pipeline: authorized and
//! audited as that role's calls). The steps are shared; the database work is
//! `store::rotated_pg`'s or `store::rotated_mysql`'s.
//!
//! MySQL/MariaDB multi-user, as AWS's template: the alternating user is `'name_clone'@'%'`,
//! created by the master user, and at every rotation the grants of the current user
//! (`SHOW GRANTS`) are replayed onto the pending one (grants only added, never revoked).
//!
//! Differences from the templates, on purpose: TLS is required unless the secret says
//! `"ssl": false` *and* the function file allows plaintext (the templates fall back to
//! plaintext silently); the alternating user is made a member of the base user at every
//! rotation, and its sessions run as the base role, so grants and owned objects stay shared
//! (the templates grant membership only when creating the clone); errors name the JSON key
//! that is missing or wrong, never a value.

use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::auth::RequestHead;
use crate::identity::{Builtin, RotationFunction};
use crate::ops::sts::Credentials;
use crate::pipeline::{Peer, Pipeline};
use crate::secrets::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use crate::store::rotated_mysql;
use crate::store::rotated_pg::{self, Login, Tls, CLONE_SUFFIX};

/// What AWS's templates exclude from generated passwords by default.
const EXCLUDE_CHARACTERS: &str = " :/@\"'\\";
const PASSWORD_LENGTH: i64 = 32;
/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
const MAX_IDENT: usize = 63;
/// MySQL's user name limit (MariaDB's is 80).
const MAX_MYSQL_USER: usize = 32;

/// A connection to the rotated database, of either kind.
enum Db {
    Pg(rotated_pg::Target),
    My(rotated_mysql::Target),
}

impl Db {
    fn connect(mysql: bool, login: &Login<'_>) -> Result<Self, String> {
        if mysql {
            rotated_mysql::connect(login).map(Self::My)
        } else {
            rotated_pg::connect(login).map(Self::Pg)
        }
    }

    fn select_now(&mut self) -> Result<(), String> {
        match self {
            Self::Pg(c) => c.select_now(),
            Self::My(c) => c.select_now(),
        }
    }

    fn alter_password(&mut self, user: &str, password: &str) -> Result<(), String> {
        match self {
            Self::Pg(c) => c.alter_password(user, password),
            // The logged-in account: the user itself.
            Self::My(c) => c.alter_password(password),
        }
    }
}

/// One step's invocation.
pub struct Invocation<'a> {
    pub pipeline: &'a Pipeline,
    pub creds: &'a Credentials,
    pub region: &'a str,
    pub function: &'a RotationFunction,
    pub builtin: Builtin,
    pub secret_arn: &'a str,
    pub token: &'a str,
    pub rotation_token: &'a str,
    pub step: &'a str,
}

impl std::fmt::Debug for Invocation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the session's keys.
        f.debug_struct("Invocation")
            .field("function", &self.function.name)
            .field("secret_arn", &self.secret_arn)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

/// Run one step; `Err` is the reason (never a value).
pub async fn step(inv: &Invocation<'_>) -> Result<(), String> {
    let described = inv
        .call("DescribeSecret", json!({"SecretId": inv.secret_arn}))
        .await?;
    if described.get("RotationEnabled") == Some(&Value::Bool(false)) {
        return Err(format!(
            "Secret {} is not enabled for rotation",
            inv.secret_arn
        ));
    }
    let stages = described
        .get("VersionIdsToStages")
        .and_then(|v| v.get(inv.token))
        .and_then(Value::as_array)
        .ok_or_else(|| {
            format!(
                "Secret version {} has no stage for rotation of secret {}.",
                inv.token, inv.secret_arn
            )
        })?;
    let has = |s: &str| stages.iter().any(|v| v.as_str() == Some(s));
    if has(AWSCURRENT) && inv.step != "testSecret" {
        return Ok(());
    }
    if !has(AWSPENDING) {
        return Err(format!(
            "Secret version {} not set as AWSPENDING for rotation of secret {}.",
            inv.token, inv.secret_arn
        ));
    }
    #[cfg(debug_assertions)]
    debug_pause(inv.step).await;
    match inv.step {
        "createSecret" => inv.create().await,
        "setSecret" => match inv.builtin {
            Builtin::PostgresSingleUser | Builtin::MysqlSingleUser => inv.set_single().await,
            Builtin::PostgresMultiUser | Builtin::MysqlMultiUser => inv.set_multi().await,
        },
        "testSecret" => {
            let pending = inv.dict(AWSPENDING, Some(inv.token)).await?;
            let tls = inv.tls(&pending)?;
            let mysql = inv.builtin.is_mysql();
            blocking(move || {
                let mut c = Db::connect(mysql, &pending.login(&tls))?;
                c.select_now()
            })
            .await
        }
        "finishSecret" => inv.finish(&described).await,
        other => Err(format!("unknown step {other}")),
    }
}

/// A secret value's JSON, checked: the keys the rotators read, and the whole object (other
/// keys are carried into the new version unchanged).
#[derive(Clone)]
struct Dict {
    label: String,
    host: String,
    port: u16,
    username: String,
    password: Zeroizing<String>,
    dbname: String,
    ssl: Option<bool>,
    masterarn: Option<String>,
    whole: Map<String, Value>,
}

impl std::fmt::Debug for Dict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dict")
            .field("label", &self.label)
            .field("host", &self.host)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Dict {
    fn login<'a>(&'a self, tls: &'a Tls) -> Login<'a> {
        Login {
            host: &self.host,
            port: self.port,
            dbname: &self.dbname,
            user: &self.username,
            password: &self.password,
            tls,
        }
    }

    /// Parse `text` (the value of the version `label` describes); `master`: the master
    /// secret, whose `engine` is not checked.
    fn parse(label: &str, text: &str, master: bool, mysql: bool) -> Result<Self, String> {
        let whole = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            _ => return Err(format!("the {label} value is not a JSON object")),
        };
        let string = |k: &str| -> Result<String, String> {
            match whole.get(k) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(_) => Err(format!(
                    "the `{k}` key of the {label} JSON is not a non-empty string"
                )),
                None => Err(format!("the {label} JSON has no `{k}` key")),
            }
        };
        if !master {
            let engine = string("engine")?;
            if mysql {
                if !["mysql", "mariadb", "aurora-mysql", "aurora"].contains(&engine.as_str()) {
                    return Err(format!(
                        "the `engine` key of the {label} JSON must be `mysql` or `mariadb` (or `aurora-mysql`) for this rotator"
                    ));
                }
            } else if engine != "postgres" && engine != "aurora-postgresql" {
                return Err(format!(
                    "the `engine` key of the {label} JSON must be `postgres` (or `aurora-postgresql`) for this rotator"
                ));
            }
        }
        let port = match whole.get("port") {
            None | Some(Value::Null) if mysql => 3306,
            None | Some(Value::Null) => 5432,
            Some(Value::Number(n)) => {
                n.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| {
                        format!("the `port` key of the {label} JSON is not a port number")
                    })?
            }
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| format!("the `port` key of the {label} JSON is not a port number"))?,
            Some(_) => {
                return Err(format!(
                    "the `port` key of the {label} JSON is not a port number"
                ))
            }
        };
        let ssl = match whole.get("ssl") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            Some(_) => {
                return Err(format!(
                    "the `ssl` key of the {label} JSON must be true or false"
                ))
            }
        };
        let dbname = match whole.get("dbname") {
            // MySQL: no default database.
            None | Some(Value::Null) if mysql => String::new(),
            None | Some(Value::Null) => "postgres".to_owned(),
            Some(_) => string("dbname")?,
        };
        let masterarn = match whole.get("masterarn") {
            None => None,
            Some(_) => Some(string("masterarn")?),
        };
        let host = string("host")?;
        if host.starts_with('/') || host.starts_with('@') {
            // libpq would take it for a Unix socket, where TLS does not apply (the MySQL
            // client connects over TCP only; the same rule for both).
            return Err(format!(
                "the `host` key of the {label} JSON must be a host name or address (not a Unix socket: TLS is required)"
            ));
        }
        Ok(Self {
            label: label.to_owned(),
            host,
            port,
            username: string("username")?,
            password: Zeroizing::new(string("password")?),
            dbname,
            ssl,
            masterarn,
            whole,
        })
    }
}

impl Invocation<'_> {
    /// The longest user name of the rotated database.
    fn max_user(&self) -> usize {
        if self.builtin.is_mysql() {
            MAX_MYSQL_USER
        } else {
            MAX_IDENT
        }
    }

    /// Call a Secrets Manager operation as the execution role's session, in process.
    async fn call(&self, op: &str, body: Value) -> Result<Value, String> {
        let body = body.to_string().into_bytes();
        let mut head = RequestHead {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: vec![
                (
                    "host".into(),
                    format!("secretsmanager.{}.amazonaws.com", self.region),
                ),
                ("content-type".into(), "application/x-amz-json-1.1".into()),
                ("x-amz-target".into(), format!("secretsmanager.{op}")),
                (
                    "x-amz-security-token".into(),
                    self.creds.session_token.clone(),
                ),
                (
                    "user-agent".into(),
                    format!("strongroom-builtin-rotation/{}", self.function.name),
                ),
            ],
        };
        let secret = crate::auth::SecretAccessKey::new(self.creds.secret_access_key.clone());
        let now = self.pipeline.ctx.now_ms() / 1000;
        crate::auth::sigv4::sign(
            &mut head,
            &body,
            &self.creds.access_key_id,
            &secret,
            self.region,
            "secretsmanager",
            now,
        )
        .ok_or_else(|| format!("{op}: the request could not be signed"))?;
        // In process: nothing crosses a network.
        let peer = Peer {
            source_ip: None,
            secure: true,
        };
        let reply = self.pipeline.handle(head, peer, &body).await;
        let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        if reply.status == 200 {
            return Ok(v);
        }
        let code = v
            .get("__type")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .rsplit('#')
            .next()
            .unwrap_or("error")
            .to_owned();
        let message = v
            .get("message")
            .or_else(|| v.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        Err(format!(
            "{op} as the execution role failed: {code}: {message}"
        ))
    }

    /// The value of `secret`'s version `stage` (or `version` with that stage), as text;
    /// `Ok(None)` when there is none.
    async fn value(
        &self,
        secret: &str,
        stage: &str,
        version: Option<&str>,
    ) -> Result<Option<Zeroizing<String>>, String> {
        let mut body = json!({"SecretId": secret, "VersionStage": stage});
        if let Some(v) = version {
            body["VersionId"] = json!(v);
        }
        match self.call("GetSecretValue", body).await {
            Ok(v) => Ok(v
                .get("SecretString")
                .and_then(Value::as_str)
                .map(|s| Zeroizing::new(s.to_owned()))),
            Err(e) if e.contains("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// This secret's version `stage` (or `version`), parsed; missing is an error.
    async fn dict(&self, stage: &str, version: Option<&str>) -> Result<Dict, String> {
        let text = self
            .value(self.secret_arn, stage, version)
            .await?
            .ok_or_else(|| format!("the secret has no {stage} value"))?;
        Dict::parse(stage, &text, false, self.builtin.is_mysql())
    }

    fn tls(&self, d: &Dict) -> Result<Tls, String> {
        if d.ssl == Some(false) {
            if !self.function.allow_plaintext {
                return Err(format!(
                    "the {} JSON sets `ssl` to false, but this function does not allow plaintext connections (`AllowPlaintext` in a function file of kind builtin)",
                    d.label
                ));
            }
            return Ok(Tls::Disable);
        }
        Ok(match &self.function.tls_ca_file {
            Some(ca) => Tls::VerifyFull(ca.clone()),
            None => Tls::Require,
        })
    }

    async fn create(&self) -> Result<(), String> {
        let current = self.dict(AWSCURRENT, None).await?;
        if self
            .value(self.secret_arn, AWSPENDING, Some(self.token))
            .await?
            .is_some()
        {
            return Ok(());
        }
        let mut whole = current.whole.clone();
        if self.builtin.is_multi_user() {
            if current.masterarn.is_none() {
                return Err("the AWSCURRENT JSON has no `masterarn` key".into());
            }
            whole.insert(
                "username".into(),
                json!(alternate(&current.username, self.max_user())?),
            );
        }
        let exclude = self
            .function
            .environment
            .get("EXCLUDE_CHARACTERS")
            .cloned()
            .unwrap_or_else(|| EXCLUDE_CHARACTERS.to_owned());
        let length = self
            .function
            .environment
            .get("PASSWORD_LENGTH")
            .and_then(|l| l.parse().ok())
            .unwrap_or(PASSWORD_LENGTH);
        let password =
            crate::secrets::password::generate(&crate::secrets::password::PasswordSpec {
                password_length: Some(length),
                exclude_characters: Some(exclude),
                exclude_numbers: None,
                exclude_punctuation: None,
                exclude_uppercase: None,
                exclude_lowercase: None,
                include_space: None,
                require_each_included_type: None,
            })
            .map_err(|e| format!("no password could be generated: {}", e.message()))?;
        whole.insert("password".into(), json!(password.as_str()));
        let text = Zeroizing::new(Value::Object(whole).to_string());
        self.call(
            "PutSecretValue",
            json!({
                "SecretId": self.secret_arn,
                "ClientRequestToken": self.token,
                "SecretString": text.as_str(),
                "VersionStages": [AWSPENDING],
                "RotationToken": self.rotation_token,
            }),
        )
        .await
        .map(|_| ())
    }

    async fn set_single(&self) -> Result<(), String> {
        let current = self.dict(AWSCURRENT, None).await?;
        let pending = self.dict(AWSPENDING, Some(self.token)).await?;
        let previous = match self.value(self.secret_arn, AWSPREVIOUS, None).await? {
            Some(t) => Dict::parse(AWSPREVIOUS, &t, false, self.builtin.is_mysql()).ok(),
            None => None,
        };
        same_target(&current, &pending)?;
        if current.username != pending.username {
            return Err("the AWSPENDING `username` differs from the AWSCURRENT one".into());
        }
        let tls_current = self.tls(&current)?;
        let tls_pending = self.tls(&pending)?;
        // The previous version is used as it is (its own host, port, database and user), as
        // AWS's template does, and only when it names the current version's host and user:
        // its password never goes to a server that a later version (written by anyone who
        // may put a value) names. Its TLS is the current version's, as in the template, but
        // plaintext only when both versions opt out of TLS.
        let previous = match previous {
            Some(p) if p.host == current.host && p.username == current.username => {
                let tls = if p.ssl == Some(false) {
                    tls_current.clone()
                } else {
                    self.tls(&p)?
                };
                Some((p, tls))
            }
            _ => None,
        };
        let mysql = self.builtin.is_mysql();
        blocking(move || {
            if Db::connect(mysql, &pending.login(&tls_pending)).is_ok() {
                return Ok(());
            }
            let mut conn = match Db::connect(mysql, &current.login(&tls_current)) {
                Ok(c) => c,
                Err(first) => {
                    // The previous password (the user may not have been changed by a
                    // rotation that failed later).
                    let (prev, tls_previous) = previous.ok_or_else(|| {
                        format!("could not log in with the AWSCURRENT credentials: {first}")
                    })?;
                    Db::connect(mysql, &prev.login(&tls_previous)).map_err(|second| {
                        format!("could not log in with the AWSCURRENT credentials ({first}) nor with the AWSPREVIOUS ones ({second})")
                    })?
                }
            };
            conn.alter_password(&pending.username, &pending.password)
        })
        .await
    }

    async fn set_multi(&self) -> Result<(), String> {
        let current = self.dict(AWSCURRENT, None).await?;
        let pending = self.dict(AWSPENDING, Some(self.token)).await?;
        same_target(&current, &pending)?;
        if pending.username != alternate(&current.username, self.max_user())? {
            return Err(
                "the AWSPENDING `username` is not the alternate of the AWSCURRENT one".into(),
            );
        }
        let masterarn = current
            .masterarn
            .clone()
            .ok_or("the AWSCURRENT JSON has no `masterarn` key")?;
        let tls_current = self.tls(&current)?;
        let tls_pending = self.tls(&pending)?;
        let master_text = self
            .value(&masterarn, AWSCURRENT, None)
            .await?
            .ok_or("the master secret (`masterarn`) has no AWSCURRENT value")?;
        let mysql = self.builtin.is_mysql();
        let mut master = Dict::parse("master secret's AWSCURRENT", &master_text, true, mysql)?;
        // Same host and port: the current credentials were just checked on the server the
        // master logs in to (another port of one host is another server, e.g. a second
        // PostgreSQL cluster, whose master must not create or grant users for this secret).
        if master.host != current.host || master.port != current.port {
            return Err(
                "the master secret's `host`/`port` differ from this secret's: the master password is used only on its own server".into(),
            );
        }
        master.dbname.clone_from(&current.dbname);
        let tls_master = self.tls(&master)?;
        blocking(move || {
            if Db::connect(mysql, &pending.login(&tls_pending)).is_ok() {
                return Ok(());
            }
            // The current credentials must work: a secret pointing elsewhere is not rotated.
            Db::connect(mysql, &current.login(&tls_current))
                .map_err(|e| format!("could not log in with the AWSCURRENT credentials: {e}"))?;
            let conn = Db::connect(mysql, &master.login(&tls_master))
                .map_err(|e| format!("could not log in as the master user: {e}"))?;
            let mut conn = match conn {
                Db::Pg(c) => c,
                Db::My(mut c) => {
                    // AWS's template: the current user's grants, replayed onto the pending one.
                    return c.sync_clone(&current.username, &pending.username, &pending.password);
                }
            };
            let base = current
                .username
                .strip_suffix(CLONE_SUFFIX)
                .unwrap_or(&current.username)
                .to_owned();
            conn.sync_clone(&base, &pending.username, &pending.password)
        })
        .await
    }

    async fn finish(&self, described: &Value) -> Result<(), String> {
        let current = described
            .get("VersionIdsToStages")
            .and_then(Value::as_object)
            .and_then(|m| {
                m.iter().find_map(|(v, s)| {
                    s.as_array()
                        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(AWSCURRENT)))
                        .then(|| v.clone())
                })
            });
        if current.as_deref() == Some(self.token) {
            return Ok(());
        }
        let mut body = json!({
            "SecretId": self.secret_arn,
            "VersionStage": AWSCURRENT,
            "MoveToVersionId": self.token,
        });
        if let Some(c) = current {
            body["RemoveFromVersionId"] = json!(c);
        }
        self.call("UpdateSecretVersionStage", body)
            .await
            .map(|_| ())
    }
}

/// The pending version must point at the current version's server (the templates' guard
/// against a secret made to send credentials elsewhere).
fn same_target(current: &Dict, pending: &Dict) -> Result<(), String> {
    if current.host != pending.host || current.port != pending.port {
        return Err("the AWSPENDING `host`/`port` differ from the AWSCURRENT ones".into());
    }
    Ok(())
}

/// The alternating user's name: `name` ↔ `name_clone`, at most `max` bytes long.
fn alternate(username: &str, max: usize) -> Result<String, String> {
    let next = match username.strip_suffix(CLONE_SUFFIX) {
        Some(base) => base.to_owned(),
        None => format!("{username}{CLONE_SUFFIX}"),
    };
    if next.len() > max {
        return Err(format!(
            "the alternate of the `username` would be longer than {max} bytes"
        ));
    }
    Ok(next)
}

/// Debug builds only: wait 60 s inside `step` when `STRONGROOM_DEBUG_BUILTIN_PAUSE` names it,
/// so that `tests/crash/rotation_crash.py` can kill the server inside the steps that make no
/// database call it could hold up (createSecret and finishSecret; it holds setSecret's
/// `ALTER USER` with a lock and testSecret's login with a proxy instead).
#[cfg(debug_assertions)]
async fn debug_pause(step: &str) {
    if std::env::var("STRONGROOM_DEBUG_BUILTIN_PAUSE").is_ok_and(|s| s == step) {
        tracing::warn!(
            "built-in rotation: pausing 60 s in {step} (STRONGROOM_DEBUG_BUILTIN_PAUSE)"
        );
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }
}

/// Run `f` (blocking database work) on a thread of its own.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("rotation-database".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("could not start a thread for the database: {e}"))?;
    rx.await
        .unwrap_or_else(|_| Err("the database worker stopped".into()))
}

#[cfg(test)]
mod tests {
    use super::{alternate, Dict};

    #[test]
    fn alternates_and_limits() {
        assert_eq!(alternate("app", 63).unwrap(), "app_clone");
        assert_eq!(alternate("app_clone", 63).unwrap(), "app");
        assert!(alternate(&"a".repeat(60), 63).is_err());
        assert!(alternate(&"a".repeat(27), 32).is_err());
    }

    #[test]
    fn errors_name_keys_never_values() {
        let e = Dict::parse(
            "AWSCURRENT",
            r#"{"engine":"postgres","username":"u","password":"hunter22"}"#,
            false,
            false,
        )
        .unwrap_err();
        assert!(e.contains("`host`"), "{e}");
        assert!(!e.contains("hunter22"));
        let e = Dict::parse(
            "AWSCURRENT",
            r#"{"engine":"mysql","host":"h","username":"u","password":"hunter22"}"#,
            false,
            false,
        )
        .unwrap_err();
        assert!(
            e.contains("`engine`") && !e.contains("mysql") && !e.contains("hunter22"),
            "{e}"
        );
        let d = Dict::parse(
            "AWSCURRENT",
            r#"{"engine":"postgres","host":"h","port":"5433","username":"u","password":"p"}"#,
            false,
            false,
        )
        .unwrap();
        assert_eq!((d.port, d.dbname.as_str(), d.ssl), (5433, "postgres", None));
        let e = Dict::parse(
            "AWSCURRENT",
            r#"{"engine":"postgres","host":"/var/run/postgresql","username":"u","password":"p"}"#,
            false,
            false,
        )
        .unwrap_err();
        assert!(e.contains("Unix socket"), "{e}");
    }
}
