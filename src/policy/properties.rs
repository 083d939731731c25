//! Property tests of policy loading: a policy file with a few random edits (lines lost,
//! doubled, re-indented, YAML syntax or odd values put in) loads or is refused with
//! `file:line:column` problems, and never panics. `scripts/fuzz.sh` runs them with many more
//! cases.

use proptest::prelude::*;

use super::load_dir;
use crate::util::attacker_input;

/// Loads `yaml` as the only policy file of a fresh directory.
fn load(yaml: &str) -> Result<super::PolicySet, crate::util::diagnostics::Diagnostics> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, yaml).unwrap();
    let loaded = load_dir(dir.path());
    if let Err(problems) = &loaded {
        assert!(!problems.is_empty());
        for problem in &problems.0 {
            assert_eq!(problem.file, file, "{problem}");
            assert!(problem.line >= 1 && problem.column >= 1, "{problem}");
            assert!(!problem.message.is_empty(), "{problem}");
        }
    }
    loaded
}

#[test]
fn the_seeds_load() {
    for seed in [WIKI, HELPDESK, GRAFANA] {
        load(seed).unwrap();
    }
}

const WIKI: &str = include_str!("../../policies/wiki.yaml");
const HELPDESK: &str = include_str!("../../policies/helpdesk.yaml");
const GRAFANA: &str = include_str!("../../policies/grafana.yaml");

proptest! {
    #![proptest_config(attacker_input::config(128))]

    #[test]
    fn an_edited_wiki_policy_loads_or_is_refused(yaml in attacker_input::mutated_yaml(WIKI)) {
        let _ = load(&yaml);
    }

    #[test]
    fn an_edited_helpdesk_policy_loads_or_is_refused(yaml in attacker_input::mutated_yaml(HELPDESK)) {
        let _ = load(&yaml);
    }

    #[test]
    fn any_text_as_a_policy_is_refused(yaml in attacker_input::text()) {
        prop_assert!(load(&yaml).is_err());
    }
}
