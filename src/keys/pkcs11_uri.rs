//! RFC 7512 `pkcs11:` URIs, as `aws_signing_helper` reads them: search terms, not identifiers.
//!
//! `pkcs11:` path attributes (`;`-separated, values percent-encoded) constrain the token
//! (`token`, `manufacturer`, `model`, `serial`, `slot-description`, `slot-manufacturer`,
//! `slot-id`) and the object (`object` = `CKA_LABEL`, `id` = `CKA_ID`, `type`); query attributes
//! (`&`-separated, after `?`) carry `pin-value` (the user PIN) and the `module-*` names. An
//! attribute given twice, an unknown path attribute, a bad percent escape or a URI over
//! [`MAX_URI`] bytes is refused with its name. The PIN is a [`Secret`] and is never shown:
//! [`Pkcs11Uri::redacted`] prints a URI with `pin-value=**redacted**`.

use std::fmt;

use crate::secret::Secret;

/// The longest URI read (a real one is a few hundred bytes).
pub(crate) const MAX_URI: usize = 4096;

/// Path attributes RFC 7512 defines (and the vendor-neutral `slot-*` of RFC 7512 errata / p11-kit).
const PATH_ATTRIBUTES: [&str; 13] = [
    "token",
    "manufacturer",
    "model",
    "serial",
    "slot-description",
    "slot-manufacturer",
    "slot-id",
    "object",
    "id",
    "type",
    "library-description",
    "library-manufacturer",
    "library-version",
];

/// A parsed `pkcs11:` URI.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Pkcs11Uri {
    /// Path attributes, decoded (values may be binary: `id`).
    pub(crate) path: Vec<(String, Vec<u8>)>,
    /// `pin-value`, if given.
    pub(crate) pin: Option<Secret>,
    /// `module-path`, if given.
    pub(crate) module_path: Option<String>,
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Whether `s` names a PKCS#11 object.
pub(crate) fn is_pkcs11(s: &str) -> bool {
    s.len() >= 7 && s[..7].eq_ignore_ascii_case("pkcs11:")
}

impl Pkcs11Uri {
    /// Parses `raw` (which starts with `pkcs11:`).
    pub(crate) fn parse(raw: &str) -> Result<Pkcs11Uri, String> {
        if raw.len() > MAX_URI {
            return Err(format!(
                "the PKCS#11 URI is {} bytes long, over the {MAX_URI} this tool reads: pass a shorter one (`read-certificate-data --certificate pkcs11:` lists the URIs)",
                raw.len()
            ));
        }
        if !is_pkcs11(raw) {
            return Err("not a PKCS#11 URI: it must start with pkcs11:".into());
        }
        let rest = &raw[7..];
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut uri = Pkcs11Uri::default();
        for part in path.split(';').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| {
                format!(
                    "malformed PKCS#11 URI: path attribute {} has no value (expected name=value)",
                    crate::limits::quote(part)
                )
            })?;
            let name = name.to_ascii_lowercase();
            if !PATH_ATTRIBUTES.contains(&name.as_str()) {
                return Err(format!(
                    "malformed PKCS#11 URI: unknown path attribute {}; expected one of {}",
                    crate::limits::quote(&name),
                    PATH_ATTRIBUTES.join(", ")
                ));
            }
            if uri.path.iter().any(|(n, _)| *n == name) {
                return Err(format!(
                    "malformed PKCS#11 URI: path attribute {name} is given twice"
                ));
            }
            let value = decode(value).map_err(|e| format!("malformed PKCS#11 URI: {name}: {e}"))?;
            if name == "slot-id" {
                let s = std::str::from_utf8(&value).unwrap_or("");
                if s.parse::<u64>().is_err() {
                    return Err(format!(
                        "malformed PKCS#11 URI: slot-id {} is not a decimal number",
                        crate::limits::quote(s)
                    ));
                }
            }
            uri.path.push((name, value));
        }
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let name = name.to_ascii_lowercase();
            let value = decode(value).map_err(|e| format!("malformed PKCS#11 URI: {name}: {e}"))?;
            let text = || {
                String::from_utf8(value.clone())
                    .map_err(|_| format!("malformed PKCS#11 URI: {name} is not UTF-8"))
            };
            match name.as_str() {
                "pin-value" => {
                    if uri.pin.is_some() {
                        return Err("malformed PKCS#11 URI: pin-value is given twice".into());
                    }
                    uri.pin = Some(Secret::new(text()?));
                }
                "module-path" => uri.module_path = Some(text()?),
                // pin-source (a file or a command in some tools), module-name: accepted, not used.
                _ => {}
            }
        }
        Ok(uri)
    }

    /// The decoded value of path attribute `name`.
    #[cfg_attr(not(feature = "hardware"), allow(dead_code))]
    pub(crate) fn get(&self, name: &str) -> Option<&[u8]> {
        self.path
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of path attribute `name` as text (lossy).
    #[cfg_attr(not(feature = "hardware"), allow(dead_code))]
    pub(crate) fn get_str(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The URI as text, every value percent-encoded, the PIN (if any) shown as `**redacted**`.
    pub(crate) fn redacted(&self) -> String {
        let mut s = format_path(
            &self
                .path
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_slice()))
                .collect::<Vec<_>>(),
        );
        if self.pin.is_some() {
            s.push_str("?pin-value=**redacted**");
        }
        s
    }
}

/// `pkcs11:` with these path attributes, values percent-encoded where RFC 7512 requires it
/// (everything but unreserved characters; `id` always fully encoded, as p11tool prints it).
pub(crate) fn format_path(attrs: &[(&str, &[u8])]) -> String {
    let mut s = String::from("pkcs11:");
    for (i, (name, value)) in attrs.iter().enumerate() {
        if i > 0 {
            s.push(';');
        }
        s.push_str(name);
        s.push('=');
        for &b in value.iter() {
            let plain = *name != "id"
                && (b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            if plain {
                s.push(b as char);
            } else {
                s.push_str(&format!("%{b:02x}"));
            }
        }
    }
    s
}

/// Percent-decodes `s`; a `%` not followed by two hex digits is an error.
fn decode(s: &str) -> Result<Vec<u8>, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a % not followed by two hex digits".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_helpers_examples() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=ra;object=Certificate%20for%20Digital%20Signature;id=%01%02?pin-value=123456",
        )
        .unwrap();
        assert_eq!(u.get_str("token").unwrap(), "ra");
        assert_eq!(
            u.get_str("object").unwrap(),
            "Certificate for Digital Signature"
        );
        assert_eq!(u.get("id").unwrap(), &[1, 2]);
        assert_eq!(u.pin.as_ref().unwrap().expose(), "123456");
        let shown = format!("{u:?} {}", u.redacted());
        assert!(!shown.contains("123456"), "{shown}");
        assert!(shown.contains("pin-value=**redacted**"), "{shown}");
        assert!(Pkcs11Uri::parse("pkcs11:").unwrap().path.is_empty());
        assert_eq!(Pkcs11Uri::parse("PKCS11:token=x").unwrap().get("id"), None);
    }

    #[test]
    fn malformed_uris_are_named() {
        for (raw, want) in [
            ("pkcs11:token", "has no value"),
            ("pkcs11:colour=red", "unknown path attribute"),
            ("pkcs11:id=%zz", "two hex digits"),
            ("pkcs11:id=%0", "two hex digits"),
            ("pkcs11:token=a;token=b", "given twice"),
            ("pkcs11:slot-id=x", "not a decimal number"),
            ("pkcs11:?pin-value=1&pin-value=2", "given twice"),
            ("file:x", "must start with pkcs11:"),
        ] {
            let e = Pkcs11Uri::parse(raw).unwrap_err();
            assert!(e.contains(want), "{raw}: {e}");
        }
        let huge = format!("pkcs11:object={}", "a".repeat(1 << 20));
        let e = Pkcs11Uri::parse(&huge).unwrap_err();
        assert!(e.contains("over the 4096"), "{e}");
    }

    #[test]
    fn formatted_uris_parse_back() {
        let id = [0u8, 0x41, 0xff];
        let s = format_path(&[
            ("token", b"my token;x".as_slice()),
            ("id", &id),
            ("type", b"cert"),
        ]);
        assert_eq!(s, "pkcs11:token=my%20token%3bx;id=%00%41%ff;type=cert");
        let u = Pkcs11Uri::parse(&s).unwrap();
        assert_eq!(u.get("token").unwrap(), b"my token;x");
        assert_eq!(u.get("id").unwrap(), &id);
    }
}
