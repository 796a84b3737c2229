//! The `strongroom` binary: parse flags, init logging, run a command.

use clap::Parser;
use strongroom::cli::KeyChange;
use strongroom::config::{
    AccessKeyCommand, Cli, Command, MasterKeyCommand, PoliciesCommand, PolicyCommand,
    RotationCommand,
};

fn fail(msg: &str) -> std::process::ExitCode {
    eprintln!("strongroom: {msg}");
    std::process::ExitCode::FAILURE
}

/// Log to standard error at `STRONGROOM_LOG`'s level, or `default`.
fn init_logging(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRONGROOM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Agent(args) => {
            let cfg = match &args.config {
                Some(path) => strongroom::client::agent::AgentConfig::load(path),
                None => Ok(strongroom::client::agent::AgentConfig::default()),
            };
            let cfg = match cfg {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            init_logging(cfg.log_filter());
            match strongroom::client::agent::run(&args, &cfg) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Exec(args) => {
            // Quiet by default: the command's own output is what the caller reads.
            init_logging("warn");
            let (e, status) = strongroom::client::exec::run(&args);
            eprintln!("strongroom exec: {e}");
            std::process::ExitCode::from(status)
        }
        Command::Rotation {
            command: RotationCommand::Rollback(args),
        } => {
            init_logging("warn");
            match strongroom::client::rollback::run(&args) {
                Ok(out) => {
                    println!("{out}");
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        command => {
            init_logging("info");
            run(command)
        }
    }
}

fn run(command: Command) -> std::process::ExitCode {
    match command {
        Command::Serve(args) => {
            let cfg = match args.resolve() {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            match actix_web::rt::System::new().block_on(strongroom::server::run(cfg, |_| {})) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::MasterKey {
            command: MasterKeyCommand::Rotate(a),
        } => {
            match a
                .resolve()
                .and_then(|c| strongroom::server::rotate_master_key(&c))
            {
                Ok(n) => {
                    println!("master key rotated; {n} wrapped keys re-sealed");
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::AccessKey { command } => {
            let r = match command {
                AccessKeyCommand::Create {
                    store,
                    policies,
                    account,
                    user,
                    root,
                } => store.resolve().and_then(|c| match (&user, root) {
                    (Some(user), false) => {
                        strongroom::cli::create_access_key(&c, &policies, &account, user)
                    }
                    (None, true) => {
                        strongroom::cli::create_root_access_key(&c, &policies, &account)
                    }
                    _ => Err("give either --user USER or --root".into()),
                }),
                AccessKeyCommand::List {
                    store,
                    account,
                    user,
                } => store.resolve().and_then(|c| {
                    strongroom::cli::list_access_keys(&c, account.as_deref(), user.as_deref())
                }),
                AccessKeyCommand::Deactivate {
                    store,
                    access_key_id,
                } => store.resolve().and_then(|c| {
                    strongroom::cli::change_access_key(&c, &access_key_id, KeyChange::Deactivate)
                }),
                AccessKeyCommand::Activate {
                    store,
                    access_key_id,
                } => store.resolve().and_then(|c| {
                    strongroom::cli::change_access_key(&c, &access_key_id, KeyChange::Activate)
                }),
                AccessKeyCommand::Delete {
                    store,
                    access_key_id,
                } => store.resolve().and_then(|c| {
                    strongroom::cli::change_access_key(&c, &access_key_id, KeyChange::Delete)
                }),
            };
            match r {
                Ok(out) => {
                    if !out.is_empty() {
                        println!("{out}");
                    }
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Policy {
            command: PolicyCommand::Simulate { cases },
        } => match strongroom::policy::run_cases_file(&cases) {
            Ok(report) => {
                println!("{report}");
                if report.all_matched() {
                    std::process::ExitCode::SUCCESS
                } else {
                    std::process::ExitCode::FAILURE
                }
            }
            Err(e) => fail(&format!("cannot read `{}`: {e}", cases.display())),
        },
        Command::Policy {
            command: PolicyCommand::Validate { file, kind },
        } => {
            let Some(kind) = strongroom::policy::PolicyType::from_short_name(&kind) else {
                return fail(&format!("unknown policy kind `{kind}`"));
            };
            match std::fs::read_to_string(&file) {
                Ok(text) => {
                    let report = strongroom::policy::validate_document_as(&text, kind);
                    println!("{report}");
                    if report.is_valid() {
                        std::process::ExitCode::SUCCESS
                    } else {
                        std::process::ExitCode::FAILURE
                    }
                }
                Err(e) => fail(&format!("cannot read `{}`: {e}", file.display())),
            }
        }
        Command::Policies {
            command: PoliciesCommand::Validate { dir },
        } => match strongroom::cli::validate_policies(&dir) {
            Ok(msg) => {
                println!("{msg}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Audit { command } => strongroom::audit::cli::run(command),
        Command::BenchSeed(a) => {
            let policy = match a.resource_policy.as_deref().map(std::fs::read_to_string) {
                None => None,
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => return fail(&format!("cannot read the resource policy: {e}")),
            };
            let r = a.store.resolve().and_then(|c| {
                let (store, keyring) = strongroom::server::open(&c)?;
                let end = a.start.saturating_add(a.count);
                let n = strongroom::ops::create_secret::seed_for_benchmark(
                    &store,
                    &keyring,
                    &a.account,
                    &a.region,
                    a.start..end,
                    a.versions,
                    policy.as_deref(),
                )
                .map_err(|e| format!("{e:?}"))?;
                let m = strongroom::ops::bench_seed::seed_audit_for_benchmark(
                    &store,
                    &a.account,
                    &a.region,
                    a.audit_secrets,
                    a.audit_records,
                )
                .map_err(|e| format!("{e:?}"))?;
                Ok((n, m))
            });
            match r {
                Ok((n, m)) => {
                    println!("{n} secrets created, {m} audit records appended");
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Agent(_) | Command::Exec(_) | Command::Rotation { .. } => fail("handled in main"),
    }
}
