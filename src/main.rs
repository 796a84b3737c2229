//! The `strongroom` binary: parse flags, init logging, run a command.

use clap::Parser;
use strongroom::config::{AuditCommand, Cli, Command, MasterKeyCommand};

fn fail(msg: &str) -> std::process::ExitCode {
    eprintln!("strongroom: {msg}");
    std::process::ExitCode::FAILURE
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRONGROOM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
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
        Command::Audit {
            command: AuditCommand::Verify(a),
        } => {
            let r = a.resolve().and_then(|c| {
                let store =
                    strongroom::store::Store::open(&c.database_url).map_err(|e| e.to_string())?;
                strongroom::audit::verify(&store)
            });
            match r {
                Ok(n) => {
                    println!("audit chain verified: {n} records");
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
    }
}
