//! A connector's `list` operation: how the accounts that really exist in an app are read,
//! page by page, for reconciliation. Its request is an [`Operation`] whose URL may use
//! `page` (1, 2, …) or `cursor` (none on the first page, then what the last answer named);
//! each answer holds the accounts at `items` (a JSON pointer; empty for a top-level array),
//! and each account its id and, optionally, its username, role, admin flag and active flag.
//! Reading stops at an empty page (`next: { page: true }`) or when the answer names no next
//! cursor, and never goes past `max_pages` pages or `max_items` accounts.

use serde_json::Value;

use super::Operation;

/// Pages read at most by default.
pub const DEFAULT_MAX_PAGES: u32 = 1_000;
/// Accounts read at most by default.
pub const DEFAULT_MAX_ITEMS: usize = 100_000;

#[derive(Debug, Clone)]
pub struct ListOperation {
    pub op: Operation,
    /// JSON pointer to the array of accounts ("" for a top-level array).
    pub items: String,
    pub next: Paging,
    /// JSON pointer, in one account, to the app's id for it.
    pub account_id: String,
    pub fields: ListFields,
    pub max_pages: u32,
    pub max_items: usize,
}

/// How the next page is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// `{{ page }}` counts up from 1 until a page comes back empty.
    Page,
    /// `{{ cursor }}` is what the answer holds at this JSON pointer, until it holds none.
    Cursor(String),
}

/// JSON pointers, in one account, to what reconciliation compares (each optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFields {
    pub username: Option<String>,
    pub role: Option<String>,
    pub elevated: Option<String>,
    pub active: Option<String>,
}

/// One account as the app lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListedAccount {
    pub account_id: String,
    pub username: Option<String>,
    pub role: Option<String>,
    pub elevated: Option<bool>,
    pub active: Option<bool>,
}

/// One page, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub accounts: Vec<ListedAccount>,
    /// The cursor for the next page (cursor paging only; `None` at the end).
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("the answer has no list of accounts at `{0}`")]
    NoItems(String),
    #[error("an account in the answer has no id at `{0}`")]
    NoId(String),
}

impl ListOperation {
    /// Reads one answer's accounts and where to go next.
    pub fn read_page(&self, body: &Value) -> Result<ListPage, ListError> {
        let items = body
            .pointer(&self.items)
            .and_then(Value::as_array)
            .ok_or_else(|| ListError::NoItems(self.items.clone()))?;
        let accounts = items
            .iter()
            .map(|item| self.read_account(item))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match &self.next {
            Paging::Page => None,
            Paging::Cursor(pointer) => body.pointer(pointer).and_then(text),
        };
        Ok(ListPage {
            accounts,
            next_cursor: next_cursor.filter(|c| !c.is_empty()),
        })
    }

    fn read_account(&self, item: &Value) -> Result<ListedAccount, ListError> {
        let account_id = item
            .pointer(&self.account_id)
            .and_then(text)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ListError::NoId(self.account_id.clone()))?;
        let at = |pointer: &Option<String>| pointer.as_deref().and_then(|p| item.pointer(p));
        Ok(ListedAccount {
            account_id,
            username: at(&self.fields.username).and_then(text),
            role: at(&self.fields.role).and_then(text),
            elevated: at(&self.fields.elevated).and_then(flag),
            active: at(&self.fields.active).and_then(flag),
        })
    }
}

/// A string, or a number as text (apps number their ids).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A boolean, as apps spell it: `true`, `"true"`, `1`, `"yes"` (and their opposites).
fn flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(items: &str, next: Paging) -> ListOperation {
        ListOperation {
            op: Operation {
                name: super::super::OpName::List,
                method: http::Method::GET,
                url: "list.url".into(),
                headers: Vec::new(),
                body: None,
                success: vec![200],
                exists: Vec::new(),
                not_found: Vec::new(),
                account_id: None,
            },
            items: items.into(),
            next,
            account_id: "/id".into(),
            fields: ListFields {
                username: Some("/login".into()),
                role: Some("/role".into()),
                elevated: Some("/admin".into()),
                active: Some("/active".into()),
            },
            max_pages: DEFAULT_MAX_PAGES,
            max_items: DEFAULT_MAX_ITEMS,
        }
    }

    #[test]
    fn a_page_gives_its_accounts_and_the_next_cursor() {
        let op = list("/users", Paging::Cursor("/next".into()));
        let page = op
            .read_page(&json!({
                "users": [
                    { "id": 7, "login": "ann", "role": "admin", "admin": "yes", "active": true },
                    { "id": "u-8", "login": "bob" }
                ],
                "next": "c2"
            }))
            .unwrap();
        assert_eq!(page.next_cursor.as_deref(), Some("c2"));
        assert_eq!(page.accounts[0].account_id, "7");
        assert_eq!(page.accounts[0].elevated, Some(true));
        assert_eq!(page.accounts[1].role, None);
        let last = op.read_page(&json!({ "users": [], "next": "" })).unwrap();
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn a_top_level_array_and_bad_answers() {
        let op = list("", Paging::Page);
        let page = op.read_page(&json!([{ "id": 1, "admin": 0 }])).unwrap();
        assert_eq!(page.accounts[0].elevated, Some(false));
        assert_eq!(
            op.read_page(&json!({ "users": [] })),
            Err(ListError::NoItems(String::new()))
        );
        assert_eq!(
            op.read_page(&json!([{ "login": "x" }])),
            Err(ListError::NoId("/id".into()))
        );
    }
}
