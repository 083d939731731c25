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
    /// IdP group -> app role, most privileged first.
    #[serde(default)]
    pub roles: HashMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub provisioning: Option<ProvisioningFile>,
    /// Kinds of elevated access users can ask for in this app.
    #[serde(default)]
    pub grants: HashMap<Spanned<String>, GrantTypeFile>,
    pub routes: Vec<RouteFile>,
}

/// One kind of time-bound elevated access ("admin on wiki for up to 1h").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantTypeFile {
    pub max_duration: Spanned<String>,
    /// Whether a request must say what it is for (default: yes).
    #[serde(default)]
    pub purpose_required: Option<Spanned<bool>>,
    /// A regular expression the ticket must match; without it, no ticket is asked for.
    #[serde(default)]
    pub ticket_pattern: Option<Spanned<String>>,
    /// Who may ask.
    pub requesters: GroupsFile,
    pub approval: ApprovalFile,
    /// Headers sent to the app while the grant is active (name -> fixed value).
    #[serde(default)]
    pub headers: HashMap<Spanned<String>, Spanned<String>>,
    /// Connector `operations:` to call in the app when the grant starts and ends.
    #[serde(default)]
    pub app_calls: Option<AppCallsFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCallsFile {
    #[serde(default)]
    pub start: Option<Spanned<String>>,
    #[serde(default)]
    pub end: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsFile {
    pub groups: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalFile {
    /// Requests from these groups are approved by the policy itself.
    #[serde(default)]
    pub auto: Option<GroupsFile>,
    /// Who approves the others (never the requester).
    #[serde(default)]
    pub approvers: Option<GroupsFile>,
    /// How many different approvers it takes (default 1).
    #[serde(default)]
    pub required: Option<Spanned<u32>>,
}

/// The `provisioning:` section: a connector to the app's own user API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningFile {
    /// Base URL of the app's API; every operation URL stays under it.
    pub api: Spanned<String>,
    pub auth: AuthFile,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub retries: Option<Spanned<u32>>,
    #[serde(default)]
    pub lookup: Option<OperationFile>,
    pub create: OperationFile,
    #[serde(default)]
    pub update: Option<OperationFile>,
    #[serde(default)]
    pub deactivate: Option<OperationFile>,
    #[serde(default)]
    pub reactivate: Option<OperationFile>,
    /// Reads the app's accounts, page by page.
    #[serde(default)]
    pub list: Option<ListFile>,
    /// Create accounts as soon as the directory has an active user the routes allow.
    #[serde(default)]
    pub ahead: Option<Spanned<bool>>,
    /// Named calls that grant types run when a grant starts or ends.
    #[serde(default)]
    pub operations: HashMap<Spanned<String>, OperationFile>,
}

/// Exactly one of the three ways to authenticate to the app's API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    #[serde(default)]
    pub bearer: Option<SecretFile>,
    #[serde(default)]
    pub basic: Option<BasicAuthFile>,
    #[serde(default)]
    pub header: Option<HeaderAuthFile>,
}

/// A secret's source: an environment variable or a file, never the value itself.
///
/// Deserialized by hand so that a secret written inline is refused without the error
/// message repeating it (serde's message would quote the value).
#[derive(Debug)]
pub struct SecretFile {
    pub env: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for SecretFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = SecretFile;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("{ env: VAR_NAME } or { file: path }")
            }

            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<SecretFile, E> {
                Err(E::custom(
                    "secrets are never written inline: use { env: VAR_NAME } or { file: path }",
                ))
            }

            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretFile, E> {
                self.visit_str("")
            }

            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretFile, E> {
                self.visit_str("")
            }

            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretFile, E> {
                self.visit_str("")
            }

            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<SecretFile, E> {
                self.visit_str("")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SecretFile, A::Error> {
                let mut secret = SecretFile {
                    env: None,
                    file: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "env" => secret.env = Some(map.next_value()?),
                        "file" => secret.file = Some(map.next_value()?),
                        other => {
                            return Err(serde::de::Error::unknown_field(other, &["env", "file"]))
                        }
                    }
                }
                Ok(secret)
            }
        }
        d.deserialize_any(Visit)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthFile {
    pub username: Spanned<String>,
    pub password: SecretFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderAuthFile {
    pub name: Spanned<String>,
    pub value: SecretFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationFile {
    pub method: Spanned<String>,
    pub url: Spanned<String>,
    #[serde(default)]
    pub headers: HashMap<Spanned<String>, Spanned<String>>,
    /// Read again from the YAML tree (strings in it are templates; spans are kept there).
    #[allow(dead_code)]
    #[serde(default)]
    pub body: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub success: Option<Vec<Spanned<u16>>>,
    #[serde(default)]
    pub exists: Option<Vec<Spanned<u16>>>,
    #[serde(default)]
    pub not_found: Option<Vec<Spanned<u16>>>,
    #[serde(default)]
    pub account_id: Option<Spanned<String>>,
}

/// `provisioning.list`: a paginated listing of the app's accounts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFile {
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    pub url: Spanned<String>,
    #[serde(default)]
    pub headers: HashMap<Spanned<String>, Spanned<String>>,
    /// JSON pointer to the array of accounts ("" for a top-level array).
    pub items: Spanned<String>,
    pub next: ListNextFile,
    pub account_id: Spanned<String>,
    #[serde(default)]
    pub fields: Option<ListFieldsFile>,
    #[serde(default)]
    pub max_pages: Option<Spanned<u32>>,
    #[serde(default)]
    pub max_items: Option<Spanned<u32>>,
}

/// `next: { cursor: /next }` or `next: { page: true }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListNextFile {
    #[serde(default)]
    pub cursor: Option<Spanned<String>>,
    #[serde(default)]
    pub page: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFieldsFile {
    #[serde(default)]
    pub username: Option<Spanned<String>>,
    #[serde(default)]
    pub role: Option<Spanned<String>>,
    #[serde(default)]
    pub elevated: Option<Spanned<String>>,
    #[serde(default)]
    pub active: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    #[serde(default)]
    pub headers: HashMap<Spanned<String>, Spanned<String>>,
    /// A header that carries jitgate's request id to the app and back on its answers.
    #[serde(default)]
    pub request_id_header: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub path: Spanned<String>,
    #[serde(default)]
    pub methods: Option<Vec<Spanned<String>>>,
    pub allow: AllowFile,
    /// The grant type a user also needs, active, to use this route.
    #[serde(default)]
    pub elevate: Option<Spanned<String>>,
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
