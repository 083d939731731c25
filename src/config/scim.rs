//! The `scim:` section: how the company's IdP authenticates when it pushes its directory, and
//! how a signed-in identity is matched to a directory user.
//!
//! ```yaml
//! scim:
//!   token: ${JITGATE_SCIM_TOKEN}       # or token_file: PATH, or tokens: [${A}, ${B}] to rotate
//!   link: { claim: sub, attribute: externalId }
//!   groups: directory                  # or token: keep the ID token's groups claim
//! ```
//! Tokens follow the rule for every secret: an environment variable or a file, never inline.
//! Several tokens may be valid at once so that one can be replaced without a gap.

use std::path::{Path, PathBuf};

use super::file::{ScimFile, ScimLinkFile};
use super::Secret;
use crate::util::diagnostics::FileReport;

/// Shortest bearer token accepted: a guessable token would open the whole directory.
const MIN_TOKEN_LEN: usize = 24;

/// The validated `scim:` section.
#[derive(Debug, Clone)]
pub struct ScimSettings {
    /// Every token the IdP may present; compared in constant time.
    pub tokens: Vec<Secret>,
    pub link: ScimLink,
    pub groups: GroupSource,
}

/// Where a linked user's groups come from: the directory's groups (the default: a group
/// change there reaches the edge at once), or the ID token's groups claim (for a directory
/// that pushes users but not groups; then only leavers and returns come from SCIM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupSource {
    #[default]
    Directory,
    Token,
}

/// Which ID-token claim names which directory attribute (Okta: `sub` and `externalId`;
/// Entra ID: `oid` and `externalId`, mapped from `objectId`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimLink {
    pub claim: String,
    pub attribute: LinkAttribute,
}

/// The directory attributes a login can be matched on: identifiers that do not change when
/// a person is renamed. (Email is not one: keys are never email.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAttribute {
    ExternalId,
    UserName,
    Id,
}

impl LinkAttribute {
    pub fn name(self) -> &'static str {
        match self {
            LinkAttribute::ExternalId => "externalId",
            LinkAttribute::UserName => "userName",
            LinkAttribute::Id => "id",
        }
    }
}

impl Default for ScimLink {
    fn default() -> Self {
        Self {
            claim: "sub".into(),
            attribute: LinkAttribute::ExternalId,
        }
    }
}

/// Validates the section; `None` after reporting every problem.
pub(super) fn scim_settings(
    report: &mut FileReport,
    raw: &ScimFile,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Option<ScimSettings> {
    let mut tokens = Vec::new();
    let mut ok = true;
    for value in raw.token.iter().chain(raw.tokens.iter().flatten()) {
        match super::fields::secret_named(report, value, "scim token") {
            Some(t) => tokens.push((value.span(), t)),
            None => ok = false,
        }
    }
    if let Some(file) = &raw.token_file {
        match read_token_file(&resolve(file.as_str())) {
            Ok(t) => tokens.push((file.span(), t)),
            Err(e) => {
                report.at(file.span(), e);
                ok = false;
            }
        }
    }
    if tokens.is_empty() && ok {
        report.at(
            raw.link
                .as_ref()
                .map(|l| l.claim.span())
                .unwrap_or(&marked_yaml::Span::new_blank()),
            "scim needs token: ${ENV_VAR}, token_file: PATH or tokens: [...]",
        );
        ok = false;
    }
    for (span, token) in &tokens {
        if token.expose().len() < MIN_TOKEN_LEN {
            report.at(
                span,
                format!("a scim token must be at least {MIN_TOKEN_LEN} characters"),
            );
            ok = false;
        }
    }
    let link = match &raw.link {
        None => Some(ScimLink::default()),
        Some(link) => scim_link(report, link),
    };
    let groups = match raw.groups.as_ref() {
        None => Some(GroupSource::Directory),
        Some(g) => match g.as_str() {
            "directory" => Some(GroupSource::Directory),
            "token" => Some(GroupSource::Token),
            other => {
                report.at(
                    g.span(),
                    format!("scim.groups `{other}` must be directory or token"),
                );
                None
            }
        },
    };
    match (ok, link, groups) {
        (true, Some(link), Some(groups)) => Some(ScimSettings {
            tokens: tokens.into_iter().map(|(_, t)| t).collect(),
            link,
            groups,
        }),
        _ => None,
    }
}

fn scim_link(report: &mut FileReport, raw: &ScimLinkFile) -> Option<ScimLink> {
    let claim = raw.claim.as_str().trim();
    if claim.is_empty() {
        report.at(
            raw.claim.span(),
            "link.claim names an ID-token claim, e.g. sub or oid",
        );
        return None;
    }
    let attribute = match raw.attribute.as_str() {
        "externalId" => LinkAttribute::ExternalId,
        "userName" => LinkAttribute::UserName,
        "id" => LinkAttribute::Id,
        other => {
            report.at(
                raw.attribute.span(),
                format!("link.attribute `{other}` must be externalId, userName or id"),
            );
            return None;
        }
    };
    Some(ScimLink {
        claim: claim.to_string(),
        attribute,
    })
}

fn read_token_file(path: &Path) -> Result<Secret, String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Secret::new(s.trim().to_string())),
        Ok(_) => Err(format!("`{}` is empty", path.display())),
        Err(e) => Err(format!("cannot read `{}`: {e}", path.display())),
    }
}
