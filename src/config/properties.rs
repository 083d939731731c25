//! Property tests of config loading: a config file with a few random edits (lines lost,
//! doubled, re-indented, YAML syntax or odd values put in) loads or is refused with
//! `file:line:column` problems, and never panics. `scripts/fuzz.sh` runs them with many more
//! cases.

use proptest::prelude::*;

use super::{load, Config};
use crate::util::attacker_input;
use crate::util::diagnostics::Diagnostics;

/// A valid config whose relative paths exist in the directory [`load_in_dir`] makes.
const SEED: &str = "\
listen:
  http: 127.0.0.1:8080
  admin: 127.0.0.1:9090
public_base_url: https://auth.example.test:8443
idp:
  issuer: https://login.example.test/oauth2/default
  client_id: jitgate
  client_secret_file: client-secret
  scopes: [openid, profile, email, groups]
  claims:
    username: preferred_username
    groups: groups
session:
  idle_timeout: 30m
  absolute_timeout: 12h
  revalidate_after: 10s
store:
  url: sqlite://data/jitgate.db
policies: policies
";

/// Loads `yaml` as `jitgate.yaml` in a fresh directory holding a secret file and a
/// `policies/` directory.
fn load_in_dir(yaml: &str) -> Result<Config, Diagnostics> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("client-secret"), "s3cret\n").unwrap();
    let file = dir.path().join("jitgate.yaml");
    std::fs::write(&file, yaml).unwrap();
    let loaded = load(&file);
    if let Err(problems) = &loaded {
        assert!(!problems.is_empty());
        for problem in &problems.0 {
            assert_eq!(problem.file, file, "{problem}");
            assert!(problem.line >= 1 && problem.column >= 1, "{problem}");
            // The secret is read from its file, and never repeated in a message.
            assert!(!problem.message.contains("s3cret"), "{problem}");
        }
    }
    loaded
}

#[test]
fn the_seed_loads() {
    load_in_dir(SEED).unwrap();
}

#[test]
fn refresh_claims_is_off_unless_set_and_must_be_a_positive_duration() {
    assert_eq!(load_in_dir(SEED).unwrap().session.refresh_claims, None);
    let with = |value: &str| {
        SEED.replace(
            "  revalidate_after: 10s\n",
            &format!("  revalidate_after: 10s\n  refresh_claims: {value}\n"),
        )
    };
    let on = load_in_dir(&with("5m")).unwrap();
    assert_eq!(
        on.session.refresh_claims,
        Some(std::time::Duration::from_secs(300))
    );
    for bad in ["0s", "often", "5 minutes"] {
        let problems = load_in_dir(&with(bad)).unwrap_err();
        assert_eq!(problems.0.len(), 1, "{bad}: {problems}");
    }
}

proptest! {
    #![proptest_config(attacker_input::config(128))]

    #[test]
    fn an_edited_config_loads_or_is_refused(yaml in attacker_input::mutated_yaml(SEED)) {
        let _ = load_in_dir(&yaml);
    }

    #[test]
    fn any_text_as_a_config_is_refused(yaml in attacker_input::text()) {
        prop_assert!(load_in_dir(&yaml).is_err());
    }
}
