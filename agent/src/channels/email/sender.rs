//! Who sent a message, as far as the headers tell, and whether that sender may talk to the agent.
//! Only the address in From counts, never its display name; `Authentication-Results` from the
//! operator's own receiving server can be required to vouch for the From domain, since anyone can
//! write any From.

use mail_parser::{Address, Message};

/// Why a message is not let through to the agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("From does not hold exactly one address")]
    NoSingleSender,
    #[error("not in channels.email.allowFrom")]
    NotAllowed,
    #[error("no Authentication-Results from {authserv_id} shows dkim=pass (header.d={domain}) or spf=pass (smtp.mailfrom in {domain})")]
    Unauthenticated { authserv_id: String, domain: String },
}

/// The sender's address from From, lower-cased; None unless From holds exactly one address.
/// Two From headers are refused too: a DKIM verifier may judge one while we read the other.
pub fn from_address(m: &Message<'_>) -> Option<String> {
    let froms = m
        .headers_raw()
        .filter(|(n, _)| n.eq_ignore_ascii_case("From"))
        .count();
    if froms != 1 {
        return None;
    }
    let addrs: Vec<_> = match m.from()? {
        Address::List(l) => l.iter().collect(),
        Address::Group(g) => g.iter().flat_map(|g| g.addresses.iter()).collect(),
    };
    let [only] = addrs.as_slice() else {
        return None;
    };
    let a = only.address.as_deref()?.trim().to_ascii_lowercase();
    super::settings::is_address(&a).then_some(a)
}

/// Whether `addr` (already lower-case) is in the allowFrom list (lower-cased at load).
pub fn allowed(allow_from: &[String], addr: &str) -> bool {
    allow_from.iter().any(|a| a == "*" || a == addr)
}

/// Check a message's sender: its From address, allowFrom, then (when an authserv-id is set)
/// the receiving server's verdict. Returns the address either way, for the log.
pub fn check(
    m: &Message<'_>,
    allow_from: &[String],
    authserv_id: Option<&str>,
) -> Result<String, (String, Refusal)> {
    let Some(addr) = from_address(m) else {
        let shown = m
            .header_raw("From")
            .map(|f| f.trim().to_string())
            .unwrap_or_else(|| "(no From)".into());
        return Err((shown, Refusal::NoSingleSender));
    };
    if !allowed(allow_from, &addr) {
        return Err((addr, Refusal::NotAllowed));
    }
    if let Some(id) = authserv_id {
        let domain = addr.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        let results: Vec<&str> = m
            .headers_raw()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Authentication-Results"))
            .map(|(_, v)| v)
            .collect();
        if !vouches(&results, id, domain) {
            let domain = domain.to_string();
            return Err((
                addr,
                Refusal::Unauthenticated {
                    authserv_id: id.to_string(),
                    domain,
                },
            ));
        }
    }
    Ok(addr)
}

/// Whether the topmost `Authentication-Results` (RFC 8601) with our authserv-id shows DKIM pass
/// for exactly the From domain, or SPF pass for a MAIL FROM in it. Only the topmost counts: our
/// server prepends its own above anything that arrived with the message.
pub fn vouches(headers: &[&str], authserv_id: &str, domain: &str) -> bool {
    let Some(ours) = headers.iter().find_map(|h| {
        let r = parse_results(h);
        r.0.eq_ignore_ascii_case(authserv_id).then_some(r.1)
    }) else {
        return false;
    };
    ours.iter().any(|r| {
        let prop = |k: &str| {
            r.props
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        match (r.method.as_str(), r.result.as_str()) {
            ("dkim", "pass") => prop("header.d").is_some_and(|d| d.eq_ignore_ascii_case(domain)),
            ("spf", "pass") => prop("smtp.mailfrom").is_some_and(|f| {
                let d = f.rsplit_once('@').map(|(_, d)| d).unwrap_or(f);
                d.eq_ignore_ascii_case(domain)
            }),
            _ => false,
        }
    })
}

#[derive(Debug, PartialEq)]
pub struct ResInfo {
    pub method: String,
    pub result: String,
    pub props: Vec<(String, String)>,
}

/// `authserv-id [version]; method=result prop=value ...; ...` with comments removed. Values may
/// be quoted strings (RFC 8601 allows them, and an envelope sender's quoted local part is the
/// SMTP client's to choose): a `;` or space inside quotes separates nothing.
fn parse_results(h: &str) -> (String, Vec<ResInfo>) {
    let text = strip_comments(h);
    let mut parts = words(&text).into_iter();
    let id = parts
        .next()
        .and_then(|p| p.into_iter().next())
        .unwrap_or_default();
    let mut out = vec![];
    for p in parts {
        let mut words = p.into_iter();
        let Some((method, result)) = words.next().and_then(|w| {
            w.split_once('=')
                .map(|(m, r)| (m.to_string(), r.to_string()))
        }) else {
            continue;
        };
        // "dkim/1=pass": a method version.
        let method = method.split('/').next().unwrap_or(&method).to_string();
        let props = words
            .filter_map(|w| {
                w.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        out.push(ResInfo {
            method: method.to_ascii_lowercase(),
            result: result.to_ascii_lowercase(),
            props,
        });
    }
    (id, out)
}

/// The `;`-separated parts of a header, each as its whitespace-separated words, with quoted
/// strings unquoted (`"a;b c"@x` is the one word `a;b c@x`).
fn words(text: &str) -> Vec<Vec<String>> {
    let (mut parts, mut part, mut word) = (vec![], vec![], String::new());
    let (mut quoted, mut escaped, mut in_word) = (false, false, false);
    for c in text.chars() {
        if escaped {
            escaped = false;
            word.push(c);
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            ';' if !quoted => {
                if in_word {
                    part.push(std::mem::take(&mut word));
                    in_word = false;
                }
                parts.push(std::mem::take(&mut part));
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    part.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        part.push(word);
    }
    parts.push(part);
    parts
}

/// Drop RFC 5322 comments `( … )`, nested, outside quoted strings.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(if c == '\r' || c == '\n' { ' ' } else { c }),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn parse(raw: &str) -> Message<'_> {
        MessageParser::default().parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn the_address_counts_never_the_display_name() {
        let allow = vec!["admin@example.com".to_string()];
        let m = parse("From: \"admin@example.com\" <evil@attacker.test>\r\n\r\nhi");
        assert_eq!(from_address(&m).as_deref(), Some("evil@attacker.test"));
        assert_eq!(
            check(&m, &allow, None),
            Err(("evil@attacker.test".into(), Refusal::NotAllowed))
        );
        let m = parse("From: admin@example.com <evil@attacker.test>\r\n\r\nhi");
        assert_eq!(from_address(&m).as_deref(), Some("evil@attacker.test"));
        let m = parse("From: The Admin <ADMIN@Example.COM>\r\n\r\nhi");
        assert_eq!(check(&m, &allow, None), Ok("admin@example.com".into()));
        let m = parse("From: admin@example.com\r\n\r\nhi");
        assert_eq!(check(&m, &allow, None), Ok("admin@example.com".into()));
    }

    #[test]
    fn several_or_no_senders_are_refused() {
        let allow = vec!["*".to_string()];
        let m = parse("From: a@example.com, b@example.com\r\n\r\nhi");
        assert!(matches!(
            check(&m, &allow, None),
            Err((_, Refusal::NoSingleSender))
        ));
        let m = parse("Subject: x\r\n\r\nhi");
        assert!(matches!(
            check(&m, &allow, None),
            Err((_, Refusal::NoSingleSender))
        ));
        let m = parse("From: Undisclosed\r\n\r\nhi");
        assert!(check(&m, &allow, None).is_err());
    }

    #[test]
    fn allow_from_is_exact_not_a_substring() {
        let allow = vec!["alice@example.com".to_string()];
        assert!(allowed(&allow, "alice@example.com"));
        assert!(!allowed(&allow, "malice@example.com"));
        assert!(!allowed(&allow, "alice@example.com.evil.test"));
        assert!(allowed(&["*".to_string()], "anyone@x"));
    }

    #[test]
    fn authentication_results_must_come_from_our_server_and_match_the_domain() {
        let ok = ["mx.example.com; dkim=pass (2048-bit key) header.d=example.com header.s=s1; spf=fail smtp.mailfrom=x@other.test"];
        assert!(vouches(&ok, "mx.example.com", "example.com"));
        assert!(!vouches(&ok, "mx.example.com", "other.test"));
        assert!(!vouches(&ok, "mx.other.test", "example.com"));
        let spf = ["mx.example.com 1; spf=pass smtp.mailfrom=alice@Example.com"];
        assert!(vouches(&spf, "mx.example.com", "example.com"));
        let spf_domain = ["mx.example.com; spf=pass smtp.mailfrom=example.com"];
        assert!(vouches(&spf_domain, "mx.example.com", "example.com"));
        // DKIM pass for another domain (the attacker signs their own mail) does not count.
        let other = ["mx.example.com; dkim=pass header.d=attacker.test"];
        assert!(!vouches(&other, "mx.example.com", "example.com"));
        // A pass in a comment is not a pass.
        let comment =
            ["mx.example.com; dkim=fail (dkim=pass header.d=example.com) header.d=example.com"];
        assert!(!vouches(&comment, "mx.example.com", "example.com"));
        // Only the topmost of ours counts: one injected below it by the sender is ignored.
        let injected = [
            "mx.example.com; dkim=none; spf=softfail smtp.mailfrom=example.com",
            "mx.example.com; dkim=pass header.d=example.com",
        ];
        assert!(!vouches(&injected, "mx.example.com", "example.com"));
        assert!(!vouches(&[], "mx.example.com", "example.com"));
    }

    #[test]
    fn a_semicolon_or_space_inside_a_quoted_value_is_no_separator() {
        // The envelope sender is the SMTP client's to choose, quoted local part and all; our
        // server copies it into smtp.mailfrom. A ";" in it must not start a result of its own.
        let forged = [
            r#"mx.example.com; spf=fail smtp.mailfrom="x;dkim=pass header.d=example.com x"@attacker.test"#,
        ];
        assert!(!vouches(&forged, "mx.example.com", "example.com"));
        let forged = [
            r#"mx.example.com; spf=fail smtp.mailfrom="x;dkim=pass header.d=example.com"@attacker.test"#,
        ];
        assert!(!vouches(&forged, "mx.example.com", "example.com"));
        let spaced = [
            r#"mx.example.com; spf=fail smtp.mailfrom="a dkim=pass header.d=example.com"@attacker.test"#,
        ];
        assert!(!vouches(&spaced, "mx.example.com", "example.com"));
        let spf = [r#"mx.example.com; spf=pass smtp.mailfrom="a;b c"@attacker.test"#];
        assert!(!vouches(&spf, "mx.example.com", "example.com"));
        assert!(vouches(&spf, "mx.example.com", "attacker.test"));
        // An escaped quote does not end the quoted string.
        let escaped = [
            r#"mx.example.com; spf=fail smtp.mailfrom="a\";dkim=pass header.d=example.com"@attacker.test"#,
        ];
        assert!(!vouches(&escaped, "mx.example.com", "example.com"));
        // A quoted authserv-id is the id, not a mismatch.
        let quoted = [r#""mx.example.com"; dkim=pass header.d="example.com""#];
        assert!(vouches(&quoted, "mx.example.com", "example.com"));
    }

    #[test]
    fn a_message_with_two_from_headers_is_refused() {
        // RFC 5322 allows one From; with two, a verifier may judge one and we another.
        let allow = vec![
            "alice@example.com".to_string(),
            "evil@attacker.test".to_string(),
        ];
        for raw in [
            "From: evil@attacker.test\r\nFrom: alice@example.com\r\n\r\nhi",
            "From: alice@example.com\r\nFrom: evil@attacker.test\r\n\r\nhi",
            "From: alice@example.com\r\nFROM : evil@attacker.test\r\n\r\nhi",
            "From : evil@attacker.test\r\nfrom: alice@example.com\r\n\r\nhi",
        ] {
            let m = parse(raw);
            assert!(
                matches!(check(&m, &allow, None), Err((_, Refusal::NoSingleSender))),
                "{raw}"
            );
        }
    }

    #[test]
    fn the_check_reads_the_headers_of_the_message() {
        let allow = vec!["alice@example.com".to_string()];
        let m = parse("Authentication-Results: mx.example.com;\r\n\tdkim=pass header.d=example.com\r\nFrom: alice@example.com\r\n\r\nhi");
        assert!(check(&m, &allow, Some("mx.example.com")).is_ok());
        let m = parse("Authentication-Results: evil.test; dkim=pass header.d=example.com\r\nFrom: alice@example.com\r\n\r\nhi");
        let e = check(&m, &allow, Some("mx.example.com")).unwrap_err();
        assert!(matches!(e.1, Refusal::Unauthenticated { .. }));
        assert!(e.1.to_string().contains("mx.example.com"));
    }
}
