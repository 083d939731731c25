//! Every refusal jitgate makes, and the one place it becomes an HTTP answer.
//!
//! Handlers return a [`Denial`] value; `Denial::response` decides the status, the short
//! message and the headers. The request id is always included, so a user can report it and
//! an operator can find the matching log line. Messages never echo tokens or cookies.

use crate::endpoints::pages;

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
    /// The user's account in the app was deactivated by an operator.
    AccountDeactivated {
        app: String,
    },
    /// An elevated route, and the user holds no active grant of its type.
    ElevationRequired {
        app: String,
        grant_type: String,
    },
    /// An unknown page under `/.jitgate/`.
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    Internal,
}

impl Denial {
    /// What the user sees when their account in `app` could not be made ready.
    pub fn from_provisioning(app: &str, e: &crate::lifecycle::provision::ProvisionError) -> Self {
        use crate::lifecycle::provision::ProvisionError as E;
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
            // GrantEnded comes only from grant calls, never from a request's provisioning.
            E::Refused { .. } | E::NoAccountId(_) | E::Connector(_) | E::GrantEnded => {
                Denial::AccountRefused { app }
            }
            E::Deactivated => Denial::AccountDeactivated { app },
            E::Store(_) => Denial::StoreUnavailable,
        }
    }
}

/// A rendered refusal.
pub struct DenialResponse {
    pub status: u16,
    pub body: String,
    /// Whether to clear the session cookie (it was malformed).
    pub clear_cookie: bool,
    /// Where to send the browser, for redirects (then the body is empty).
    pub location: Option<String>,
    /// A cookie to set with the redirect.
    pub set_cookie: Option<String>,
}

impl Denial {
    pub fn status(&self) -> u16 {
        match self {
            Denial::UnknownHost | Denial::NotFound => 404,
            Denial::BadRequest(_) | Denial::BadSessionCookie | Denial::LoginFailed(_) => 400,
            Denial::LoginRedirect { .. } => 302,
            Denial::LoginRequired => 401,
            Denial::Forbidden { .. }
            | Denial::AccountDeactivated { .. }
            | Denial::ElevationRequired { .. } => 403,
            Denial::MethodNotAllowed => 405,
            Denial::PayloadTooLarge => 413,
            Denial::Internal => 500,
            Denial::UpstreamUnavailable | Denial::AccountRefused { .. } => 502,
            Denial::AccountPending { .. } => 503,
            Denial::IdpUnavailable | Denial::StoreUnavailable => 503,
        }
    }

    /// The label used in metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Denial::UnknownHost => "unknown_host",
            Denial::BadRequest(_) => "bad_request",
            Denial::BadSessionCookie => "bad_session_cookie",
            Denial::LoginRedirect { .. } => "login_redirect",
            Denial::LoginRequired => "login_required",
            Denial::Forbidden { .. } => "forbidden",
            Denial::LoginFailed(_) => "login_failed",
            Denial::IdpUnavailable => "idp_unavailable",
            Denial::StoreUnavailable => "store_unavailable",
            Denial::NotFound => "not_found",
            Denial::MethodNotAllowed => "method_not_allowed",
            Denial::PayloadTooLarge => "payload_too_large",
            Denial::Internal => "internal",
            Denial::UpstreamUnavailable => "upstream_unavailable",
            Denial::AccountPending { .. } => "account_pending",
            Denial::AccountRefused { .. } => "account_refused",
            Denial::AccountDeactivated { .. } => "account_deactivated",
            Denial::ElevationRequired { .. } => "elevation_required",
        }
    }

    pub fn response(&self, request_id: &str) -> DenialResponse {
        if let Denial::LoginRedirect {
            location,
            binding_cookie,
        } = self
        {
            return DenialResponse {
                status: self.status(),
                body: String::new(),
                clear_cookie: false,
                location: Some(location.clone()),
                set_cookie: binding_cookie.clone(),
            };
        }
        let (title, message) = match self {
            Denial::UnknownHost => (
                "Unknown site",
                "No application is served at this address.".to_string(),
            ),
            Denial::BadRequest(why) => ("Bad request", format!("The request was refused: {why}.")),
            Denial::BadSessionCookie => (
                "Bad request",
                "Your session cookie is not valid. It has been cleared; please reload the page."
                    .to_string(),
            ),
            Denial::LoginRedirect { .. } => (
                "Sign-in required",
                "Redirecting you to sign in.".to_string(),
            ),
            Denial::LoginRequired => (
                "Sign-in required",
                "Please sign in, then try again.".to_string(),
            ),
            Denial::Forbidden { app } => (
                "Access denied",
                format!("You are signed in, but your account may not open this page of {app}."),
            ),
            Denial::LoginFailed(why) => (
                "Sign-in failed",
                format!("The sign-in could not be completed ({why}). Please start again."),
            ),
            Denial::IdpUnavailable => (
                "Sign-in is unavailable",
                "The identity provider cannot be reached right now. Please try again in a minute."
                    .to_string(),
            ),
            Denial::StoreUnavailable => (
                "Temporarily unavailable",
                "jitgate cannot reach its store right now, so it cannot check this access. Please try again shortly."
                    .to_string(),
            ),
            Denial::NotFound => ("Not found", "There is no such page.".to_string()),
            Denial::MethodNotAllowed => (
                "Method not allowed",
                "This page does not accept that kind of request.".to_string(),
            ),
            Denial::PayloadTooLarge => (
                "Request too large",
                "The request body is too large.".to_string(),
            ),
            Denial::UpstreamUnavailable => (
                "Application unavailable",
                "The application did not answer. Please try again shortly.".to_string(),
            ),
            Denial::AccountPending {
                app,
                paused_for: None,
            } => (
                "Setting up your account",
                format!("Your account on {app} is being set up. Please try again in a moment."),
            ),
            Denial::AccountPending {
                app,
                paused_for: Some(seconds),
            } => (
                "Setting up your account",
                format!(
                    "Your account on {app} cannot be set up right now: {app}'s account service \
                     keeps failing, so jitgate has paused calls to it for {seconds} s. \
                     Please try again after that."
                ),
            ),
            Denial::AccountRefused { app } => (
                "Account setup failed",
                format!(
                    "{app} refused to set up your account. The administrators can see why in \
                     jitgate's audit log; please give them the request id below."
                ),
            ),
            Denial::AccountDeactivated { app } => (
                "Account deactivated",
                format!("Your account on {app} was deactivated. Ask an administrator if you need it back."),
            ),
            Denial::ElevationRequired { app, grant_type } => (
                "Elevated access required",
                format!(
                    "This page of {app} needs elevated access: an active `{grant_type}` grant. \
                     Ask for one with a purpose (and a ticket if required); once it is \
                     approved, this page opens until the grant ends."
                ),
            ),
            Denial::Internal => (
                "Something went wrong",
                "jitgate hit an internal error. Please try again.".to_string(),
            ),
        };
        let retry = match self {
            Denial::LoginFailed(_) | Denial::Forbidden { .. } => {
                "<p><a href=\"/.jitgate/logout\">Sign out</a> or <a href=\"/\">start again</a>.</p>"
                    .to_string()
            }
            Denial::ElevationRequired { grant_type, .. } => {
                let query: String = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("type", grant_type)
                    .finish();
                format!(
                    "<p><a id=\"ask\" href=\"{}?{}\">Ask for {} access</a></p>",
                    crate::endpoints::access_portal::PATH,
                    pages::escape(&query),
                    pages::escape(grant_type)
                )
            }
            _ => String::new(),
        };
        DenialResponse {
            status: self.status(),
            body: pages::render(title, &message, &retry, request_id),
            clear_cookie: matches!(self, Denial::BadSessionCookie),
            location: None,
            set_cookie: None,
        }
    }
}
