//! Who the user is: the relying party that turns an IdP login into a validated
//! [`identity::Identity`] ([`oidc`]), and the server-side sessions that remember it between
//! requests ([`session`]: cookies, the in-memory cache, the store behind it), and the
//! refresh tokens kept to refresh a login's claims, sealed at rest ([`sealed`]).

pub mod identity;
pub mod oidc;
pub mod sealed;
pub mod session;
