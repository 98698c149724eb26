//! Secret values: redacted in `Debug` and `Display`, wiped from memory on drop.
//!
//! Everything that would let someone act as the workload goes in a [`Secret`]: Vault tokens,
//! ServiceAccount JWTs, AppRole secret ids, AWS secret keys and session tokens. Private keys
//! live in [`crate::keys::SigningKey`], which redacts itself the same way.

use std::fmt;
use zeroize::Zeroize;

/// A string that never prints. Read it with [`Secret::expose`] at the one place it is sent.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself; call only where it leaves the process (a header, a file for 0600).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("** redacted **")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hvs.very-secret");
        assert_eq!(format!("{s:?}"), "** redacted **");
        assert_eq!(s.expose(), "hvs.very-secret");
    }
}
