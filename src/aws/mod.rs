//! AWS-side contracts: the credentials type and the sinks that hand credentials to SDKs.

pub mod cache;
pub mod credentials;
pub mod credentials_file;
pub mod process_json;
pub mod sts;
