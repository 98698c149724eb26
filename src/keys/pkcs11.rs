//! The PKCS#11 key store: keys in tokens, smart cards (PIV, YubiKey) and HSMs, with
//! `aws_signing_helper`'s command lines (`docs/hardware-keys.md`).
//!
//! Contract:
//! - `--certificate pkcs11:URI`: the certificate in the token (exactly one must match); the
//!   private key is found beside it as the helper does (draft-woodhouse-cert-best-practice,
//!   section 8.2): the same `CKA_ID` first, then the same `CKA_LABEL`, on the certificate's
//!   token; or `--private-key pkcs11:URI` names the key (with a certificate file or a token
//!   certificate).
//! - The module: `--pkcs11-lib PATH`, else `module-path=` in the URI, else p11-kit's proxy
//!   (`p11-kit-proxy.so`: every module p11-kit registers), as the helper does. A path that is
//!   not a regular file (a FIFO, a folder) is refused before it is opened.
//! - The user PIN: `pin-value=` in the URI, else `IAMRA_PKCS11_PIN` or `--pkcs11-pin-file`,
//!   else a prompt when stdin is a terminal; with none of them the run stops at once with one
//!   line that says how to give it. A locked PIN is named before a login is tried; a wrong PIN
//!   is named (one try is used, never more). `--reuse-pin`: the user PIN is also the
//!   context-specific PIN of a `CKA_ALWAYS_AUTHENTICATE` key (without it such a key asks the
//!   terminal at each signature, or is refused without one).
//! - Signing happens in the token: `CKM_RSA_PKCS` over a SHA DigestInfo, `CKM_ECDSA` over the
//!   hash (the raw `r||s` re-encoded as DER); `CKA_ALWAYS_AUTHENTICATE` keys use the hashing
//!   mechanisms (`CKM_SHA256_RSA_PKCS`, `CKM_ECDSA_SHA256`…) in parts, so the context login
//!   sits between `C_SignInit` and the data. At load a test signature is checked against the
//!   certificate's public key: a key that does not belong to it is refused.
//! - Everything that talks to the module runs on a thread bounded by the deadline: a module
//!   that hangs cannot hold the run past `--timeout`.
//! - The PIN is a [`Secret`]: in no message, log or `Debug` output.
//!
//! Only in the `hardware` build (dlopen); the static build refuses `pkcs11:` with one line.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::KeyError;
use super::pkcs11_uri::Pkcs11Uri;
use crate::secret::Secret;

/// The module loaded without `--pkcs11-lib`: p11-kit's proxy, found by the dynamic loader.
#[cfg_attr(not(feature = "hardware"), allow(dead_code))]
pub(crate) const DEFAULT_MODULE: &str = "p11-kit-proxy.so";

/// What the command line says about PKCS#11, besides the URIs.
#[cfg_attr(not(feature = "hardware"), allow(dead_code))]
#[derive(Debug, Clone, Default)]
pub(crate) struct Pkcs11Options {
    /// `--pkcs11-lib`.
    pub(crate) module: Option<PathBuf>,
    /// `--pkcs11-pin` (`IAMRA_PKCS11_PIN`) or `--pkcs11-pin-file`.
    pub(crate) pin: Option<Secret>,
    /// `--reuse-pin`.
    pub(crate) reuse_pin: bool,
}

/// The module to load for `uri`.
#[cfg_attr(not(feature = "hardware"), allow(dead_code))]
pub(crate) fn module_for(opts: &Pkcs11Options, uri: &Pkcs11Uri) -> PathBuf {
    opts.module
        .clone()
        .or_else(|| uri.module_path.clone().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE))
}

/// Refuses a module path that names something other than a regular file (a FIFO would block
/// the loader forever, a folder or device makes no sense); a bare name is left to the loader.
#[cfg_attr(not(feature = "hardware"), allow(dead_code))]
pub(crate) fn check_module_path(module: &Path) -> Result<(), KeyError> {
    if !module.as_os_str().as_encoded_bytes().contains(&b'/') {
        return Ok(());
    }
    let shown = module.display();
    match std::fs::metadata(module) {
        Err(e) => Err(KeyError::Hardware(format!(
            "cannot open the PKCS#11 module {shown}: {e}; pass --pkcs11-lib with the module's path (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so; OpenSC: /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so; YubiKey: libykcs11.so)"
        ))),
        Ok(m) if !m.is_file() => Err(KeyError::Hardware(format!(
            "the PKCS#11 module {shown} is not a shared library (not a regular file): pass --pkcs11-lib with the module's .so file"
        ))),
        Ok(_) => Ok(()),
    }
}

/// A PIN source for messages: how to give one.
#[cfg_attr(not(feature = "hardware"), allow(dead_code))]
pub(crate) const PIN_HINT: &str =
    "give the user PIN with IAMRA_PKCS11_PIN, --pkcs11-pin-file FILE or ?pin-value= in the URI";

/// Runs `f` on its own thread and waits for it until `deadline`: a module that never answers
/// cannot hold the run (the thread is left behind; the process ends soon after).
#[cfg_attr(not(feature = "hardware"), allow(dead_code))]
pub(crate) fn bounded<T: Send + 'static>(
    deadline: Instant,
    what: &str,
    f: impl FnOnce() -> Result<T, KeyError> + Send + 'static,
) -> Result<T, KeyError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("pkcs11".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| KeyError::Hardware(format!("cannot start a thread for {what}: {e}")))?;
    let left = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(left) {
        Ok(r) => r,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(KeyError::Hardware(format!(
            "{what} did not answer within --timeout: check the module and the token (or raise --timeout)"
        ))),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(KeyError::Hardware(format!(
            "{what} stopped without an answer"
        ))),
    }
}

#[cfg(not(feature = "hardware"))]
pub(crate) use refuse::*;

#[cfg(not(feature = "hardware"))]
mod refuse {
    //! The static build: no dlopen, so no PKCS#11 modules.
    use super::*;

    /// The one line every `pkcs11:` use gets in this build.
    pub(crate) fn not_in_this_build() -> KeyError {
        KeyError::Hardware(
            "PKCS#11 keys (pkcs11: URIs) need the hardware build, which loads modules: this static binary cannot (build it with `cargo build --release --features hardware` on a glibc system, see docs/hardware-keys.md), or export the key to a file".into(),
        )
    }

    /// Refused in this build.
    pub(crate) fn load(
        _cert_uri: Option<&Pkcs11Uri>,
        _key_uri: Option<&Pkcs11Uri>,
        _cert_der: Option<Vec<u8>>,
        _opts: &Pkcs11Options,
        _deadline: Instant,
    ) -> Result<(Vec<u8>, crate::keys::SigningKey), KeyError> {
        Err(not_in_this_build())
    }

    /// Refused in this build.
    pub(crate) fn list_certificates(
        _uri: &Pkcs11Uri,
        _opts: &Pkcs11Options,
        _deadline: Instant,
    ) -> Result<Vec<(Vec<u8>, String)>, KeyError> {
        Err(not_in_this_build())
    }
}

#[cfg(feature = "hardware")]
pub(crate) use token::*;

#[cfg(feature = "hardware")]
mod token {
    //! The hardware build: cryptoki over the module.
    use std::fmt;
    use std::io::IsTerminal;
    use std::sync::{Arc, Mutex};

    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::error::{Error as CkError, RvError};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
    use cryptoki::session::{Session, UserType};
    use cryptoki::slot::{Slot, SlotInfo, TokenInfo};
    use cryptoki::types::AuthPin;
    use x509_parser::prelude::FromDer;

    use super::*;
    use crate::keys::pkcs11_uri::format_path;
    use crate::keys::{Digest, KeyKind, Signer, SigningKey};

    /// The most objects of one kind read from a token.
    const MAX_OBJECTS: usize = 256;

    /// What the certificate's key is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Rsa(usize),
        P256,
        P384,
    }

    /// A private key in a token, with an open (logged-in) session. `Debug` shows no PIN.
    /// Every signature runs on a thread bounded by the deadline of the run that loaded it
    /// (`--timeout`; a key is loaded again at every refresh): a token that stops answering
    /// mid-run cannot hold the process.
    pub(crate) struct Pkcs11Key {
        core: Arc<Core>,
        deadline: Instant,
    }

    struct Core {
        inner: Mutex<Inner>,
        kind: Kind,
        /// The certificate's `subjectPublicKey` bits.
        public_bits: Vec<u8>,
        /// The token's label, for messages.
        token: String,
    }

    struct Inner {
        session: Session,
        key: ObjectHandle,
        always_authenticate: bool,
        /// The context-specific PIN (`--reuse-pin`: the user PIN), if known.
        context_pin: Option<Secret>,
        /// Keeps the module loaded as long as the session lives.
        _module: Pkcs11,
    }

    impl fmt::Debug for Pkcs11Key {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "Pkcs11Key({} in token {:?})",
                self.kind().describe(),
                self.core.token
            )
        }
    }

    impl Signer for Pkcs11Key {
        fn kind(&self) -> KeyKind {
            match self.core.kind {
                Kind::Rsa(bits) => KeyKind::Rsa { bits },
                Kind::P256 => KeyKind::EcP256,
                Kind::P384 => KeyKind::EcP384,
            }
        }

        fn public_key_bits(&self) -> Vec<u8> {
            self.core.public_bits.clone()
        }

        fn sign(&self, message: &[u8], digest: Digest) -> Result<Vec<u8>, KeyError> {
            let core = Arc::clone(&self.core);
            let message = message.to_vec();
            bounded(self.deadline, "the PKCS#11 module", move || {
                core.sign_with(digest, &message)
            })
        }
    }

    impl Core {
        /// Signs `message` hashed with `hash` in the token: PKCS#1 v1.5 or ECDSA (DER).
        fn sign_with(&self, hash: Digest, message: &[u8]) -> Result<Vec<u8>, KeyError> {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let fail = |e: CkError| {
                KeyError::Hardware(format!(
                    "the token {:?} did not sign: {}",
                    self.token,
                    ck_error(&e)
                ))
            };
            let raw = if inner.always_authenticate {
                let mech = match (self.kind, hash) {
                    (Kind::Rsa(_), Digest::Sha256) => Mechanism::Sha256RsaPkcs,
                    (Kind::Rsa(_), Digest::Sha384) => Mechanism::Sha384RsaPkcs,
                    (Kind::Rsa(_), Digest::Sha512) => Mechanism::Sha512RsaPkcs,
                    (_, Digest::Sha256) => Mechanism::EcdsaSha256,
                    (_, Digest::Sha384) => Mechanism::EcdsaSha384,
                    (_, Digest::Sha512) => Mechanism::EcdsaSha512,
                };
                inner.session.sign_init(&mech, inner.key).map_err(|e| match e {
                    CkError::Pkcs11(RvError::MechanismInvalid, _) => KeyError::Hardware(format!(
                        "the key in token {:?} asks for its PIN at every signature (CKA_ALWAYS_AUTHENTICATE) and the token does not offer {mech:?} to sign it in parts, which the PIN step needs: use a key without CKA_ALWAYS_AUTHENTICATE (an RSA key works on SoftHSM2)",
                        self.token
                    )),
                    e => fail(e),
                })?;
                let pin = match &inner.context_pin {
                    Some(p) => p.clone(),
                    None => prompt(&format!(
                        "PIN for the key (CKA_ALWAYS_AUTHENTICATE) in token {:?}: ",
                        self.token
                    ))
                    .ok_or_else(|| {
                        KeyError::Hardware(format!(
                            "the key in token {:?} asks for its PIN at every signature (CKA_ALWAYS_AUTHENTICATE) and there is no terminal to ask on: pass --reuse-pin to use the user PIN",
                            self.token
                        ))
                    })?,
                };
                login(&inner.session, UserType::ContextSpecific, &pin, &self.token)?;
                inner.session.sign_update(message).map_err(fail)?;
                inner.session.sign_final().map_err(fail)?
            } else {
                let digest = hash.hash(message);
                match self.kind {
                    Kind::Rsa(_) => {
                        let mut info = hash.digest_info_prefix().to_vec();
                        info.extend_from_slice(digest.as_ref());
                        inner
                            .session
                            .sign(&Mechanism::RsaPkcs, inner.key, &info)
                            .map_err(fail)?
                    }
                    Kind::P256 | Kind::P384 => {
                        let n = if self.kind == Kind::P256 { 32 } else { 48 };
                        let d = digest.as_ref();
                        let d = &d[..d.len().min(n)];
                        inner
                            .session
                            .sign(&Mechanism::Ecdsa, inner.key, d)
                            .map_err(fail)?
                    }
                }
            };
            match self.kind {
                Kind::Rsa(_) => Ok(raw),
                Kind::P256 => p256::ecdsa::Signature::from_slice(&raw)
                    .map(|s| s.to_der().as_bytes().to_vec())
                    .map_err(|_| bad_ec(&self.token, raw.len())),
                Kind::P384 => p384::ecdsa::Signature::from_slice(&raw)
                    .map(|s| s.to_der().as_bytes().to_vec())
                    .map_err(|_| bad_ec(&self.token, raw.len())),
            }
        }
    }

    fn bad_ec(token: &str, len: usize) -> KeyError {
        KeyError::Hardware(format!(
            "the token {token:?} returned an ECDSA signature of {len} bytes, not r||s for the certificate's curve"
        ))
    }

    /// A PKCS#11 error in words: the CKR_ name for the usual ones.
    fn ck_error(e: &CkError) -> String {
        match e {
            CkError::Pkcs11(rv, f) => format!("{f:?}: {}", rv_name(rv)),
            CkError::LibraryLoading(e) => e.to_string(),
            other => other.to_string(),
        }
    }

    fn rv_name(rv: &RvError) -> String {
        let s = format!("{rv:?}");
        let mut out = String::from("CKR");
        for (i, c) in s.char_indices() {
            if c.is_ascii_uppercase() || (c.is_ascii_digit() && i > 0) {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    /// Asks the terminal for a secret without echo, only when stdin is one.
    fn prompt(question: &str) -> Option<Secret> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        rpassword::prompt_password(question).ok().map(Secret::new)
    }

    fn login(session: &Session, user: UserType, pin: &Secret, token: &str) -> Result<(), KeyError> {
        match session.login(user, Some(&AuthPin::from(pin.expose().to_string()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(KeyError::Hardware(format!(
                "wrong PIN for token {token:?} (the token counts failed tries and locks the PIN after a few): check the PIN given with IAMRA_PKCS11_PIN, --pkcs11-pin-file or pin-value="
            ))),
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(locked(token)),
            Err(CkError::Pkcs11(RvError::PinExpired, _)) => Err(KeyError::Hardware(format!(
                "the user PIN of token {token:?} has expired: set a new one (pkcs11-tool --change-pin)"
            ))),
            Err(e) => Err(KeyError::Hardware(format!(
                "cannot log in to token {token:?}: {}",
                ck_error(&e)
            ))),
        }
    }

    fn locked(token: &str) -> KeyError {
        KeyError::Hardware(format!(
            "the user PIN of token {token:?} is locked (too many wrong PINs): unlock it with the SO PIN (pkcs11-tool --init-pin --login --login-type so, or the token's own tool) and try again"
        ))
    }

    /// A token that the URI's token attributes match.
    struct Found {
        slot: Slot,
        info: TokenInfo,
        slot_info: SlotInfo,
    }

    fn mismatch(uri: &Pkcs11Uri, attr: &str, value: &str) -> bool {
        uri.get(attr)
            .is_some_and(|want| want != value.trim_end().as_bytes())
    }

    fn matching_tokens(
        module: &Pkcs11,
        uri: &Pkcs11Uri,
    ) -> Result<(Vec<Found>, Vec<String>), KeyError> {
        let slots = module.get_slots_with_token().map_err(|e| {
            KeyError::Hardware(format!("cannot list the module's tokens: {}", ck_error(&e)))
        })?;
        let mut found = Vec::new();
        let mut others = Vec::new();
        for slot in slots.into_iter().take(MAX_OBJECTS) {
            let (Ok(info), Ok(slot_info)) =
                (module.get_token_info(slot), module.get_slot_info(slot))
            else {
                continue;
            };
            let slot_id_mismatch = uri
                .get_str("slot-id")
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|id| id != slot.id());
            if slot_id_mismatch
                || mismatch(uri, "token", info.label())
                || mismatch(uri, "model", info.model())
                || mismatch(uri, "manufacturer", info.manufacturer_id())
                || mismatch(uri, "serial", info.serial_number())
                || mismatch(uri, "slot-description", slot_info.slot_description())
                || mismatch(uri, "slot-manufacturer", slot_info.manufacturer_id())
            {
                others.push(format!("{:?}", info.label().trim_end()));
                continue;
            }
            found.push(Found {
                slot,
                info,
                slot_info,
            });
        }
        Ok((found, others))
    }

    fn no_token(uri: &Pkcs11Uri, others: &[String]) -> KeyError {
        let here = if others.is_empty() {
            "the module shows no token (is it inserted? for SoftHSM2, is SOFTHSM2_CONF set?)"
                .to_string()
        } else {
            format!("tokens here: {}", others.join(", "))
        };
        KeyError::Hardware(format!("no token matches {}: {here}", uri.redacted()))
    }

    fn open_module(module: &Path) -> Result<Pkcs11, KeyError> {
        check_module_path(module)?;
        let shown = module.display();
        let m = Pkcs11::new(module).map_err(|e| {
            KeyError::Hardware(format!(
                "cannot load the PKCS#11 module {shown}: {}; pass --pkcs11-lib with the module's path (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so; OpenSC: /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so; YubiKey: libykcs11.so)",
                ck_error(&e)
            ))
        })?;
        match m.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(m),
            Err(e) => Err(KeyError::Hardware(format!(
                "the PKCS#11 module {shown} failed to start: {}",
                ck_error(&e)
            ))),
        }
    }

    /// Objects of `class` that the URI's `object` and `id` select, at most [`MAX_OBJECTS`].
    fn find(
        session: &Session,
        class: ObjectClass,
        uri: &Pkcs11Uri,
    ) -> Result<Vec<ObjectHandle>, CkError> {
        let mut template = vec![Attribute::Class(class)];
        if let Some(label) = uri.get("object") {
            template.push(Attribute::Label(label.to_vec()));
        }
        if let Some(id) = uri.get("id") {
            template.push(Attribute::Id(id.to_vec()));
        }
        let mut out = Vec::new();
        for h in session.iter_objects(&template)? {
            out.push(h?);
            if out.len() >= MAX_OBJECTS {
                break;
            }
        }
        Ok(out)
    }

    struct CertObject {
        der: Vec<u8>,
        id: Option<Vec<u8>>,
        label: Option<Vec<u8>>,
    }

    fn read_cert(session: &Session, h: ObjectHandle) -> Option<CertObject> {
        let attrs = session
            .get_attributes(
                h,
                &[
                    AttributeType::Value,
                    AttributeType::Id,
                    AttributeType::Label,
                ],
            )
            .ok()?;
        let mut c = CertObject {
            der: Vec::new(),
            id: None,
            label: None,
        };
        for a in attrs {
            match a {
                Attribute::Value(v) => c.der = v,
                Attribute::Id(v) if !v.is_empty() => c.id = Some(v),
                Attribute::Label(v) if !v.is_empty() => c.label = Some(v),
                _ => {}
            }
        }
        x509_parser::certificate::X509Certificate::from_der(&c.der).ok()?;
        Some(c)
    }

    /// The user PIN: from the URI, the options, or the terminal; else the one-line refusal.
    fn user_pin(
        uri_pin: Option<&Secret>,
        opts: &Pkcs11Options,
        token: &str,
    ) -> Result<Secret, KeyError> {
        if let Some(p) = uri_pin.or(opts.pin.as_ref()) {
            return Ok(p.clone());
        }
        prompt(&format!("PIN for token {token:?}: ")).ok_or_else(|| {
            KeyError::Hardware(format!(
                "token {token:?} needs its user PIN and there is no terminal to ask on: {PIN_HINT}"
            ))
        })
    }

    fn ensure_login(
        session: &Session,
        found: &Found,
        uri_pin: Option<&Secret>,
        opts: &Pkcs11Options,
    ) -> Result<Secret, KeyError> {
        let token = found.info.label().trim_end();
        if found.info.user_pin_locked() {
            return Err(locked(token));
        }
        let pin = user_pin(uri_pin, opts, token)?;
        login(session, UserType::User, &pin, token)?;
        Ok(pin)
    }

    /// Certificates (DER) that `uri` selects, each with a URI that selects exactly it.
    pub(crate) fn list_certificates(
        uri: &Pkcs11Uri,
        opts: &Pkcs11Options,
        deadline: Instant,
    ) -> Result<Vec<(Vec<u8>, String)>, KeyError> {
        let uri = uri.clone();
        let opts = opts.clone();
        let module_path = module_for(&opts, &uri);
        bounded(deadline, "the PKCS#11 module", move || {
            let module = open_module(&module_path)?;
            let (tokens, others) = matching_tokens(&module, &uri)?;
            if tokens.is_empty() {
                return Err(no_token(&uri, &others));
            }
            let mut out = Vec::new();
            for t in &tokens {
                let Ok(session) = module.open_ro_session(t.slot) else {
                    continue;
                };
                let mut handles =
                    find(&session, ObjectClass::CERTIFICATE, &uri).unwrap_or_default();
                if handles.is_empty()
                    && t.info.login_required()
                    && (uri.pin.is_some() || opts.pin.is_some())
                {
                    ensure_login(&session, t, uri.pin.as_ref(), &opts)?;
                    handles = find(&session, ObjectClass::CERTIFICATE, &uri).unwrap_or_default();
                }
                for h in handles {
                    let Some(c) = read_cert(&session, h) else {
                        continue;
                    };
                    let mut attrs: Vec<(&str, &[u8])> = vec![
                        ("token", t.info.label().trim_end().as_bytes()),
                        (
                            "manufacturer",
                            t.info.manufacturer_id().trim_end().as_bytes(),
                        ),
                        ("model", t.info.model().trim_end().as_bytes()),
                        ("serial", t.info.serial_number().trim_end().as_bytes()),
                    ];
                    if let Some(id) = &c.id {
                        attrs.push(("id", id));
                    }
                    if let Some(label) = &c.label {
                        attrs.push(("object", label));
                    }
                    attrs.push(("type", b"cert"));
                    out.push((c.der.clone(), format_path(&attrs)));
                }
                let _ = &t.slot_info;
            }
            Ok(out)
        })
    }

    /// The key (and the certificate DER, from the token unless `cert_der` is given): see the
    /// module docs.
    pub(crate) fn load(
        cert_uri: Option<&Pkcs11Uri>,
        key_uri: Option<&Pkcs11Uri>,
        cert_der: Option<Vec<u8>>,
        opts: &Pkcs11Options,
        deadline: Instant,
    ) -> Result<(Vec<u8>, SigningKey), KeyError> {
        let cert_uri = cert_uri.cloned();
        let key_uri = key_uri.cloned();
        let opts = opts.clone();
        let any = cert_uri
            .as_ref()
            .or(key_uri.as_ref())
            .cloned()
            .unwrap_or_default();
        let module_path = module_for(&opts, &any);
        bounded(deadline, "the PKCS#11 module", move || {
            let module = open_module(&module_path)?;
            let uri_pin = key_uri
                .as_ref()
                .and_then(|u| u.pin.clone())
                .or_else(|| cert_uri.as_ref().and_then(|u| u.pin.clone()));
            // The certificate: in the token, or the file's.
            let (cert, cert_token) = match &cert_uri {
                Some(uri) => {
                    let (tokens, others) = matching_tokens(&module, uri)?;
                    if tokens.is_empty() {
                        return Err(no_token(uri, &others));
                    }
                    let mut hits = Vec::new();
                    for (i, t) in tokens.iter().enumerate() {
                        let Ok(session) = module.open_ro_session(t.slot) else {
                            continue;
                        };
                        for h in find(&session, ObjectClass::CERTIFICATE, uri).unwrap_or_default() {
                            if let Some(c) = read_cert(&session, h) {
                                hits.push((i, c));
                            }
                        }
                    }
                    if hits.is_empty() {
                        // Certificates may be private objects: log in and look again (the
                        // helper does), one token at a time.
                        for (i, t) in tokens.iter().enumerate() {
                            if !t.info.login_required() {
                                continue;
                            }
                            let Ok(session) = module.open_ro_session(t.slot) else {
                                continue;
                            };
                            ensure_login(&session, t, uri_pin.as_ref(), &opts)?;
                            for h in
                                find(&session, ObjectClass::CERTIFICATE, uri).unwrap_or_default()
                            {
                                if let Some(c) = read_cert(&session, h) {
                                    hits.push((i, c));
                                }
                            }
                        }
                    }
                    match hits.len() {
                        0 => {
                            return Err(KeyError::Hardware(format!(
                                "no certificate matches {}: `read-certificate-data --certificate pkcs11:` lists the certificates and their URIs",
                                uri.redacted()
                            )));
                        }
                        1 => {}
                        n => {
                            return Err(KeyError::Hardware(format!(
                                "{n} certificates match {}: pass a URI that selects one (`read-certificate-data --certificate '{}'` lists each with its own URI)",
                                uri.redacted(),
                                uri.redacted()
                            )));
                        }
                    }
                    let (i, c) = hits.remove(0);
                    (
                        c,
                        Some(tokens.into_iter().nth(i).expect("index of a token found")),
                    )
                }
                None => (
                    CertObject {
                        der: cert_der.clone().unwrap_or_default(),
                        id: None,
                        label: None,
                    },
                    None,
                ),
            };
            let (kind, public_bits) = certificate_key(&cert.der)?;
            // The key's token: the key URI's match, else the certificate's.
            let key_token = match (&key_uri, cert_token) {
                (Some(uri), cert_token) => {
                    let (mut tokens, others) = matching_tokens(&module, uri)?;
                    if let (Some(ct), false) = (&cert_token, uri.get("token").is_some()) {
                        // Beside the certificate first, as the helper searches.
                        if let Some(i) = tokens.iter().position(|t| t.slot.id() == ct.slot.id()) {
                            tokens.swap(0, i);
                        }
                    }
                    if tokens.is_empty() {
                        return Err(no_token(uri, &others));
                    }
                    tokens.remove(0)
                }
                (None, Some(ct)) => ct,
                (None, None) => {
                    return Err(KeyError::Hardware(
                        "no PKCS#11 URI for the key: pass --private-key pkcs11:… or --certificate pkcs11:…".into(),
                    ));
                }
            };
            let token = key_token.info.label().trim_end().to_string();
            let session = module.open_ro_session(key_token.slot).map_err(|e| {
                KeyError::Hardware(format!(
                    "cannot open a session on token {token:?}: {}",
                    ck_error(&e)
                ))
            })?;
            let pin = ensure_login(&session, &key_token, uri_pin.as_ref(), &opts)?;
            let search =
                |uri: &Pkcs11Uri| find(&session, ObjectClass::PRIVATE_KEY, uri).unwrap_or_default();
            let keys = match &key_uri {
                Some(uri) => search(uri),
                None => {
                    let mut by_id = Vec::new();
                    if let Some(id) = &cert.id {
                        by_id = search(&Pkcs11Uri {
                            path: vec![("id".into(), id.clone())],
                            ..Default::default()
                        });
                    }
                    if by_id.is_empty()
                        && let Some(label) = &cert.label
                    {
                        by_id = search(&Pkcs11Uri {
                            path: vec![("object".into(), label.clone())],
                            ..Default::default()
                        });
                    }
                    by_id
                }
            };
            let shown = key_uri
                .as_ref()
                .map(|u| u.redacted())
                .unwrap_or_else(|| format!("the certificate's id or label in token {token:?}"));
            let key = match keys.as_slice() {
                [] => {
                    return Err(KeyError::Hardware(format!(
                        "no private key matches {shown}: a token key is found by the certificate's id, then its label (or pass --private-key pkcs11:…)"
                    )));
                }
                [k] => *k,
                many => {
                    // Several: the one the certificate belongs to, found by a test signature.
                    let _ = many;
                    return Err(KeyError::Hardware(format!(
                        "{} private keys match {shown}: pass --private-key with a URI that selects one (id= or object=)",
                        keys.len()
                    )));
                }
            };
            let always_authenticate = session
                .get_attributes(key, &[AttributeType::AlwaysAuthenticate])
                .ok()
                .and_then(|a| {
                    a.into_iter().find_map(|a| match a {
                        Attribute::AlwaysAuthenticate(b) => Some(b),
                        _ => None,
                    })
                })
                .unwrap_or(false);
            let key_type = session
                .get_attributes(key, &[AttributeType::KeyType])
                .ok()
                .and_then(|a| {
                    a.into_iter().find_map(|a| match a {
                        Attribute::KeyType(t) => Some(t),
                        _ => None,
                    })
                });
            let expected = match kind {
                Kind::Rsa(_) => KeyType::RSA,
                _ => KeyType::EC,
            };
            if key_type.is_some_and(|t| t != expected) {
                return Err(KeyError::Hardware(format!(
                    "the private key {shown} is not the certificate's key type ({}): pass the key the certificate was issued for",
                    match kind {
                        Kind::Rsa(_) => "RSA",
                        _ => "EC",
                    }
                )));
            }
            let context_pin = if always_authenticate && opts.reuse_pin {
                Some(pin)
            } else {
                None
            };
            let k = Core {
                inner: Mutex::new(Inner {
                    session,
                    key,
                    always_authenticate,
                    context_pin,
                    _module: module,
                }),
                kind,
                public_bits,
                token,
            };
            // The key must belong to the certificate: a test signature, checked.
            let probe = b"iamra-bootstrap PKCS#11 key check";
            let sig = k.sign_with(Digest::Sha256, probe)?;
            if !verifies(kind, &k.public_bits, probe, &sig) {
                return Err(KeyError::Hardware(format!(
                    "the private key {shown} does not belong to the certificate (a test signature does not verify with its public key): pass the matching key"
                )));
            }
            let core = Arc::new(k);
            Ok((cert.der, SigningKey::new(Pkcs11Key { core, deadline })))
        })
    }

    fn verifies(kind: Kind, public: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        use ring::signature::{
            ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA256_ASN1, RSA_PKCS1_2048_8192_SHA256,
            UnparsedPublicKey,
        };
        let alg: &dyn ring::signature::VerificationAlgorithm = match kind {
            Kind::Rsa(_) => &RSA_PKCS1_2048_8192_SHA256,
            Kind::P256 => &ECDSA_P256_SHA256_ASN1,
            Kind::P384 => &ECDSA_P384_SHA256_ASN1,
        };
        UnparsedPublicKey::new(alg, public).verify(msg, sig).is_ok()
    }

    /// The key type and `subjectPublicKey` bits of a certificate.
    fn certificate_key(der: &[u8]) -> Result<(Kind, Vec<u8>), KeyError> {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
            .map_err(|e| KeyError::Malformed(format!("the token's certificate: {e}")))?;
        let spki = cert.public_key();
        let bits = spki.subject_public_key.data.to_vec();
        let kind = match spki.algorithm.algorithm.to_id_string().as_str() {
            "1.2.840.113549.1.1.1" => {
                let n = match spki.parsed() {
                    Ok(x509_parser::public_key::PublicKey::RSA(k)) => k.key_size(),
                    _ => 0,
                };
                Kind::Rsa(n)
            }
            "1.2.840.10045.2.1" => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .unwrap_or_default();
                match curve.as_str() {
                    "1.2.840.10045.3.1.7" => Kind::P256,
                    "1.3.132.0.34" => Kind::P384,
                    other => {
                        return Err(KeyError::Unsupported(format!(
                            "EC curve {other} (in a token)"
                        )));
                    }
                }
            }
            other => {
                return Err(KeyError::Unsupported(format!(
                    "{other} (in a token); use RSA or EC P-256/P-384"
                )));
            }
        };
        Ok((kind, bits))
    }
}
