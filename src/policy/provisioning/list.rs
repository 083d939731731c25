//! `provisioning.list`, validated into a [`ListOperation`]: its request goes through the same
//! checks as every operation (method, URL under `api`, headers, templates, which here may use
//! only `page`, `cursor` and `app.name`), its JSON pointers must look like pointers, exactly
//! one way to page is named, and the bounds are sane.

use marked_yaml::{Span, Spanned};

use super::operation::{operation, OpCtx};
use crate::policy::connector::listing::{
    ListFields, ListOperation, Paging, DEFAULT_MAX_ITEMS, DEFAULT_MAX_PAGES,
};
use crate::policy::connector::OpName;
use crate::policy::file::{ListFile, OperationFile};
use crate::util::diagnostics::FileReport;

/// The most pages or accounts a policy may allow one listing to read.
const MAX_PAGES_LIMIT: u32 = 100_000;
const MAX_ITEMS_LIMIT: u32 = 10_000_000;

pub(super) fn list_operation(
    report: &mut FileReport,
    ctx: OpCtx<'_>,
    raw: &ListFile,
) -> Option<ListOperation> {
    let request = OperationFile {
        method: raw
            .method
            .clone()
            .unwrap_or_else(|| Spanned::new(Span::new_blank(), "GET".to_string())),
        url: raw.url.clone(),
        headers: raw.headers.clone(),
        body: None,
        success: None,
        exists: None,
        not_found: None,
        account_id: None,
    };
    let op = operation(report, ctx, OpName::List, &request, None);
    let items = pointer(report, &raw.items, "items", true);
    let account_id = pointer(report, &raw.account_id, "account_id", false);
    let next = match (&raw.next.cursor, &raw.next.page) {
        (Some(cursor), None) => pointer(report, cursor, "next.cursor", false).map(Paging::Cursor),
        (None, Some(page)) if **page => Some(Paging::Page),
        _ => {
            report.at(
                raw.url.span(),
                "list.next is either { cursor: /pointer } or { page: true }",
            );
            None
        }
    };
    let fields = raw.fields.as_ref().map(|f| {
        let mut field = |p: &Option<Spanned<String>>, name: &str| {
            p.as_ref()
                .and_then(|p| pointer(report, p, &format!("fields.{name}"), false))
        };
        ListFields {
            username: field(&f.username, "username"),
            role: field(&f.role, "role"),
            elevated: field(&f.elevated, "elevated"),
            active: field(&f.active, "active"),
        }
    });
    let max_pages = bound(
        report,
        &raw.max_pages,
        "max_pages",
        DEFAULT_MAX_PAGES,
        MAX_PAGES_LIMIT,
    );
    let max_items = bound(
        report,
        &raw.max_items,
        "max_items",
        DEFAULT_MAX_ITEMS as u32,
        MAX_ITEMS_LIMIT,
    );
    Some(ListOperation {
        op: op?,
        items: items?,
        next: next?,
        account_id: account_id?,
        fields: fields.unwrap_or_default(),
        max_pages: max_pages?,
        max_items: max_items? as usize,
    })
}

/// A JSON pointer (`/a/0/b`; the empty pointer, the whole answer, only where `whole` says).
fn pointer(
    report: &mut FileReport,
    raw: &Spanned<String>,
    what: &str,
    whole: bool,
) -> Option<String> {
    let p = raw.trim();
    if p.starts_with('/') || (whole && p.is_empty()) {
        return Some(p.to_string());
    }
    let empty = if whole {
        " (or \"\" for a top-level array)"
    } else {
        ""
    };
    report.at(
        raw.span(),
        format!("list.{what} is a JSON pointer: it starts with /{empty}"),
    );
    None
}

fn bound(
    report: &mut FileReport,
    raw: &Option<Spanned<u32>>,
    what: &str,
    default: u32,
    limit: u32,
) -> Option<u32> {
    match raw {
        None => Some(default),
        Some(n) if (1..=limit).contains(&**n) => Some(**n),
        Some(n) => {
            report.at(
                n.span(),
                format!("list.{what} must be between 1 and {limit}"),
            );
            None
        }
    }
}
