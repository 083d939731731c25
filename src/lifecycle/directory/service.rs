//! The directory's operations, as the SCIM endpoint calls them: create, read, list, replace,
//! patch and delete users and groups, each checked in full before anything is written (a
//! request that fails changes nothing) and audited with who (which token), what, and the
//! resource before and after.
//!
//! Writes are optimistic: a replace names the version it read, and a write that lost a race
//! is redone from a fresh read (a PATCH is re-applied to the new state), a few times, before
//! the client is told to retry. The user and group operations live in `users.rs` and
//! `groups.rs`; this file holds what they share.

use std::sync::Arc;

use serde_json::{json, Value};

use super::error::ScimError;
use super::filter::{self, Filter};
use super::person_claims::person_claims;
use super::resource::LIST_URN;
use crate::config::{GroupSource, LinkAttribute, ScimLink};
use crate::store::{DirectoryUser, DirectoryWrite, LifecycleJob, Store};
use crate::telemetry::audit::{Audit, AuditKind, Subject};

/// How often a write that lost a race is redone before the client gets a 409.
pub(super) const WRITE_ATTEMPTS: usize = 5;
/// The most resources one list answer holds (advertised in ServiceProviderConfig).
pub const MAX_RESULTS: usize = 200;

/// The company directory, as the IdP pushes it.
#[derive(Clone)]
pub struct Directory {
    pub(super) store: Arc<dyn Store>,
    audit: Audit,
    /// Absolute URL of the SCIM base, e.g. `https://auth.example.com/.jitgate/scim/v2`.
    pub(super) base: String,
    /// Which ID-token claim names which attribute of a directory user.
    pub(super) link: ScimLink,
    /// Whether linked users' groups are the directory's (then group writes are movers).
    pub(super) groups: GroupSource,
}

/// Who made a request: the token's label (never the token) and the request id.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub by: &'a str,
    pub request_id: &'a str,
}

/// The paging and filtering of a list request.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub filter: Option<String>,
    /// 1-based; values below 1 count as 1 (RFC 7644 §3.4.2.4).
    pub start_index: Option<i64>,
    /// Values below 0 count as 0; capped at [`MAX_RESULTS`].
    pub count: Option<i64>,
}

impl ListQuery {
    pub(super) fn parsed_filter(&self) -> Result<Option<Filter>, ScimError> {
        match self.filter.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => filter::parse(text)
                .map(Some)
                .map_err(|e| ScimError::invalid("invalidFilter", e.to_string())),
        }
    }

    /// One page of `matched` as a ListResponse.
    pub(super) fn page(&self, matched: Vec<Value>) -> Value {
        let start = self.start_index.unwrap_or(1).max(1) as usize;
        let count = self
            .count
            .unwrap_or(MAX_RESULTS as i64)
            .clamp(0, MAX_RESULTS as i64) as usize;
        let total = matched.len();
        let resources: Vec<Value> = matched.into_iter().skip(start - 1).take(count).collect();
        json!({
            "schemas": [LIST_URN],
            "totalResults": total,
            "itemsPerPage": resources.len(),
            "startIndex": start,
            "Resources": resources,
        })
    }
}

impl Directory {
    pub fn new(
        store: Arc<dyn Store>,
        audit: Audit,
        base: String,
        link: ScimLink,
        groups: GroupSource,
    ) -> Self {
        Self {
            store,
            audit,
            base,
            link,
            groups,
        }
    }

    /// The value signed-in identities link to this user by, if the user has one.
    pub(super) fn link_value<'u>(&self, user: &'u DirectoryUser) -> Option<&'u str> {
        match self.link.attribute {
            LinkAttribute::ExternalId => user.external_id.as_deref(),
            LinkAttribute::UserName => Some(&user.user_name),
            LinkAttribute::Id => Some(&user.id),
        }
    }

    /// The lifecycle effects of a change from `before` to `after` (`None`: deleted): a
    /// leaver when an active user becomes inactive or goes, a return when an inactive one
    /// becomes active again. Written with the change, in one transaction.
    /// A user created active may be one deleted before: that is a return too.
    pub(super) fn effects_of(
        &self,
        caller: Caller<'_>,
        before: Option<&DirectoryUser>,
        after: Option<&DirectoryUser>,
    ) -> Result<Vec<LifecycleJob>, ScimError> {
        let (kind, reason) = match (before.map(|u| u.active), after.map(|u| u.active)) {
            (Some(true), Some(false)) => ("leaver", "the directory set the user inactive"),
            (Some(true), None) => ("leaver", "the directory deleted the user"),
            (Some(false), Some(true)) => ("return", "the directory set the user active again"),
            (None, Some(true)) => ("return", "the directory created the user"),
            (Some(true), Some(true)) => return self.person_mover(caller, before, after),
            _ => return Ok(Vec::new()),
        };
        // The link as it was: a leaver is found by the value their sign-ins recorded.
        let Some(before) = before.or(after) else {
            return Ok(Vec::new());
        };
        let Some(link) = self.link_value(before) else {
            return Ok(Vec::new());
        };
        let subject = json!({ "user": before.id, "userName": before.user_name, "link": link });
        Ok(vec![super::new_job::job(kind, subject, caller.by, reason)?])
    }

    /// A `mover` job when an active user's email or name changed (their groups are the
    /// group writes' business), for sessions and app accounts to follow; none with
    /// `groups: token`, where SCIM carries leavers and returns only.
    fn person_mover(
        &self,
        caller: Caller<'_>,
        before: Option<&DirectoryUser>,
        after: Option<&DirectoryUser>,
    ) -> Result<Vec<LifecycleJob>, ScimError> {
        let (Some(before), Some(after)) = (before, after) else {
            return Ok(Vec::new());
        };
        if self.groups == GroupSource::Token || person_claims(before) == person_claims(after) {
            return Ok(Vec::new());
        }
        let subject = json!({ "user": after.id, "userName": after.user_name });
        let reason = "the directory changed the user's email or name";
        Ok(vec![super::new_job::job(
            "mover", subject, caller.by, reason,
        )?])
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Audits one change with who made it and the resource before and after.
    pub(super) async fn record(
        &self,
        kind: AuditKind,
        caller: Caller<'_>,
        id: &str,
        before: &Value,
        after: &Value,
    ) {
        self.record_with(kind, caller, id, before, after, Value::Null)
            .await
    }

    /// [`Self::record`] with more fields (an object) in the event's detail.
    pub(super) async fn record_with(
        &self,
        kind: AuditKind,
        caller: Caller<'_>,
        id: &str,
        before: &Value,
        after: &Value,
        more: Value,
    ) {
        let subject = Subject {
            request_id: Some(caller.request_id),
            ..Subject::default()
        };
        let mut detail = json!({
            "by": caller.by,
            "id": id,
            "before": before,
            "after": after,
        });
        if let (Value::Object(detail), Value::Object(more)) = (&mut detail, more) {
            detail.extend(more);
        }
        self.audit.record(kind, subject, detail).await;
    }
}

/// A write's outcome as the client sees it, for what `what` names ("userName `x`").
pub(super) fn written(outcome: DirectoryWrite, what: &str) -> Result<bool, ScimError> {
    match outcome {
        DirectoryWrite::Written => Ok(true),
        DirectoryWrite::Stale => Ok(false),
        DirectoryWrite::Duplicate => Err(ScimError::Uniqueness(format!("{what} is already taken"))),
        DirectoryWrite::Missing => Err(ScimError::NotFound("the resource was deleted".into())),
    }
}
