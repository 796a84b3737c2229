//! `strongroom audit verify | query | export | prune`.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::export::{export, prune};
use super::keys::{key_path_beside, pub_path_for, read_public, AuditKeys};
use super::verify::{verify_store, VerifyOptions};
use crate::config::{AuditCommand, StoreArgs, StoreConfig};
use crate::store::rows::{AuditFilter, AuditRow};
use crate::store::Store;

fn fail(msg: &str) -> ExitCode {
    eprintln!("strongroom: {msg}");
    ExitCode::FAILURE
}

fn open(args: &StoreArgs) -> Result<(StoreConfig, Store), String> {
    let cfg = args.resolve()?;
    let store = Store::open(&cfg.database_url).map_err(|e| e.to_string())?;
    Ok((cfg, store))
}

/// Run one audit command.
pub fn run(cmd: AuditCommand) -> ExitCode {
    let r = match cmd {
        AuditCommand::Verify {
            store,
            public_keys,
            chain,
        } => return run_verify(&store, &public_keys, chain),
        AuditCommand::Query {
            store,
            principal,
            denied,
            error_code,
            source_ip,
            secret,
            since,
            until,
            limit,
            format,
        } => {
            let filter = |since_ms, until_ms| AuditFilter {
                principal_arn: principal.clone(),
                denied_only: denied,
                error_code: error_code.clone(),
                source_ip: source_ip.clone(),
                resource_prefix: secret.clone(),
                since_ms,
                until_ms,
                limit: limit.clamp(0, 1_000_000),
                ..AuditFilter::default()
            };
            parse_time(since.as_deref(), "--since")
                .and_then(|s| Ok((s, parse_time(until.as_deref(), "--until")?)))
                .and_then(|(s, u)| {
                    let (_, st) = open(&store)?;
                    let f = filter(s, u);
                    st.query_audit_blocking(&f)
                        .map_err(|e| e.to_string())
                })
                .map(|rows| {
                    if format == "jsonl" {
                        jsonl(&rows)
                    } else {
                        table(&rows)
                    }
                })
        }
        AuditCommand::Export { store, out } => open(&store).and_then(|(_, st)| {
            let s = export(&st, &out)?;
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            Ok(format!(
                "exported {} records in {} files to {}",
                s.records,
                s.files.len(),
                out.display()
            ))
        }),
        AuditCommand::Prune {
            store,
            older_than,
            out,
        } => open(&store).and_then(|(cfg, st)| {
            let keys = AuditKeys::load_or_create(&key_path_beside(&cfg.master_key_file))?;
            let now = crate::ops::system_now_ms();
            let cutoff = now - i64::from(older_than) * 86_400_000;
            let s = prune(&st, &keys, &out, cutoff, now)?;
            let mut msg = format!(
                "exported {} records in {} files to {}",
                s.export.records,
                s.export.files.len(),
                out.display()
            );
            for (chain, through, n) in &s.pruned {
                let _ = write!(
                    msg,
                    "\nchain {chain}: pruned {n} records (through seq {through}) under a signed anchor"
                );
            }
            for why in &s.skipped {
                let _ = write!(msg, "\n{why}");
            }
            Ok(msg)
        }),
    };
    match r {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn parse_time(s: Option<&str>, flag: &str) -> Result<Option<i64>, String> {
    s.map(|t| {
        super::record::parse_rfc3339_ms(t)
            .ok_or_else(|| format!("{flag}: `{t}` is not an RFC 3339 time"))
    })
    .transpose()
}

fn run_verify(
    args: &StoreArgs,
    public_keys: &[std::path::PathBuf],
    chain: Option<String>,
) -> ExitCode {
    let (cfg, store) = match open(args) {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    let mut trusted = Vec::new();
    if public_keys.is_empty() {
        let p = pub_path_for(&key_path_beside(&cfg.master_key_file));
        if p.exists() {
            match read_public(&p) {
                Ok(k) => trusted.push(k),
                Err(e) => return fail(&e),
            }
        }
    }
    for p in public_keys {
        match read_public(p) {
            Ok(k) => trusted.push(k),
            Err(e) => return fail(&e),
        }
    }
    if trusted.is_empty() {
        eprintln!(
            "warning: no audit public key found; digests are checked against the key they name only"
        );
    }
    let report = match verify_store(
        &store,
        &VerifyOptions {
            trusted_keys: trusted,
            chain,
        },
    ) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    for c in &report.chains {
        let range = match (c.first_seq, c.last_seq) {
            (Some(a), Some(b)) => format!("seq {a}..={b}"),
            _ => "no records".to_owned(),
        };
        let mut line = format!(
            "chain {}: {} records ({range}), {} digests",
            c.chain_id, c.records, c.digests
        );
        if let Some(s) = c.signed_through {
            let _ = write!(line, ", signed through {s}");
        }
        if let Some(p) = c.pruned_through {
            let _ = write!(line, ", pruned through {p}");
        }
        line.push_str(if c.finding.is_some() {
            ": FAILED"
        } else {
            ": ok"
        });
        println!("{line}");
        if c.finding.is_none() {
            match (c.last_seq, c.signed_through) {
                (Some(l), Some(s)) if l > s => println!(
                    "  note: records {}..={l} are not yet covered by a signed digest",
                    s + 1
                ),
                (Some(_), None) => {
                    println!("  note: no signed digest; a cut tail would not be noticed");
                }
                _ => {}
            }
        }
    }
    match report.first_finding() {
        Some(f) => {
            eprintln!("audit verification FAILED: {f}");
            ExitCode::FAILURE
        }
        None => {
            println!("audit verified: {} records", report.records());
            ExitCode::SUCCESS
        }
    }
}

fn jsonl(rows: &[AuditRow]) -> String {
    rows.iter()
        .map(|r| r.record.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn table(rows: &[AuditRow]) -> String {
    let head = [
        "TIME",
        "EVENT",
        "DECISION",
        "ERROR",
        "SOURCE IP",
        "PRINCIPAL",
        "RESOURCE",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                serde_json::from_str::<serde_json::Value>(&r.record)
                    .ok()
                    .and_then(|v| {
                        v.get("eventTime")
                            .and_then(|t| t.as_str())
                            .map(str::to_owned)
                    })
                    .unwrap_or_default(),
                r.event_name.clone(),
                r.decision.clone(),
                r.error_code.clone().unwrap_or_else(|| "-".into()),
                r.source_ip.clone().unwrap_or_else(|| "-".into()),
                r.principal_arn.clone().unwrap_or_else(|| "-".into()),
                r.resource_arn.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = head.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &mut dyn Iterator<Item = &str>| {
        cols.zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(&mut head.iter().copied());
    for row in &cells {
        out.push('\n');
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}
