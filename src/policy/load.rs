//! Loading a policies directory: every `*.yaml` / `*.yml` file is read and validated (see
//! `validate`), then checked against the others, since an app name or a host claimed by two
//! files is an error. Problems from all files are reported together.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::file::PolicyFile;
use super::validate::validate;
use super::{AppPolicy, PolicySet};
use crate::util::diagnostics::{parse_yaml, Diagnostics, FileReport};

/// Loads and validates every `*.yaml` / `*.yml` file in `dir`.
pub fn load_dir(dir: &Path) -> Result<PolicySet, Diagnostics> {
    let mut problems = Diagnostics::default();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("yaml") | Some("yml")
                    )
            })
            .collect(),
        Err(e) => {
            let mut report = FileReport::new(dir);
            report.at_line(1, 1, format!("cannot read policies directory: {e}"));
            return Err(report.into_diagnostics());
        }
    };
    files.sort();
    let mut apps = Vec::new();
    let mut raw_hosts: HashMap<String, (String, PathBuf)> = HashMap::new();
    let mut names: HashMap<String, PathBuf> = HashMap::new();
    for path in &files {
        match load_file(path) {
            Ok((app, raw)) => {
                let mut report = FileReport::new(path);
                if let Some(first) = names.get(&app.name) {
                    report.at(
                        raw.app.span(),
                        format!(
                            "app `{}` is already defined in {}",
                            app.name,
                            first.display()
                        ),
                    );
                } else {
                    names.insert(app.name.clone(), path.clone());
                }
                for host in &raw.hosts {
                    let key = host.to_ascii_lowercase();
                    if let Some((other_app, other)) = raw_hosts.get(&key) {
                        report.at(
                            host.span(),
                            format!(
                                "host `{key}` is already served by app `{other_app}` ({})",
                                other.display()
                            ),
                        );
                    } else {
                        raw_hosts.insert(key, (app.name.clone(), path.clone()));
                    }
                }
                match report.finish(()) {
                    Ok(()) => apps.push(app),
                    Err(d) => problems.extend(d),
                }
            }
            Err(d) => problems.extend(d),
        }
    }
    if problems.is_empty() {
        Ok(PolicySet::new(apps))
    } else {
        Err(problems)
    }
}

fn load_file(path: &Path) -> Result<(AppPolicy, PolicyFile), Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut report = FileReport::new(path);
        report.at_line(1, 1, format!("cannot read policy file: {e}"));
        report.into_diagnostics()
    })?;
    let raw: PolicyFile = parse_yaml(path, &text)?;
    let tree =
        marked_yaml::parse_yaml_with_options(0, &text, marked_yaml::LoaderOptions::default()).ok();
    let app = validate(path, &raw, tree.as_ref())?;
    Ok((app, raw))
}
