//! `jitgate demo`: jitgate on embedded defaults, with everything it needs on this machine.
//!
//! One pingora server runs five listeners on loopback: jitgate itself (`:8080`), a
//! development OpenID Provider (`:8081`, see [`issuer`]), a demo app that echoes the headers
//! it receives (`:8082`), that app's user API which jitgate provisions accounts through
//! (`:8083`, see [`accounts`]) and the admin listener (`:9090`). State goes to SQLite under
//! `./jitgate-demo/`, where the demo policy is written too: edit it while the demo runs and
//! watch it reload.

pub mod accounts;
pub mod issuer;
pub mod signing_key;
pub mod upstream;

use std::path::{Path, PathBuf};

use pingora_core::services::listening::Service;

use crate::config::{Config, IdpSettings, Listen, PublicUrl, Secret, SessionSettings};
use crate::server::{build_server, start_control, Control, ServerError};
use crate::{policy, random};

pub const PROXY_PORT: u16 = 8080;
pub const ISSUER_PORT: u16 = 8081;
pub const APP_PORT: u16 = 8082;
pub const ADMIN_PORT: u16 = 9090;
/// The demo app's user API (what jitgate provisions accounts through).
pub const APP_API_PORT: u16 = 8083;
/// The demo app's admin token, next to the policies (`jitgate-demo/demo-app-token`).
const APP_TOKEN_FILE: &str = "demo-app-token";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot prepare {path}: {source}")]
    Files {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the demo policy is invalid: {0}")]
    Policy(#[from] crate::diagnostics::Diagnostics),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Key(#[from] signing_key::KeyError),
    #[error(transparent)]
    Random(#[from] random::RandomError),
}

/// The demo policy (`{APP_PORT}`, `{API_PORT}` and `{TOKEN_FILE}` are filled in).
const DEMO_POLICY: &str = r#"# The demo app, as a security team would describe it. Edit me while the demo runs.
app: demo
hosts: [127.0.0.1, localhost]
upstream: http://127.0.0.1:{APP_PORT}
identity:
  headers:
    X-Forwarded-User: preferred_username
    X-Forwarded-Email: email
    X-Forwarded-Groups: groups
# JIT provisioning: the demo app only serves users who have an account in it, and has no
# SCIM. jitgate creates the account through the app's user API on a user's first visit,
# and updates its role when the user's groups change.
roles:
  wiki-admins: admin
  engineering: editor
provisioning:
  api: http://127.0.0.1:{API_PORT}/api
  auth: { bearer: { file: ../{TOKEN_FILE} } }
  lookup:
    method: GET
    url: /users?username={{ user.username }}
    account_id: /0/id
  create:
    method: POST
    url: /users
    body:
      username: "{{ user.username }}"
      email: "{{ claims.email | default('') }}"
      role: "{{ role | default('viewer') }}"
    account_id: /id
  update:
    method: PUT
    url: /users/{{ account.id }}
    body: { role: "{{ role | default('viewer') }}" }
  deactivate:
    method: DELETE
    url: /users/{{ account.id }}
routes:
  - path: /admin/**
    allow: { groups: [wiki-admins] }
  - path: /**
    allow: { groups: [engineering] }
"#;

fn demo_policy() -> String {
    DEMO_POLICY
        .replace("{APP_PORT}", &APP_PORT.to_string())
        .replace("{API_PORT}", &APP_API_PORT.to_string())
        .replace("{TOKEN_FILE}", APP_TOKEN_FILE)
}

/// Runs the demo until interrupted.
pub fn run(dir: &Path) -> Result<(), DemoError> {
    let policies_dir = dir.join("policies");
    std::fs::create_dir_all(&policies_dir).map_err(|source| DemoError::Files {
        path: policies_dir.clone(),
        source,
    })?;
    let policy_file = policies_dir.join("demo.yaml");
    if !policy_file.exists() {
        std::fs::write(&policy_file, demo_policy()).map_err(|source| DemoError::Files {
            path: policy_file.clone(),
            source,
        })?;
    }
    // A fresh admin token for the demo app's user API at every start.
    let app_token = random::token()?;
    let token_file = dir.join(APP_TOKEN_FILE);
    std::fs::write(&token_file, &app_token).map_err(|source| DemoError::Files {
        path: token_file.clone(),
        source,
    })?;
    let policies = policy::load_dir(&policies_dir)?;

    let base = format!("http://127.0.0.1:{PROXY_PORT}");
    let issuer_url = format!("http://127.0.0.1:{ISSUER_PORT}");
    let client_secret = random::token()?;
    let config = Config {
        listen: Listen {
            http: Some(([127, 0, 0, 1], PROXY_PORT).into()),
            https: None,
            admin: Some(([127, 0, 0, 1], ADMIN_PORT).into()),
            upgrade_socket: dir.join("upgrade.sock"),
            ..Listen::default()
        },
        public: PublicUrl {
            base: base.clone(),
            host: "127.0.0.1".into(),
            port_suffix: format!(":{PROXY_PORT}"),
            https: false,
        },
        idp: IdpSettings {
            issuer: issuer_url.clone(),
            client_id: "jitgate-demo".into(),
            client_secret: Secret::new(client_secret.clone()),
            scopes: ["openid", "profile", "email", "groups"]
                .map(String::from)
                .to_vec(),
            username_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
        },
        session: SessionSettings::default(),
        store_url: format!("sqlite://{}", dir.join("jitgate.db").display()),
        policies_dir: policies_dir.clone(),
    };
    let issuer = issuer::DevIssuer::new(
        issuer_url.clone(),
        "jitgate-demo".into(),
        client_secret,
        format!("{base}/.jitgate/callback"),
    )?;

    let Control { runtime, gate } = start_control(config, policies)?;
    let mut server = build_server(gate, 2)?;
    let mut issuer_service = Service::new("demo issuer".to_string(), issuer);
    issuer_service.add_tcp(&format!("127.0.0.1:{ISSUER_PORT}"));
    server.add_service(issuer_service);
    let accounts = std::sync::Arc::new(accounts::DemoAccounts::new(app_token));
    let mut app_service = Service::new(
        "demo app".to_string(),
        upstream::EchoApp::with_accounts(accounts.clone()),
    );
    app_service.add_tcp(&format!("127.0.0.1:{APP_PORT}"));
    server.add_service(app_service);
    let mut api_service = Service::new(
        "demo app user API".to_string(),
        accounts::DemoUserApi(accounts),
    );
    api_service.add_tcp(&format!("127.0.0.1:{APP_API_PORT}"));
    server.add_service(api_service);

    println!(
        "\n  jitgate demo is running.\n\n  Open      {base}/\n  Users     {}\n  Policy    {}\n  Metrics   http://127.0.0.1:{ADMIN_PORT}/metrics\n\n  \
The sign-in page at {issuer_url} is a DEVELOPMENT issuer for trying jitgate on this\n  \
machine only: it is not for production. Stop with Ctrl-C.\n",
        issuer::DEMO_USERS
            .iter()
            .map(|u| format!("{} ({})", u.login, u.groups.join(", ")))
            .collect::<Vec<_>>()
            .join(", "),
        policy_file.display()
    );
    server.run(pingora_core::server::RunArgs::default());
    drop(runtime);
    Ok(())
}
