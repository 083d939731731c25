//! Directory users: create, read, list, replace, patch, delete.

use std::collections::HashMap;

use serde_json::Value;

use super::error::ScimError;
use super::patch::{self, PatchRequest};
use super::resource::{render_user, user_parts, UserParts};
use super::service::{written, Caller, Directory, ListQuery, WRITE_ATTEMPTS};
use crate::store::{DirectoryGroup, DirectoryKey, DirectoryUser};
use crate::telemetry::audit::AuditKind;
use crate::util::clock::now_ms;
use crate::util::random::uuid;

fn not_found(id: &str) -> ScimError {
    ScimError::NotFound(format!("no user with id `{id}`"))
}

/// A PATCH body or operation the patch module refused.
pub(super) fn patch_error(e: patch::PatchError) -> ScimError {
    ScimError::invalid(e.scim_type(), e.to_string())
}

impl Directory {
    pub async fn create_user(&self, caller: Caller<'_>, body: &Value) -> Result<Value, ScimError> {
        let parts = user_parts(body, true)?;
        let now = now_ms();
        let user = DirectoryUser {
            id: uuid()?,
            user_name: parts.user_name,
            external_id: parts.external_id,
            active: parts.active,
            resource: Value::Object(parts.resource).to_string(),
            version: 1,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let what = format!("userName `{}` (or its externalId)", user.user_name);
        // Created again after a DELETE: the identities it left behind come back.
        let returning = match self.link_value(&user) {
            Some(link) if user.active => self
                .store
                .identities_linked_to(link)
                .await?
                .iter()
                .any(|l| l.removed_at_ms.is_some()),
            _ => false,
        };
        let effects = if returning {
            self.effects_of(caller, None, Some(&user))?
        } else if user.active {
            // A joiner: accounts ahead of sign-in, where a policy asks for them.
            let subject = serde_json::json!({ "user": user.id });
            vec![super::new_job::job(
                "joiner",
                subject,
                caller.by,
                "the directory created the user",
            )?]
        } else {
            Vec::new()
        };
        if !written(
            self.store.put_directory_user(&user, None, &effects).await?,
            &what,
        )? {
            return Err(ScimError::Conflict);
        }
        let after = render_user(&user, &[], &self.base);
        self.record(
            AuditKind::DirectoryUserCreated,
            caller,
            &user.id,
            &Value::Null,
            &after,
        )
        .await;
        Ok(after)
    }

    pub async fn get_user(&self, id: &str) -> Result<Value, ScimError> {
        let user = self
            .store
            .get_directory_user(DirectoryKey::Id(id))
            .await?
            .ok_or_else(|| not_found(id))?;
        let groups = self.store.groups_of_directory_user(id).await?;
        let groups: Vec<&DirectoryGroup> = groups.iter().collect();
        Ok(render_user(&user, &groups, &self.base))
    }

    /// Users matching the query's filter, one page of them. `userName eq "x"`, what IdPs ask
    /// before every create, is one indexed read; other filters read the whole directory.
    pub async fn list_users(&self, query: &ListQuery) -> Result<Value, ScimError> {
        let filter = query.parsed_filter()?;
        let users: Vec<DirectoryUser> = match filter.as_ref().and_then(|f| f.user_name_eq()) {
            Some(name) => self
                .store
                .get_directory_user(DirectoryKey::UserName(name))
                .await?
                .into_iter()
                .collect(),
            None => self.store.list_directory_users().await?,
        };
        // One user (the fast path) needs only their groups; a whole list needs them all.
        let groups = match (
            users.as_slice(),
            filter.as_ref().and_then(|f| f.user_name_eq()),
        ) {
            ([user], Some(_)) => self.store.groups_of_directory_user(&user.id).await?,
            ([], Some(_)) => Vec::new(),
            _ => self.store.list_directory_groups().await?,
        };
        let mut groups_of: HashMap<&str, Vec<&DirectoryGroup>> = HashMap::new();
        for group in &groups {
            for member in &group.members {
                groups_of.entry(member.as_str()).or_default().push(group);
            }
        }
        let matched = users
            .iter()
            .map(|u| {
                let groups = groups_of.get(u.id.as_str()).map(Vec::as_slice);
                render_user(u, groups.unwrap_or_default(), &self.base)
            })
            .filter(|r| filter.as_ref().is_none_or(|f| f.matches(r)))
            .collect();
        Ok(query.page(matched))
    }

    /// PUT: the body replaces every attribute the client may set.
    pub async fn replace_user(
        &self,
        caller: Caller<'_>,
        id: &str,
        body: &Value,
    ) -> Result<Value, ScimError> {
        self.write_user(caller, id, |_, active| user_parts(body, active))
            .await
    }

    /// PATCH: the operations apply to the current user as a whole, or not at all.
    pub async fn patch_user(
        &self,
        caller: Caller<'_>,
        id: &str,
        body: &Value,
    ) -> Result<Value, ScimError> {
        let request = PatchRequest::from_json(body).map_err(patch_error)?;
        self.write_user(caller, id, |current, active| {
            let patched = patch::apply(current, &request).map_err(patch_error)?;
            user_parts(&patched, active)
        })
        .await
    }

    async fn write_user(
        &self,
        caller: Caller<'_>,
        id: &str,
        change: impl Fn(&Value, bool) -> Result<UserParts, ScimError>,
    ) -> Result<Value, ScimError> {
        for _ in 0..WRITE_ATTEMPTS {
            let current = self
                .store
                .get_directory_user(DirectoryKey::Id(id))
                .await?
                .ok_or_else(|| not_found(id))?;
            let groups = self.store.groups_of_directory_user(id).await?;
            let groups: Vec<&DirectoryGroup> = groups.iter().collect();
            let before = render_user(&current, &groups, &self.base);
            let parts = change(&before, current.active)?;
            let resource = Value::Object(parts.resource).to_string();
            let unchanged = parts.user_name == current.user_name
                && parts.external_id == current.external_id
                && parts.active == current.active
                && serde_json::from_str::<Value>(&resource).ok()
                    == serde_json::from_str::<Value>(&current.resource).ok();
            if unchanged {
                // IdPs re-send what they sent before; that is not a change to audit.
                return Ok(before);
            }
            let next = DirectoryUser {
                id: current.id.clone(),
                user_name: parts.user_name,
                external_id: parts.external_id,
                active: parts.active,
                resource,
                version: current.version + 1,
                created_at_ms: current.created_at_ms,
                updated_at_ms: now_ms().max(current.updated_at_ms),
            };
            let what = format!("userName `{}` (or its externalId)", next.user_name);
            let effects = self.effects_of(caller, Some(&current), Some(&next))?;
            let outcome = self
                .store
                .put_directory_user(&next, Some(current.version), &effects)
                .await?;
            if !written(outcome, &what)? {
                continue;
            }
            let after = render_user(&next, &groups, &self.base);
            self.record(AuditKind::DirectoryUserUpdated, caller, id, &before, &after)
                .await;
            return Ok(after);
        }
        Err(ScimError::Conflict)
    }

    /// DELETE: the user and their group memberships are gone; an active user is a leaver.
    pub async fn delete_user(&self, caller: Caller<'_>, id: &str) -> Result<(), ScimError> {
        let current = self
            .store
            .get_directory_user(DirectoryKey::Id(id))
            .await?
            .ok_or_else(|| not_found(id))?;
        let before = self.get_user(id).await?;
        let effects = self.effects_of(caller, Some(&current), None)?;
        if !self
            .store
            .delete_directory_user(id, now_ms(), &effects)
            .await?
        {
            return Err(not_found(id));
        }
        self.record(
            AuditKind::DirectoryUserDeleted,
            caller,
            id,
            &before,
            &Value::Null,
        )
        .await;
        Ok(())
    }
}
