//! policy_parse: the IAM policy parser (`policy::Policy::parse`).
//!
//! Properties, for every policy kind (identity, resource, boundary, session, SCP, RCP):
//! - `Policy::parse`, `lint` and the error's `aws_message` never panic (PBT);
//! - print-parse round trip of the strict JSON tree (`policy::Json`): printing it (with
//!   `serde_json`, and with an ASCII-only printer) and parsing the text again gives the same
//!   tree (PBT);
//! - parse-print-parse: the printed text parses as a policy exactly as the original did, to
//!   the same document, or to the same errors. Text-level rejections (invalid JSON, empty,
//!   over the size limit, a character IAM refuses) depend on the exact characters and are
//!   skipped: printing may escape characters or change the whitespace.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom::policy::{lint, Json, Policy, PolicyDocument, PolicyError, PolicyType};

const KINDS: [PolicyType; 6] = [
    PolicyType::Identity,
    PolicyType::Resource,
    PolicyType::PermissionsBoundary,
    PolicyType::Session,
    PolicyType::Scp,
    PolicyType::Rcp,
];

/// JSON text of the tree with every non-ASCII or control character escaped.
fn print_ascii(j: &Json, out: &mut String) {
    match j {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(n),
        Json::String(s) => print_str(s, out),
        Json::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                print_ascii(v, out);
            }
            out.push(']');
        }
        Json::Object(o) => {
            out.push('{');
            for (i, (k, v)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                print_str(k, out);
                out.push(':');
                print_ascii(v, out);
            }
            out.push('}');
        }
    }
}

fn print_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Tree equality. Numbers must survive print/parse exactly: `Json::Number` keeps a float as
/// `f64::to_string` (the shortest text that reads back to the same value) and serde_json reads
/// with its `float_roundtrip` feature, so nothing drifts (without both, this target finds
/// numbers that change in the round trip).
fn same_tree(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_tree(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k, p), (l, q))| k == l && same_tree(p, q))
        }
        _ => a == b,
    }
}

fn reparse_same(text: &str, tree: &Json) -> bool {
    Json::parse(text).is_ok_and(|t| same_tree(&t, tree))
}

/// Document equality (condition values included: numbers round-trip exactly, see `same_tree`).
fn same_doc(a: &PolicyDocument, b: &PolicyDocument) -> bool {
    a == b
}

fn text_level(e: &PolicyError) -> bool {
    matches!(
        e,
        PolicyError::Json(_)
            | PolicyError::Empty
            | PolicyError::TooLarge { .. }
            | PolicyError::InvalidCharacter(_)
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // The JSON tree round trip.
    let tree = Json::parse(text).ok();
    let mut printed = Vec::new();
    if let Some(j) = &tree {
        let mut ascii = String::new();
        print_ascii(j, &mut ascii);
        assert!(
            reparse_same(&ascii, j),
            "ASCII print does not parse back:\n{ascii}\n{j:?}"
        );
        let compact = serde_json::to_string(j).expect("a tree always serialises");
        assert!(
            reparse_same(&compact, j),
            "serde print does not parse back:\n{compact}\n{j:?}"
        );
        printed.push(ascii);
        printed.push(compact);
    }

    for kind in KINDS {
        let first = Policy::parse(text, kind);
        match &first {
            Ok(p) => {
                let _ = lint(p);
                assert!(p.statements().len() == p.document().statements.len());
            }
            Err(e) => {
                assert!(!e.errors().is_empty(), "an error without errors");
                let _ = e.aws_message();
                let _ = e.to_string();
            }
        }
        if first
            .as_ref()
            .err()
            .is_some_and(|e| e.errors().iter().any(|x| text_level(&x.error)))
        {
            continue;
        }
        for again_text in &printed {
            let again = Policy::parse(again_text, kind);
            if again
                .as_ref()
                .err()
                .is_some_and(|e| e.errors().iter().any(|x| text_level(&x.error)))
            {
                continue;
            }
            match (&first, &again) {
                (Ok(a), Ok(b)) => {
                    assert!(
                        same_doc(a.document(), b.document()),
                        "{kind}: printed policy parses to another document:\n{again_text}"
                    );
                    assert_eq!((a.version(), a.id()), (b.version(), b.id()));
                    assert_eq!(a.statements().len(), b.statements().len());
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "{kind}: printed policy fails differently"),
                (a, b) => panic!(
                    "{kind}: parse {:?} but parse(print) {:?}\n{again_text}",
                    a.as_ref().err(),
                    b.as_ref().err()
                ),
            }
        }
    }
});
