//! `strongroom audit verify | query | export | prune | digests export | reindex`.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::export::{export, prune};
use super::keys::{key_path_beside, pub_path_for, read_public, AuditKeys};
use super::verify::{load_anchors, verify_store, VerifyOptions};
use crate::config::{AuditCommand, AuditDigestsCommand, StoreArgs, StoreConfig};
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
            anchors,
        } => return run_verify(&store, &public_keys, chain, &anchors),
        AuditCommand::Digests {
            command:
                AuditDigestsCommand::Export {
                    store,
                    chain,
                    after,
                    out,
                },
        } => open(&store).and_then(|(_, st)| export_digests(&st, chain, after, out.as_deref())),
        AuditCommand::Reindex { store, chain } => open(&store).and_then(|(_, st)| {
            let chains = match chain {
                Some(c) => vec![c],
                None => st
                    .read_blocking(|tx| Ok(tx.audit_chains()?))
                    .map_err(|e| e.operator_text())?,
            };
            for c in &chains {
                let id = c.clone();
                st.write_blocking(move |tx| Ok(tx.reset_audit_index(&id)?))
                    .map_err(|e| e.operator_text())?;
                st.index_audit_blocking(Some(c), usize::MAX)
                    .map_err(|e| e.operator_text())?;
            }
            Ok(format!(
                "rebuilt the lookup index of {} chain(s)",
                chains.len()
            ))
        }),
        AuditCommand::Query {
            store,
            principal,
            denied,
            error_code,
            source_ip,
            secret,
            event_name,
            event_source,
            user_name,
            access_key_id,
            read_only,
            resource_type,
            account,
            since,
            until,
            limit,
            format,
        } => {
            let filter = |since_ms, until_ms| AuditFilter {
                account_id: account.clone(),
                event_name: event_name.clone(),
                event_source: event_source.clone(),
                user_name: user_name.clone(),
                access_key_id: access_key_id.clone(),
                read_only: read_only.as_deref().map(|r| r == "true"),
                resource_type: resource_type.clone(),
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
                    st.query_audit_blocking(&f).map_err(|e| e.operator_text())
                })
                .map(|rows| {
                    if format == "jsonl" {
                        jsonl(&rows)
                    } else {
                        table(&rows)
                    }
                })
        }
        AuditCommand::Export { store, out } => open(&store).and_then(|(cfg, st)| {
            let keys = AuditKeys::load_or_create(&key_path_beside(&cfg.master_key_file))?;
            let s = export(&st, &keys, &out)?;
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
        AuditCommand::VerifyExport {
            store,
            dir,
            public_keys,
        } => return run_verify_export(&store, &dir, &public_keys),
        AuditCommand::Prune {
            store,
            older_than,
            out,
            anchors,
        } => open(&store).and_then(|(cfg, st)| {
            let keys = AuditKeys::load_or_create(&key_path_beside(&cfg.master_key_file))?;
            let now = crate::ops::system_now_ms();
            let cutoff = now - i64::from(older_than) * 86_400_000;
            let mut outside = Vec::new();
            for p in &anchors {
                outside.extend(
                    load_anchors(p, &[keys.public_hex().to_owned()])
                        .map_err(|e| format!("--anchor: {e}"))?,
                );
            }
            let s = prune(&st, &keys, &out, cutoff, now, &outside)?;
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

/// The signed digests (prune anchors left out), oldest first: printed one JSON object per
/// line, or written as digest files into `out`.
fn export_digests(
    store: &Store,
    chain: Option<String>,
    after: i64,
    out: Option<&std::path::Path>,
) -> Result<String, String> {
    let digests = store
        .read_blocking(move |tx| {
            let chains = match chain {
                Some(c) => vec![c],
                None => tx.audit_chains()?,
            };
            let mut all = Vec::new();
            for c in chains {
                all.extend(
                    tx.audit_digests(&c)?
                        .into_iter()
                        .filter(|d| d.kind == super::chain::DIGEST && d.seq_to > after),
                );
            }
            Ok(all)
        })
        .map_err(|e| e.operator_text())?;
    match out {
        Some(dir) => {
            for d in &digests {
                super::anchor::write_digest_file(dir, d)?;
            }
            Ok(format!(
                "wrote {} digest file(s) to {}",
                digests.len(),
                dir.display()
            ))
        }
        None => Ok(digests
            .iter()
            .map(super::anchor::digest_to_json)
            .collect::<Vec<_>>()
            .join("\n")),
    }
}

/// The trusted audit public keys: those given, else the `audit-signing.pub` beside the
/// master key (when there is one).
fn trusted_keys(
    cfg: &crate::config::StoreConfig,
    public_keys: &[std::path::PathBuf],
) -> Result<Vec<String>, String> {
    let mut trusted = Vec::new();
    if public_keys.is_empty() {
        let p = pub_path_for(&key_path_beside(&cfg.master_key_file));
        if p.exists() {
            trusted.push(read_public(&p)?);
        }
    }
    for p in public_keys {
        trusted.push(read_public(p)?);
    }
    Ok(trusted)
}

fn run_verify_export(
    args: &StoreArgs,
    dir: &std::path::Path,
    public_keys: &[std::path::PathBuf],
) -> ExitCode {
    let trusted = match args
        .resolve()
        .and_then(|cfg| trusted_keys(&cfg, public_keys))
    {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    if trusted.is_empty() {
        return fail("no audit public key: give --public-key (the server's audit-signing.pub)");
    }
    let report = match super::export::verify_export(dir, &trusted) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    for (chain, files, from, to, last) in &report.chains {
        println!("chain {chain}: {files} files, records {from}..{to}, last hash {last}");
    }
    if report.problems.is_empty() {
        println!("export verified");
        return ExitCode::SUCCESS;
    }
    for p in &report.problems {
        eprintln!("{p}");
    }
    ExitCode::FAILURE
}

fn run_verify(
    args: &StoreArgs,
    public_keys: &[std::path::PathBuf],
    chain: Option<String>,
    anchor_paths: &[std::path::PathBuf],
) -> ExitCode {
    let (cfg, store) = match open(args) {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    let trusted = match trusted_keys(&cfg, public_keys) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    if trusted.is_empty() {
        eprintln!(
            "warning: no audit public key found; digests are checked against the key they name only"
        );
    }
    let mut anchors = Vec::new();
    for p in anchor_paths {
        match load_anchors(p, &trusted) {
            Ok(a) => anchors.extend(a),
            Err(e) => return fail(&format!("--anchor: {e}")),
        }
    }
    let report = match verify_store(
        &store,
        &VerifyOptions {
            trusted_keys: trusted,
            chain,
            anchors,
        },
    ) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let mut unsigned_total = 0;
    for c in &report.chains {
        let range = match (c.first_seq, c.last_seq) {
            (Some(a), Some(b)) => format!("seq {a}..={b}"),
            _ => "no records".to_owned(),
        };
        let mut line = format!(
            "chain {}: {} records ({range}), {} digests",
            printable(&c.chain_id),
            c.records,
            c.digests
        );
        if let Some(s) = c.signed_through {
            let _ = write!(line, ", signed through {s}");
        }
        if let Some(p) = c.pruned_through {
            let _ = write!(line, ", pruned through {p}");
        }
        if let Some(a) = c.anchored_through {
            let _ = write!(line, ", anchored through {a}");
        }
        let _ = write!(line, ", {} checked against the lookup index", c.indexed);
        line.push_str(if c.finding.is_some() {
            ": FAILED"
        } else {
            ": ok"
        });
        println!("{line}");
        if c.finding.is_none() && c.unsigned > 0 {
            unsigned_total += c.unsigned;
            let last = c.last_seq.unwrap_or(0);
            let first = last - i64::try_from(c.unsigned).unwrap_or(0) + 1;
            eprintln!(
                "warning: chain {}: {} record(s) (seq {first}..={last}) are not yet covered by a signed digest: deleting them would not be noticed{}",
                printable(&c.chain_id),
                c.unsigned,
                if anchor_paths.is_empty() {
                    ""
                } else {
                    " (nor by the anchored digests, which end before them)"
                }
            );
        }
    }
    if !anchor_paths.is_empty() {
        for c in report.chains.iter().filter(|c| c.finding.is_none()) {
            let anchored = c
                .anchored_through
                .unwrap_or(0)
                .max(c.pruned_through.unwrap_or(0));
            if let Some(last) = c.last_seq.filter(|l| *l > anchored) {
                eprintln!(
                    "note: chain {}: records {}..={last} are newer than the newest anchored digest: only the database vouches for them",
                    printable(&c.chain_id),
                    anchored.max(c.first_seq.unwrap_or(1) - 1) + 1
                );
            }
        }
    }
    if anchor_paths.is_empty() && report.first_finding().is_none() {
        eprintln!(
            "note: without --anchor, records cut from the end of a chain together with the digests that cover them are not noticed; anchor digests outside the database (serve --audit-digest-dir, or audit digests export) and pass them with --anchor"
        );
    }
    match report.first_finding() {
        Some(f) => {
            eprintln!("audit verification FAILED: {}", printable(&f.to_string()));
            if f.kind == super::TamperKind::IndexAltered {
                eprintln!(
                    "the lookup index is derived from the chain: `strongroom audit reindex` rebuilds it"
                );
            }
            ExitCode::FAILURE
        }
        None => {
            let mut done = format!("audit verified: {} records", report.records());
            if unsigned_total > 0 {
                let _ = write!(
                    done,
                    " ({unsigned_total} not yet covered by a signed digest)"
                );
            }
            println!("{done}");
            ExitCode::SUCCESS
        }
    }
}

fn jsonl(rows: &[AuditRow]) -> String {
    rows.iter()
        .map(|r| json_for_terminal(&r.record))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a terminal could act on `c` rather than print it: C0 and C1 controls (ESC, CSI,
/// newline, ...), DEL, and the bidirectional overrides and isolates that reorder what
/// follows on the line.
fn unsafe_for_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A table cell as text that cannot move the cursor, start a line, or send the terminal an
/// escape sequence: every character a terminal could act on is shown escaped (`\n`, `\t`,
/// `\u{1b}`), and a backslash is doubled so that an escape shown cannot be forged either.
pub(crate) fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if unsafe_for_terminal(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// A record's JSON text for a terminal: the JSON escapes controls below U+0020 already;
/// DEL, the C1 controls and the bidirectional controls, which JSON may carry raw, are written
/// as `\uXXXX` escapes too (the same JSON value).
fn json_for_terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if unsafe_for_terminal(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
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
                    .and_then(|v| v.get("eventTime").and_then(|t| t.as_str()).map(printable))
                    .unwrap_or_default(),
                printable(&r.event_name),
                printable(&r.decision),
                r.error_code
                    .as_deref()
                    .map_or_else(|| "-".into(), printable),
                r.source_ip.as_deref().map_or_else(|| "-".into(), printable),
                r.principal_arn
                    .as_deref()
                    .map_or_else(|| "-".into(), printable),
                r.resource_arn
                    .as_deref()
                    .map_or_else(|| "-".into(), printable),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_what_a_terminal_would_act_on() {
        assert_eq!(
            printable("a\nb\r\t\u{1b}[2J\u{7f}\u{9b}\u{202e}\u{2066}é\\n"),
            "a\\nb\\r\\t\\u{1b}[2J\\u{7f}\\u{9b}\\u{202e}\\u{2066}é\\\\n"
        );
        assert_eq!(printable("arn:aws:iam::1:user/x"), "arn:aws:iam::1:user/x");
        let json = json_for_terminal("{\"a\":\"x\u{9b}y\u{202e}\"}");
        assert_eq!(json, "{\"a\":\"x\\u009by\\u202e\"}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&json).unwrap()["a"],
            "x\u{9b}y\u{202e}"
        );
    }
}
