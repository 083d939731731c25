//! A policy file exactly as a security team writes it (one app per file).
//!
//! Unknown keys are errors; `super::load_dir` validates these into [`super::AppPolicy`].

use std::collections::HashMap;

use marked_yaml::Spanned;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub app: Spanned<String>,
    pub hosts: Vec<Spanned<String>>,
    pub upstream: Spanned<String>,
    #[serde(default)]
    pub identity: IdentityFile,
    pub routes: Vec<RouteFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    #[serde(default)]
    pub headers: HashMap<Spanned<String>, Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub path: Spanned<String>,
    #[serde(default)]
    pub methods: Option<Vec<Spanned<String>>>,
    pub allow: AllowFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowFile {
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
    #[serde(default)]
    pub users: Vec<Spanned<String>>,
    #[serde(default)]
    pub authenticated: Option<Spanned<bool>>,
}
