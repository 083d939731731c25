//! The development issuer's directory page (`/directory` on the issuer's port): the demo
//! users, each with a *Disable* (or *Enable*) button that tells jitgate over SCIM, the way
//! Okta or Entra ID would when HR marks someone as a leaver.
//!
//! Each demo user is pushed to jitgate's SCIM service (`POST /Users`, `externalId` = the
//! `sub` the issuer puts in its ID tokens, so the default link matches) the first time the
//! page needs them; the buttons send `PATCH /Users/{id}` with `active: false` or `true`.
//! Forms carry a token only this page shows, so another site cannot press the buttons.

use std::collections::HashMap;
use std::time::Duration;

use openidconnect::reqwest;
use serde_json::{json, Value};

use super::users::{DemoUser, DEMO_USERS};
use crate::endpoints::pages::escape;
use crate::lifecycle::provision::client::http_client;
use crate::util::random;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const TIMEOUT: Duration = Duration::from_secs(5);

pub struct DemoDirectory {
    /// jitgate's SCIM base, `http://127.0.0.1:PORT/.jitgate/scim/v2`.
    scim_base: String,
    token: String,
    /// Proves a form came from this page.
    form_token: String,
    http: reqwest::Client,
}

impl DemoDirectory {
    pub fn new(scim_base: String, token: String) -> Result<Self, random::RandomError> {
        Ok(Self {
            scim_base,
            token,
            form_token: random::token()?,
            http: http_client(),
        })
    }

    /// The page: every demo user, whether the directory has them active, and a button.
    pub async fn page(&self) -> (u16, String) {
        let mut rows = String::new();
        for (i, user) in DEMO_USERS.iter().enumerate() {
            let (state, button) = match self.pushed(user).await {
                Ok((_, true)) => (
                    "active",
                    format!("<button name=\"disable\" value=\"{i}\">Disable</button>"),
                ),
                Ok((_, false)) => (
                    "disabled",
                    format!("<button name=\"enable\" value=\"{i}\">Enable</button>"),
                ),
                Err(e) => {
                    return (
                        502,
                        format!(
                            "<p>jitgate's SCIM service did not answer: {}</p>",
                            escape(&e)
                        ),
                    )
                }
            };
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{state}</td><td>{button}</td></tr>",
                escape(user.login),
                escape(&user.groups.join(", "))
            ));
        }
        let body = format!(
            "<h1>Directory</h1><p>What an HR system and the IdP's provisioning would do: each \
             button sends SCIM to jitgate. Disable bob, then reload his window: his session is \
             gone, he cannot sign in again, and his demo-app account is deactivated.</p>\
             <form method=\"post\" action=\"/directory\">\
             <input type=\"hidden\" name=\"form_token\" value=\"{}\">\
             <table><tr><th>user</th><th>groups</th><th>in the directory</th><th></th></tr>{rows}</table>\
             </form>",
            escape(&self.form_token)
        );
        (200, body)
    }

    /// A pressed button: the user set inactive (or active) in jitgate's directory.
    pub async fn submit(&self, form: &HashMap<String, String>) -> Result<(), String> {
        let sent = form.get("form_token").map(String::as_str).unwrap_or("");
        if !random::same_secret(sent, &self.form_token) {
            return Err("this form did not come from the directory page".into());
        }
        let (index, active) = match (form.get("disable"), form.get("enable")) {
            (Some(i), None) => (i, false),
            (None, Some(i)) => (i, true),
            _ => return Err("press Disable or Enable".into()),
        };
        let user = index
            .parse::<usize>()
            .ok()
            .and_then(|i| DEMO_USERS.get(i))
            .ok_or("unknown user")?;
        let (id, _) = self.pushed(user).await?;
        let patch = json!({
            "schemas": [PATCH_OP],
            "Operations": [{ "op": "replace", "path": "active", "value": active }]
        });
        self.send(
            reqwest::Method::PATCH,
            &format!("/Users/{id}"),
            Some(&patch),
        )
        .await?;
        Ok(())
    }

    /// The user's SCIM id and `active`, pushing them first if jitgate does not have them.
    async fn pushed(&self, user: &DemoUser) -> Result<(String, bool), String> {
        let external_id = user.subject();
        let filter: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("filter", &format!("externalId eq \"{external_id}\""))
            .finish();
        let found = self
            .send(reqwest::Method::GET, &format!("/Users?{filter}"), None)
            .await?;
        let existing = &found["Resources"][0];
        let resource = if existing.is_object() {
            existing.clone()
        } else {
            let new = json!({
                "schemas": [USER_SCHEMA],
                "userName": format!("{}@demo.jitgate.invalid", user.login),
                "externalId": external_id,
                "displayName": user.name,
                "active": true
            });
            self.send(reqwest::Method::POST, "/Users", Some(&new))
                .await?
        };
        let id = resource["id"]
            .as_str()
            .ok_or("the SCIM answer has no id")?
            .to_string();
        Ok((id, resource["active"].as_bool().unwrap_or(true)))
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.scim_base))
            .bearer_auth(&self.token)
            .timeout(TIMEOUT);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{path}: {status} {text}"));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}
