//! `strongroom rotation rollback SECRET`: restore the secret's previous value, as a client of
//! the server's API signed with the caller's own credentials (the standard chain), so that
//! policies apply and the trail records the operator's `UpdateSecretVersionStage`.
//!
//! AWSCURRENT moves to the AWSPREVIOUS version (AWSPREVIOUS then follows to the version that
//! was current: the move AWS documents for a rollback). While a rotation is in progress or
//! failed (AWSPENDING on a version other than AWSCURRENT) the rollback is refused, naming the
//! commands that stop the rotation: a rollback racing a rotation's finishSecret would leave
//! either value current.

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::EndpointArgs;

/// `strongroom rotation rollback` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RollbackArgs {
    /// The secret's name or ARN.
    #[arg(value_name = "SECRET")]
    pub secret: String,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RolledBack {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    /// The version now AWSCURRENT (AWSPREVIOUS before).
    pub current_version_id: String,
    /// The version now AWSPREVIOUS (AWSCURRENT before).
    pub previous_version_id: String,
}

/// Run the command: the outcome as one JSON line, or why nothing changed.
pub fn run(args: &RollbackArgs) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the client runtime: {e}"))?;
    let done = rt.block_on(async {
        let conf = super::sdk_config(&args.endpoint).await;
        let client = super::secrets_client(&conf)?;
        rollback(&client, &args.secret).await
    })?;
    serde_json::to_string(&done).map_err(|e| e.to_string())
}

fn call_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    op: &str,
    e: &SdkError<E, R>,
) -> String {
    match e {
        SdkError::ServiceError(se) => format!(
            "{op}: {}: {}",
            se.err().code().unwrap_or("error"),
            se.err().message().unwrap_or_default()
        ),
        other => format!("{op}: {}", DisplayErrorContext(other)),
    }
}

/// Move AWSCURRENT back to the AWSPREVIOUS version of `secret`.
pub async fn rollback(
    client: &aws_sdk_secretsmanager::Client,
    secret: &str,
) -> Result<RolledBack, String> {
    let d = client
        .describe_secret()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| call_error("DescribeSecret", &e))?;
    let arn = d.arn().unwrap_or(secret).to_owned();
    let name = d.name().unwrap_or(secret).to_owned();
    let with = |label: &str| {
        let mut found: Vec<&String> = d
            .version_ids_to_stages()
            .into_iter()
            .flatten()
            .filter(|(_, stages)| stages.iter().any(|s| s == label))
            .map(|(v, _)| v)
            .collect();
        found.sort();
        found.first().map(|v| (*v).clone())
    };
    let current = with("AWSCURRENT")
        .ok_or_else(|| format!("{name} has no AWSCURRENT version: nothing to roll back"))?;
    if let Some(pending) = with("AWSPENDING").filter(|p| *p != current) {
        return Err(format!(
            "a rotation of {name} is in progress or failed (AWSPENDING is on version {pending}); nothing changed. \
             Wait for it to end, or stop it first: `aws secretsmanager cancel-rotate-secret --secret-id {arn}`, \
             then `aws secretsmanager update-secret-version-stage --secret-id {arn} --version-stage AWSPENDING --remove-from-version-id {pending}`"
        ));
    }
    let previous = with("AWSPREVIOUS").ok_or_else(|| {
        format!("{name} has no AWSPREVIOUS version to roll back to; nothing changed")
    })?;
    client
        .update_secret_version_stage()
        .secret_id(&arn)
        .version_stage("AWSCURRENT")
        .move_to_version_id(&previous)
        .remove_from_version_id(&current)
        .send()
        .await
        .map_err(|e| call_error("UpdateSecretVersionStage", &e))?;
    Ok(RolledBack {
        arn,
        name,
        current_version_id: previous,
        previous_version_id: current,
    })
}
