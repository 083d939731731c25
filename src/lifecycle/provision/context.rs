//! What a connector's templates see for a user (their claims, roles, the app and the
//! account id), and the digest of what jitgate would send about them: when the digest
//! changes, the user is a mover. Both are pure functions of the policy and the identity.

use super::ProvisionError;
use crate::auth::identity::Identity;
use crate::policy::connector::template::{AccountVars, AppVars, TemplateContext, UserVars};
use crate::policy::connector::Connector;

/// What templates see for `identity` in this connector's app.
pub fn context(
    connector: &Connector,
    identity: &Identity,
    account_id: Option<&str>,
) -> TemplateContext {
    let roles = connector.roles_for(identity.groups());
    TemplateContext {
        user: UserVars {
            iss: identity.iss.to_string(),
            sub: identity.sub.to_string(),
            username: identity.username.to_string(),
            groups: identity.groups().map(str::to_string).collect(),
        },
        claims: identity.claims(),
        role: roles.first().cloned(),
        roles,
        app: AppVars {
            name: connector.app.clone(),
        },
        account: account_id.map(|id| AccountVars { id: id.to_string() }),
        page: None,
        cursor: None,
    }
}

/// SHA-256 of what jitgate would send to keep the account current (the update request, or
/// the create request if there is no update), without the credential: when it changes, the
/// user is a mover.
pub(super) fn attrs_hash(
    connector: &Connector,
    ctx: &TemplateContext,
) -> Result<String, ProvisionError> {
    let mut ctx = ctx.clone();
    // The id is not part of "what we send about the user": any fixed value will do.
    ctx.account = Some(AccountVars {
        id: "account-id".into(),
    });
    let op = connector.update.as_ref().unwrap_or(&connector.create);
    let req = connector.request(op, &ctx)?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(req.method.as_str().as_bytes());
    digest.update(req.url.as_str().as_bytes());
    for (name, value) in req.headers.iter().filter(|(_, v)| !v.is_sensitive()) {
        digest.update(name.as_str().as_bytes());
        digest.update(value.as_bytes());
    }
    if let Some(body) = &req.body {
        digest.update(body.to_string().as_bytes());
    }
    let out = digest.finish();
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(out.as_ref().get(..32).unwrap_or(&[0; 32]));
    Ok(crate::util::random::encode_hash(&bytes))
}
