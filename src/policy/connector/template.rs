//! Connector templates: minijinja over what jitgate knows about a user.
//!
//! Every URL, header value and string in a JSON body of a connector is a template. They are
//! compiled once when the policy is loaded (`jitgate check` reports syntax errors and unknown
//! variables with file:line:column) and rendered on the cold path only (first sight, mover,
//! leaver). Values interpolated into a URL are percent-encoded, so a claim can never add a
//! path segment or a query parameter; body values are JSON-encoded by construction. A body
//! string that is exactly one `{{ expression }}` keeps the expression's type (a list of roles
//! stays a JSON array).

use std::collections::BTreeMap;

use minijinja::value::Value as JinjaValue;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::Value;

/// What a template can name. `account` exists only once the app's account id is known.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TemplateContext {
    pub user: UserVars,
    /// Every claim of the user, as text (lists joined with `,`).
    pub claims: BTreeMap<String, String>,
    /// The app roles the user's groups map to, in the policy's order.
    pub roles: Vec<String>,
    /// The first of `roles` (policies list the most privileged role first), if any.
    pub role: Option<String>,
    pub app: AppVars,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountVars>,
    /// `list` only: the page asked for (1, 2, …), or the cursor the last answer named (none
    /// on the first page).
    #[serde(default)]
    pub page: Option<u64>,
    #[serde(default)]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct UserVars {
    pub iss: String,
    pub sub: String,
    pub username: String,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct AppVars {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct AccountVars {
    pub id: String,
}

/// The variables (and their fields) a template may use.
const VARIABLES: &[(&str, Option<&[&str]>)] = &[
    ("user", Some(&["iss", "sub", "username", "groups"])),
    ("claims", None),
    ("roles", None),
    ("role", None),
    ("app", Some(&["name"])),
    ("account", Some(&["id"])),
    ("page", None),
    ("cursor", None),
];

/// Why a template was refused at load time or failed when rendered.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("template does not parse: {0}")]
    Syntax(String),
    #[error("unknown variable `{0}` (templates can use user.iss, user.sub, user.username, user.groups, claims.<name>, roles, role, app.name, and account.id in update/deactivate/reactivate)")]
    UnknownVariable(String),
    #[error(
        "`account.id` is not known yet in `{0}`: only update, deactivate and reactivate can use it"
    )]
    AccountTooEarly(String),
    #[error("`{0}` is for `list` only (a page of accounts), not `{1}`")]
    ListOnly(String, String),
    #[error("`list` reads every account, for no user: it cannot use `{0}`")]
    NotForList(String),
    #[error("template `{0}` failed: {1}")]
    Render(String, String),
    #[error("template `{0}` did not produce JSON: {1}")]
    NotJson(String, String),
}

/// All templates of one connector, compiled.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

/// How a template's output is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A URL: interpolated values are percent-encoded.
    Url,
    /// A header value or a body string: plain text.
    Text,
    /// A body leaf that is one expression: its value, as JSON.
    Json,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with("#url") {
                AutoEscape::Custom("url")
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(|out, state, value| {
            if state.auto_escape() == AutoEscape::Custom("url") && !value.is_safe() {
                let text = value.to_string();
                // Percent-encoding cannot help here: URL parsers collapse `.`/`..` segments
                // (encoded or not), and an empty value turns `/users/{{id}}` into `/users/`.
                if matches!(text.as_str(), "" | "." | "..") {
                    return Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("a value in a URL is {text:?}, which would change the path"),
                    ));
                }
                out.write_str(&percent_encode(&text))
                    .map_err(minijinja::Error::from)
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        Self { env }
    }

    /// Compiles `source` under `name` and checks the variables it uses. `account_known` says
    /// whether the operation runs after the app's account id is known.
    pub fn add(
        &mut self,
        name: &str,
        source: &str,
        kind: Kind,
        account_known: bool,
    ) -> Result<(), TemplateError> {
        let (name, source) = match kind {
            Kind::Url => (format!("{name}#url"), source.to_string()),
            Kind::Text => (name.to_string(), source.to_string()),
            Kind::Json => {
                let expr = whole_expression(source).unwrap_or(source);
                (name.to_string(), format!("{{{{ ({expr}) | tojson }}}}"))
            }
        };
        self.env
            .add_template_owned(name.clone(), source)
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        let template = self
            .env
            .get_template(&name)
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        let mut used: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        used.sort();
        for var in used {
            let (top, field) = match var.split_once('.') {
                Some((t, f)) => (t, Some(f)),
                None => (var.as_str(), None),
            };
            let Some((_, fields)) = VARIABLES.iter().find(|(n, _)| *n == top) else {
                return Err(TemplateError::UnknownVariable(var));
            };
            if top == "account" && !account_known {
                return Err(TemplateError::AccountTooEarly(name.replace("#url", "")));
            }
            // Template names start with their operation's name (`list.url`, `list.header.x`).
            let listing = name.starts_with("list.");
            if matches!(top, "page" | "cursor") && !listing {
                return Err(TemplateError::ListOnly(
                    top.into(),
                    name.replace("#url", ""),
                ));
            }
            if listing && !matches!(top, "page" | "cursor" | "app") {
                return Err(TemplateError::NotForList(var));
            }
            if let (Some(fields), Some(field)) = (fields, field) {
                let field = field.split('.').next().unwrap_or(field);
                if !fields.contains(&field) {
                    return Err(TemplateError::UnknownVariable(var));
                }
            }
        }
        Ok(())
    }

    /// Renders a template added with [`Kind::Url`] or [`Kind::Text`].
    pub fn render(
        &self,
        name: &str,
        kind: Kind,
        ctx: &TemplateContext,
    ) -> Result<String, TemplateError> {
        let full = match kind {
            Kind::Url => format!("{name}#url"),
            _ => name.to_string(),
        };
        let template = self
            .env
            .get_template(&full)
            .map_err(|e| TemplateError::Render(name.into(), describe(&e)))?;
        template
            .render(JinjaValue::from_serialize(ctx))
            .map_err(|e| TemplateError::Render(name.into(), describe(&e)))
    }

    /// Renders a template added with [`Kind::Json`] to a JSON value.
    pub fn render_json(&self, name: &str, ctx: &TemplateContext) -> Result<Value, TemplateError> {
        let text = self.render(name, Kind::Text, ctx)?;
        serde_json::from_str(&text).map_err(|e| TemplateError::NotJson(name.into(), e.to_string()))
    }
}

/// `Some(expr)` if `source` is exactly one `{{ expr }}` and nothing else.
pub fn whole_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.trim_start_matches('-').trim_end_matches('-');
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then(|| inner.trim())
}

/// True if `source` contains any template syntax at all.
pub fn is_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

fn describe(e: &minijinja::Error) -> String {
    let mut text = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    if let Some(line) = e.line() {
        text.push_str(&format!(" (template line {line})"));
    }
    text
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TemplateContext {
        TemplateContext {
            user: UserVars {
                iss: "https://idp".into(),
                sub: "u-1".into(),
                username: "alice/../admin?x=1".into(),
                groups: vec!["eng".into()],
            },
            claims: [("email".to_string(), "a@example.test".to_string())].into(),
            roles: vec!["admin".into(), "editor".into()],
            role: Some("admin".into()),
            app: AppVars {
                name: "wiki".into(),
            },
            account: None,
            page: None,
            cursor: None,
        }
    }

    #[test]
    fn url_values_are_percent_encoded_but_the_template_text_is_not() {
        let mut t = Templates::new();
        t.add("u", "/api/users?name={{ user.username }}", Kind::Url, false)
            .unwrap();
        assert_eq!(
            t.render("u", Kind::Url, &ctx()).unwrap(),
            "/api/users?name=alice%2F..%2Fadmin%3Fx%3D1"
        );
    }

    #[test]
    fn url_values_that_would_change_the_path_are_refused() {
        let mut t = Templates::new();
        t.add("u", "/api/users/{{ claims.email }}/roles", Kind::Url, false)
            .unwrap();
        for bad in ["..", ".", ""] {
            let mut c = ctx();
            c.claims.insert("email".into(), bad.into());
            assert!(t.render("u", Kind::Url, &c).is_err(), "{bad:?}");
        }
        let mut c = ctx();
        c.claims.insert("email".into(), "a..b".into());
        assert_eq!(
            t.render("u", Kind::Url, &c).unwrap(),
            "/api/users/a..b/roles"
        );
    }

    #[test]
    fn whole_expressions_keep_their_type() {
        let mut t = Templates::new();
        t.add("b", "{{ roles }}", Kind::Json, false).unwrap();
        assert_eq!(
            t.render_json("b", &ctx()).unwrap(),
            serde_json::json!(["admin", "editor"])
        );
        t.add("s", "{{ claims.email }}", Kind::Json, false).unwrap();
        assert_eq!(
            t.render_json("s", &ctx()).unwrap(),
            serde_json::json!("a@example.test")
        );
    }

    #[test]
    fn page_and_cursor_are_for_list_only_and_list_has_no_user() {
        let mut t = Templates::new();
        assert!(t
            .add("list.url", "/u?page={{ page }}", Kind::Url, false)
            .is_ok());
        assert!(t
            .add(
                "list.url",
                "/u{% if cursor %}?c={{ cursor }}{% endif %}",
                Kind::Url,
                false
            )
            .is_ok());
        assert!(matches!(
            t.add("create.url", "/u?page={{ page }}", Kind::Url, false),
            Err(TemplateError::ListOnly(..))
        ));
        assert!(matches!(
            t.add("list.url", "/u/{{ user.username }}", Kind::Url, false),
            Err(TemplateError::NotForList(_))
        ));
    }

    #[test]
    fn unknown_variables_and_syntax_errors_are_refused() {
        let mut t = Templates::new();
        assert!(matches!(
            t.add("a", "{{ usr.name }}", Kind::Text, false),
            Err(TemplateError::UnknownVariable(v)) if v == "usr.name"
        ));
        assert!(matches!(
            t.add("b", "{{ user.mail }}", Kind::Text, false),
            Err(TemplateError::UnknownVariable(v)) if v == "user.mail"
        ));
        assert!(matches!(
            t.add("c", "{{ user.username ", Kind::Text, false),
            Err(TemplateError::Syntax(_))
        ));
        assert!(matches!(
            t.add("d", "/users/{{ account.id }}", Kind::Url, false),
            Err(TemplateError::AccountTooEarly(_))
        ));
        t.add("e", "/users/{{ account.id }}", Kind::Url, true)
            .unwrap();
        t.add(
            "f",
            "{{ claims.anything | default('') }}",
            Kind::Text,
            false,
        )
        .unwrap();
    }

    #[test]
    fn a_missing_claim_fails_the_render_unless_defaulted() {
        let mut t = Templates::new();
        t.add("a", "{{ claims.phone }}", Kind::Text, false).unwrap();
        assert!(t.render("a", Kind::Text, &ctx()).is_err());
        t.add(
            "b",
            "{{ claims.phone | default('none') }}",
            Kind::Text,
            false,
        )
        .unwrap();
        assert_eq!(t.render("b", Kind::Text, &ctx()).unwrap(), "none");
    }
}

/// Properties over connector templates and the claim values they are rendered with (an IdP
/// user can often choose their own name); `scripts/fuzz.sh` runs them with many more cases.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::util::attacker_input;

    /// Pieces of template syntax, the variables templates may (and may not) name, filters.
    const PIECES: &[&str] = &[
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        "{{-",
        "-}}",
        " ",
        "user.sub",
        "user.username",
        "user.groups",
        "user.nope",
        "claims.email",
        "claims['a b']",
        "roles",
        "role",
        "app.name",
        "account.id",
        "nope",
        "| urlencode",
        "| tojson",
        "| default('x')",
        "| upper",
        "| join(',')",
        "for r in roles",
        "endfor",
        "if role",
        "else",
        "endif",
        "range(3)",
        "loop.index",
        "'",
        "\"",
        "~",
        "(",
        ")",
        "[0]",
        ".",
        "..",
        "/",
        "?",
        "=",
        "&",
        "%",
        "%2F",
        "é",
        "\u{0}",
    ];

    fn source() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                4 => proptest::sample::select(PIECES).prop_map(str::to_string),
                1 => attacker_input::text(),
            ],
            0..10,
        )
        .prop_map(|pieces| pieces.concat())
    }

    /// Reverses [`percent_encode`]: `None` if `text` holds anything it would not write.
    fn percent_decode(text: &str) -> Option<String> {
        let mut bytes = Vec::new();
        let mut rest = text.as_bytes();
        while let [first, tail @ ..] = rest {
            if *first == b'%' {
                let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
                rest = &tail[2..];
            } else {
                bytes.push(*first);
                rest = tail;
            }
        }
        String::from_utf8(bytes).ok()
    }

    /// A context whose values are attacker-shaped.
    fn context() -> impl Strategy<Value = TemplateContext> {
        let t = attacker_input::text;
        (
            t(),
            t(),
            proptest::collection::vec(t(), 0..3),
            t(),
            proptest::option::of(t()),
        )
            .prop_map(|(sub, username, groups, email, account)| TemplateContext {
                user: UserVars {
                    iss: "https://idp.example.test".into(),
                    sub,
                    username,
                    groups: groups.clone(),
                },
                claims: [("email".to_string(), email)].into(),
                role: groups.first().cloned(),
                roles: groups,
                app: AppVars {
                    name: "wiki".into(),
                },
                account: account.map(|id| AccountVars { id }),
                page: None,
                cursor: None,
            })
    }

    proptest! {
        #![proptest_config(attacker_input::config(512))]

        #[test]
        fn any_template_compiles_or_is_refused_and_renders_or_fails(
            source in source(),
            ctx in context(),
            kind in proptest::sample::select(&[Kind::Url, Kind::Text, Kind::Json][..]),
            account_known in any::<bool>(),
        ) {
            let mut templates = Templates::new();
            if templates.add("t", &source, kind, account_known).is_ok() {
                let _ = match kind {
                    Kind::Json => templates.render_json("t", &ctx).map(|_| ()),
                    _ => templates.render("t", kind, &ctx).map(|_| ()),
                };
            }
        }

        #[test]
        fn a_value_in_a_url_stays_one_path_segment(ctx in context()) {
            let mut templates = Templates::new();
            templates.add("u", "/users/{{ user.username }}/roles", Kind::Url, false).unwrap();
            let username = ctx.user.username.as_str();
            match templates.render("u", Kind::Url, &ctx) {
                Err(_) => prop_assert!(matches!(username, "" | "." | "..")),
                Ok(rendered) => {
                    let url = url::Url::parse(&format!("http://api.example.test{rendered}")).unwrap();
                    let segments: Vec<&str> = url.path_segments().unwrap().collect();
                    prop_assert_eq!(segments.len(), 3, "{}", rendered);
                    prop_assert_eq!(segments[0], "users");
                    prop_assert_eq!(segments[2], "roles");
                    prop_assert!(url.query().is_none() && url.fragment().is_none());
                    let decoded = percent_decode(segments[1]);
                    prop_assert_eq!(decoded.as_deref(), Some(username));
                }
            }
        }

        #[test]
        fn a_body_value_is_the_claim_itself(ctx in context()) {
            let mut templates = Templates::new();
            templates.add("login", "{{ user.username }}", Kind::Json, false).unwrap();
            templates.add("groups", "{{ user.groups }}", Kind::Json, false).unwrap();
            templates.add("email", "{{ claims.email }}", Kind::Text, false).unwrap();
            prop_assert_eq!(
                templates.render_json("login", &ctx).unwrap(),
                Value::String(ctx.user.username.clone())
            );
            prop_assert_eq!(
                templates.render_json("groups", &ctx).unwrap(),
                serde_json::json!(ctx.user.groups)
            );
            prop_assert_eq!(&templates.render("email", Kind::Text, &ctx).unwrap(), &ctx.claims["email"]);
        }
    }
}
