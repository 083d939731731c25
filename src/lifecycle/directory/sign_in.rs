//! The directory's say at sign-in: a person the directory removed is refused, even though
//! the IdP still authenticates them (IdPs often keep a disabled user's session alive, and
//! a deactivation may reach jitgate over SCIM before it reaches the IdP's login).
//!
//! Each sign-in also records which directory value the identity links to (the configured
//! claim), so that a later leaver or mover finds the identity's sessions, grants and
//! accounts. A linked user's groups are the directory's, not the token's.

use crate::store::{DirectoryKey, IdentityLink, StoreError};
use crate::util::clock::now_ms;

use super::service::Directory;
use crate::config::{GroupSource, LinkAttribute};

/// Whether the directory lets an identity sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// With the groups the directory holds for the linked user (their displayNames), which
    /// replace the token's groups claim; `None` when no directory user is linked.
    Allowed(Option<Vec<String>>),
    /// The directory says this person left (inactive, or deleted after a sign-in here).
    Removed,
}

impl Directory {
    /// Records the identity's link and says whether it may sign in. `link_value` is the
    /// configured claim's value (`None` when the token does not carry it: then the identity
    /// cannot be matched, and the directory has no say).
    pub async fn sign_in(
        &self,
        iss: &str,
        sub: &str,
        link_value: Option<&str>,
    ) -> Result<SignIn, StoreError> {
        let Some(link_value) = link_value.filter(|v| !v.is_empty()) else {
            return Ok(SignIn::Allowed(None));
        };
        self.store
            .put_identity_link(&IdentityLink {
                iss: iss.to_string(),
                sub: sub.to_string(),
                link_value: link_value.to_string(),
                seen_at_ms: now_ms(),
                removed_at_ms: None,
            })
            .await?;
        self.standing(iss, sub, Some(link_value)).await
    }

    /// What [`Self::sign_in`] says, without recording anything: read again right after a
    /// sign-in's session is stored, so that a change that came in between is not missed.
    pub async fn standing(
        &self,
        iss: &str,
        sub: &str,
        link_value: Option<&str>,
    ) -> Result<SignIn, StoreError> {
        let Some(link_value) = link_value.filter(|v| !v.is_empty()) else {
            return Ok(SignIn::Allowed(None));
        };
        let key = match self.link.attribute {
            LinkAttribute::ExternalId => DirectoryKey::ExternalId(link_value),
            LinkAttribute::UserName => DirectoryKey::UserName(link_value),
            LinkAttribute::Id => DirectoryKey::Id(link_value),
        };
        // The directory's user decides, and gives their groups; with none (deleted, or
        // never pushed), a leaver's mark on the identity does.
        match self.store.get_directory_user(key).await? {
            Some(user) if user.active => Ok(SignIn::Allowed(match self.groups {
                GroupSource::Directory => Some(self.groups_of(&user.id).await?),
                GroupSource::Token => None,
            })),
            Some(_) => Ok(SignIn::Removed),
            None => {
                let removed = self
                    .store
                    .get_identity_link(iss, sub)
                    .await?
                    .is_some_and(|link| link.removed_at_ms.is_some());
                Ok(if removed {
                    SignIn::Removed
                } else {
                    SignIn::Allowed(None)
                })
            }
        }
    }

    /// The displayNames of the groups a directory user is in (how policies name groups).
    pub async fn groups_of(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .store
            .groups_of_directory_user(user_id)
            .await?
            .into_iter()
            .map(|g| g.display_name)
            .collect())
    }
}
