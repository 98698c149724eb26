//! The commands: each reads its validated config and runs the flow once (`init`,
//! `credential-process`); `serve`, which runs for as long as the pod lives, is [`crate::serve`].

pub mod credential_process;
pub mod init;
