//! LookupEvents: the audit trail through CloudTrail's own API, so `aws cloudtrail
//! lookup-events` works against Strongroom.
//!
//! Scope: the events whose `recipientAccountId` is the caller's account and whose
//! `awsRegion` is the region the call is made in (what CloudTrail shows an account in a
//! region). Unauthenticated requests have no account and are visible only to
//! `strongroom audit query`. Newest first; `NextToken` is a keyset cursor bound to the
//! query it came from.
//!
//! A record of a call on another account's resource (a shared secret or key) shows its
//! caller's account no `authorization` details: which policy of the owner decided, its
//! statement, or an explicit deny where a missing resource gives an implicit one would tell
//! what the refusal's answer does not (that the resource exists, what its policies or tags
//! say). The stored record keeps them (`strongroom audit query`).

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::super::{epoch_seconds, Authorized, Ctx, Operation, Target, Targeted};
use crate::error::ApiError;
use crate::store::rows::{AuditFilter, AuditRow};

/// One lookup attribute.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupAttribute {
    pub attribute_key: Option<String>,
    pub attribute_value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Input {
    #[serde(default)]
    pub lookup_attributes: Vec<LookupAttribute>,
    pub start_time: Option<f64>,
    pub end_time: Option<f64>,
    pub event_category: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

impl Targeted for Input {
    fn target(&self) -> Target {
        Target::Any
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resource {
    pub resource_type: String,
    pub resource_name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    pub event_id: String,
    pub event_name: String,
    pub read_only: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    pub event_time: f64,
    pub event_source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub resources: Vec<Resource>,
    pub cloud_trail_event: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Output {
    pub events: Vec<Event>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

const KEYS: &[&str] = &[
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
];

/// `InvalidLookupAttributesException`.
fn invalid_attributes(msg: &str) -> ApiError {
    ApiError::InvalidLookupAttributes(msg.to_owned())
}

fn ms(seconds: f64) -> Result<i64, ApiError> {
    let v = (seconds * 1000.0).floor();
    if !v.is_finite() || v.abs() > 9.0e15 {
        return Err(ApiError::InvalidTimeRange(
            "Occurs if the timestamp values are invalid. Either the start time occurs after the end time or the time range is outside the range of possible values."
                .into(),
        ));
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::as_conversions,
        reason = "finite and range checked above"
    )]
    Ok(v as i64)
}

/// What the NextToken carries: the last event returned and the query it belongs to.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    t: i64,
    c: String,
    s: i64,
    q: String,
}

fn fingerprint(account: &str, region: &str, input: &Input) -> String {
    let mut h = Sha256::new();
    h.update(account.as_bytes());
    h.update(b"\0");
    h.update(region.as_bytes());
    for a in &input.lookup_attributes {
        h.update(b"\0");
        h.update(a.attribute_key.as_deref().unwrap_or_default().as_bytes());
        h.update(b"\0");
        h.update(a.attribute_value.as_deref().unwrap_or_default().as_bytes());
    }
    h.update(format!("\0{:?}\0{:?}", input.start_time, input.end_time).as_bytes());
    hex::encode(h.finalize()).chars().take(16).collect()
}

fn bad_token() -> ApiError {
    ApiError::InvalidNextToken("A token you provided is not valid.".into())
}

fn decode_cursor(token: &str, want_q: &str) -> Result<(i64, String, i64), ApiError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad_token())?;
    let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad_token())?;
    if c.q != want_q {
        return Err(bad_token());
    }
    Ok((c.t, c.c, c.s))
}

fn encode_cursor((t, chain, seq): &(i64, String, i64), q: &str) -> String {
    let c = Cursor {
        t: *t,
        c: chain.clone(),
        s: *seq,
        q: q.to_owned(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&c).unwrap_or_default())
}

/// Put the one lookup attribute into the filter.
fn apply_attribute(f: &mut AuditFilter, a: &LookupAttribute) -> Result<(), ApiError> {
    let key = a.attribute_key.as_deref().unwrap_or_default();
    let value = a.attribute_value.clone().unwrap_or_default();
    match key {
        "EventId" => f.event_id = Some(value),
        "EventName" => f.event_name = Some(value),
        "ReadOnly" => {
            f.read_only = Some(match value.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(invalid_attributes("ReadOnly must be `true` or `false`.")),
            });
        }
        "Username" => f.user_name = Some(value),
        "ResourceType" => f.resource_type = Some(value),
        "ResourceName" => f.resource_name = Some(value),
        "EventSource" => f.event_source = Some(value),
        "AccessKeyId" => f.access_key_id = Some(value),
        _ => return Err(invalid_attributes("The attribute key is not valid.")),
    }
    Ok(())
}

/// `record` as the account `reader` may see it: the `authorization` fields emptied when a
/// resource of the record belongs to another account.
fn for_reader(record: String, reader: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&record) else {
        return record;
    };
    let foreign = v["resources"].as_array().is_some_and(|resources| {
        resources.iter().any(|r| {
            r["accountId"]
                .as_str()
                .is_some_and(|a| !a.is_empty() && a != reader)
        })
    });
    if !foreign {
        return record;
    }
    if let Some(serde_json::Value::Object(a)) = v.get_mut("authorization") {
        for field in a.values_mut() {
            *field = serde_json::Value::Null;
        }
    }
    serde_json::to_string(&v).unwrap_or(record)
}

fn event_of(r: AuditRow, reader: &str) -> Event {
    Event {
        event_id: r.event_id,
        event_name: r.event_name,
        read_only: r.read_only.unwrap_or(false).to_string(),
        access_key_id: r.access_key_id,
        event_time: epoch_seconds(r.event_time),
        event_source: r.event_source.unwrap_or_default(),
        username: r.user_name,
        resources: match (r.resource_type, r.resource_arn) {
            (Some(t), Some(n)) => vec![Resource {
                resource_type: t,
                resource_name: n,
            }],
            _ => vec![],
        },
        cloud_trail_event: for_reader(r.record, reader),
    }
}

/// The most records one call reads looking for its region's: a call that reads this many
/// without filling its page answers what it found and a token for where it stopped, as
/// CloudTrail may answer a short or empty page with a `NextToken`.
const MAX_SCANNED: usize = 10_000;

/// The region a record was made in (its `awsRegion`).
fn record_region(record: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Region {
        #[serde(rename = "awsRegion")]
        aws_region: Option<String>,
    }
    serde_json::from_str::<Region>(record)
        .ok()
        .and_then(|r| r.aws_region)
}

/// The newest `limit` records `f` selects that were made in `region`, and the position to
/// continue from when more may follow. The store's columns do not hold the region, so the
/// records are read in batches (the first one the page's size) and the others' skipped.
async fn regional_page(
    ctx: &Ctx,
    mut f: AuditFilter,
    region: &str,
    limit: usize,
) -> Result<(Vec<AuditRow>, Option<(i64, String, i64)>), ApiError> {
    let mut page: Vec<AuditRow> = Vec::new();
    let mut scanned = 0_usize;
    let mut batch = limit.saturating_add(1);
    loop {
        f.limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let rows = ctx.store.query_audit(f.clone()).await?;
        let exhausted = rows.len() < batch;
        scanned = scanned.saturating_add(rows.len());
        for r in rows {
            f.before = Some((r.event_time, r.chain_id.clone(), r.seq));
            if record_region(&r.record).as_deref() != Some(region) {
                continue;
            }
            if page.len() >= limit {
                // One more follows: the next page starts after this page's last.
                let last = page
                    .last()
                    .map(|l| (l.event_time, l.chain_id.clone(), l.seq));
                return Ok((page, last));
            }
            page.push(r);
        }
        if exhausted {
            return Ok((page, None));
        }
        if scanned >= MAX_SCANNED {
            return Ok((page, f.before));
        }
        batch = batch.saturating_mul(2).min(1_000);
    }
}

#[derive(Debug)]
pub struct LookupEvents;

impl Operation for LookupEvents {
    type Input = Input;
    type Output = Output;
    const NAME: &'static str = "LookupEvents";
    const ACTION: &'static str = "cloudtrail:LookupEvents";
    const READ_ONLY: bool = true;

    fn validate(input: &Input) -> Result<(), ApiError> {
        if input.lookup_attributes.len() > 1 {
            return Err(invalid_attributes(
                "You can specify only one lookup attribute.",
            ));
        }
        for a in &input.lookup_attributes {
            let key = a.attribute_key.as_deref().unwrap_or_default();
            if !KEYS.contains(&key) {
                return Err(invalid_attributes(&format!(
                    "The attribute key `{}` is not valid.",
                    key.chars().take(64).collect::<String>()
                )));
            }
            let n = a
                .attribute_value
                .as_deref()
                .map_or(0, |v| v.chars().count());
            if !(1..=2000).contains(&n) {
                return Err(invalid_attributes(
                    "The attribute value must be 1 to 2000 characters long.",
                ));
            }
        }
        if let Some(m) = input.max_results {
            if !(1..=50).contains(&m) {
                return Err(ApiError::InvalidMaxResults(
                    "Value for MaxResults must be between 1 and 50.".into(),
                ));
            }
        }
        if let (Some(s), Some(e)) = (input.start_time, input.end_time) {
            if s > e {
                return Err(ApiError::InvalidTimeRange(
                    "Start time must be before end time.".into(),
                ));
            }
        }
        ms(input.start_time.unwrap_or(0.0))?;
        ms(input.end_time.unwrap_or(0.0))?;
        Ok(())
    }

    async fn handle(ctx: &Ctx, auth: &Authorized, input: Input) -> Result<Output, ApiError> {
        if input
            .event_category
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("insight"))
        {
            // No Insights events are produced.
            return Ok(Output {
                events: vec![],
                next_token: None,
            });
        }
        let account = auth.principal.account_id.clone();
        let region = auth.scope.region.clone();
        let q = fingerprint(&account, &region, &input);
        let limit = usize::try_from(input.max_results.unwrap_or(50)).unwrap_or(50);
        let mut f = AuditFilter {
            account_id: Some(account),
            since_ms: input.start_time.map(ms).transpose()?,
            until_ms: input.end_time.map(ms).transpose()?,
            before: input
                .next_token
                .as_deref()
                .map(|t| decode_cursor(t, &q))
                .transpose()?,
            ..AuditFilter::default()
        };
        if let Some(a) = input.lookup_attributes.first() {
            apply_attribute(&mut f, a)?;
        }
        let (rows, next) = regional_page(ctx, f, &region, limit).await?;
        let next_token = next.map(|p| encode_cursor(&p, &q));
        Ok(Output {
            events: rows
                .into_iter()
                .map(|r| event_of(r, &auth.principal.account_id))
                .collect(),
            next_token,
        })
    }
}
