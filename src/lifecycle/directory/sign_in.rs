//! The directory's say at sign-in: a person the directory removed is refused, even though
//! the IdP still authenticates them (IdPs often keep a disabled user's session alive, and
//! a deactivation may reach jitgate over SCIM before it reaches the IdP's login).
//!
//! Each sign-in also records which directory value the identity links to (the configured
//! claim), so that a later leaver finds the identity's sessions, grants and accounts.

use crate::store::{DirectoryKey, IdentityLink, StoreError};
use crate::util::clock::now_ms;

use super::service::Directory;
use crate::config::LinkAttribute;

/// Whether the directory lets an identity sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    Allowed,
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
            return Ok(SignIn::Allowed);
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
        let key = match self.link {
            LinkAttribute::ExternalId => DirectoryKey::ExternalId(link_value),
            LinkAttribute::UserName => DirectoryKey::UserName(link_value),
            LinkAttribute::Id => DirectoryKey::Id(link_value),
        };
        // The directory's user decides; with none (deleted, or never pushed), a leaver's
        // mark on the identity does.
        let allowed = match self.store.get_directory_user(key).await? {
            Some(user) => user.active,
            None => self
                .store
                .get_identity_link(iss, sub)
                .await?
                .is_none_or(|link| link.removed_at_ms.is_none()),
        };
        Ok(if allowed {
            SignIn::Allowed
        } else {
            SignIn::Removed
        })
    }
}
