//! Who a WhatsApp sender is, as a phone number: `allowFrom` holds numbers with country code
//! (`+1 234-567-890`), the bridge reports JIDs (`1234567890@s.whatsapp.net`, with a device
//! `1234567890:12@s.whatsapp.net`). Both become bare digits and are compared whole, never as
//! substrings. Anything that is not a phone number (a group `…@g.us`, a privacy id `…@lid`, a
//! name) matches nothing.

use std::collections::BTreeSet;

/// E.164 allows 15 digits; fewer than 6 is nobody's full number with country code.
const MIN_DIGITS: usize = 6;
const MAX_DIGITS: usize = 15;

/// The digits of a phone number or phone JID, or `None` when `s` names no phone number.
pub fn phone(s: &str) -> Option<String> {
    let s = s.trim();
    let user = match s.split_once('@') {
        Some((user, domain)) => {
            if !matches!(
                domain.to_ascii_lowercase().as_str(),
                "s.whatsapp.net" | "c.us"
            ) {
                return None;
            }
            // A linked device: NUMBER:DEVICE@s.whatsapp.net.
            user.split_once(':').map_or(user, |(u, _)| u)
        }
        None => s,
    };
    let user = user.strip_prefix('+').unwrap_or(user);
    let mut digits = String::new();
    for c in user.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    (MIN_DIGITS..=MAX_DIGITS)
        .contains(&digits.len())
        .then_some(digits)
}

/// `channels.whatsapp.allowFrom`, normalised.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    everyone: bool,
    numbers: BTreeSet<String>,
}

impl AllowList {
    /// The list, or the entries that are not phone numbers.
    pub fn new(entries: &[String]) -> Result<AllowList, Vec<String>> {
        let mut list = AllowList::default();
        let mut bad = vec![];
        for e in entries {
            if e.trim() == "*" {
                list.everyone = true;
            } else if let Some(n) = phone(e) {
                list.numbers.insert(n);
            } else {
                bad.push(e.clone());
            }
        }
        if bad.is_empty() {
            Ok(list)
        } else {
            Err(bad)
        }
    }

    /// Whether any of the ids the bridge gave for one sender is an allowed number.
    pub fn allows(&self, ids: &[&str]) -> bool {
        ids.iter().any(|id| match phone(id) {
            Some(n) => self.everyone || self.numbers.contains(&n),
            None => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_jids_normalise_to_digits() {
        for s in [
            "+1234567890",
            "1234567890",
            "+1 234-567-890",
            "+1 (234) 567.890",
            "1234567890@s.whatsapp.net",
            "1234567890:12@s.whatsapp.net",
            "1234567890@c.us",
            " +1234567890 ",
        ] {
            assert_eq!(phone(s).as_deref(), Some("1234567890"), "{s}");
        }
        for s in [
            "",
            "+",
            "alice",
            "12345",
            "1234567890123456",
            "1234567890@g.us",
            "1234567890@lid",
            "1234567890@s.whatsapp.net.evil",
            "++1234567890",
            "1234567890x",
            "*",
        ] {
            assert_eq!(phone(s), None, "{s}");
        }
    }

    #[test]
    fn allow_list_compares_whole_numbers() {
        let l = AllowList::new(&["+1234567890".into(), "+44 20 7946 0958".into()]).unwrap();
        assert!(l.allows(&["1234567890@s.whatsapp.net"]));
        assert!(l.allows(&["", "442079460958:3@s.whatsapp.net"]));
        // Lookalikes: a longer number containing an allowed one, a prefix of one.
        assert!(!l.allows(&["91234567890@s.whatsapp.net"]));
        assert!(!l.allows(&["12345678901@s.whatsapp.net"]));
        assert!(!l.allows(&["123456789@s.whatsapp.net"]));
        assert!(!l.allows(&["1234567890@g.us", "1234567890@lid"]));
        assert!(!l.allows(&[]));
        let bad = AllowList::new(&["+1234567890".into(), "alice".into(), "".into()]).unwrap_err();
        assert_eq!(bad, vec!["alice".to_string(), String::new()]);
        let all = AllowList::new(&["*".into()]).unwrap();
        assert!(all.allows(&["5550001111@s.whatsapp.net"]));
        // "everyone" still means a phone-number sender.
        assert!(!all.allows(&["group@g.us"]));
    }
}
