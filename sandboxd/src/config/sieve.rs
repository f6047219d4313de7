//! Deserializing a TOML document so that one run names every key serde rejects, not just the
//! first: a rejected key (unknown, or a value of the wrong kind) becomes a problem, is taken out
//! of the document, and the rest is deserialized again.

use super::problem::Problem;
use super::source::Source;
use serde::de::DeserializeOwned;
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a key's path: a table key, or the n-th (0-based) table of an array of tables.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// The 1-based line a byte offset of `text` is on.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Parse `src` and deserialize it as `T`. Syntax errors (all of them, as far as the parser can
/// recover) end it: `None`. Otherwise every rejected key is pushed to `problems`, named
/// `prefix.KEY`, and `T` is what the remaining keys make.
pub(super) fn deserialize<T: DeserializeOwned>(
    src: &Source,
    prefix: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let (doc, errors) = DeTable::parse_recoverable(&src.text);
    if !errors.is_empty() {
        problems.extend(errors.iter().map(|e| problem(src, "", e)));
        return None;
    }
    sieve(doc, src, prefix, problems)
}

fn problem(src: &Source, key: &str, e: &toml::de::Error) -> Problem {
    Problem {
        file: src.path.clone(),
        line: e.span().map(|s| line_at(&src.text, s.start)),
        key: key.to_string(),
        msg: message(e.message().trim()),
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`, …" (every key of the table) becomes
/// "unknown key `x`; did you mean `a`?" when one is close, else "unknown key `x`".
fn message(m: &str) -> String {
    let Some(rest) = m.strip_prefix("unknown field `") else {
        return m.to_string();
    };
    let Some((name, expected)) = rest.split_once('`') else {
        return m.to_string();
    };
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, k)) => format!("unknown key `{name}`; did you mean `{k}`?"),
        None => format!("unknown key `{name}`"),
    }
}

fn sieve<T: DeserializeOwned>(
    mut doc: Spanned<DeTable<'_>>,
    src: &Source,
    prefix: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    // Each round takes one key out, so this ends; the bound only guards against a key that
    // cannot be found again.
    for _ in 0..=count_keys(doc.get_ref()) {
        let e = match T::deserialize(toml::de::Deserializer::from(doc.clone())) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let path = e.span().and_then(|s| locate(doc.get_ref(), &s));
        let Some(path) = path else {
            problems.push(problem(src, prefix, &e));
            return None;
        };
        problems.push(problem(src, &dotted(prefix, &path), &e));
        if !remove(doc.get_mut(), &path) {
            return None;
        }
    }
    None
}

fn count_keys(t: &DeTable<'_>) -> usize {
    t.iter()
        .map(|(_, v)| {
            1 + match v.get_ref() {
                DeValue::Table(inner) => count_keys(inner),
                DeValue::Array(a) => a
                    .iter()
                    .map(|i| match i.get_ref() {
                        DeValue::Table(inner) => count_keys(inner),
                        _ => 0,
                    })
                    .sum(),
                _ => 0,
            }
        })
        .sum()
}

/// The deepest key whose name or value covers the error's span. A table made by a `[header]`
/// does not cover its keys, so every table is searched, not only the covering ones.
fn locate(t: &DeTable<'_>, span: &Range<usize>) -> Option<Vec<Step>> {
    let covers = |r: Range<usize>| r.start <= span.start && span.start < r.end.max(r.start + 1);
    let mut best: Option<Vec<Step>> = None;
    let mut consider = |p: Vec<Step>| {
        if best.as_ref().is_none_or(|b| p.len() > b.len()) {
            best = Some(p);
        }
    };
    for (k, v) in t.iter() {
        let key = Step::Key(k.get_ref().to_string());
        match v.get_ref() {
            DeValue::Table(inner) => {
                if let Some(mut p) = locate(inner, span) {
                    p.insert(0, key.clone());
                    consider(p);
                }
            }
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    if let DeValue::Table(inner) = item.get_ref() {
                        if let Some(mut p) = locate(inner, span) {
                            p.insert(0, Step::Index(i));
                            p.insert(0, key.clone());
                            consider(p);
                        }
                    }
                }
            }
            _ => {}
        }
        if covers(k.span()) || covers(v.span()) {
            consider(vec![key]);
        }
    }
    best
}

fn remove(t: &mut DeTable<'_>, path: &[Step]) -> bool {
    match path {
        [Step::Key(k)] => t.remove(k.as_str()).is_some(),
        [Step::Key(k), Step::Index(i), rest @ ..] => match t.get_mut(k.as_str()) {
            Some(v) => match v.get_mut() {
                DeValue::Array(a) => match a.get_mut(*i).map(|x| x.get_mut()) {
                    Some(DeValue::Table(inner)) => remove(inner, rest),
                    _ => false,
                },
                _ => false,
            },
            None => false,
        },
        [Step::Key(k), rest @ ..] => match t.get_mut(k.as_str()).map(|v| v.get_mut()) {
            Some(DeValue::Table(inner)) => remove(inner, rest),
            _ => false,
        },
        _ => false,
    }
}

/// `prefix.a.b`, with an array index as `[n]` counted from 1 (as `sandboxd check` names
/// `[[workspaces]]` blocks).
fn dotted(prefix: &str, path: &[Step]) -> String {
    let mut s = prefix.to_string();
    for step in path {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => s.push_str(&format!("[{}]", i + 1)),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::path::PathBuf;

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        n: u32,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Outer {
        a: u32,
        b: String,
        inner: Inner,
        list: Vec<Inner>,
    }

    fn src(text: &str) -> Source {
        Source {
            path: PathBuf::from("t.toml"),
            text: text.into(),
            profile: None,
        }
    }

    #[test]
    fn every_rejected_key_is_named_and_the_rest_kept() {
        let s = src("a = \"x\"\nbb = 1\nb = \"kept\"\n[inner]\nn = -1\nm = 2\n[[list]]\nn = 1\n[[list]]\nq = 1\n");
        let mut p = vec![];
        let v: Outer = deserialize(&s, "", &mut p).unwrap();
        let lines: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        assert_eq!(v.b, "kept");
        assert_eq!(v.list.len(), 2);
        assert_eq!(v.list[0].n, 1);
        for want in [
            "t.toml:1: a: ",
            "t.toml:2: bb: unknown key `bb`; did you mean `b`?",
            "t.toml:5: inner.n: ",
            "t.toml:6: inner.m: unknown key `m`",
            "t.toml:10: list[2].q: unknown key `q`",
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with(want)),
                "{want}: {lines:#?}"
            );
        }
        assert_eq!(lines.len(), 5, "{lines:#?}");
    }

    #[test]
    fn syntax_errors_stop_with_their_lines() {
        let mut p = vec![];
        let v: Option<Outer> = deserialize(&src("a = 1\n[inner\n"), "", &mut p);
        assert!(v.is_none());
        assert_eq!(p[0].line, Some(2), "{p:?}");
    }
}
