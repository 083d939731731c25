//! Who acts on a grant: a signed-in user (their groups decide what they may request or
//! approve) or an operator at the command line (who may decide anything, and is recorded
//! as such in the audit events).

use crate::auth::identity::Identity;
use crate::store::GrantRecord;

/// Someone deciding on a grant: a signed-in user, or an operator at the command line.
#[derive(Debug, Clone)]
pub struct Actor {
    pub iss: String,
    pub sub: String,
    pub username: String,
    pub groups: Vec<String>,
    /// Operators (the `jitgate grants` command) may decide anything; recorded as such.
    pub operator: bool,
}

impl Actor {
    pub fn user(identity: &Identity) -> Self {
        Self {
            iss: identity.iss.to_string(),
            sub: identity.sub.to_string(),
            username: identity.username.to_string(),
            groups: identity.groups().map(str::to_string).collect(),
            operator: false,
        }
    }

    pub fn operator(name: &str) -> Self {
        Self {
            iss: "jitgate:operator".into(),
            sub: name.into(),
            username: format!("operator:{name}"),
            groups: Vec::new(),
            operator: true,
        }
    }

    /// The company directory, acting for a leaver: `by` names what told it (a SCIM token).
    pub fn directory(by: &str) -> Self {
        Self {
            iss: "jitgate:directory".into(),
            sub: by.into(),
            username: format!("directory:{by}"),
            groups: Vec::new(),
            operator: true,
        }
    }

    /// The IdP, as a claims refresh reads it (a mover whose groups changed there).
    pub fn idp(by: &str) -> Self {
        Self {
            iss: "jitgate:idp".into(),
            sub: by.into(),
            username: format!("idp:{by}"),
            groups: Vec::new(),
            operator: true,
        }
    }

    pub(super) fn in_any(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }

    pub(super) fn is(&self, grant: &GrantRecord) -> bool {
        self.iss == grant.iss && self.sub == grant.sub
    }
}
