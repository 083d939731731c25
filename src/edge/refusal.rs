//! The one table that turns every refusal and failure into an HTTP answer.
//!
//! A [`Denial`] from the edge's checks or from one of jitgate's own endpoints becomes a status,
//! a short HTML page (browsers) or a JSON error (`{"error", "request_id"}`, the grants API),
//! and headers; so does an upstream or grant failure after a request was admitted
//! ([`after_admission`]). The request id is always included, so a user can report it and an
//! operator can find the matching log line. Messages never echo tokens or cookies.

use pingora_error::{Error, ErrorSource, ErrorType};

use crate::endpoints::denial::{Denial, GrantRefusal};
use crate::endpoints::{access_portal, pages};
use crate::lifecycle::directory::resource::ERROR_URN;

/// How the client reads our answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A person in a browser: a short page.
    Html,
    /// A program (`/.jitgate/api/*`): `{"error", "request_id"}`.
    Json,
    /// The IdP's SCIM client (`/.jitgate/scim/*`): an RFC 7644 §3.12 error body.
    Scim,
}

impl Format {
    /// The format for a request to `path`.
    pub fn for_path(path: &str) -> Self {
        if path.starts_with("/.jitgate/api/") {
            Format::Json
        } else if path.starts_with("/.jitgate/scim/") {
            Format::Scim
        } else {
            Format::Html
        }
    }
}

/// A rendered refusal.
pub struct Answer {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: String,
    /// Whether to clear the session cookie (it was malformed).
    pub clear_cookie: bool,
    /// Where to send the browser, for redirects (then the body is empty).
    pub location: Option<String>,
    /// A cookie to set with the redirect.
    pub set_cookie: Option<String>,
    /// Other headers the refusal needs (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

/// A long-lived connection cut because the grant it was opened under ended.
pub const GRANT_ENDED: &str = "grant ended";
/// The store could not confirm the grant a connection was opened under.
pub const GRANT_UNVERIFIABLE: &str = "grant unverifiable";
/// The request for the app could not be written: never forwarded, answered with a 500.
pub const NOT_FORWARDABLE: &str = "not forwardable";

/// What to answer when a request failed after it was admitted (upstream connect, timeout,
/// reset; a grant that ended or could not be confirmed mid-stream): the status pingora
/// reports (0: nothing more can be said on this connection) and, when the client can still
/// read one, our page with the metrics outcome.
pub fn after_admission(e: &Error, answer_started: bool) -> (u16, Option<(Denial, &'static str)>) {
    let code = match e.etype() {
        // A long-lived connection cut because its grant ended: nothing more to say on it.
        ErrorType::Custom(GRANT_ENDED) => 0,
        // The store could not confirm the grant: our 503 page, unless the answer started.
        ErrorType::Custom(GRANT_UNVERIFIABLE) if !answer_started => 503,
        ErrorType::Custom(GRANT_UNVERIFIABLE) => 0,
        ErrorType::Custom(NOT_FORWARDABLE) => 500,
        ErrorType::HTTPStatus(code) => *code,
        _ if matches!(e.esource(), ErrorSource::Downstream) => 0,
        _ => 502,
    };
    let unverifiable = matches!(e.etype(), ErrorType::Custom(GRANT_UNVERIFIABLE));
    let page = match code {
        500 => Some((Denial::Internal, kind(&Denial::Internal))),
        502 => Some((Denial::UpstreamUnavailable, "upstream_error")),
        503 if unverifiable => Some((Denial::StoreUnavailable, kind(&Denial::StoreUnavailable))),
        _ => None,
    };
    (code, page)
}

/// The status of a denial.
pub fn status(denial: &Denial) -> u16 {
    match denial {
        Denial::UnknownHost | Denial::NotFound => 404,
        Denial::BadRequest(_) | Denial::BadSessionCookie | Denial::LoginFailed(_) => 400,
        Denial::LoginRedirect { .. } => 302,
        Denial::LoginRequired => 401,
        Denial::Forbidden { .. }
        | Denial::AccountDeactivated { .. }
        | Denial::DirectoryRemoved
        | Denial::ElevationRequired { .. }
        | Denial::FormExpired => 403,
        Denial::GrantRefused { why, .. } => match why {
            GrantRefusal::NotFound => 404,
            GrantRefusal::NotAllowed => 403,
            GrantRefusal::Conflict => 409,
            GrantRefusal::Invalid => 400,
        },
        Denial::InvalidBody(_) => 400,
        Denial::Scim { status, .. } => *status,
        Denial::ScimUnauthorized => 401,
        Denial::ScimThrottled { .. } => 429,
        Denial::UnsupportedMediaType => 415,
        Denial::MethodNotAllowed => 405,
        Denial::PayloadTooLarge => 413,
        Denial::Internal => 500,
        Denial::UpstreamUnavailable | Denial::AccountRefused { .. } => 502,
        Denial::AccountPending { .. } => 503,
        Denial::IdpUnavailable | Denial::StoreUnavailable => 503,
    }
}

/// The label used in metrics and logs.
pub fn kind(denial: &Denial) -> &'static str {
    match denial {
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
        Denial::DirectoryRemoved => "directory_removed",
        Denial::ElevationRequired { .. } => "elevation_required",
        Denial::GrantRefused { .. } => "grant_refused",
        Denial::FormExpired => "form_expired",
        Denial::InvalidBody(_) => "invalid_body",
        Denial::UnsupportedMediaType => "unsupported_media_type",
        Denial::Scim { .. } => "scim_refused",
        Denial::ScimUnauthorized => "scim_unauthorized",
        Denial::ScimThrottled { .. } => "scim_throttled",
    }
}

/// The answer to a denial, in the format the client reads.
pub fn answer(denial: &Denial, request_id: &str, format: Format) -> Answer {
    if let Denial::LoginRedirect {
        location,
        binding_cookie,
    } = denial
    {
        return Answer {
            status: status(denial),
            content_type: None,
            body: String::new(),
            clear_cookie: false,
            location: Some(location.clone()),
            set_cookie: binding_cookie.clone(),
            headers: Vec::new(),
        };
    }
    let (title, message) = match denial {
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
        Denial::GrantRefused { message, .. } => ("Not done", format!("Not done: {message}.")),
        Denial::FormExpired => (
            "Form expired",
            "This form is no longer valid. Open the access page again and retry.".to_string(),
        ),
        Denial::InvalidBody(why) => ("Bad request", format!("The request was refused: {why}.")),
        Denial::UnsupportedMediaType => (
            "Unsupported media type",
            "send JSON (Content-Type: application/json)".to_string(),
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
        Denial::DirectoryRemoved => (
            "Access removed",
            "Your access was removed by your organisation's directory. You are still signed in \
             at your identity provider, but jitgate no longer lets you through. If you think \
             this is a mistake, contact your IT team and give them the request id below."
                .to_string(),
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
        Denial::Scim { detail, .. } => ("Refused", detail.clone()),
        Denial::ScimUnauthorized => (
            "Unauthorized",
            "a valid bearer token is required".to_string(),
        ),
        Denial::ScimThrottled { retry_after } => (
            "Too many requests",
            format!("too many failed authentications; retry after {retry_after} s"),
        ),
    };
    let mut headers = Vec::new();
    match denial {
        Denial::ScimUnauthorized => headers.push((
            "www-authenticate",
            "Bearer realm=\"jitgate-scim\"".to_string(),
        )),
        Denial::ScimThrottled { retry_after } => {
            headers.push(("retry-after", retry_after.to_string()))
        }
        _ => {}
    }
    if format == Format::Scim {
        return Answer {
            status: status(denial),
            content_type: Some("application/scim+json"),
            body: scim_error(denial, &message, request_id).to_string(),
            clear_cookie: false,
            location: None,
            set_cookie: None,
            headers,
        };
    }
    if format == Format::Json {
        let message = match denial {
            // The API's own words: short, for a program's log.
            Denial::GrantRefused { message, .. } => message.clone(),
            Denial::InvalidBody(why) => why.clone(),
            Denial::LoginRequired => "sign in first".to_string(),
            Denial::UnknownHost => "no app is served on this host".to_string(),
            Denial::NotFound => "no such grants endpoint".to_string(),
            Denial::StoreUnavailable => {
                "jitgate cannot reach its store right now; try again shortly".to_string()
            }
            _ => message,
        };
        return Answer {
            status: status(denial),
            content_type: Some("application/json"),
            body: serde_json::json!({ "error": message, "request_id": request_id }).to_string(),
            clear_cookie: matches!(denial, Denial::BadSessionCookie),
            location: None,
            set_cookie: None,
            headers,
        };
    }
    let retry = match denial {
        Denial::FormExpired => {
            format!("<p><a href=\"{}\">Access page</a></p>", access_portal::PATH)
        }
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
                access_portal::PATH,
                pages::escape(&query),
                pages::escape(grant_type)
            )
        }
        _ => String::new(),
    };
    Answer {
        status: status(denial),
        content_type: Some("text/html; charset=utf-8"),
        body: pages::render(title, &message, &retry, request_id),
        clear_cookie: matches!(denial, Denial::BadSessionCookie),
        location: None,
        set_cookie: None,
        headers,
    }
}

/// An RFC 7644 §3.12 error: `status` is a string there, `scimType` only for what has one.
/// The request id goes in `detail`, since the error schema has no field for it.
fn scim_error(denial: &Denial, message: &str, request_id: &str) -> serde_json::Value {
    let mut body = serde_json::json!({
        "schemas": [ERROR_URN],
        "status": status(denial).to_string(),
        "detail": format!("{message} (request id {request_id})"),
    });
    let scim_type = match denial {
        Denial::Scim { scim_type, .. } => *scim_type,
        Denial::InvalidBody(_) => Some("invalidSyntax"),
        _ => None,
    };
    if let Some(scim_type) = scim_type {
        body["scimType"] = scim_type.into();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(answer: &Answer) -> serde_json::Value {
        serde_json::from_str(&answer.body).unwrap_or_default()
    }

    #[test]
    fn api_refusals_are_json_with_the_status_of_their_kind_and_the_request_id() {
        for (why, expected) in [
            (GrantRefusal::NotFound, 404),
            (GrantRefusal::NotAllowed, 403),
            (GrantRefusal::Conflict, 409),
            (GrantRefusal::Invalid, 400),
        ] {
            let denial = Denial::GrantRefused {
                why,
                message: "you cannot approve your own request".into(),
            };
            let answer = answer(&denial, "rid-1", Format::Json);
            assert_eq!(answer.status, expected);
            assert_eq!(answer.content_type, Some("application/json"));
            let body = json(&answer);
            assert_eq!(body["error"], "you cannot approve your own request");
            assert_eq!(body["request_id"], "rid-1");
        }
        let answer = answer(&Denial::StoreUnavailable, "rid-2", Format::Json);
        assert_eq!(answer.status, 503);
        assert_eq!(json(&answer)["request_id"], "rid-2");
        // The API's messages are its own, not the pages' sentences.
        for (denial, status, message) in [
            (
                Denial::StoreUnavailable,
                503,
                "jitgate cannot reach its store right now; try again shortly",
            ),
            (
                Denial::InvalidBody("the body is not JSON".into()),
                400,
                "the body is not JSON",
            ),
            (Denial::NotFound, 404, "no such grants endpoint"),
            (Denial::LoginRequired, 401, "sign in first"),
            (
                Denial::UnsupportedMediaType,
                415,
                "send JSON (Content-Type: application/json)",
            ),
        ] {
            let answer = super::answer(&denial, "rid", Format::Json);
            assert_eq!(
                (answer.status, json(&answer)["error"].clone()),
                (status, message.into())
            );
        }
    }

    #[test]
    fn scim_refusals_are_rfc_7644_errors_with_their_headers() {
        assert_eq!(Format::for_path("/.jitgate/scim/v2/Users"), Format::Scim);
        let answer = answer(&Denial::ScimUnauthorized, "rid-4", Format::Scim);
        assert_eq!(answer.status, 401);
        assert_eq!(answer.content_type, Some("application/scim+json"));
        assert_eq!(answer.headers[0].0, "www-authenticate");
        let body = json(&answer);
        assert_eq!(body["status"], "401");
        assert_eq!(body["schemas"][0], ERROR_URN);
        assert!(body["detail"]
            .as_str()
            .unwrap_or_default()
            .ends_with("(request id rid-4)"));
        let throttled = answer_for(&Denial::ScimThrottled { retry_after: 60 });
        assert_eq!(
            (throttled.status, throttled.headers[0].1.as_str()),
            (429, "60")
        );
        let invalid = answer_for(&Denial::Scim {
            status: 400,
            scim_type: Some("invalidFilter"),
            detail: "bad".into(),
        });
        assert_eq!(json(&invalid)["scimType"], "invalidFilter");
        // Refusals made before the SCIM service ran are SCIM errors too.
        assert_eq!(json(&answer_for(&Denial::PayloadTooLarge))["status"], "413");
    }

    fn answer_for(denial: &Denial) -> Answer {
        answer(denial, "rid", Format::Scim)
    }

    #[test]
    fn browser_refusals_are_pages_with_the_request_id() {
        let denial = Denial::ElevationRequired {
            app: "wiki".into(),
            grant_type: "wiki-admin".into(),
        };
        let answer = answer(&denial, "rid-3", Format::Html);
        assert_eq!(answer.status, 403);
        assert_eq!(answer.content_type, Some("text/html; charset=utf-8"));
        assert!(answer.body.contains("rid-3"), "{}", answer.body);
        assert!(answer.body.contains("/.jitgate/access?type=wiki-admin"));
        assert_eq!(Format::for_path("/.jitgate/api/grants"), Format::Json);
        assert_eq!(Format::for_path("/.jitgate/access"), Format::Html);
        assert_eq!(Format::for_path("/api/grants"), Format::Html);
    }

    #[test]
    fn a_failure_after_admission_is_our_page_only_while_the_client_can_read_it() {
        let upstream = Error::explain(ErrorType::ConnectRefused, "refused");
        let (code, page) = after_admission(&upstream, false);
        assert_eq!(code, 502);
        assert_eq!(page.map(|(d, _)| d), Some(Denial::UpstreamUnavailable));
        let unverifiable = Error::explain(ErrorType::Custom(GRANT_UNVERIFIABLE), "store down");
        assert_eq!(after_admission(&unverifiable, false).0, 503);
        assert_eq!(after_admission(&unverifiable, true), (0, None));
        let ended = Error::explain(ErrorType::Custom(GRANT_ENDED), "ended");
        assert_eq!(after_admission(&ended, false), (0, None));
    }
}
