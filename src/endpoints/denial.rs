//! Every refusal jitgate makes, as a value.
//!
//! The edge's checks and jitgate's own endpoints return a [`Denial`]; they never write an
//! error answer themselves. `edge::refusal` is the one table that turns a denial into a
//! status, a short page or a JSON error, and headers, always with the request id.
//! Errors from the lifecycle (provisioning, grant actions) are sorted into denials here, so
//! that callers pass them on with `?` and the table stays the only place that knows HTTP.

use crate::lifecycle::directory::error::ScimError;
use crate::lifecycle::grants::GrantError;
use crate::lifecycle::provision::ProvisionError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No policy serves this host (nothing is forwarded).
    UnknownHost,
    /// Something in the request is malformed (cookie, path, callback parameters, token).
    BadRequest(&'static str),
    /// Our session cookie is not something jitgate issued; the answer clears it.
    BadSessionCookie,
    /// Not logged in: a browser navigation is sent to the login `location`, with the
    /// `Set-Cookie` value (if any) that binds the sign-in's return to this browser.
    LoginRedirect {
        location: String,
        binding_cookie: Option<String>,
    },
    /// Not logged in, on a request we cannot redirect (not GET/HEAD).
    LoginRequired,
    /// Logged in, but no route of this app admits the user.
    Forbidden {
        app: String,
    },
    /// The login did not complete (state/nonce mismatch, invalid ID token, IdP said no).
    LoginFailed(&'static str),
    /// The identity provider cannot be reached; never answered with a redirect.
    IdpUnavailable,
    /// The store cannot be reached.
    StoreUnavailable,
    /// The app's upstream failed to answer.
    UpstreamUnavailable,
    /// The user's account in the app could not be set up yet (its API is slow or down);
    /// `paused_for` is set while jitgate holds off calling a failing API.
    AccountPending {
        app: String,
        paused_for: Option<u64>,
    },
    /// The app's API refused to set up the account (an unexpected answer, or a connector
    /// that cannot render its request): retrying will not help until someone fixes it.
    AccountRefused {
        app: String,
    },
    /// The company directory removed the user's access (a leaver), though the IdP still
    /// signs them in.
    DirectoryRemoved,
    /// The user's account in the app was deactivated by an operator.
    AccountDeactivated {
        app: String,
    },
    /// An elevated route, and the user holds no active grant of its type.
    ElevationRequired {
        app: String,
        grant_type: String,
    },
    /// A grant action (ask, approve, deny, revoke) was refused; `message` says why and is
    /// shown to the user as is.
    GrantRefused {
        why: GrantRefusal,
        message: String,
    },
    /// A form that no longer carries this session's token, or came from another site.
    FormExpired,
    /// A JSON body that does not have the expected shape; says what is wrong.
    InvalidBody(String),
    /// A JSON endpoint sent something other than JSON.
    UnsupportedMediaType,
    /// A SCIM request refused (RFC 7644 §3.12): its status, `scimType` and what is wrong.
    Scim {
        status: u16,
        scim_type: Option<&'static str>,
        detail: String,
    },
    /// A SCIM request without a valid bearer token.
    ScimUnauthorized,
    /// Too many failed SCIM authentications from this address: wait `retry_after` seconds.
    ScimThrottled {
        retry_after: u64,
    },
    /// An unknown page under `/.jitgate/`.
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    Internal,
}

impl Denial {
    /// What the user sees when their account in `app` could not be made ready.
    pub fn from_provisioning(app: &str, e: &ProvisionError) -> Self {
        use ProvisionError as E;
        let app = app.to_string();
        match e {
            E::Paused(d) => Denial::AccountPending {
                app,
                paused_for: Some(d.as_secs().max(1)),
            },
            E::Unavailable(_) | E::Busy => Denial::AccountPending {
                app,
                paused_for: None,
            },
            // GrantEnded comes only from grant calls and Listing only from reconciliation,
            // never from a request's provisioning.
            E::Refused { .. }
            | E::NoAccountId(_)
            | E::Connector(_)
            | E::GrantEnded
            | E::Listing(_) => Denial::AccountRefused { app },
            E::Deactivated => Denial::AccountDeactivated { app },
            E::Store(_) => Denial::StoreUnavailable,
        }
    }

    /// A refused grant action, sorted by what it means for the client. A store failure is
    /// logged here and shown as [`Denial::StoreUnavailable`]: a database's own error text
    /// never reaches a client.
    pub fn from_grant(e: &GrantError, request_id: &str) -> Self {
        use GrantError as E;
        let why = match e {
            E::Store(_) | E::Random(_) => {
                tracing::error!(request_id, error = %e, "grant action failed");
                return Denial::StoreUnavailable;
            }
            E::NotFound | E::UnknownApp(_) | E::UnknownType { .. } => GrantRefusal::NotFound,
            E::SelfApproval
            | E::NotAnApprover(_)
            | E::NotARequester(..)
            | E::NotAllowedToRevoke
            | E::AccountDeactivated { .. } => GrantRefusal::NotAllowed,
            E::Conflict | E::NotPending(_) | E::NotRevocable(_) => GrantRefusal::Conflict,
            E::PurposeRequired
            | E::TicketRequired(_)
            | E::TicketMismatch(..)
            | E::TooLong { .. }
            | E::BadDuration(_)
            | E::BadTicket
            | E::AlreadyApproved => GrantRefusal::Invalid,
        };
        Denial::GrantRefused {
            why,
            message: e.to_string(),
        }
    }
}

impl Denial {
    /// A refused SCIM request. A store failure is logged here and shown as
    /// [`Denial::StoreUnavailable`]: a database's own error text never reaches a client.
    pub fn from_scim(e: &ScimError, request_id: &str) -> Self {
        match e {
            ScimError::Store(_) => {
                tracing::error!(request_id, error = %e, "scim request failed");
                Denial::StoreUnavailable
            }
            ScimError::Random(_) => {
                tracing::error!(request_id, error = %e, "scim request failed");
                Denial::Internal
            }
            _ => Denial::Scim {
                status: e.status(),
                scim_type: e.scim_type(),
                detail: e.to_string(),
            },
        }
    }
}

/// What kind of refusal a grant action met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantRefusal {
    /// No such grant, app or grant type.
    NotFound,
    /// The user may not do this (their own request, not an approver, deactivated account).
    NotAllowed,
    /// The grant is not in a state that allows it (any more).
    Conflict,
    /// The ask itself is wrong (purpose, ticket, duration).
    Invalid,
}

/// The store failed: logged here (never with request data), answered as a 503.
pub fn store_down(e: impl std::fmt::Display) -> Denial {
    tracing::error!(error = %e, "store operation failed");
    Denial::StoreUnavailable
}
