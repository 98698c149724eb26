//! Property tests of the INI merge ([`super::set_section`]), on the stable toolchain: for any
//! existing file, the other profiles and every comment survive byte for byte, the written
//! profile parses back (as botocore's `RawConfigParser` reads it) to exactly what was written,
//! and merging twice changes nothing.

use proptest::prelude::*;

use super::{CREDENTIAL_KEYS, set_section};

const SECTIONS: [&str; 6] = ["default", "app", "other", "profile app", "a.b", "x y"];
const KEYS: [&str; 7] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_security_token",
    "AWS_Access_Key_Id",
    "region",
    "s3",
];

#[derive(Debug, Clone)]
enum Line {
    Header(&'static str),
    Key(&'static str, String, u8),
    Continuation(String),
    Comment(String, bool),
    Blank,
}

fn line() -> impl Strategy<Value = Line> {
    let word = "[A-Za-z0-9+/=._-]{0,12}";
    prop_oneof![
        2 => proptest::sample::select(&SECTIONS[..]).prop_map(Line::Header),
        5 => (proptest::sample::select(&KEYS[..]), word, 0u8..3).prop_map(|(k, v, s)| Line::Key(k, v, s)),
        1 => "[a-z0-9 =]{1,10}".prop_map(Line::Continuation),
        2 => ("[ -~]{0,20}", any::<bool>()).prop_map(|(c, indented)| Line::Comment(c, indented)),
        1 => Just(Line::Blank),
    ]
}

/// Renders lines as a file; a continuation only follows a key or another continuation, and the
/// preamble (before the first header) holds only comments and blank lines, as in real files.
fn render(lines: &[Line], final_newline: bool) -> String {
    let mut out = String::new();
    let mut after_key = false;
    let mut in_section = false;
    for l in lines {
        let text = match l {
            Line::Header(n) => {
                in_section = true;
                after_key = false;
                format!("[{n}]")
            }
            Line::Key(k, v, style) if in_section => {
                after_key = true;
                match style {
                    0 => format!("{k} = {v}"),
                    1 => format!("{k}={v}"),
                    _ => format!("{k} =  {v}"),
                }
            }
            Line::Continuation(c) if after_key => format!("    {}", c.trim()),
            Line::Comment(c, indented) => {
                if *indented {
                    format!("  ; {c}")
                } else {
                    format!("# {c}")
                }
            }
            // Blank lines (and out-of-place lines, rendered blank) do not end a value.
            _ => String::new(),
        };
        out.push_str(&text);
        out.push('\n');
    }
    if !final_newline && out.ends_with('\n') {
        out.pop();
    }
    out
}

/// Python's `RawConfigParser` as botocore reads a file, enough for the generated shapes:
/// blank and comment lines are skipped (they do not end a value), a line indented deeper than
/// its key continues the value.
fn parse(text: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    let mut section: Option<String> = None;
    let mut key_indent: Option<usize> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if key_indent.is_some_and(|k| indent > k) {
            let last = out.last_mut().expect("a value is open");
            last.2.push('\n');
            last.2.push_str(t);
            continue;
        }
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = Some(name.trim().to_string());
            key_indent = None;
            continue;
        }
        if let (Some(s), Some((k, v))) = (&section, t.split_once('=')) {
            out.push((
                s.clone(),
                k.trim().to_ascii_lowercase(),
                v.trim().to_string(),
            ));
            key_indent = Some(indent);
        }
    }
    out
}

/// The file cut at its section headers: the preamble, then one block per section.
fn blocks(text: &str) -> Vec<(Option<String>, String)> {
    let mut out: Vec<(Option<String>, String)> = vec![(None, String::new())];
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            out.push((Some(name.trim().to_string()), String::new()));
        }
        out.last_mut().expect("never empty").1.push_str(line);
    }
    out
}

fn comments(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with('#') || t.starts_with(';')
        })
        .collect()
}

fn values() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    (
        "[A-Z0-9]{16,20}",
        "[A-Za-z0-9+/]{40}",
        "[A-Za-z0-9+/=]{16,80}",
    )
        .prop_map(|(a, s, t)| {
            vec![
                ("aws_access_key_id", a),
                ("aws_secret_access_key", s),
                ("aws_session_token", t),
            ]
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn other_profiles_and_comments_survive_and_the_profile_reads_back(
        lines in proptest::collection::vec(line(), 0..40),
        final_newline in any::<bool>(),
        target in proptest::sample::select(&SECTIONS[..]),
        vals in values(),
    ) {
        let existing = render(&lines, final_newline);
        let pairs: Vec<(&str, &str)> = vals.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = set_section(&existing, target, &CREDENTIAL_KEYS, &pairs);

        // Other sections and the preamble: byte for byte.
        for (name, block) in blocks(&existing) {
            if name.as_deref() != Some(target) {
                prop_assert!(out.contains(&block), "lost block {:?}\n--- in\n{}\n--- out\n{}", block, existing, out);
            }
        }
        // Every comment, in order.
        prop_assert_eq!(comments(&existing), comments(&out));
        // The profile reads back to exactly what was written, each key once.
        let got: Vec<(String, String)> = parse(&out)
            .into_iter()
            .filter(|(s, k, _)| s == target && CREDENTIAL_KEYS.contains(&k.as_str()))
            .map(|(_, k, v)| (k, v))
            .collect();
        let want: Vec<(String, String)> = vals.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        prop_assert_eq!(got, want, "--- in\n{}\n--- out\n{}", existing, out);
        // Keys we do not own in the target section are kept.
        let kept = |text: &str| -> Vec<(String, String)> {
            parse(text)
                .into_iter()
                .filter(|(s, k, _)| s == target && !CREDENTIAL_KEYS.contains(&k.as_str()))
                .map(|(_, k, v)| (k, v))
                .collect()
        };
        prop_assert_eq!(kept(&existing), kept(&out));
        // Merging again changes nothing.
        prop_assert_eq!(set_section(&out, target, &CREDENTIAL_KEYS, &pairs), out.clone());
    }

    #[test]
    fn any_text_merges_without_panic_and_idempotently(
        existing in "(\\PC{0,30}[\\n\\r]?){0,20}",
        target in proptest::sample::select(&SECTIONS[..]),
        vals in values(),
    ) {
        let pairs: Vec<(&str, &str)> = vals.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = set_section(&existing, target, &CREDENTIAL_KEYS, &pairs);
        for (k, v) in &pairs {
            let line = format!("{k} = {v}\n");
            prop_assert!(out.contains(&line), "missing {}", line);
        }
        prop_assert_eq!(set_section(&out, target, &CREDENTIAL_KEYS, &pairs), out.clone());
    }
}

/// Found by the property above: a dropped key's continuation line (after a comment) used to
/// stay behind and extend the newly written session token.
#[test]
fn continuation_of_a_replaced_key_is_dropped_but_comments_stay() {
    let before = "[app]\naws_session_token = old\n# note\n    more-old\n\nregion = x\n  y\n";
    let out = set_section(
        before,
        "app",
        &CREDENTIAL_KEYS,
        &[("aws_session_token", "NEW")],
    );
    assert_eq!(
        out,
        "[app]\naws_session_token = NEW\n# note\n\nregion = x\n  y\n"
    );
    let parsed = parse(&out);
    assert!(parsed.contains(&("app".into(), "aws_session_token".into(), "NEW".into())));
    assert!(parsed.contains(&("app".into(), "region".into(), "x\ny".into())));
}

/// Found by `fuzz/fuzz_targets/ini_merge.rs`: an orphan indented line right after the target's
/// header (and a comment) became a continuation of the session token we write, and the next
/// merge dropped it: the merge was not idempotent, and the token no longer read back.
#[test]
fn an_orphan_indented_line_after_the_header_cannot_extend_our_value() {
    let before = "[app]\n; note\n    continued\nregion = x\n";
    let out = set_section(
        before,
        "app",
        &CREDENTIAL_KEYS,
        &[("aws_session_token", "NEW")],
    );
    assert_eq!(out, "[app]\naws_session_token = NEW\n; note\nregion = x\n");
    assert_eq!(
        set_section(
            &out,
            "app",
            &CREDENTIAL_KEYS,
            &[("aws_session_token", "NEW")]
        ),
        out
    );
    assert!(parse(&out).contains(&("app".into(), "aws_session_token".into(), "NEW".into())));
}
