//! Strongroom as its applications' client: the caching agent (`strongroom agent`),
//! environment injection at process start (`strongroom exec`) and the operator's rotation
//! rollback (`strongroom rotation rollback`). Both call a Strongroom server
//! (or AWS) through the official AWS SDK for Rust, signed with the standard credential chain.

pub mod agent;
pub mod cache;
pub mod exec;
pub mod rollback;

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use zeroize::Zeroizing;

/// Where the client sends its calls: flags over the SDK's own configuration.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EndpointArgs {
    /// The Strongroom endpoint (`https://secrets.example.internal:8443`). Without it the SDK's
    /// configuration decides: `AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_ENDPOINT_URL`, or the
    /// profile's `endpoint_url`.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// The region to call. Without it the SDK's chain decides (`AWS_REGION`, the profile).
    #[arg(long)]
    pub region: Option<String>,
}

/// The SDK configuration from the standard chain (environment, shared config and credentials
/// files, web identity token file), with `args` over it.
pub async fn sdk_config(args: &EndpointArgs) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client());
    if let Some(r) = &args.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some(e) = &args.endpoint_url {
        loader = loader.endpoint_url(e.clone());
    }
    loader.load().await
}

/// The SDK's HTTP client: HTTPS (and plain HTTP) over rustls with the ring provider, trusting
/// the platform's roots, as the SDK's default client does with aws-lc-rs.
pub fn https_client() -> aws_sdk_secretsmanager::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// A Secrets Manager client for `conf`; Err when no region is configured (the SDK would fail
/// every call with a less helpful message).
pub fn secrets_client(
    conf: &aws_config::SdkConfig,
) -> Result<aws_sdk_secretsmanager::Client, String> {
    if conf.region().is_none() {
        return Err("no region: give --region or set AWS_REGION (or a profile's region)".into());
    }
    Ok(aws_sdk_secretsmanager::Client::new(conf))
}

/// One GetSecretValue call's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRequest {
    pub secret_id: String,
    pub version_id: Option<String>,
    pub version_stage: Option<String>,
}

/// A failed GetSecretValue, as the agent answers it: the HTTP status, the error code and its
/// message (from the server; never a secret value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl CallError {
    /// A network failure or a timeout: the agent may serve a stale entry instead.
    pub fn is_transient(&self) -> bool {
        self.status >= 500 || self.code == "ThrottlingException"
    }

    /// The error body AWS's agent answers: `{"__type": CODE, "message": MESSAGE}`, or only the
    /// type for an internal failure.
    pub fn body(&self) -> String {
        if self.message.is_empty() || self.code == "InternalFailure" {
            return serde_json::json!({ "__type": "InternalFailure" }).to_string();
        }
        serde_json::json!({ "__type": self.code, "message": self.message }).to_string()
    }

    fn internal() -> Self {
        Self {
            status: 500,
            code: "InternalFailure".into(),
            message: String::new(),
        }
    }
}

/// Map an SDK error as AWS's agent does: a service error keeps its status, code and message;
/// a timeout is 504, a connection or response failure 502, anything else 500.
pub fn call_error(e: &SdkError<GetSecretValueError, HttpResponse>) -> CallError {
    let timeout = || CallError {
        status: 504,
        code: "TimeoutError".into(),
        message: "Timeout".into(),
    };
    let connection = |message: &str| CallError {
        status: 502,
        code: "ConnectionError".into(),
        message: message.into(),
    };
    match e {
        SdkError::ServiceError(se) => CallError {
            status: se.raw().status().as_u16(),
            code: se.err().code().unwrap_or("InternalFailure").to_owned(),
            message: se.err().message().unwrap_or_default().to_owned(),
        },
        SdkError::TimeoutError(_) => timeout(),
        SdkError::DispatchFailure(d) if d.is_timeout() => timeout(),
        SdkError::DispatchFailure(_) => connection("Read Error"),
        SdkError::ResponseError(_) => connection("Response Error"),
        _ => CallError::internal(),
    }
}

/// Call GetSecretValue. The output's SecretString moves into a zeroizing string.
pub async fn get_secret_value(
    client: &aws_sdk_secretsmanager::Client,
    req: &SecretRequest,
) -> Result<Fetched, CallError> {
    let out = client
        .get_secret_value()
        .secret_id(&req.secret_id)
        .set_version_id(req.version_id.clone())
        .set_version_stage(req.version_stage.clone())
        .send()
        .await
        .map_err(|e| call_error(&e))?;
    Ok(Fetched::from_output(out))
}

/// A GetSecretValue answer held in memory: the value in zeroizing types.
#[derive(Debug)]
pub struct Fetched {
    pub arn: Option<String>,
    pub name: Option<String>,
    pub version_id: Option<String>,
    pub secret_string: Option<Zeroizing<String>>,
    pub secret_binary: Option<Zeroizing<Vec<u8>>>,
    pub version_stages: Vec<String>,
    /// Seconds since the epoch, with milliseconds.
    pub created_date: Option<f64>,
}

impl Fetched {
    fn from_output(mut out: GetSecretValueOutput) -> Self {
        Self {
            arn: out.arn.take(),
            name: out.name.take(),
            version_id: out.version_id.take(),
            secret_string: out.secret_string.take().map(Zeroizing::new),
            secret_binary: out
                .secret_binary
                .take()
                .map(|b| Zeroizing::new(b.into_inner())),
            version_stages: out.version_stages.take().unwrap_or_default(),
            created_date: out.created_date.map(|d| d.as_secs_f64()),
        }
    }

    /// GetSecretValue's JSON, as AWS's agent answers it (SecretBinary base64-encoded), in a
    /// zeroizing buffer sized up front so that serialization does not leave copies behind.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        use base64::Engine as _;
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Out<'a> {
            #[serde(rename = "ARN", skip_serializing_if = "Option::is_none")]
            arn: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            name: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            version_id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            secret_string: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            secret_binary: Option<&'a str>,
            version_stages: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            created_date: Option<f64>,
        }
        let binary = self.secret_binary.as_ref().map(|b| {
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(b.as_slice()))
        });
        let value_len = self.secret_string.as_ref().map_or(0, |s| s.len())
            + binary.as_ref().map_or(0, |s| s.len());
        // JSON escaping grows a value at most sixfold (\u00XX).
        let mut buf = Zeroizing::new(Vec::with_capacity(value_len * 6 + 1024));
        let out = Out {
            arn: self.arn.as_deref(),
            name: self.name.as_deref(),
            version_id: self.version_id.as_deref(),
            secret_string: self.secret_string.as_ref().map(|s| s.as_str()),
            secret_binary: binary.as_ref().map(|s| s.as_str()),
            version_stages: &self.version_stages,
            created_date: self.created_date,
        };
        if serde_json::to_writer(&mut *buf, &out).is_err() {
            buf.clear();
        }
        buf
    }
}
