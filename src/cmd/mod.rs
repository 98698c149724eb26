//! The commands: each reads its validated config and runs the flow once (`init`,
//! `credential-process`) or for as long as the pod lives (`serve`).

pub mod credential_process;
pub mod init;
pub mod serve;
