//! Directory groups: create, read, list, replace, patch (members added and removed), delete.
//! Members must be users of the directory: an unknown id is refused, not silently dropped.

use serde_json::Value;

use super::error::ScimError;
use super::patch::{self, PatchRequest};
use super::resource::{group_parts, render_group, GroupParts};
use super::service::{written, Caller, Directory, ListQuery, WRITE_ATTEMPTS};
use super::users::patch_error;
use crate::store::{DirectoryGroup, DirectoryKey};
use crate::telemetry::audit::AuditKind;
use crate::util::clock::now_ms;
use crate::util::random::uuid;

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
        if !written(self.store.put_directory_group(&group, None).await?, &what)? {
            return Err(ScimError::Conflict);
        }
        let after = render_group(&group, &self.base);
        self.record(
            AuditKind::DirectoryGroupCreated,
            caller,
            &group.id,
            &Value::Null,
            &after,
        )
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
            let outcome = self
                .store
                .put_directory_group(&next, Some(current.version))
                .await?;
            if !written(outcome, &what)? {
                continue;
            }
            let after = render_group(&next, &self.base);
            self.record(
                AuditKind::DirectoryGroupUpdated,
                caller,
                id,
                &before,
                &after,
            )
            .await;
            return Ok(after);
        }
        Err(ScimError::Conflict)
    }

    pub async fn delete_group(&self, caller: Caller<'_>, id: &str) -> Result<(), ScimError> {
        let before = self.get_group(id).await?;
        if !self.store.delete_directory_group(id).await? {
            return Err(not_found(id));
        }
        self.record(
            AuditKind::DirectoryGroupDeleted,
            caller,
            id,
            &before,
            &Value::Null,
        )
        .await;
        Ok(())
    }

    /// Every member not already in the group must be a user of the directory.
    async fn check_members(&self, members: &[String], already: &[String]) -> Result<(), ScimError> {
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
