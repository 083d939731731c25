//! `jitgate check`: every kind of config and policy mistake is reported as
//! `file:line:column: message`, with exit status 1; good files pass with status 0.
//!
//! Each folder in `tests/fixtures/check/` is one case: a `jitgate.yaml` (checked with
//! `--config`) or policy files (checked with `--policies .`), and `expected.txt`, the exact
//! output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn jitgate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jitgate"));
    cmd.env_remove("JITGATE_FIXTURE_UNSET_SECRET");
    cmd
}

#[test]
fn every_fixture_reports_its_problems_with_file_line_and_column() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "fixtures missing");
    let mut failures = Vec::new();
    for case in &cases {
        let mut cmd = jitgate();
        cmd.current_dir(case).arg("check");
        if case.join("jitgate.yaml").exists() {
            cmd.args(["--config", "jitgate.yaml"]);
        } else {
            cmd.args(["--policies", "."]);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let expected = std::fs::read_to_string(case.join("expected.txt")).unwrap();
        let name = case.file_name().unwrap().to_string_lossy();
        if out.status.code() != Some(1) {
            failures.push(format!("{name}: exit {:?}, expected 1", out.status.code()));
        }
        if stdout != expected {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}--- got\n{stdout}"
            ));
        }
        for line in stdout.lines() {
            let mut parts = line.splitn(4, ':');
            let (file, l, c) = (parts.next(), parts.next(), parts.next());
            let numeric =
                |s: Option<&str>| s.is_some_and(|s| s.parse::<usize>().is_ok_and(|n| n > 0));
            if file.is_none_or(str::is_empty) || !numeric(l) || !numeric(c) {
                failures.push(format!("{name}: not file:line:column: {line}"));
            }
        }
        if stdout.contains("hunter2") {
            failures.push(format!("{name}: printed a secret"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_example_config_and_policies_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = jitgate()
        .current_dir(root)
        .env("JITGATE_CLIENT_SECRET", "example")
        .args(["check", "--config", "jitgate.example.yaml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("3 app(s), no problems"), "{stdout}");
    assert!(
        stdout.contains("helpdesk") && stdout.contains("accounts provisioned through"),
        "{stdout}"
    );
}

#[test]
fn run_refuses_a_bad_config_with_the_same_messages_and_no_panic() {
    let case =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check/config-unknown-key");
    let out = jitgate()
        .current_dir(&case)
        .args(["run", "--config", "jitgate.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("jitgate.yaml:9:1: unknown key `listen_on`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
