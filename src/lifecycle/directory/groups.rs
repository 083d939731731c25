//! Directory groups: create, read, list, replace, patch (members added and removed), delete.
//! Members must be users of the directory: an unknown id is refused, not silently dropped.
//! Every write queues, in its own transaction, a `mover` job for each user whose groups it
//! changes.

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;

use super::error::ScimError;
use super::new_job;
use super::patch::{self, PatchRequest};
use super::resource::{group_parts, render_group, GroupParts};
use super::service::{written, Caller, Directory, ListQuery, WRITE_ATTEMPTS};
use super::users::patch_error;
use crate::config::GroupSource;
use crate::store::{DirectoryGroup, DirectoryKey, DirectoryWrite, LifecycleJob};
use crate::telemetry::audit::AuditKind;
use crate::util::clock::now_ms;
use crate::util::random::uuid;

/// The users whose groups change when `before` becomes `after`: those added or removed, and
/// every member when the group is renamed (the edge and the apps know groups by name).
fn moved<'g>(
    before: &'g DirectoryGroup,
    after: &'g DirectoryGroup,
) -> impl Iterator<Item = &'g String> {
    let renamed = before.display_name != after.display_name;
    let (old, new): (HashSet<&String>, HashSet<&String>) = (
        before.members.iter().collect(),
        after.members.iter().collect(),
    );
    before
        .members
        .iter()
        .filter(move |m| renamed || !new.contains(m))
        .chain(
            after
                .members
                .iter()
                .filter(move |m| renamed || !old.contains(m)),
        )
}

fn not_found(id: &str) -> ScimError {
    ScimError::NotFound(format!("no group with id `{id}`"))
}

impl Directory {
    pub async fn create_group(&self, caller: Caller<'_>, body: &Value) -> Result<Value, ScimError> {
        let parts = group_parts(body)?;
        self.check_members(&parts.members, &[]).await?;
        let now = now_ms();
        let group = DirectoryGroup {
            id: uuid()?,
            display_name: parts.display_name,
            external_id: parts.external_id,
            resource: Value::Object(parts.resource).to_string(),
            members: parts.members,
            version: 1,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let what = format!("displayName `{}`", group.display_name);
        let jobs = self.mover_jobs(caller, group.members.iter())?;
        if !written(
            self.store.put_directory_group(&group, None, &jobs).await?,
            &what,
        )? {
            return Err(ScimError::Conflict);
        }
        let after = self.stored(&group).await?;
        self.record_group(AuditKind::DirectoryGroupCreated, caller, None, &after)
            .await;
        Ok(after)
    }

    pub async fn get_group(&self, id: &str) -> Result<Value, ScimError> {
        let group = self
            .store
            .get_directory_group(id)
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(render_group(&group, &self.base))
    }

    pub async fn list_groups(&self, query: &ListQuery) -> Result<Value, ScimError> {
        let filter = query.parsed_filter()?;
        let matched = self
            .store
            .list_directory_groups()
            .await?
            .iter()
            .map(|g| render_group(g, &self.base))
            .filter(|r| filter.as_ref().is_none_or(|f| f.matches(r)))
            .collect();
        Ok(query.page(matched))
    }

    pub async fn replace_group(
        &self,
        caller: Caller<'_>,
        id: &str,
        body: &Value,
    ) -> Result<Value, ScimError> {
        let parts = group_parts(body)?;
        self.write_group(caller, id, |_| Ok(parts.clone())).await
    }

    pub async fn patch_group(
        &self,
        caller: Caller<'_>,
        id: &str,
        body: &Value,
    ) -> Result<Value, ScimError> {
        let request = PatchRequest::from_json(body).map_err(patch_error)?;
        self.write_group(caller, id, |current| {
            let patched = patch::apply(current, &request).map_err(patch_error)?;
            group_parts(&patched)
        })
        .await
    }

    async fn write_group(
        &self,
        caller: Caller<'_>,
        id: &str,
        change: impl Fn(&Value) -> Result<GroupParts, ScimError>,
    ) -> Result<Value, ScimError> {
        for _ in 0..WRITE_ATTEMPTS {
            let current = self
                .store
                .get_directory_group(id)
                .await?
                .ok_or_else(|| not_found(id))?;
            let before = render_group(&current, &self.base);
            let parts = change(&before)?;
            self.check_members(&parts.members, &current.members).await?;
            let resource = Value::Object(parts.resource).to_string();
            let unchanged = parts.display_name == current.display_name
                && parts.external_id == current.external_id
                && parts.members == current.members
                && serde_json::from_str::<Value>(&resource).ok()
                    == serde_json::from_str::<Value>(&current.resource).ok();
            if unchanged {
                return Ok(before);
            }
            let next = DirectoryGroup {
                id: current.id.clone(),
                display_name: parts.display_name,
                external_id: parts.external_id,
                resource,
                members: parts.members,
                version: current.version + 1,
                created_at_ms: current.created_at_ms,
                updated_at_ms: now_ms().max(current.updated_at_ms),
            };
            let what = format!("displayName `{}`", next.display_name);
            let jobs = self.mover_jobs(caller, moved(&current, &next))?;
            let outcome = self
                .store
                .put_directory_group(&next, Some(current.version), &jobs)
                .await?;
            if !written(outcome, &what)? {
                continue;
            }
            let after = self.stored(&next).await?;
            self.record_group(
                AuditKind::DirectoryGroupUpdated,
                caller,
                Some(&before),
                &after,
            )
            .await;
            return Ok(after);
        }
        Err(ScimError::Conflict)
    }

    pub async fn delete_group(&self, caller: Caller<'_>, id: &str) -> Result<(), ScimError> {
        // Conditional on the version read, so a member added meanwhile gets their mover too.
        for _ in 0..WRITE_ATTEMPTS {
            let group = self
                .store
                .get_directory_group(id)
                .await?
                .ok_or_else(|| not_found(id))?;
            let before = render_group(&group, &self.base);
            let jobs = self.mover_jobs(caller, group.members.iter())?;
            match self
                .store
                .delete_directory_group(id, group.version, &jobs)
                .await?
            {
                DirectoryWrite::Written => {}
                DirectoryWrite::Stale => continue,
                _ => return Err(not_found(id)),
            }
            self.record_group(
                AuditKind::DirectoryGroupDeleted,
                caller,
                Some(&before),
                &Value::Null,
            )
            .await;
            return Ok(());
        }
        Err(ScimError::Conflict)
    }

    /// The group as the store holds it after a write (a member deleted meanwhile is not in
    /// it), or as written if it is gone again already.
    async fn stored(&self, written: &DirectoryGroup) -> Result<Value, ScimError> {
        let group = self.store.get_directory_group(&written.id).await?;
        Ok(render_group(group.as_ref().unwrap_or(written), &self.base))
    }

    /// Audits a group change. Membership is recorded as who was added and removed, not as
    /// two copies of the whole list: IdPs send one change per member, and groups can hold
    /// everyone in the company.
    async fn record_group(
        &self,
        kind: AuditKind,
        caller: Caller<'_>,
        before: Option<&Value>,
        after: &Value,
    ) {
        let ids = |v: Option<&Value>| -> HashSet<String> {
            v.and_then(|v| v["members"].as_array())
                .into_iter()
                .flatten()
                .filter_map(|m| m["value"].as_str().map(str::to_string))
                .collect()
        };
        let (old, new) = (ids(before), ids(Some(after)));
        let mut added: Vec<&String> = new.difference(&old).collect();
        let mut removed: Vec<&String> = old.difference(&new).collect();
        added.sort();
        removed.sort();
        let without_members = |v: &Value| {
            let mut v = v.clone();
            if let Value::Object(map) = &mut v {
                map.remove("members");
            }
            v
        };
        let id = after["id"]
            .as_str()
            .or_else(|| before.and_then(|b| b["id"].as_str()))
            .unwrap_or_default()
            .to_string();
        self.record_with(
            kind,
            caller,
            &id,
            &before.map(without_members).unwrap_or(Value::Null),
            &without_members(after),
            serde_json::json!({
                "members_added": added,
                "members_removed": removed,
                "members": new.len(),
            }),
        )
        .await;
    }

    /// One `mover` job per user whose groups a group write changes: they are carried to
    /// the edge, to grants and to the apps (see `effects.rs`).
    fn mover_jobs<'m>(
        &self,
        caller: Caller<'_>,
        users: impl Iterator<Item = &'m String>,
    ) -> Result<Vec<LifecycleJob>, ScimError> {
        if self.groups == GroupSource::Token {
            return Ok(Vec::new());
        }
        let users: BTreeSet<&String> = users.collect();
        users
            .into_iter()
            .map(|user| {
                let subject = serde_json::json!({ "user": user });
                new_job::job(
                    "mover",
                    subject,
                    caller.by,
                    "the directory changed the user's groups",
                )
                .map_err(ScimError::from)
            })
            .collect()
    }

    /// Every member not already in the group must be a user of the directory.
    async fn check_members(&self, members: &[String], already: &[String]) -> Result<(), ScimError> {
        let already: HashSet<&String> = already.iter().collect();
        for member in members.iter().filter(|m| !already.contains(m)) {
            if self
                .store
                .get_directory_user(DirectoryKey::Id(member))
                .await?
                .is_none()
            {
                return Err(ScimError::invalid_value(format!(
                    "member `{member}` is not a user of this directory"
                )));
            }
        }
        Ok(())
    }
}
