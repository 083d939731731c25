//! A user asks for elevated access: the grant type's rules (who may ask, purpose, ticket,
//! the longest duration) are checked here, and an account jitgate deactivated gets none.
//! The grant starts at once for the `auto` groups, else it waits for approvers.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::actor::Actor;
use super::{grant_type, GrantError, Grants};
use crate::auth::identity::Identity;
use crate::policy::PolicySet;
use crate::store::{AccountKey, GrantRecord};
use crate::telemetry::audit::{AuditKind, Subject};
use crate::util::clock::now_ms;

/// What a user asks for.
#[derive(Debug, Clone, Deserialize)]
pub struct GrantAsk {
    pub app: String,
    #[serde(rename = "type")]
    pub grant_type: String,
    #[serde(default)]
    pub purpose: String,
    #[serde(default)]
    pub ticket: Option<String>,
    /// `30m`, `1h`, ...
    pub duration: String,
}

impl Grants {
    /// A user asks for elevated access.
    pub async fn request(
        &self,
        policies: &PolicySet,
        requester: &Identity,
        ask: &GrantAsk,
    ) -> Result<GrantRecord, GrantError> {
        let (app, kind) = grant_type(policies, &ask.app, &ask.grant_type)?;
        let actor = Actor::user(requester);
        if !actor.in_any(&kind.requesters) {
            return Err(GrantError::NotARequester(
                kind.name.clone(),
                kind.requesters.join(", "),
            ));
        }
        let purpose = clip(ask.purpose.trim(), 500);
        if kind.purpose_required && purpose.trim().is_empty() {
            return Err(GrantError::PurposeRequired);
        }
        let ticket = ask
            .ticket
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if ticket.is_some_and(|t| t.len() > 100 || t.chars().any(char::is_control)) {
            return Err(GrantError::BadTicket);
        }
        if let Some(re) = &kind.ticket {
            let shown = display_pattern(re);
            match ticket {
                None => return Err(GrantError::TicketRequired(shown)),
                Some(t) if !re.is_match(t) => {
                    return Err(GrantError::TicketMismatch(t.to_string(), shown))
                }
                Some(_) => {}
            }
        }
        let duration = crate::util::duration::parse_duration(&ask.duration)
            .map_err(GrantError::BadDuration)?;
        if duration.is_zero() {
            return Err(GrantError::BadDuration("it must be more than 0".into()));
        }
        if duration > kind.max_duration {
            return Err(GrantError::TooLong {
                asked: ask.duration.trim().to_string(),
                max: human(kind.max_duration),
            });
        }
        self.refuse_if_deactivated(&app.name, &actor.iss, &actor.sub, &actor.username, &actor)
            .await?;
        let now = now_ms();
        let auto = actor.in_any(&kind.auto);
        let mut grant = GrantRecord {
            id: format!("g-{}", &crate::util::random::token()?[..16]),
            app: app.name.clone(),
            grant_type: kind.name.clone(),
            iss: actor.iss.clone(),
            sub: actor.sub.clone(),
            username: actor.username.clone(),
            purpose,
            ticket: ticket.map(str::to_string),
            duration_secs: duration.as_secs() as i64,
            status: if auto { "active" } else { "pending" }.into(),
            approvals: "[]".into(),
            requested_at: now,
            decided_at: auto.then_some(now),
            expires_at: auto.then_some(now + duration.as_millis() as i64),
            ended_by: None,
            first_used_at: None,
            version: 1,
            end_call: (auto && kind.end_call.is_some()).then(|| "armed".to_string()),
        };
        self.store.insert_grant(&grant).await?;
        self.record(AuditKind::GrantRequested, &grant, &actor).await;
        // A deactivation that ran between the check above and the insert did not see this
        // grant when it ended the user's grants: look again, and end it here.
        let recheck = self
            .refuse_if_deactivated(&app.name, &grant.iss, &grant.sub, &grant.username, &actor)
            .await;
        if let Err(refused) = recheck {
            // Fail closed: a grant whose account cannot be confirmed does not start.
            let why = match refused {
                GrantError::AccountDeactivated { .. } => "account deactivated",
                _ => "could not confirm the account",
            };
            match self
                .end_one(&mut grant, &Actor::operator("jitgate"), why)
                .await
            {
                // Conflict: the deactivation ended it first.
                Ok(()) | Err(GrantError::Conflict) => return Err(refused),
                Err(e) => return Err(e),
            }
        }
        if auto {
            self.record(AuditKind::GrantActivated, &grant, &actor).await;
            self.forget(&grant.iss, &grant.sub);
            self.start_call(app, kind, &grant);
        }
        Ok(grant)
    }

    /// Refuses (and audits) elevated access for a user whose account in `app` jitgate
    /// deactivated. Apps without provisioning have no accounts, so nothing to refuse.
    pub(super) async fn refuse_if_deactivated(
        &self,
        app: &str,
        iss: &str,
        sub: &str,
        username: &str,
        actor: &Actor,
    ) -> Result<(), GrantError> {
        let key = AccountKey { app, iss, sub };
        let deactivated = self
            .store
            .get_account(key)
            .await?
            .is_some_and(|a| a.deactivated_at.is_some());
        if !deactivated {
            return Ok(());
        }
        self.audit
            .record(
                AuditKind::GrantRefused,
                Subject {
                    iss: Some(iss),
                    sub: Some(sub),
                    app: Some(app),
                    request_id: None,
                },
                json!({ "reason": "account deactivated", "by": actor.username }),
            )
            .await;
        Err(GrantError::AccountDeactivated {
            app: app.to_string(),
            user: username.to_string(),
        })
    }
}

/// The pattern as the policy wrote it (without the anchors jitgate adds).
fn display_pattern(re: &regex::Regex) -> String {
    let s = re.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
        .to_string()
}

/// `90m` -> `1h30m`-free short form: the largest whole unit (`1h`, `30m`, `45s`).
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn clip(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}
