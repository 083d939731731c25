//! The config file exactly as written: serde types with unknown keys rejected.
//!
//! These types are never used by the proxy directly; `config::load` validates them into
//! [`super::Config`]. Values that need checking beyond their shape are `Spanned`, so a problem
//! can be reported at the line and column where it was written.

use marked_yaml::Spanned;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: ListenFile,
    pub public_base_url: Spanned<String>,
    pub idp: IdpFile,
    #[serde(default)]
    pub session: SessionFile,
    #[serde(default)]
    pub store: StoreFile,
    #[serde(default)]
    pub data_dir: Option<Spanned<String>>,
    pub policies: Spanned<String>,
    #[serde(default)]
    pub scim: Option<ScimFile>,
    #[serde(default)]
    pub lifecycle: LifecycleFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenFile {
    #[serde(default)]
    pub http: Option<Spanned<String>>,
    #[serde(default)]
    pub https: Option<HttpsFile>,
    #[serde(default)]
    pub admin: Option<Spanned<String>>,
    #[serde(default)]
    pub upgrade_socket: Option<Spanned<String>>,
    #[serde(default)]
    pub drain_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpsFile {
    pub address: Spanned<String>,
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpFile {
    pub issuer: Spanned<String>,
    pub client_id: Spanned<String>,
    #[serde(default)]
    pub client_secret: Option<Spanned<String>>,
    #[serde(default)]
    pub client_secret_file: Option<Spanned<String>>,
    #[serde(default)]
    pub scopes: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub claims: ClaimsFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimsFile {
    #[serde(default)]
    pub username: Option<Spanned<String>>,
    #[serde(default)]
    pub groups: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionFile {
    #[serde(default)]
    pub idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub absolute_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub revalidate_after: Option<Spanned<String>>,
    #[serde(default)]
    pub refresh_claims: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleFile {
    #[serde(default)]
    pub retake_after: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    #[serde(default)]
    pub url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimFile {
    #[serde(default)]
    pub token: Option<Spanned<String>>,
    #[serde(default)]
    pub token_file: Option<Spanned<String>>,
    #[serde(default)]
    pub tokens: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub link: Option<ScimLinkFile>,
    /// `directory` (default) or `token`.
    #[serde(default)]
    pub groups: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimLinkFile {
    pub claim: Spanned<String>,
    pub attribute: Spanned<String>,
}
