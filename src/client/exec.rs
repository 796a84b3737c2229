//! `strongroom exec`: resolve secret references into environment variables, then replace this
//! process with the command (so signals sent to the pid reach the command itself). A value is
//! never written to disk or to this process's output; a reference that does not resolve stops
//! everything before the command starts, naming the reference.

use std::collections::{HashMap, HashSet};
use std::os::unix::process::CommandExt;

use zeroize::Zeroizing;

use super::{EndpointArgs, SecretRequest};

/// `strongroom exec` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// `NAME=REFERENCE`: set NAME to the referenced value. REFERENCE is ECS's `valueFrom`:
    /// `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX[:JSON-KEY[:VERSION-STAGE[:VERSION-ID]]]`,
    /// or a secret name with the same optional fields: `prod/db`, `prod/db:password`,
    /// `prod/db:password:AWSPREVIOUS`. Repeat for each variable.
    #[arg(long = "env", value_name = "NAME=REFERENCE", required = true)]
    pub env: Vec<String>,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// A parsed reference: which secret version to read and, optionally, one key of its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub request: SecretRequest,
    pub json_key: Option<String>,
}

/// Parse a reference in ECS's `valueFrom` syntax. Secret names cannot contain `:`, so the
/// fields after the ARN's seven (or after a plain name) are the JSON key, the version stage
/// and the version id, each optional (empty when a later one is given).
pub fn parse_reference(reference: &str) -> Result<Reference, String> {
    let fields: Vec<&str> = reference.split(':').collect();
    let (id, rest) = if reference.starts_with("arn:") {
        let is_secret_arn = fields.len() >= 7
            && fields.get(2) == Some(&"secretsmanager")
            && fields.get(5) == Some(&"secret");
        if !is_secret_arn {
            return Err(format!(
                "`{reference}` is not a Secrets Manager secret ARN \
                 (arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME)"
            ));
        }
        (fields[..7].join(":"), &fields[7..])
    } else {
        (fields[0].to_owned(), &fields[1..])
    };
    if id.is_empty() || id.ends_with(':') {
        return Err(format!("`{reference}` names no secret"));
    }
    if rest.len() > 3 {
        return Err(format!(
            "`{reference}` has too many fields (after the secret: JSON-KEY:VERSION-STAGE:VERSION-ID)"
        ));
    }
    let field = |i: usize| {
        rest.get(i)
            .filter(|s| !s.is_empty())
            .map(|s| (*s).to_owned())
    };
    Ok(Reference {
        request: SecretRequest {
            secret_id: id,
            version_stage: field(1),
            version_id: field(2),
        },
        json_key: field(0),
    })
}

/// Parse every `NAME=REFERENCE`; Err names the first bad one.
pub fn parse_env(specs: &[String]) -> Result<Vec<(String, Reference)>, String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let Some((name, reference)) = spec.split_once('=') else {
            return Err(format!("--env `{spec}`: expected NAME=REFERENCE"));
        };
        if name.is_empty() || name.contains('\0') {
            return Err(format!(
                "--env `{spec}`: the variable name is empty or invalid"
            ));
        }
        if !seen.insert(name.to_owned()) {
            return Err(format!("--env: `{name}` is given more than once"));
        }
        let r = parse_reference(reference).map_err(|e| format!("--env {name}: {e}"))?;
        out.push((name.to_owned(), r));
    }
    Ok(out)
}

/// The value `r` selects from a fetched secret: its SecretString, or one key of it as JSON
/// (a string as itself, any other JSON value as its JSON text). Errors name the reference's
/// secret and key, never a value.
pub fn select(r: &Reference, fetched: &super::Fetched) -> Result<Zeroizing<String>, String> {
    let id = &r.request.secret_id;
    let Some(s) = fetched.secret_string.as_ref() else {
        return Err(format!(
            "secret `{id}` has no SecretString (a binary secret cannot be an environment \
             variable)"
        ));
    };
    let Some(key) = &r.json_key else {
        if s.contains('\0') {
            return Err(format!("secret `{id}` contains a NUL character"));
        }
        return Ok(s.clone());
    };
    // The parsed document is not zeroized (serde_json's types are not); it lives only until
    // this function returns.
    let doc: serde_json::Value = serde_json::from_str(s)
        .map_err(|_| format!("secret `{id}` is not a JSON object, so it has no key `{key}`"))?;
    let Some(obj) = doc.as_object() else {
        return Err(format!(
            "secret `{id}` is not a JSON object, so it has no key `{key}`"
        ));
    };
    let Some(v) = obj.get(key) else {
        return Err(format!("secret `{id}` has no JSON key `{key}`"));
    };
    let value = Zeroizing::new(match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    if value.contains('\0') {
        return Err(format!(
            "the JSON key `{key}` of secret `{id}` contains a NUL character"
        ));
    }
    Ok(value)
}

/// Resolve every variable (each secret version fetched once), then exec the command. Returns
/// only on failure: the message to print and the exit status (1 when a reference did not
/// resolve, 126 when the command could not be run, 127 when it was not found, as shells do).
pub fn run(args: &ExecArgs) -> (String, u8) {
    match prepare(args) {
        Ok(mut cmd) => {
            // `exec` returns only when the command could not be started.
            let err = cmd.exec();
            let status = if err.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            (
                format!("cannot run `{}`: {err}", args.command.join(" ")),
                status,
            )
        }
        Err(e) => (e, 1),
    }
}

/// Resolve the variables into the command to exec.
fn prepare(args: &ExecArgs) -> Result<std::process::Command, String> {
    let vars = parse_env(&args.env)?;
    let Some((program, rest)) = args.command.split_first() else {
        return Err("no command given (put it after --)".into());
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the client runtime: {e}"))?;
    let resolved = rt.block_on(resolve(&args.endpoint, &vars));
    // No thread of the runtime outlives it into the exec.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    let values = resolved?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    for (name, value) in &values {
        cmd.env(name, value.as_str());
    }
    Ok(cmd)
}

async fn resolve(
    endpoint: &EndpointArgs,
    vars: &[(String, Reference)],
) -> Result<Vec<(String, Zeroizing<String>)>, String> {
    let conf = super::sdk_config(endpoint).await;
    let client = super::secrets_client(&conf)?;
    let mut fetched: HashMap<SecretRequest, super::Fetched> = HashMap::new();
    let mut out = Vec::with_capacity(vars.len());
    for (name, r) in vars {
        if !fetched.contains_key(&r.request) {
            let f = super::get_secret_value(&client, &r.request)
                .await
                .map_err(|e| {
                    format!(
                        "{name}: cannot read secret `{}`: {}: {}",
                        r.request.secret_id, e.code, e.message
                    )
                })?;
            fetched.insert(r.request.clone(), f);
        }
        let Some(f) = fetched.get(&r.request) else {
            return Err(format!(
                "{name}: secret `{}` was not read",
                r.request.secret_id
            ));
        };
        let value = select(r, f).map_err(|e| format!("{name}: {e}"))?;
        out.push((name.clone(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(s: &str) -> crate::client::Fetched {
        crate::client::Fetched {
            arn: None,
            name: None,
            version_id: None,
            secret_string: Some(Zeroizing::new(s.to_owned())),
            secret_binary: None,
            version_stages: vec![],
            created_date: None,
        }
    }

    #[test]
    fn references_in_ecs_syntax() {
        let arn = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf";
        let r = parse_reference(arn).unwrap();
        assert_eq!(r.request.secret_id, arn);
        assert_eq!(r.json_key, None);
        let r = parse_reference(&format!("{arn}:password:AWSPREVIOUS:")).unwrap();
        assert_eq!(r.request.secret_id, arn);
        assert_eq!(r.json_key.as_deref(), Some("password"));
        assert_eq!(r.request.version_stage.as_deref(), Some("AWSPREVIOUS"));
        assert_eq!(r.request.version_id, None);
        let r = parse_reference(&format!("{arn}:::0123-abcd")).unwrap();
        assert_eq!(r.json_key, None);
        assert_eq!(r.request.version_stage, None);
        assert_eq!(r.request.version_id.as_deref(), Some("0123-abcd"));
        let r = parse_reference("prod/db:password").unwrap();
        assert_eq!(r.request.secret_id, "prod/db");
        assert_eq!(r.json_key.as_deref(), Some("password"));
        assert_eq!(parse_reference("prod/db").unwrap().json_key, None);
        for bad in [
            "",
            ":password",
            "arn:aws:s3:::bucket",
            "arn:aws:secretsmanager:us-east-1:1:secret",
            "prod/db:a:b:c:d",
        ] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_specs() {
        let v = parse_env(&["A=prod/db".into(), "B=prod/db:user".into()]).unwrap();
        assert_eq!(v.len(), 2);
        assert!(parse_env(&["A".into()]).is_err());
        assert!(parse_env(&["=x".into()]).is_err());
        assert!(parse_env(&["A=x".into(), "A=y".into()]).is_err());
    }

    #[test]
    fn json_keys_select_values_and_errors_name_no_value() {
        let f = fetched(r#"{"password":"hunter2","port":5432,"nested":{"a":1}}"#);
        let r = |k: &str| parse_reference(&format!("db:{k}")).unwrap();
        assert_eq!(select(&r("password"), &f).unwrap().as_str(), "hunter2");
        assert_eq!(select(&r("port"), &f).unwrap().as_str(), "5432");
        assert_eq!(select(&r("nested"), &f).unwrap().as_str(), r#"{"a":1}"#);
        let e = select(&r("user"), &f).unwrap_err();
        assert!(e.contains("`user`") && !e.contains("hunter2"), "{e}");
        let plain = fetched("hunter2-not-json");
        let e = select(&r("password"), &plain).unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let whole = parse_reference("db").unwrap();
        assert_eq!(select(&whole, &plain).unwrap().as_str(), "hunter2-not-json");
    }
}
