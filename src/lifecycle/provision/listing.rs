//! Reading the accounts that really exist in an app, through the connector's `list`: page
//! after page (`page` counting up until an empty page, or the `cursor` each answer names),
//! within the connector's timeouts and retries and the listing's bounds. A listing that
//! would pass `max_pages` or `max_items` fails rather than return part of the app: a
//! reconciliation over half the accounts would report the rest as missing.

use std::collections::HashSet;

use serde_json::Value;

use super::client::Who;
use super::create_update::refused;
use super::{Accounts, ProvisionError};
use crate::policy::connector::listing::{ListedAccount, Paging};
use crate::policy::connector::template::{AppVars, TemplateContext, UserVars};
use crate::policy::connector::{OpName, Outcome};
use crate::policy::AppPolicy;

impl Accounts {
    /// Every account the app lists, in the app's order.
    pub async fn list_app(&self, app: &AppPolicy) -> Result<Vec<ListedAccount>, ProvisionError> {
        let connector = app
            .provisioning
            .as_deref()
            .ok_or_else(|| ProvisionError::Listing("the app has no provisioning".into()))?;
        let list = connector
            .list
            .as_ref()
            .ok_or_else(|| ProvisionError::Listing("the connector has no `list`".into()))?;
        let who = Who {
            iss: "",
            sub: "",
            request_id: None,
        };
        let mut accounts = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen_cursors = HashSet::new();
        for page in 1..=u64::from(list.max_pages) {
            let ctx = listing_context(&app.name, page, cursor.clone());
            let request = connector.request(&list.op, &ctx)?;
            let answer = self.client.call(connector, &list.op, &request, who).await?;
            if answer.outcome != Outcome::Success {
                return Err(refused(OpName::List, &answer));
            }
            let body: Value = serde_json::from_slice(&answer.body)
                .map_err(|e| ProvisionError::Listing(format!("page {page} is not JSON: {e}")))?;
            let read = list
                .read_page(&body)
                .map_err(|e| ProvisionError::Listing(format!("page {page}: {e}")))?;
            let empty = read.accounts.is_empty();
            accounts.extend(read.accounts);
            if accounts.len() > list.max_items {
                return Err(ProvisionError::Listing(format!(
                    "more than max_items ({}) accounts",
                    list.max_items
                )));
            }
            match (&list.next, read.next_cursor) {
                (Paging::Page, _) if empty => return Ok(accounts),
                (Paging::Page, _) => {}
                (Paging::Cursor(_), None) => return Ok(accounts),
                (Paging::Cursor(_), Some(next)) => {
                    // An app that hands out the same cursor again would loop until max_pages.
                    if !seen_cursors.insert(next.clone()) {
                        return Err(ProvisionError::Listing(format!(
                            "the app named cursor `{next}` twice"
                        )));
                    }
                    cursor = Some(next);
                }
            }
        }
        Err(ProvisionError::Listing(format!(
            "more than max_pages ({}) pages",
            list.max_pages
        )))
    }
}

/// What a `list` template sees: the app's name and the page or cursor (no user).
fn listing_context(app: &str, page: u64, cursor: Option<String>) -> TemplateContext {
    TemplateContext {
        user: UserVars {
            iss: String::new(),
            sub: String::new(),
            username: String::new(),
            groups: Vec::new(),
        },
        claims: Default::default(),
        roles: Vec::new(),
        role: None,
        app: AppVars { name: app.into() },
        account: None,
        page: Some(page),
        cursor,
    }
}
