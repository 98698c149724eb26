//! AWS-side contracts: the sinks that hand credentials to SDKs (credentials file,
//! credential_process JSON and its cache) and `--verify`'s STS call.

pub(crate) mod cache;
pub(crate) mod credentials_file;
pub(crate) mod process_json;
pub(crate) mod sts;
