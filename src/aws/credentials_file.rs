//! The shared credentials file and config file (`docs/ecosystem-contracts.md` §1).
//!
//! Contract: `[name]` sections (`[profile name]` in the config file, except `[default]`)
//! holding `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`. Only the target
//! section's keys that we own are replaced (a stale `aws_security_token` is dropped); other
//! sections, keys and comments stay as they were. The file is replaced atomically, mode 0600,
//! its folder created 0700 when missing ([`crate::fsutil`]). An existing file is read up to
//! [`MAX_INI_FILE`] bytes; a value holding a line break is refused, never written.
//!
//! The sink of `init`, `update` and `serve --credentials-file` is [`write_output`]: the profile
//! in the credentials file, and the region in the config file when one is named ([`Output`]):
//! both files or neither (both are staged before either is renamed). [`FileSink`] is the same
//! write as the refresh loop's sink ([`crate::source::refresh`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::credentials::Credentials;
use crate::fsutil;
use crate::limits::MAX_INI_FILE;
use crate::logging::ms_since;

/// Where `init`, `update` and `serve` write.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub(crate) credentials_file: PathBuf,
    /// The profile (section) name, checked to be a plain name.
    pub(crate) profile: String,
    /// Also record the region for the profile here.
    pub(crate) config_file: Option<PathBuf>,
    /// What happens to the credentials file already there.
    pub(crate) existing: Existing,
}

/// What happens to the credentials file already there: merged into (the default), or
/// replaced whole (`x509-credential-file --replace`), or replaced when it cannot be read
/// (`--force`), as `aws-spiffe-workload-helper` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Existing {
    #[default]
    Merge,
    MergeOrOverwrite,
    Replace,
}

/// A file that could not be written.
#[derive(Debug)]
pub(crate) struct WriteError {
    /// What it was (`credentials file`, `config file`).
    pub(crate) what: &'static str,
    pub(crate) path: PathBuf,
    pub(crate) source: std::io::Error,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot write the {} {}: {}; check that the folder exists or can be created and is writable",
            self.what,
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Writes the credentials file (and the region into the config file) per `out`.
pub(crate) fn write_output(
    out: &Output,
    region: &str,
    creds: &Credentials,
    deadline: Instant,
) -> Result<(), WriteError> {
    let t = Instant::now();
    let credentials_error = |source| WriteError {
        what: "credentials file",
        path: out.credentials_file.clone(),
        source,
    };
    let config_error = |path: &PathBuf, source| WriteError {
        what: "config file",
        path: path.clone(),
        source,
    };
    // Both files or neither: stage both, then rename (config first: a config rename that fails
    // leaves the credentials file as it was).
    let creds_staged = stage_credentials(
        &out.credentials_file,
        &out.profile,
        creds,
        out.existing,
        deadline,
    )
    .map_err(credentials_error)?;
    if let Some(cf) = &out.config_file {
        stage_region(cf, &out.profile, region, deadline)
            .and_then(fsutil::Staged::commit)
            .map_err(|e| config_error(cf, e))?;
    }
    creds_staged.commit().map_err(credentials_error)?;
    tracing::info!(
        step = "write",
        duration_ms = ms_since(t),
        path = %out.credentials_file.display(),
        profile = %out.profile,
        "wrote the credentials file"
    );
    Ok(())
}

/// The file as the refresh loop's sink: rewritten at every refresh; a write that fails fails
/// the round.
#[derive(Debug)]
pub(crate) struct FileSink {
    pub(crate) output: Output,
    /// The region recorded in the config file (when `output` names one).
    pub(crate) region: String,
}

impl crate::source::refresh::Sink for FileSink {
    type Error = WriteError;
    const DELIVERED: &'static str = "credentials file updated";

    fn deliver(
        &self,
        got: &crate::source::Obtained,
        _issued: time::OffsetDateTime,
        deadline: Instant,
    ) -> Result<(), WriteError> {
        write_output(&self.output, &self.region, &got.credentials, deadline)
    }
}

/// Keys this tool owns in a credentials section.
const CREDENTIAL_KEYS: [&str; 4] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_security_token",
];

fn section_name(line: &str) -> Option<&str> {
    let t = line.trim();
    let inner = t.strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.trim())
}

fn key_of(line: &str) -> Option<String> {
    let t = line.trim_start();
    if t.starts_with('#') || t.starts_with(';') {
        return None;
    }
    let (k, _) = t.split_once('=')?;
    Some(k.trim().to_ascii_lowercase())
}

enum LineKind {
    BlankOrComment,
    /// Anything else, with its indentation.
    Other(usize),
}

fn line_kind(line: &str) -> LineKind {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
        LineKind::BlankOrComment
    } else {
        LineKind::Other(line.len() - line.trim_start().len())
    }
}

/// Sets `values` in section `[section]` of an INI text, dropping the section's lines whose key
/// is in `owned`; everything else is kept. Adds the section at the end when missing.
pub(crate) fn set_section(
    existing: &str,
    section: &str,
    owned: &[&str],
    values: &[(&str, &str)],
) -> String {
    let mut out = String::with_capacity(existing.len() + 512);
    let new_lines: String = values.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    let mut in_target = false;
    let mut written = false;
    // After a dropped key, its continuation lines go too: as Python's configparser (botocore)
    // reads it, a line indented deeper than the key continues its value, across blank and
    // comment lines (those are kept).
    let mut dropping_value: Option<usize> = None;
    for line in existing.split_inclusive('\n') {
        if let Some(key_indent) = dropping_value {
            match line_kind(line) {
                LineKind::BlankOrComment => {
                    out.push_str(line);
                    continue;
                }
                LineKind::Other(indent) if indent > key_indent => continue,
                LineKind::Other(_) => dropping_value = None,
            }
        }
        if let Some(name) = section_name(line) {
            in_target = name == section;
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push('\n');
            }
            if in_target && !written {
                out.push_str(&new_lines);
                written = true;
                // An indented line right after the header would now continue our last value:
                // it goes (found by the ini_merge fuzz target; it made the merge unstable).
                dropping_value = Some(0);
            }
            continue;
        }
        if in_target && key_of(line).is_some_and(|k| owned.contains(&k.as_str())) {
            dropping_value = Some(line.len() - line.trim_start().len());
            continue;
        }
        out.push_str(line);
    }
    if !written {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push('\n');
        }
        out.push_str(&format!("[{section}]\n{new_lines}"));
    }
    out
}

/// Stages `creds` as profile `profile` of the credentials file at `path` (the merged file in a
/// temp file beside it, renamed over it by [`fsutil::Staged::commit`]). A value with a line
/// break or other control character is refused: it would start a new INI line.
pub(crate) fn stage_credentials(
    path: &Path,
    profile: &str,
    creds: &Credentials,
    existing: Existing,
    deadline: Instant,
) -> std::io::Result<fsutil::Staged> {
    let values = [
        ("aws_access_key_id", creds.access_key_id.as_str()),
        ("aws_secret_access_key", creds.secret_access_key.expose()),
        ("aws_session_token", creds.session_token.expose()),
    ];
    for (k, v) in values {
        if v.chars().any(char::is_control) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("refusing to write {k}: it contains a line break or control character"),
            ));
        }
    }
    let existing = match existing {
        Existing::Merge => read_existing(path, deadline)?,
        Existing::Replace => String::new(),
        Existing::MergeOrOverwrite => read_existing(path, deadline).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the existing credentials file: overwriting it (--force)");
            String::new()
        }),
    };
    let text = set_section(&existing, profile, &CREDENTIAL_KEYS, &values);
    fsutil::Staged::new(path, text.as_bytes())
}

/// Stages `region` for `profile` in the config file at `path` (see [`stage_credentials`]).
fn stage_region(
    path: &Path,
    profile: &str,
    region: &str,
    deadline: Instant,
) -> std::io::Result<fsutil::Staged> {
    let section = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let existing = read_existing(path, deadline)?;
    let text = set_section(&existing, &section, &["region"], &[("region", region)]);
    fsutil::Staged::new(path, text.as_bytes())
}

/// The file as it is (at most [`MAX_INI_FILE`] bytes), or empty when missing.
fn read_existing(path: &Path, deadline: Instant) -> std::io::Result<String> {
    match crate::bounded::read_file(path, MAX_INI_FILE, deadline) {
        Ok(b) => String::from_utf8(b).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the existing file is not UTF-8 text",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e.into_io()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNED: [&str; 4] = CREDENTIAL_KEYS;

    #[test]
    fn adds_to_an_empty_file() {
        assert_eq!(
            set_section("", "default", &OWNED, &[("aws_access_key_id", "A")]),
            "[default]\naws_access_key_id = A\n"
        );
    }

    #[test]
    fn replaces_only_the_target_profile_and_keeps_comments() {
        let before = "# managed by hand\n[other]\naws_access_key_id = O\n\n[app]\n; note\naws_access_key_id = OLD\naws_security_token = X\nregion_hint = keep\n\n[last]\nx = 1";
        let after = set_section(
            before,
            "app",
            &OWNED,
            &[("aws_access_key_id", "NEW"), ("aws_session_token", "T")],
        );
        assert_eq!(
            after,
            "# managed by hand\n[other]\naws_access_key_id = O\n\n[app]\naws_access_key_id = NEW\naws_session_token = T\n; note\nregion_hint = keep\n\n[last]\nx = 1"
        );
        let twice = set_section(
            &after,
            "app",
            &OWNED,
            &[("aws_access_key_id", "NEW"), ("aws_session_token", "T")],
        );
        assert_eq!(twice, after, "idempotent");
    }

    #[test]
    fn appends_a_missing_profile_after_a_blank_line() {
        let after = set_section("[a]\nx = 1", "b", &OWNED, &[("aws_access_key_id", "B")]);
        assert_eq!(after, "[a]\nx = 1\n\n[b]\naws_access_key_id = B\n");
    }
}

#[cfg(test)]
mod proptests;
