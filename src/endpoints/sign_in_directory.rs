//! The company directory's part in a sign-in, when SCIM is on: someone it removed is refused
//! (with the reason), a linked user's groups are the directory's, and once the session is
//! stored the directory is read again. A mover's job lists the user's sessions when it runs;
//! a sign-in that read the groups before the change and stored its session after that list
//! would otherwise keep the old groups (or a leaver's access) until `revalidate_after`.

use super::denial::store_down;
use crate::auth::identity::Identity;
use crate::auth::oidc::LoginResult;
use crate::endpoints::denial::Denial;
use crate::gate::Gate;
use crate::lifecycle::directory::sign_in::SignIn;
use crate::store::SessionIdentityChange;

/// The value of the configured link claim in this sign-in, if SCIM is on and it has one.
pub(super) fn link_of(gate: &Gate, login: &LoginResult) -> Option<String> {
    let scim = gate.config.scim.as_ref()?;
    match scim.link.claim.as_str() {
        "sub" => Some(login.sub.clone()),
        claim => login
            .claims
            .get(claim)
            .and_then(|v| v.as_str())
            .map(str::to_string),
    }
}

/// Records the sign-in's link and asks the directory: refused (`DirectoryRemoved`, which the
/// caller audits) if it removed the user; the directory's groups for a linked user (to
/// replace the token's).
pub(super) async fn directory_allows(
    gate: &Gate,
    login: &LoginResult,
    link: Option<&str>,
) -> Result<Option<Vec<String>>, Denial> {
    let Some(directory) = &gate.directory else {
        return Ok(None);
    };
    match directory.sign_in(&login.iss, &login.sub, link).await {
        Ok(SignIn::Allowed(groups)) => Ok(groups),
        Ok(SignIn::Removed) => Err(Denial::DirectoryRemoved),
        Err(e) => Err(store_down(e)),
    }
}

/// Reads the directory again once the new session (`id_hash`, holding `identity`) is
/// stored: a leaver since then ends it, a mover rewrites its groups. `applied` is what the
/// first read gave.
pub(super) async fn settle(
    gate: &Gate,
    id_hash: &str,
    identity: &Identity,
    link: Option<&str>,
    applied: Option<&[String]>,
) -> Result<(), Denial> {
    let Some(directory) = &gate.directory else {
        return Ok(());
    };
    let now = directory
        .standing(&identity.iss, &identity.sub, link)
        .await
        .map_err(store_down)?;
    let groups = match now {
        SignIn::Removed => {
            if let Err(e) = gate.store.delete_session(id_hash).await {
                tracing::warn!(error = %e, "could not end a session the directory removed");
            }
            gate.sessions.forget(&[id_hash.to_string()]);
            return Err(Denial::DirectoryRemoved);
        }
        SignIn::Allowed(Some(groups)) if Some(groups.as_slice()) != applied => groups,
        SignIn::Allowed(_) => return Ok(()),
    };
    let settings = gate.oidc.settings();
    let moved = identity.with_groups(&groups, &settings.groups_claim);
    let (Ok(from), Ok(to)) = (
        serde_json::to_string(identity),
        serde_json::to_string(&moved),
    ) else {
        return Err(Denial::Internal);
    };
    let change = SessionIdentityChange {
        id_hash: id_hash.to_string(),
        from,
        to,
    };
    gate.store
        .replace_session_identities(&[change])
        .await
        .map_err(store_down)?;
    gate.sessions.forget(&[id_hash.to_string()]);
    Ok(())
}
