//! `jitgate demo`: jitgate on embedded defaults, with everything it needs on this machine.
//!
//! One pingora server runs five listeners on loopback: jitgate itself (`:8080`), a
//! development OpenID Provider (`:8081`, see [`issuer`]), a demo app that echoes the headers
//! it receives (`:8082`), that app's user API which jitgate provisions accounts through
//! (`:8083`, see [`accounts`]) and the admin listener (`:9090`); `--port-base` moves them all.
//! Every port is checked before anything starts: the demo never talks to a server it did not
//! start. State goes to SQLite under `./jitgate-demo/`, where the demo policy is written too:
//! edit it while the demo runs and watch it reload.
//!
//! The demo policy holds no standing privilege: nobody is admin in the app until a
//! `demo-admin` grant (purpose, ticket, at most 15 minutes) is approved, and the connector
//! promotes the account in the app for exactly that long. jitgate's SCIM service is on, with
//! a token made at each start: the issuer's directory page ([`directory`]) pushes the demo
//! users and disables or enables them, so a leaver can be tried too.

pub mod accounts;
pub mod directory;
pub mod issuer;
pub mod signing_key;
pub mod upstream;
pub mod users;

use std::path::{Path, PathBuf};

use pingora_core::services::listening::Service;

use crate::config::{
    Config, GroupSource, IdpSettings, LifecycleSettings, Listen, PublicUrl, ScimLink, ScimSettings,
    Secret, SessionSettings,
};
use crate::ops::server::{build_server, start_control, Control, ServerError};
use crate::policy;
use crate::util::random;

/// The port jitgate listens on by default; the others follow from it.
pub const DEFAULT_PORT_BASE: u16 = 8080;

/// Where the demo's five listeners go, all on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoPorts {
    pub proxy: u16,
    pub issuer: u16,
    pub app: u16,
    /// The demo app's user API (what jitgate provisions accounts through).
    pub app_api: u16,
    pub admin: u16,
}

impl DemoPorts {
    /// `base` .. `base + 3` for jitgate, the issuer, the app and its API; the admin listener
    /// at `base + 1010` (9090 for the default 8080).
    pub fn from_base(base: u16) -> Result<Self, DemoError> {
        let at = |offset: u16| base.checked_add(offset).ok_or(DemoError::PortBase(base));
        if base == 0 {
            return Err(DemoError::PortBase(base));
        }
        Ok(Self {
            proxy: base,
            issuer: at(1)?,
            app: at(2)?,
            app_api: at(3)?,
            admin: at(1010)?,
        })
    }

    fn named(&self) -> [(u16, &'static str); 5] {
        [
            (self.proxy, "jitgate"),
            (self.issuer, "the development identity provider"),
            (self.app, "the demo app"),
            (self.app_api, "the demo app's user API"),
            (self.admin, "jitgate's admin listener"),
        ]
    }

    /// Fails on the first port another program holds, before the demo starts anything.
    pub fn ensure_free(&self) -> Result<(), DemoError> {
        for (port, what) in self.named() {
            if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                let base = self.proxy;
                let other = if base <= 55_000 {
                    base + 10_000
                } else {
                    18_080
                };
                return Err(DemoError::PortTaken {
                    port,
                    what,
                    reason: e.to_string(),
                    other,
                    other_admin: other.saturating_add(1010),
                });
            }
        }
        Ok(())
    }
}

/// The demo app's admin token, next to the policies (`jitgate-demo/demo-app-token`).
const APP_TOKEN_FILE: &str = "demo-app-token";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "port {port} on 127.0.0.1, for {what}, is not free ({reason}). The demo only talks to \
         servers it started itself, so it stops here. Stop the program using that port, or \
         choose other ports: `jitgate demo --port-base {other}` (uses {other}-{} and \
         {other_admin}).",
        other + 3
    )]
    PortTaken {
        port: u16,
        what: &'static str,
        reason: String,
        other: u16,
        other_admin: u16,
    },
    #[error("--port-base {0} does not leave room for the demo's ports (1..=64525)")]
    PortBase(u16),
    #[error("cannot prepare {path}: {source}")]
    Files {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the demo policy is invalid: {0}")]
    Policy(#[from] crate::util::diagnostics::Diagnostics),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Key(#[from] signing_key::KeyError),
    #[error(transparent)]
    Random(#[from] random::RandomError),
}

/// The demo policy (`{APP_PORT}`, `{API_PORT}` and `{TOKEN_FILE}` are filled in).
const DEMO_POLICY: &str = r#"# Written by jitgate demo --port-base {PORT_BASE}. Edit me while the demo runs: once edited,
# this file is kept as it is (delete it to get the demo's own policy back).
# The demo app, as a security team would describe it.
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
# and updates its role when the user's groups change. Nobody is admin by default.
roles:
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
  update:                         # also what brings a returning user's account back
    method: PUT
    url: /users/{{ account.id }}
    body: { role: "{{ role | default('viewer') }}", active: true }
  deactivate:
    method: DELETE
    url: /users/{{ account.id }}
  # What a grant does in the app itself: admin while it lasts, then back.
  operations:
    make-admin:
      method: PUT
      url: /users/{{ account.id }}
      body: { role: admin }
    drop-admin:
      method: PUT
      url: /users/{{ account.id }}
      body: { role: "{{ role | default('viewer') }}" }
# Zero standing privilege: admin is a grant, for a purpose and a ticket, at most 15 minutes.
grants:
  demo-admin:
    max_duration: 15m
    purpose_required: true
    ticket_pattern: 'INC-[0-9]+'
    requesters: { groups: [engineering] }
    approval:
      auto: { groups: [oncall] }          # on call: approved at once
      approvers: { groups: [engineering] } # anyone else: another engineer, never oneself
    app_calls: { start: make-admin, end: drop-admin }
routes:
  - path: /admin/**
    allow: { groups: [engineering] }
    elevate: demo-admin
  - path: /**
    allow: { groups: [engineering] }
"#;

fn demo_policy(ports: &DemoPorts) -> String {
    DEMO_POLICY
        .replace("{PORT_BASE}", &ports.proxy.to_string())
        .replace("{APP_PORT}", &ports.app.to_string())
        .replace("{API_PORT}", &ports.app_api.to_string())
        .replace("{TOKEN_FILE}", APP_TOKEN_FILE)
}

/// What became of the policy file at start-up.
enum PolicyFile {
    /// Written for these ports (it was missing, or the demo's own for other ports).
    Written,
    /// Someone edited it (or an older jitgate wrote it): left as it is.
    Kept,
}

/// Writes the demo policy for these ports, unless the file holds someone's edits: a file is
/// the demo's own if it is exactly what the demo writes for the port base its first line names.
fn write_policy(policy_file: &Path, ports: &DemoPorts) -> Result<PolicyFile, DemoError> {
    if let Ok(old) = std::fs::read_to_string(policy_file) {
        let base = old
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# Written by jitgate demo --port-base "))
            .and_then(|rest| rest.split('.').next())
            .and_then(|b| b.parse().ok());
        let ours = base
            .and_then(|b| DemoPorts::from_base(b).ok())
            .is_some_and(|p| demo_policy(&p) == old);
        if !ours {
            return Ok(PolicyFile::Kept);
        }
    }
    std::fs::write(policy_file, demo_policy(ports)).map_err(|source| DemoError::Files {
        path: policy_file.to_path_buf(),
        source,
    })?;
    Ok(PolicyFile::Written)
}

/// Runs the demo until interrupted.
pub fn run(dir: &Path, port_base: u16) -> Result<(), DemoError> {
    let ports = DemoPorts::from_base(port_base)?;
    ports.ensure_free()?;
    let policies_dir = dir.join("policies");
    std::fs::create_dir_all(&policies_dir).map_err(|source| DemoError::Files {
        path: policies_dir.clone(),
        source,
    })?;
    let policy_file = policies_dir.join("demo.yaml");
    let kept = write_policy(&policy_file, &ports)?;
    // A fresh admin token for the demo app's user API at every start.
    let app_token = random::token()?;
    let token_file = dir.join(APP_TOKEN_FILE);
    std::fs::write(&token_file, &app_token).map_err(|source| DemoError::Files {
        path: token_file.clone(),
        source,
    })?;
    let policies = policy::load_dir(&policies_dir)?;

    let base = format!("http://127.0.0.1:{}", ports.proxy);
    let issuer_url = format!("http://127.0.0.1:{}", ports.issuer);
    let client_secret = random::token()?;
    let scim_token = random::token()?;
    let config = Config {
        listen: Listen {
            http: Some(([127, 0, 0, 1], ports.proxy).into()),
            https: None,
            admin: Some(([127, 0, 0, 1], ports.admin).into()),
            upgrade_socket: dir.join("upgrade.sock"),
            ..Listen::default()
        },
        public: PublicUrl {
            base: base.clone(),
            host: "127.0.0.1".into(),
            port_suffix: format!(":{}", ports.proxy),
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
        store_url: crate::store::embedded_url(&dir.join("jitgate.db")),
        policies_dir: policies_dir.clone(),
        // The directory page on the issuer pushes over SCIM with this token. Groups still
        // come from the ID token: the page pushes users only (leavers and returns).
        scim: Some(ScimSettings {
            tokens: vec![Secret::new(scim_token.clone())],
            link: ScimLink::default(),
            groups: GroupSource::Token,
        }),
        lifecycle: LifecycleSettings::default(),
    };
    let issuer = issuer::DevIssuer::new(
        issuer_url.clone(),
        "jitgate-demo".into(),
        client_secret,
        format!("{base}/.jitgate/callback"),
    )?
    .with_directory(directory::DemoDirectory::new(
        format!("{base}/.jitgate/scim/v2"),
        scim_token,
    )?);

    let Control { runtime, gate } = start_control(config, policies)?;
    let mut server = build_server(gate, 2)?;
    let mut issuer_service = Service::new("demo issuer".to_string(), issuer);
    issuer_service.add_tcp(&format!("127.0.0.1:{}", ports.issuer));
    server.add_service(issuer_service);
    let accounts = std::sync::Arc::new(accounts::DemoAccounts::new(app_token));
    let mut app_service = Service::new(
        "demo app".to_string(),
        upstream::EchoApp::with_accounts(accounts.clone()),
    );
    app_service.add_tcp(&format!("127.0.0.1:{}", ports.app));
    server.add_service(app_service);
    let mut api_service = Service::new(
        "demo app user API".to_string(),
        accounts::DemoUserApi(accounts),
    );
    api_service.add_tcp(&format!("127.0.0.1:{}", ports.app_api));
    server.add_service(api_service);

    print!("{}", banner(&base, &ports, &policy_file, &kept));
    server.run(pingora_core::server::RunArgs::default());
    drop(runtime);
    Ok(())
}

/// What the demo prints once it runs: where things are, and the story to try.
fn banner(base: &str, ports: &DemoPorts, policy_file: &Path, kept: &PolicyFile) -> String {
    let users = users::DEMO_USERS
        .iter()
        .map(|u| format!("{} ({})", u.login, u.groups.join(", ")))
        .collect::<Vec<_>>()
        .join(", ");
    let kept = match kept {
        PolicyFile::Written => String::new(),
        PolicyFile::Kept => {
            "            (your edited policy, kept: the story below assumes the demo's own;\n\
             \x20            delete the file and start again to get it)\n"
                .to_string()
        }
    };
    format!(
        "\n  jitgate demo is running.\n\n\
         \x20 Open      {base}/\n\
         \x20 Users     {users}\n\
         \x20 Policy    {policy}\n{kept}\
         \x20 Metrics   http://127.0.0.1:{admin}/metrics\n\n\
         \x20 Nobody is an admin here until a grant says so. Try it:\n\
         \x20  1. Open {base}/ and sign in as bob. The app made his account (role editor).\n\
         \x20     {base}/admin is refused: it needs a demo-admin grant.\n\
         \x20  2. Follow the link to the access page and ask: a purpose, ticket INC-1234,\n\
         \x20     2m. bob cannot approve his own request.\n\
         \x20  3. In a private window, open the same address, sign in as alice (an engineer)\n\
         \x20     and approve bob's request on the access page {base}/.jitgate/access.\n\
         \x20  4. bob reloads {base}/admin: it opens, the app shows role admin and the time left.\n\
         \x20  5. When the time is up (or alice revokes it), /admin is refused on the next\n\
         \x20     request and the app drops bob back to editor. alice is on call: her own\n\
         \x20     requests are approved at once. carol is not an engineer: refused everywhere.\n\
         \x20  6. bob leaves the company: open http://127.0.0.1:{issuer}/directory (the IdP's\n\
         \x20     directory, pushed to jitgate over SCIM) and press Disable next to bob. His\n\
         \x20     session ends at once (reload his window), he cannot sign in again, and his\n\
         \x20     demo-app account is deactivated. Enable lets him back.\n\n\
         \x20 The sign-in page on port {issuer} is a DEVELOPMENT issuer for trying jitgate on this\n\
         \x20 machine only: it is not for production. Stop with Ctrl-C.\n",
        policy = policy_file.display(),
        admin = ports.admin,
        issuer = ports.issuer,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_demo_policy_follows_the_ports_unless_someone_edited_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("demo.yaml");
        let ports = |b| DemoPorts::from_base(b).unwrap();
        assert!(matches!(
            write_policy(&file, &ports(8080)),
            Ok(PolicyFile::Written)
        ));
        assert!(std::fs::read_to_string(&file)
            .unwrap()
            .contains("127.0.0.1:8082"));
        // The demo's own file, for other ports: rewritten for the new ones.
        assert!(matches!(
            write_policy(&file, &ports(18080)),
            Ok(PolicyFile::Written)
        ));
        assert!(std::fs::read_to_string(&file)
            .unwrap()
            .contains("127.0.0.1:18082"));
        // Edited: kept, byte for byte.
        let edited = std::fs::read_to_string(&file)
            .unwrap()
            .replace("15m", "10m");
        std::fs::write(&file, &edited).unwrap();
        assert!(matches!(
            write_policy(&file, &ports(8080)),
            Ok(PolicyFile::Kept)
        ));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), edited);
    }
}
