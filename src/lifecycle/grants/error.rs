//! Why a grant action was refused. Its own file because every action returns it and the
//! portal, the API and the command line show its messages to people as they are.

use crate::store::StoreError;

/// Why a grant action was refused; the message is shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("there is no app `{0}`")]
    UnknownApp(String),
    #[error("{app} has no grant type `{grant_type}`")]
    UnknownType { app: String, grant_type: String },
    #[error("you may not ask for {0}: it is for the groups {1}")]
    NotARequester(String, String),
    #[error("say what the access is for (purpose)")]
    PurposeRequired,
    #[error("a ticket matching {0} is required")]
    TicketRequired(String),
    #[error("ticket `{0}` does not match {1}")]
    TicketMismatch(String, String),
    #[error("{asked} is longer than the {max} this grant allows")]
    TooLong { asked: String, max: String },
    #[error("the duration is not valid: {0}")]
    BadDuration(String),
    #[error("a ticket is at most 100 characters, without control characters")]
    BadTicket,
    #[error("no such grant")]
    NotFound,
    #[error("this grant is {0}, not pending")]
    NotPending(String),
    #[error("this grant is {0}: only pending or active grants can be revoked")]
    NotRevocable(String),
    #[error("you cannot approve your own request")]
    SelfApproval,
    #[error("you are not an approver for {0}")]
    NotAnApprover(String),
    #[error("you may not revoke this grant")]
    NotAllowedToRevoke,
    #[error("you approved this request already")]
    AlreadyApproved,
    #[error("the grant changed meanwhile; try again")]
    Conflict,
    #[error("the account of {user} in {app} is deactivated: no elevated access can be granted")]
    AccountDeactivated { app: String, user: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot make a grant id: {0}")]
    Random(#[from] crate::util::random::RandomError),
}
