//! The TPM 2.0 key store: `-----BEGIN TSS2 PRIVATE KEY-----` files (the format tpm2-openssl,
//! the OpenSSL TPM2 engine and GnuTLS write), signing inside the TPM, with
//! `aws_signing_helper`'s command lines (`docs/hardware-keys.md`).
//!
//! Contract:
//! - The file: ASN.1 `TPMKey` (draft-bottomley-tpm2-keys): type `2.23.133.10.1.3` (a loadable
//!   key; importable and sealed keys, and keys with policies, are refused by name), `emptyAuth`,
//!   the parent handle, and the `TPM2B_PUBLIC` / `TPM2B_PRIVATE` blobs the TPM loads as they are.
//! - The parent: a persistent handle (`0x81…`), used as it is (no parent password, as the
//!   helper); or a hierarchy (`0x40000001` owner, …), under which the standard ECC P-256
//!   storage primary is created (the template the helper, tpm2-openssl and the TPM2 engine
//!   share: restricted decrypt, AES-128-CFB, noDA, empty unique) and flushed after use.
//! - The key: RSA (2048–4096) or EC P-256/P-384 with the `sign` attribute (a key without it is
//!   refused before any TPM call). RSA signs RSASSA-PKCS1-v1_5 with the hash; EC signs ECDSA
//!   over the hash (a SHA-256 digest for P-384 is left-padded to 48 bytes, which is the same
//!   ECDSA signature as over the short digest, as the helper does); `r, s` become DER.
//! - The key password: none when the file says `emptyAuth`; else `--tpm-key-password`
//!   (`IAMRA_TPM_KEY_PASSWORD`), or empty with `--no-tpm-key-password`, or a terminal prompt;
//!   without any, one line saying how to give it. A wrong one: one line, exit 2 (the TPM counts
//!   it toward its dictionary-attack lockout, so it is never retried).
//! - The TPM: `TPM_DEVICE` (a character device or a UNIX socket such as swtpm's), else
//!   `/dev/tpmrm0`, as the helper reads it. The TPM 2.0 command protocol (TPM 2.0 Library Part
//!   3: `CreatePrimary`, `Load`, `Sign`, `FlushContext` with password sessions) is spoken
//!   directly, so the static build has TPM keys too. Every exchange is bounded by the deadline;
//!   a response is read only up to [`MAX_RESPONSE`] bytes, and one that is not TPM 2.0 (a
//!   socket streaming garbage) ends the run with one line.
//! - At load the key signs a test string, so a wrong password or a missing TPM fails before
//!   any network call. Each signature opens the TPM, loads the key, signs and flushes.
//!
//! Written by hand (no crate): `tss-esapi` needs the C TSS libraries (dlopen/dynamic linking,
//! not in the static build), and only these four commands are needed.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Digest, KeyError, KeyKind, Signer};
use crate::secret::Secret;

/// Where the TPM is without `TPM_DEVICE`.
pub(crate) const DEFAULT_DEVICE: &str = "/dev/tpmrm0";
/// The largest TPM response read (real ones are at most a few KiB).
const MAX_RESPONSE: usize = 64 * 1024;
/// The largest TSS2 key file read.
const MAX_KEY_DER: usize = 16 * 1024;

const OID_LOADABLE: &[u8] = &[0x67, 0x81, 0x05, 0x0a, 0x01, 0x03]; // 2.23.133.10.1.3
const OID_IMPORTABLE: &[u8] = &[0x67, 0x81, 0x05, 0x0a, 0x01, 0x04];
const OID_SEALED: &[u8] = &[0x67, 0x81, 0x05, 0x0a, 0x01, 0x05];

const TPM_ST_NO_SESSIONS: u16 = 0x8001;
const TPM_ST_SESSIONS: u16 = 0x8002;
const TPM_ST_HASHCHECK: u16 = 0x8024;
const TPM_RS_PW: u32 = 0x4000_0009;
const TPM_RH_NULL: u32 = 0x4000_0007;
const CC_CREATE_PRIMARY: u32 = 0x0000_0131;
const CC_LOAD: u32 = 0x0000_0157;
const CC_SIGN: u32 = 0x0000_015D;
const CC_FLUSH_CONTEXT: u32 = 0x0000_0165;

const ALG_RSA_T: u16 = 0x0001;
const ALG_SHA256: u16 = 0x000B;
const ALG_SHA384: u16 = 0x000C;
const ALG_SHA512: u16 = 0x000D;
const ALG_NULL: u16 = 0x0010;
const ALG_RSASSA: u16 = 0x0014;
const ALG_ECDSA_T: u16 = 0x0018;
const ALG_ECC: u16 = 0x0023;
const CURVE_P256: u16 = 0x0003;
const CURVE_P384: u16 = 0x0004;
/// `TPMA_OBJECT.sign`.
const ATTR_SIGN: u32 = 1 << 18;

/// What the command line says about TPM keys.
#[derive(Debug, Clone, Default)]
pub(crate) struct TpmOptions {
    /// `--tpm-key-password`.
    pub(crate) password: Option<Secret>,
    /// `--no-tpm-key-password`.
    pub(crate) no_password: bool,
    /// `TPM_DEVICE`.
    pub(crate) device: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rsa(usize),
    P256,
    P384,
}

/// A TPM-wrapped key: the blobs, the public key, the password. `Debug` shows no password.
pub(crate) struct TpmKey {
    parent: u32,
    public: Vec<u8>,
    private: Vec<u8>,
    kind: Kind,
    public_bits: Vec<u8>,
    password: Secret,
    device: PathBuf,
    /// The deadline of the run that loaded it (`--timeout`): every signature ends by then.
    deadline: Instant,
}

impl fmt::Debug for TpmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TpmKey({} under {:#010x}, ** redacted **)",
            self.kind().describe(),
            self.parent
        )
    }
}

fn hw(msg: impl Into<String>) -> KeyError {
    KeyError::Hardware(msg.into())
}

/// Reads a TSS2 key file and checks, with a test signature in the TPM before `deadline`, that
/// the TPM is there and the password is right.
pub(crate) fn load(bytes: &[u8], opts: &TpmOptions, deadline: Instant) -> Result<TpmKey, KeyError> {
    let der = super::file::pem_block(bytes, "TSS2 PRIVATE KEY")?
        .ok_or_else(|| KeyError::Malformed("no TSS2 PRIVATE KEY block".into()))?;
    let file = parse_tpm_key(&der).map_err(|e| KeyError::Malformed(format!("TSS2 key: {e}")))?;
    let (kind, public_bits, attributes) = parse_public(&file.public)
        .map_err(|e| KeyError::Malformed(format!("TSS2 key's public area: {e}")))?;
    if attributes & ATTR_SIGN == 0 {
        return Err(hw(
            "the TPM key cannot sign (its sign attribute is not set: a decryption or storage key): create a signing key (e.g. openssl genpkey -provider tpm2 …, or tpm2_create -a 'sign|…')",
        ));
    }
    let password = if file.empty_auth {
        Secret::new("")
    } else if let Some(p) = &opts.password {
        p.clone()
    } else if opts.no_password {
        Secret::new("")
    } else {
        prompt("TPM key password: ").ok_or_else(|| {
            hw("the TPM key has a password and there is no terminal to ask on: pass --tpm-key-password (or IAMRA_TPM_KEY_PASSWORD), or --no-tpm-key-password if it has none")
        })?
    };
    let key = TpmKey {
        parent: file.parent,
        public: file.public,
        private: file.private,
        kind,
        public_bits,
        password,
        device: opts
            .device
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DEVICE)),
        deadline,
    };
    let probe = b"iamra-bootstrap TPM key check";
    key.sign_until(Digest::Sha256, probe, deadline)?;
    Ok(key)
}

fn prompt(question: &str) -> Option<Secret> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return None;
    }
    rpassword::prompt_password(question).ok().map(Secret::new)
}

/// The tests' deadline for one exchange.
#[cfg(test)]
const SIGN_TIMEOUT: Duration = Duration::from_secs(30);

impl Signer for TpmKey {
    fn kind(&self) -> KeyKind {
        match self.kind {
            Kind::Rsa(bits) => KeyKind::Rsa { bits },
            Kind::P256 => KeyKind::EcP256,
            Kind::P384 => KeyKind::EcP384,
        }
    }

    fn public_key_bits(&self) -> Vec<u8> {
        self.public_bits.clone()
    }

    /// Signs `message` hashed with `digest` in the TPM, by the deadline of the run that loaded
    /// the key (a key is loaded again at every refresh, with that refresh's deadline).
    fn sign(&self, message: &[u8], digest: Digest) -> Result<Vec<u8>, KeyError> {
        self.sign_until(digest, message, self.deadline)
    }
}

impl TpmKey {
    fn sign_until(
        &self,
        hash: Digest,
        message: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, KeyError> {
        let digest = hash.hash(message);
        let mut digest = digest.as_ref().to_vec();
        let (scheme, hash_alg) = match (self.kind, hash) {
            (Kind::Rsa(_), Digest::Sha256) => (ALG_RSASSA, ALG_SHA256),
            (Kind::Rsa(_), Digest::Sha384) => (ALG_RSASSA, ALG_SHA384),
            (Kind::Rsa(_), Digest::Sha512) => (ALG_RSASSA, ALG_SHA512),
            // ECDSA: the hash named is the curve's size; the digest is cut or left-padded to it.
            (Kind::P256, _) => {
                digest.truncate(32);
                (ALG_ECDSA_T, ALG_SHA256)
            }
            (Kind::P384, _) => {
                digest.truncate(48);
                while digest.len() < 48 {
                    digest.insert(0, 0);
                }
                (ALG_ECDSA_T, ALG_SHA384)
            }
        };
        let mut tpm = Tpm::open(&self.device, deadline)?;
        let parent_is_persistent = self.parent >> 24 == 0x81;
        let parent = if parent_is_persistent {
            self.parent
        } else {
            tpm.create_primary(self.parent)?
        };
        let loaded = tpm.load(parent, &self.private, &self.public);
        if !parent_is_persistent {
            tpm.flush(parent);
        }
        let handle = loaded?;
        let signed = tpm.sign(handle, &self.password, &digest, scheme, hash_alg);
        tpm.flush(handle);
        signed
    }
}

// ---- the TSS2 file ---------------------------------------------------------------------------

struct TpmKeyFile {
    empty_auth: bool,
    parent: u32,
    public: Vec<u8>,
    private: Vec<u8>,
}

/// One DER TLV: (tag, contents, rest). Definite lengths up to 4 bytes.
fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = b.split_first().ok_or("truncated")?;
    let (&l0, mut rest) = rest.split_first().ok_or("truncated")?;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err("bad length".into());
        }
        let mut len = 0usize;
        for &x in &rest[..n] {
            len = (len << 8) | x as usize;
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err("truncated".into());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn parse_tpm_key(der: &[u8]) -> Result<TpmKeyFile, String> {
    if der.len() > MAX_KEY_DER {
        return Err(format!("{} bytes, over {MAX_KEY_DER}", der.len()));
    }
    let (tag, body, _) = tlv(der)?;
    if tag != 0x30 {
        return Err("not a SEQUENCE".into());
    }
    let (tag, oid, mut rest) = tlv(body)?;
    if tag != 0x06 {
        return Err("no type OID".into());
    }
    if oid == OID_IMPORTABLE {
        return Err(
            "an importable key (2.23.133.10.1.4) is not supported: use a loadable key".into(),
        );
    }
    if oid == OID_SEALED {
        return Err("sealed data (2.23.133.10.1.5) is not a signing key".into());
    }
    if oid != OID_LOADABLE {
        return Err("unknown key type OID (expected 2.23.133.10.1.3, a loadable key)".into());
    }
    let mut empty_auth = false;
    loop {
        let (tag, inner, next) = tlv(rest)?;
        match tag {
            0xa0 => {
                let (t, v, _) = tlv(inner)?;
                empty_auth = t == 0x01 && v.first().is_some_and(|&b| b != 0);
            }
            0xa1 | 0xa3 => {
                return Err(
                    "keys with TPM policies are not supported: create the key without a policy"
                        .into(),
                );
            }
            0xa2 => return Err("keys with an imported secret are not supported".into()),
            0x02 => {
                let mut v = inner;
                while v.len() > 4 && v[0] == 0 {
                    v = &v[1..];
                }
                if v.is_empty() || v.len() > 4 {
                    return Err("bad parent handle".into());
                }
                let parent = v.iter().fold(0u32, |a, &b| (a << 8) | b as u32);
                let (t1, public, after) = tlv(next)?;
                let (t2, private, _) = tlv(after)?;
                if t1 != 0x04 || t2 != 0x04 {
                    return Err("public and private blobs must be OCTET STRINGs".into());
                }
                return Ok(TpmKeyFile {
                    empty_auth,
                    parent,
                    public: public.to_vec(),
                    private: private.to_vec(),
                });
            }
            _ => return Err(format!("unexpected field (tag {tag:#04x})")),
        }
        rest = next;
    }
}

// ---- TPM structures --------------------------------------------------------------------------

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn b2(&mut self) -> Result<&'a [u8], String> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

/// The key type, `subjectPublicKey` bits and attributes of a `TPM2B_PUBLIC`.
fn parse_public(tpm2b: &[u8]) -> Result<(Kind, Vec<u8>, u32), String> {
    let mut r = Reader(tpm2b);
    let area = r.b2()?;
    let mut r = Reader(area);
    let kind = r.u16()?;
    let _name_alg = r.u16()?;
    let attributes = r.u32()?;
    let _auth_policy = r.b2()?;
    let sym = r.u16()?;
    if sym != ALG_NULL {
        r.u16()?;
        r.u16()?;
    }
    let scheme = r.u16()?;
    if scheme != ALG_NULL {
        r.u16()?;
    }
    match kind {
        ALG_RSA_T => {
            let bits = r.u16()? as usize;
            let exponent = match r.u32()? {
                0 => 65537,
                e => e,
            };
            let modulus = r.b2()?;
            if !(2048..=4096).contains(&bits) {
                return Err(format!("RSA-{bits}: RSA keys of 2048 to 4096 bits only"));
            }
            Ok((
                Kind::Rsa(bits),
                rsa_public_key_der(modulus, exponent),
                attributes,
            ))
        }
        ALG_ECC => {
            let curve = r.u16()?;
            let kdf = r.u16()?;
            if kdf != ALG_NULL {
                r.u16()?;
            }
            let (k, n) = match curve {
                CURVE_P256 => (Kind::P256, 32),
                CURVE_P384 => (Kind::P384, 48),
                other => return Err(format!("EC curve {other:#06x}: P-256 and P-384 only")),
            };
            let x = r.b2()?;
            let y = r.b2()?;
            if x.len() > n || y.len() > n {
                return Err("EC point larger than its curve".into());
            }
            let mut point = vec![0x04];
            point.extend(std::iter::repeat_n(0, n - x.len()));
            point.extend_from_slice(x);
            point.extend(std::iter::repeat_n(0, n - y.len()));
            point.extend_from_slice(y);
            Ok((k, point, attributes))
        }
        other => Err(format!("key type {other:#06x}: RSA and EC only")),
    }
}

fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
}

fn der_uint(v: &[u8], out: &mut Vec<u8>) {
    let mut v = v;
    while v.len() > 1 && v[0] == 0 {
        v = &v[1..];
    }
    let pad = v.first().is_some_and(|&b| b & 0x80 != 0);
    out.push(0x02);
    der_len(v.len() + pad as usize, out);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_public_key_der(modulus: &[u8], exponent: u32) -> Vec<u8> {
    let mut body = Vec::new();
    der_uint(modulus, &mut body);
    der_uint(&exponent.to_be_bytes(), &mut body);
    let mut out = vec![0x30];
    der_len(body.len(), &mut out);
    out.extend(body);
    out
}

/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    der_uint(r, &mut body);
    der_uint(s, &mut body);
    let mut out = vec![0x30];
    der_len(body.len(), &mut out);
    out.extend(body);
    out
}

// ---- the TPM ---------------------------------------------------------------------------------

/// A connection to the TPM: a character device or a UNIX socket.
enum Conn {
    Device(std::fs::File),
    Socket(std::os::unix::net::UnixStream),
}

struct Tpm {
    conn: Conn,
    deadline: Instant,
    shown: String,
}

impl Tpm {
    fn open(path: &Path, deadline: Instant) -> Result<Tpm, KeyError> {
        let shown = path.display().to_string();
        let not_there = |e: std::io::Error| {
            hw(format!(
                "no TPM at {shown}: {e}; on a machine with a TPM 2.0 use /dev/tpmrm0 (be in the tss group), or set TPM_DEVICE to the device or socket (swtpm)"
            ))
        };
        let meta = std::fs::metadata(path).map_err(not_there)?;
        let conn = if meta.file_type().is_socket() {
            let s = std::os::unix::net::UnixStream::connect(path).map_err(not_there)?;
            Conn::Socket(s)
        } else if meta.file_type().is_char_device() {
            // The TPM device: read and written only through Tpm::exchange, which bounds every
            // answer (64 KiB) and every wait (the deadline). clippy.toml: the door.
            #[allow(clippy::disallowed_methods)]
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(not_there)?;
            Conn::Device(f)
        } else {
            return Err(hw(format!(
                "{shown} is not a TPM (neither a character device nor a UNIX socket): set TPM_DEVICE to the TPM's device (/dev/tpmrm0) or socket"
            )));
        };
        Ok(Tpm {
            conn,
            deadline,
            shown,
        })
    }

    /// Sends one command and reads its response; sends it again while the TPM answers that it
    /// is busy (`TPM_RC_RETRY`, `TPM_RC_YIELDED`, `TPM_RC_TESTING`: the command was not run),
    /// until the deadline. Returns (response code, body after the header).
    fn call(&mut self, command: &[u8]) -> Result<(u32, Vec<u8>), KeyError> {
        loop {
            let (rc, body) = self.call_once(command)?;
            if !matches!(rc, 0x922 | 0x908 | 0x90A) || Instant::now() >= self.deadline {
                return Ok((rc, body));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one command and reads its response (header checked, size capped), within the
    /// deadline.
    fn call_once(&mut self, command: &[u8]) -> Result<(u32, Vec<u8>), KeyError> {
        let shown = self.shown.clone();
        let deadline = self.deadline;
        let timeout = || {
            hw(format!(
                "the TPM at {shown} did not answer within --timeout: check that it is a TPM and not busy"
            ))
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timeout());
        }
        let io_err = |e: std::io::Error| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                timeout()
            } else {
                hw(format!("the TPM at {shown} failed: {e}"))
            }
        };
        match &mut self.conn {
            Conn::Socket(s) => {
                s.set_write_timeout(Some(left)).map_err(io_err)?;
                s.write_all(command).map_err(io_err)?;
                let mut header = [0u8; 10];
                read_exact_until(s, &mut header, deadline).map_err(io_err)?;
                let (rc, size) = check_header(&header, &shown)?;
                let mut body = vec![0u8; size - 10];
                read_exact_until(s, &mut body, deadline).map_err(io_err)?;
                Ok((rc, body))
            }
            Conn::Device(f) => {
                // A device answers a write with one read of the whole response; it has no
                // timeout of its own, so the exchange runs on a thread bounded by the deadline.
                let mut f2 = f.try_clone().map_err(io_err)?;
                let cmd = command.to_vec();
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let r = (|| {
                        f2.write_all(&cmd)?;
                        let mut buf = vec![0u8; MAX_RESPONSE];
                        let n = f2.read(&mut buf)?;
                        buf.truncate(n);
                        Ok::<_, std::io::Error>(buf)
                    })();
                    let _ = tx.send(r);
                });
                let buf = match rx.recv_timeout(left) {
                    Ok(r) => r.map_err(io_err)?,
                    Err(_) => return Err(timeout()),
                };
                if buf.len() < 10 {
                    return Err(garbage(&shown));
                }
                let (rc, size) = check_header(&buf[..10], &shown)?;
                if size != buf.len() {
                    return Err(garbage(&shown));
                }
                Ok((rc, buf[10..].to_vec()))
            }
        }
    }

    /// `TPM2_CreatePrimary` of the standard ECC P-256 storage key under `hierarchy`.
    fn create_primary(&mut self, hierarchy: u32) -> Result<u32, KeyError> {
        let mut template = Vec::new();
        template.extend_from_slice(&ALG_ECC.to_be_bytes());
        template.extend_from_slice(&ALG_SHA256.to_be_bytes());
        // fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA | restricted | decrypt
        template.extend_from_slice(&0x0003_0472u32.to_be_bytes());
        template.extend_from_slice(&[0, 0]); // authPolicy
        template.extend_from_slice(&[0x00, 0x06, 0x00, 0x80, 0x00, 0x43]); // AES-128-CFB
        template.extend_from_slice(&ALG_NULL.to_be_bytes()); // scheme
        template.extend_from_slice(&CURVE_P256.to_be_bytes());
        template.extend_from_slice(&ALG_NULL.to_be_bytes()); // kdf
        template.extend_from_slice(&[0, 0, 0, 0]); // unique: empty x, y
        let mut params = vec![0x00, 0x04, 0, 0, 0, 0]; // inSensitive: empty auth, empty data
        params.extend_from_slice(&(template.len() as u16).to_be_bytes());
        params.extend(template);
        params.extend_from_slice(&[0, 0]); // outsideInfo
        params.extend_from_slice(&[0, 0, 0, 0]); // creationPCR: none
        let cmd = command(
            CC_CREATE_PRIMARY,
            &[hierarchy],
            Some(&Secret::new("")),
            &params,
        );
        let (rc, body) = self.call(&cmd)?;
        if rc != 0 {
            return Err(hw(format!(
                "the TPM at {} could not create the storage primary under {hierarchy:#010x}: {} (is the owner hierarchy password-protected? then persist a parent: tpm2_evictcontrol)",
                self.shown,
                rc_text(rc)
            )));
        }
        Reader(&body).u32().map_err(|_| garbage(&self.shown))
    }

    /// `TPM2_Load` of the key's blobs under `parent`.
    fn load(&mut self, parent: u32, private: &[u8], public: &[u8]) -> Result<u32, KeyError> {
        let mut params = private.to_vec();
        params.extend_from_slice(public);
        let cmd = command(CC_LOAD, &[parent], Some(&Secret::new("")), &params);
        let (rc, body) = self.call(&cmd)?;
        if rc != 0 {
            let why = if is_fmt1(rc, 0x0B) || rc == 0x18B || (rc & 0xFFF) == 0x18B {
                format!(
                    "the parent {parent:#010x} is not in the TPM (persist it, or create the key under the owner hierarchy)"
                )
            } else if is_fmt1(rc, 0x1F) || is_fmt1(rc, 0x1C) {
                format!(
                    "the key was not made by this TPM or not under {parent:#010x} (TPM_RC_INTEGRITY/KEY)"
                )
            } else {
                rc_text(rc)
            };
            return Err(hw(format!(
                "the TPM at {} cannot load the key: {why}",
                self.shown
            )));
        }
        Reader(&body).u32().map_err(|_| garbage(&self.shown))
    }

    /// `TPM2_Sign` of `digest` with the loaded key.
    fn sign(
        &mut self,
        key: u32,
        password: &Secret,
        digest: &[u8],
        scheme: u16,
        hash: u16,
    ) -> Result<Vec<u8>, KeyError> {
        let mut params = (digest.len() as u16).to_be_bytes().to_vec();
        params.extend_from_slice(digest);
        params.extend_from_slice(&scheme.to_be_bytes());
        params.extend_from_slice(&hash.to_be_bytes());
        params.extend_from_slice(&TPM_ST_HASHCHECK.to_be_bytes());
        params.extend_from_slice(&TPM_RH_NULL.to_be_bytes());
        params.extend_from_slice(&[0, 0]);
        let cmd = command(CC_SIGN, &[key], Some(password), &params);
        let (rc, body) = self.call(&cmd)?;
        if rc != 0 {
            let why = if is_fmt1(rc, 0x0E) || is_fmt1(rc, 0x22) {
                "wrong TPM key password: check --tpm-key-password (or IAMRA_TPM_KEY_PASSWORD); the TPM counts failed tries toward its lockout".to_string()
            } else if rc == 0x921 {
                "the TPM is in dictionary-attack lockout (too many wrong passwords): wait, or clear it (tpm2_dictionarylockout --clear-lockout)".to_string()
            } else if is_fmt1(rc, 0x02) {
                "the key may not sign (TPM_RC_ATTRIBUTES)".to_string()
            } else {
                format!("the TPM refused to sign: {}", rc_text(rc))
            };
            return Err(hw(why));
        }
        let mut r = Reader(&body);
        let bad = |_| garbage(&self.shown);
        let _param_size = r.u32().map_err(bad)?;
        let alg = r.u16().map_err(bad)?;
        let _hash = r.u16().map_err(bad)?;
        match alg {
            ALG_RSASSA => Ok(r.b2().map_err(bad)?.to_vec()),
            ALG_ECDSA_T => {
                let sr = r.b2().map_err(bad)?;
                let ss = r.b2().map_err(bad)?;
                Ok(ecdsa_der(sr, ss))
            }
            _ => Err(garbage(&self.shown)),
        }
    }

    /// `TPM2_FlushContext`; failures are ignored (the TPM frees the slot at reset anyway).
    fn flush(&mut self, handle: u32) {
        let mut cmd = Vec::with_capacity(14);
        cmd.extend_from_slice(&TPM_ST_NO_SESSIONS.to_be_bytes());
        cmd.extend_from_slice(&14u32.to_be_bytes());
        cmd.extend_from_slice(&CC_FLUSH_CONTEXT.to_be_bytes());
        cmd.extend_from_slice(&handle.to_be_bytes());
        let _ = self.call(&cmd);
    }
}

/// Reads `buf` full from a socket, giving up at `deadline`.
fn read_exact_until(
    s: &mut std::os::unix::net::UnixStream,
    buf: &mut [u8],
    deadline: Instant,
) -> std::io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf[got..])? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    Ok(())
}

fn garbage(shown: &str) -> KeyError {
    hw(format!(
        "{shown} answered something that is not a TPM 2.0 response: set TPM_DEVICE to the TPM's device (/dev/tpmrm0) or socket"
    ))
}

/// The response code and size of a response header, checked.
fn check_header(h: &[u8], shown: &str) -> Result<(u32, usize), KeyError> {
    let mut r = Reader(h);
    let tag = r.u16().map_err(|_| garbage(shown))?;
    let size = r.u32().map_err(|_| garbage(shown))? as usize;
    let rc = r.u32().map_err(|_| garbage(shown))?;
    if !matches!(tag, TPM_ST_NO_SESSIONS | TPM_ST_SESSIONS) || !(10..=MAX_RESPONSE).contains(&size)
    {
        return Err(garbage(shown));
    }
    Ok((rc, size))
}

/// A command with `handles`, a password session (when `auth` is given) and `params`.
fn command(code: u32, handles: &[u32], auth: Option<&Secret>, params: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for h in handles {
        body.extend_from_slice(&h.to_be_bytes());
    }
    let tag = match auth {
        Some(pw) => {
            let pw = pw.expose().as_bytes();
            let size = 4 + 2 + 1 + 2 + pw.len();
            body.extend_from_slice(&(size as u32).to_be_bytes());
            body.extend_from_slice(&TPM_RS_PW.to_be_bytes());
            body.extend_from_slice(&[0, 0]); // nonce
            body.push(0); // session attributes
            body.extend_from_slice(&(pw.len() as u16).to_be_bytes());
            body.extend_from_slice(pw);
            TPM_ST_SESSIONS
        }
        None => TPM_ST_NO_SESSIONS,
    };
    body.extend_from_slice(params);
    let mut cmd = Vec::with_capacity(10 + body.len());
    cmd.extend_from_slice(&tag.to_be_bytes());
    cmd.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    cmd.extend_from_slice(&code.to_be_bytes());
    cmd.extend(body);
    cmd
}

/// Whether `rc` is the format-1 error `n` (any handle, session or parameter number).
fn is_fmt1(rc: u32, n: u32) -> bool {
    rc & 0x80 != 0 && rc & 0x3F == n
}

fn rc_text(rc: u32) -> String {
    let name = if rc & 0x80 != 0 {
        match rc & 0x3F {
            0x02 => "TPM_RC_ATTRIBUTES",
            0x0B => "TPM_RC_HANDLE",
            0x0E => "TPM_RC_AUTH_FAIL",
            0x12 => "TPM_RC_SCHEME",
            0x1C => "TPM_RC_KEY",
            0x1F => "TPM_RC_INTEGRITY",
            0x22 => "TPM_RC_BAD_AUTH",
            _ => "",
        }
    } else {
        match rc {
            0x101 => "TPM_RC_FAILURE",
            0x100 => "TPM_RC_INITIALIZE (the TPM was not started)",
            0x902 => "TPM_RC_OBJECT_MEMORY (no room for another object: flush transient objects)",
            0x921 => "TPM_RC_LOCKOUT",
            0x922 => "TPM_RC_RETRY (the TPM stayed busy until the deadline)",
            _ => "",
        }
    };
    if name.is_empty() {
        format!("TPM response code {rc:#x}")
    } else {
        format!("{name} ({rc:#x})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_tss2_key_of_the_test_pki_is_malformed_not_a_crash() {
        // The test PKI's placeholder: OID, emptyAuth, owner parent, zero blobs.
        let mut der = vec![0x06, 0x06];
        der.extend_from_slice(OID_LOADABLE);
        der.extend_from_slice(&[0xa0, 0x03, 0x01, 0x01, 0xff]);
        der.extend_from_slice(&[0x02, 0x04, 0x40, 0x00, 0x00, 0x01]);
        der.extend_from_slice(&[0x04, 0x04, 0, 0, 0, 0, 0x04, 0x02, 0, 0]);
        let mut seq = vec![0x30, der.len() as u8];
        seq.extend(der);
        let f = parse_tpm_key(&seq).unwrap();
        assert!(f.empty_auth);
        assert_eq!(f.parent, 0x4000_0001);
        assert!(parse_public(&f.public).is_err());
        for bad in [
            &seq[..5],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
            &[][..],
        ] {
            assert!(parse_tpm_key(bad).is_err());
        }
    }

    #[test]
    fn der_integers_and_headers() {
        assert_eq!(
            rsa_public_key_der(&[0x80, 0x01], 65537),
            [
                0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01
            ]
        );
        assert_eq!(
            ecdsa_der(&[0, 1], &[2]),
            [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02]
        );
        assert!(check_header(b"HTTP/1.1 2", "s").is_err());
        assert!(check_header(&[0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], "s").is_err());
        assert_eq!(
            check_header(&[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x21], "s").unwrap(),
            (0x921, 10)
        );
        assert!(is_fmt1(0x98E, 0x0E));
        assert!(rc_text(0x98E).contains("AUTH_FAIL"));
    }

    #[test]
    fn a_missing_tpm_is_named() {
        let e = Tpm::open(
            Path::new("/nonexistent/tpmrm0"),
            Instant::now() + SIGN_TIMEOUT,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.starts_with("no TPM at /nonexistent/tpmrm0"), "{e}");
        let e = Tpm::open(Path::new("/etc/passwd"), Instant::now() + SIGN_TIMEOUT)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/etc/passwd is not a TPM"), "{e}");
    }
}
