//! The few HTML pages jitgate shows itself: small, server-rendered, no scripts.
//!
//! Every page carries the request id so a user can quote it to support.

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete page: `title` and `message` are plain text; `extra_html` is trusted markup.
pub fn render(title: &str, message: &str, extra_html: &str, request_id: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} - jitgate</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}}\
h1{{font-size:1.4rem}}.rid{{color:#666;font-size:.85rem}}</style></head>\
<body><h1>{title}</h1><p>{message}</p>{extra_html}\
<p class=\"rid\">Request id: <code>{rid}</code></p></body></html>\n",
        title = escape(title),
        message = escape(message),
        rid = escape(request_id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_is_escaped() {
        let page = render("<t>", "a&b \"c\"", "", "r<1>");
        assert!(page.contains("&lt;t&gt;"));
        assert!(page.contains("a&amp;b &quot;c&quot;"));
        assert!(page.contains("r&lt;1&gt;"));
    }
}
