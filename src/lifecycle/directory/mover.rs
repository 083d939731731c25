//! A mover, run from the lifecycle queue: someone's groups changed, and every place that
//! acts on groups follows without waiting for a new login.
//!
//! ```text
//! mover     a group write changed this directory user's groups, or a user write their
//!           email or name (job per user)
//!           -> the user's groups now (displayNames) and person claims (`person_claims.rs`),
//!              for every identity linked to them
//! regroup   an identity's new groups (from a claims refresh, say), as given
//! both      -> every session of the identity rewritten with the new groups (on every host;
//!              other replicas hear it from the store's session feed and read it again)
//!           -> in every app: grants of types the new groups may not request ended
//!              (active revoked with their end calls, pending denied), and the account
//!              updated through the connector when what jitgate sends about it changed
//! ```
//! Every step compares before it writes, so running a job twice does no harm.

use serde_json::{json, Map, Value};

use super::effects::{text, EffectError, Effects};
use super::person_claims::person_claims;
use crate::auth::identity::Identity;
use crate::lifecycle::grants::Actor;
use crate::lifecycle::provision::Because;
use crate::store::{AccountKey, DirectoryKey, LifecycleJob, SessionIdentityChange};
use crate::telemetry::audit::{AuditKind, Subject};

/// Rounds of rewriting an identity's sessions when a concurrent write changed one between
/// the read and the write.
const SESSION_ROUNDS: usize = 3;
/// Rounds of a directory mover while the user's groups keep changing under it.
const ROUNDS: usize = 3;

/// What a mover changed for one identity.
#[derive(Debug, Default, Clone, Copy)]
struct Moved {
    sessions: usize,
    revoked: usize,
    denied: usize,
    accounts: usize,
}

impl Moved {
    fn changed(&self) -> bool {
        self.sessions + self.revoked + self.denied + self.accounts > 0
    }

    fn add(&mut self, other: Moved) {
        self.sessions += other.sessions;
        self.revoked += other.revoked;
        self.denied += other.denied;
        self.accounts += other.accounts;
    }
}

impl Effects<'_> {
    /// A directory user's groups changed: every identity linked to them gets the groups the
    /// directory holds now. An inactive or deleted user is the leaver's business.
    ///
    /// Two movers of one user may run at once (two replicas, or a retried job): each reads
    /// the directory again after its writes and goes on until what it applied is still what
    /// the directory holds, so the last writer always writes the newest groups.
    pub(super) async fn mover(
        &self,
        job: &LifecycleJob,
        subject: &Value,
    ) -> Result<(), EffectError> {
        let user_id = text(subject, "user")?;
        let Some(directory) = self.directory else {
            return Err(EffectError::Failed("no directory is configured".into()));
        };
        let mut applied: Option<(Vec<String>, Map<String, Value>)> = None;
        let mut stable = false;
        let mut total = Moved::default();
        let mut who = Value::Null;
        for _ in 0..ROUNDS {
            let Some(user) = self
                .store
                .get_directory_user(DirectoryKey::Id(user_id))
                .await?
            else {
                return Ok(());
            };
            let Some(link) = directory.link_value(&user).filter(|_| user.active) else {
                return Ok(());
            };
            let groups = directory.groups_of(&user.id).await?;
            let person = person_claims(&user);
            if applied.as_ref() == Some(&(groups.clone(), person.clone())) {
                stable = true;
                break;
            }
            who = json!({ "user": user.id, "userName": user.user_name });
            let identities = self.store.identities_linked_to(link).await?;
            for identity in identities.iter().filter(|i| i.removed_at_ms.is_none()) {
                total.add(
                    self.apply_groups(job, &identity.iss, &identity.sub, &groups, Some(&person))
                        .await?,
                );
            }
            applied = Some((groups, person));
        }
        let Some((groups, _)) = applied.filter(|_| stable) else {
            return Err(EffectError::Failed(
                "the user's groups kept changing; trying again".into(),
            ));
        };
        // A group may open an `ahead` app to them: set their account up (its own job, so a
        // failing app there does not hold this one back).
        self.queue_joiner(job, user_id).await?;
        if total.changed() {
            self.record_mover(job, who, &groups, total).await;
        }
        Ok(())
    }

    /// An identity's groups changed outside the directory (a claims refresh): the subject
    /// names the identity, its new groups and (when known) the groups before. A retry whose
    /// sessions hold neither of those meanwhile found a newer regroup applied: it carries
    /// those on instead, so older groups never come back; sessions still holding the groups
    /// from before mean this change is not applied yet, and it is.
    pub(super) async fn regroup(
        &self,
        job: &LifecycleJob,
        subject: &Value,
    ) -> Result<(), EffectError> {
        let (iss, sub) = (text(subject, "iss")?, text(subject, "sub")?);
        let mut groups: Vec<String> = subject["groups"]
            .as_array()
            .ok_or_else(|| EffectError::Failed("the job names no `groups`".into()))?
            .iter()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect();
        let previous: Option<Vec<String>> = subject["previous"].as_array().map(|list| {
            list.iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect()
        });
        if let (true, Some(previous)) = (job.attempts > 1, previous) {
            let sessions = self.store.sessions_of(iss, sub).await?;
            if let Some(now) = sessions
                .iter()
                .find_map(|s| serde_json::from_str::<Identity>(&s.identity).ok())
            {
                let now: Vec<String> = now.groups().map(str::to_string).collect();
                groups = groups_on_retry(groups, &previous, now);
            }
        }
        let moved = self.apply_groups(job, iss, sub, &groups, None).await?;
        self.record_mover(job, json!({ "iss": iss, "sub": sub }), &groups, moved)
            .await;
        Ok(())
    }

    /// Carries new groups to the identity's sessions, grants and app accounts. Every app is
    /// tried even when one fails: grants first everywhere (they are in the store), then the
    /// apps' accounts; the failures are reported together, for a retry.
    async fn apply_groups(
        &self,
        job: &LifecycleJob,
        iss: &str,
        sub: &str,
        groups: &[String],
        person: Option<&Map<String, Value>>,
    ) -> Result<Moved, EffectError> {
        let mut moved = Moved {
            sessions: self.regroup_sessions(iss, sub, groups, person).await?,
            ..Moved::default()
        };
        // Who ends grants: the directory (SCIM), or the IdP (a claims refresh's `regroup`).
        let actor = match job.kind.as_str() {
            "regroup" => Actor::idp(&job.by),
            _ => Actor::directory(&job.by),
        };
        let why = Because {
            by: &job.by,
            reason: &job.reason,
        };
        let mut failures = Vec::new();
        for app in self.policies.apps() {
            let key = AccountKey {
                app: &app.name,
                iss,
                sub,
            };
            match self
                .grants
                .end_unrequestable(app, key, groups, &actor, &job.reason)
                .await
            {
                Ok((revoked, denied)) => {
                    moved.revoked += revoked;
                    moved.denied += denied;
                }
                Err(e) => failures.push(format!("ending grants in {}: {e}", app.name)),
            }
        }
        for app in self.policies.apps() {
            let key = AccountKey {
                app: &app.name,
                iss,
                sub,
            };
            match self
                .accounts
                .regroup(app, key, groups, &self.idp.groups_claim, person, &why)
                .await
            {
                Ok(true) => moved.accounts += 1,
                Ok(false) => {}
                Err(e) => failures.push(format!("{}: {e}", app.name)),
            }
        }
        if failures.is_empty() {
            Ok(moved)
        } else {
            Err(EffectError::Failed(failures.join("; ")))
        }
    }

    /// Rewrites the identity's sessions whose groups differ; returns how many changed.
    async fn regroup_sessions(
        &self,
        iss: &str,
        sub: &str,
        groups: &[String],
        person: Option<&Map<String, Value>>,
    ) -> Result<usize, EffectError> {
        let mut changed = 0;
        for _ in 0..SESSION_ROUNDS {
            let mut changes = Vec::new();
            for session in self.store.sessions_of(iss, sub).await? {
                let Ok(identity) = serde_json::from_str::<Identity>(&session.identity) else {
                    continue;
                };
                let mut moved = identity.with_groups(groups, &self.idp.groups_claim);
                if let Some(person) = person {
                    moved = moved.with_claims(person);
                }
                if moved == identity {
                    continue;
                }
                let to = serde_json::to_string(&moved)
                    .map_err(|e| EffectError::Failed(format!("session identity: {e}")))?;
                changes.push(SessionIdentityChange {
                    id_hash: session.id_hash,
                    from: session.identity,
                    to,
                });
            }
            if changes.is_empty() {
                return Ok(changed);
            }
            let done = self.store.replace_session_identities(&changes).await?;
            self.sessions.forget(&done);
            changed += done.len();
            if done.len() == changes.len() {
                return Ok(changed);
            }
        }
        Err(EffectError::Failed(
            "the user's sessions kept changing; trying again".into(),
        ))
    }

    async fn record_mover(&self, job: &LifecycleJob, who: Value, groups: &[String], moved: Moved) {
        let mut detail = json!({ "by": job.by, "reason": job.reason, "groups": groups,
                                 "sessions_changed": moved.sessions, "grants_revoked": moved.revoked,
                                 "requests_denied": moved.denied, "accounts_updated": moved.accounts });
        if let (Value::Object(detail), Value::Object(who)) = (&mut detail, who) {
            detail.extend(who);
        }
        self.audit
            .record(AuditKind::Mover, Subject::default(), detail)
            .await;
    }
}

/// The groups a retried `regroup` applies: its own, unless the sessions hold groups that are
/// neither its own nor those from before it (a newer regroup ran meanwhile: those stay).
fn groups_on_retry(own: Vec<String>, previous: &[String], sessions: Vec<String>) -> Vec<String> {
    if sessions != own && sessions != previous {
        sessions
    } else {
        own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(groups: &[&str]) -> Vec<String> {
        groups.iter().map(|g| g.to_string()).collect()
    }

    #[test]
    fn a_retry_never_brings_older_groups_back_nor_drops_its_own_change() {
        let (before, own, newer) = (list(&["eng", "ops"]), list(&["eng"]), list(&[]));
        // Not applied yet (the sessions still hold the groups from before): apply it.
        assert_eq!(groups_on_retry(own.clone(), &before, before.clone()), own);
        // Applied halfway (sessions done, an app failed): go on with it.
        assert_eq!(groups_on_retry(own.clone(), &before, own.clone()), own);
        // A newer regroup ran meanwhile: its groups stay.
        assert_eq!(groups_on_retry(own, &before, newer.clone()), newer);
    }
}
