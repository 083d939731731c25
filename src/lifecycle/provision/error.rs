//! Why an account could not be made ready, with the short label metrics and audit events
//! use. Its own file because every part of provisioning returns it, and so do callers that
//! turn it into a denial page.

use std::time::Duration;

use super::client::CallError;
use crate::policy::connector::ConnectorError;

/// Why an account could not be made ready. Cloned to every request that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProvisionError {
    #[error("calls to the app's API are paused for {0:?} after repeated failures")]
    Paused(Duration),
    #[error("the app's API is unavailable: {0}")]
    Unavailable(String),
    #[error("the account is still being set up")]
    Busy,
    #[error("the app answered {operation} with HTTP {status}")]
    Refused {
        operation: &'static str,
        status: u16,
    },
    #[error("the app answered {0} without the account id where the connector says it is")]
    NoAccountId(&'static str),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error("the account was deactivated")]
    Deactivated,
    #[error("the grant ended before its start call could be made")]
    GrantEnded,
    #[error("store: {0}")]
    Store(String),
    #[error("listing the app's accounts: {0}")]
    Listing(String),
}

impl ProvisionError {
    /// The label used in metrics and audit events.
    pub fn reason(&self) -> &'static str {
        match self {
            ProvisionError::Paused(_) => "paused",
            ProvisionError::Unavailable(_) => "unavailable",
            ProvisionError::Busy => "busy",
            ProvisionError::Refused { .. } | ProvisionError::NoAccountId(_) => "refused",
            ProvisionError::Connector(_) => "connector",
            ProvisionError::Deactivated => "deactivated",
            ProvisionError::GrantEnded => "grant_ended",
            ProvisionError::Store(_) => "store",
            ProvisionError::Listing(_) => "listing",
        }
    }
}

impl From<crate::store::StoreError> for ProvisionError {
    fn from(e: crate::store::StoreError) -> Self {
        ProvisionError::Store(e.to_string())
    }
}

impl From<CallError> for ProvisionError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Paused(d) => ProvisionError::Paused(d),
            CallError::Unavailable(why) => ProvisionError::Unavailable(why),
        }
    }
}
