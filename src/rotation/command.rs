//! The `command` kind of rotation function: a local executable run once per step with the
//! Lambda event on stdin and the execution role's session in its environment (nothing of
//! the server's own environment but `PATH`), killed at its timeout, its output captured
//! (bounded) for the failure message.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::identity::RotationFunction;

/// How much of each output stream is kept.
const MAX_OUTPUT: usize = 16 * 1024;

/// One invocation's result.
#[derive(Debug)]
pub struct Outcome {
    /// `None`: the step succeeded.
    pub failure: Option<String>,
    /// The tail of stderr then stdout (unredacted: the caller redacts it).
    pub output: String,
}

/// Run `function` with `event` on stdin and `env` (credentials, region, endpoint) added to
/// an environment holding only `PATH`. Runs on a thread of its own; the future resolves
/// when the executable exits or is killed at its timeout.
pub async fn invoke(
    function: &RotationFunction,
    event: String,
    env: Vec<(String, String)>,
) -> Outcome {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let argv = function.command.clone();
    let timeout = function.timeout;
    let extra = function.environment.clone();
    let spawned = std::thread::Builder::new()
        .name("rotation-command".into())
        .spawn(move || {
            let _ = tx.send(run(&argv, &event, &env, &extra, timeout));
        });
    if let Err(e) = spawned {
        return Outcome {
            failure: Some(format!("could not start a thread for the function: {e}")),
            output: String::new(),
        };
    }
    rx.await.unwrap_or_else(|_| Outcome {
        failure: Some("the function's runner stopped".into()),
        output: String::new(),
    })
}

fn run(
    argv: &[String],
    event: &str,
    env: &[(String, String)],
    extra: &std::collections::BTreeMap<String, String>,
    timeout: Duration,
) -> Outcome {
    let Some((exe, args)) = argv.split_first() else {
        return Outcome {
            failure: Some("the function has no command".into()),
            output: String::new(),
        };
    };
    let mut cmd = Command::new(exe);
    // Its own process group, so that a timeout kills what it started too (and no child
    // left behind holds the output pipes open).
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(extra.iter());
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                failure: Some(format!(
                    "the function's executable could not be started: {e}"
                )),
                output: String::new(),
            }
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A function that does not read its event still runs.
        let _ = stdin.write_all(event.as_bytes());
    }
    let out = child.stdout.take().map(reader);
    let err = child.stderr.take().map(reader);
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() >= timeout => {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("timed out after {} seconds", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(format!("could not wait for the function: {e}")),
        }
    };
    let collect = |h: Option<std::thread::JoinHandle<String>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let (stdout, stderr) = (collect(out), collect(err));
    let output = [stderr.trim(), stdout.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    let failure = match status {
        Ok(s) if s.success() => None,
        Ok(s) => Some(match s.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_owned(),
        }),
        Err(e) => Some(e),
    };
    Outcome { failure, output }
}

/// Read a stream to its end on a thread, keeping its last [`MAX_OUTPUT`] bytes.
fn reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept: Vec<u8> = Vec::new();
        let mut buf = [0_u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    kept.extend_from_slice(buf.get(..n).unwrap_or_default());
                    if kept.len() > MAX_OUTPUT {
                        let cut = kept.len() - MAX_OUTPUT;
                        kept.drain(..cut);
                    }
                }
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}
