//! Where the credentials go: the credentials file of `init`, `serve` and `update`
//! ([`OutputArgs`], `AWS_SHARED_CREDENTIALS_FILE`, `HOME`) and `credential-process`'s cache
//! folder (`XDG_CACHE_HOME`, `HOME`).

use std::path::{Path, PathBuf};

use super::{ConfigError, Env, err};
use crate::aws::cache::Cache;
use crate::aws::credentials_file::{Existing, Output};
use crate::cli::{self, CredentialProcessArgs, OutputArgs};
use crate::limits;

/// Where `init` and `serve` write: `--credentials-file`/`IAMRA_CREDENTIALS_FILE`, then
/// `AWS_SHARED_CREDENTIALS_FILE`, then `~/.aws/credentials`.
pub(super) fn credentials_file(a: &OutputArgs, env: &dyn Env) -> Result<Output, ConfigError> {
    let credentials_file = match a
        .credentials_file
        .clone()
        .or_else(|| env.var("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from))
    {
        Some(p) => p,
        None => match env.var("HOME") {
            Some(h) => Path::new(&h).join(".aws/credentials"),
            None => {
                return err(
                    "no credentials file: pass --credentials-file or set AWS_SHARED_CREDENTIALS_FILE (HOME is not set)",
                );
            }
        },
    };
    let p = a.profile.as_str();
    limits::check_profile_name(p).map_err(ConfigError)?;
    Ok(Output {
        credentials_file,
        profile: p.to_string(),
        config_file: a.config_file.clone(),
        existing: match a.existing {
            cli::ExistingFile::Merge => Existing::Merge,
            cli::ExistingFile::MergeOrOverwrite => Existing::MergeOrOverwrite,
            cli::ExistingFile::Replace => Existing::Replace,
        },
    })
}

/// `credential-process`'s cache folder: `--cache-dir`, else `$XDG_CACHE_HOME/iamra-bootstrap`,
/// else `~/.cache/iamra-bootstrap`; `None` with `--no-cache` or nowhere to put it.
pub(super) fn cache(a: &CredentialProcessArgs, env: &dyn Env) -> Option<Cache> {
    if a.no_cache {
        return None;
    }
    let dir = match &a.cache_dir {
        Some(d) => d.clone(),
        None => env
            .var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| env.var("HOME").map(|h| Path::new(&h).join(".cache")))?
            .join("iamra-bootstrap"),
    };
    Some(Cache { dir })
}
