//! What the end-to-end tests share: the `acquire` binary under test and
//! how they read its answers.

// Each test file is its own crate and uses some of these.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `acquire` binary cargo built for these tests.
pub fn acquire() -> Command {
    Command::new(env!("CARGO_BIN_EXE_acquire"))
}

/// Runs `acquire ARGS` to its end.
pub fn run(args: &[&str]) -> Output {
    acquire().args(args).output().expect("acquire runs")
}

/// Runs `acquire ARGS`; a run that does not end within 30 s is killed and
/// fails the test (a hang is a bug, never an answer). Board profiles come
/// from the checkout, whatever HSDAQ_BOARDS says.
pub fn run_bounded(args: &[&str]) -> Output {
    let mut child = acquire()
        .args(args)
        .env_remove("HSDAQ_BOARDS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("acquire runs");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            panic!("{args:?} hung (killed after 30 s)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Its stdout and stderr, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A path as the `&str` an argument list takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
