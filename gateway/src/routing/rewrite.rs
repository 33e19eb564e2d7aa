//! Address rewriting on the envelope: a route's recipient domain rewriting
//! (`@example.com` → `@local.example.com`) and sender masquerading for outbound mail
//! (`user@host.corp.example.com` → `user@example.com`). Headers are left alone: the
//! message that was signed or will be signed stays as the author wrote it.

use super::table::{Route, Table};

/// `address` as `route` delivers it, when the route rewrites its domain.
pub fn recipient(route: &Route, address: &str) -> Option<String> {
    let (local, domain) = split(address)?;
    let to = route.rewrite.get(domain.as_str())?;
    Some(format!("{local}@{to}"))
}

/// The outbound envelope sender with its domain masqueraded, when configured. The null
/// sender and senders of other domains are unchanged (`None`).
pub fn sender(table: &Table, sender: &str) -> Option<String> {
    let (local, domain) = split(sender)?;
    let to = table.masquerade(&domain)?;
    Some(format!("{local}@{to}"))
}

/// Local part as written and the lower-case domain; the split is at the last `@`, which
/// is right for quoted local parts holding `@` too.
fn split(address: &str) -> Option<(&str, String)> {
    let (local, domain) = address.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    Some((local, domain.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn table() -> Table {
        let text = r#"
            hostname = "mx.test"
            data_dir = "/tmp/x"
            [[listener]]
            address = "127.0.0.1:2525"
            [[route]]
            name = "onprem"
            domains = ["local.example.com"]
            next_hops = ["10.0.0.1:25"]
            rewrite = { "example.com" = "local.example.com" }
            [routing]
            masquerade = { "*.corp.example.com" = "example.com", "corp.example.com" = "example.com" }
        "#;
        Table::new(&Config::parse(text).unwrap())
    }

    #[test]
    fn a_route_rewrites_the_recipient_domain_and_keeps_the_local_part() {
        let t = table();
        let r = t.route(t.id("onprem").unwrap());
        assert_eq!(
            recipient(r, "Jane.Doe@Example.COM").as_deref(),
            Some("Jane.Doe@local.example.com")
        );
        assert_eq!(recipient(r, "jane@sub.example.com"), None);
        assert_eq!(recipient(r, "jane@local.example.com"), None);
        assert_eq!(
            recipient(r, "\"a@b\"@example.com").as_deref(),
            Some("\"a@b\"@local.example.com")
        );
    }

    #[test]
    fn outbound_senders_are_masqueraded_by_domain_suffix() {
        let t = table();
        assert_eq!(
            sender(&t, "app@srv1.corp.example.com").as_deref(),
            Some("app@example.com")
        );
        assert_eq!(
            sender(&t, "App@Corp.Example.com").as_deref(),
            Some("App@example.com")
        );
        assert_eq!(sender(&t, "someone@other.test"), None);
        assert_eq!(sender(&t, ""), None);
    }
}
