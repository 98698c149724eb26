//! Command-line flags and their environment variables, parsed raw with clap; [`crate::config`]
//! validates them. Every option has a flag and an `IAMRA_*` variable; the names a pod spec
//! for the python/`aws_signing_helper` init container used (`VAULT_ADDR`, `VAULT_ROLE`,
//! `VAULT_CERT_CN`, `ROLE_ARN`, `ANCHOR_ARN`, `PROFILE_ARN`) are read as fallbacks in config.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::secret::Secret;

/// AWS credentials through IAM Roles Anywhere, with Vault or OpenBao as the certificate authority.
#[derive(Parser, Debug)]
#[command(
    name = "iamra-bootstrap",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print credential_process JSON for ~/.aws/config (from local files, or from Vault).
    CredentialProcess(CredentialProcessArgs),
    /// Init container: Vault login, key, certificate, session, credentials file; then exit.
    Init(InitArgs),
    /// Sidecar: keep credentials fresh, serve them (ECS endpoint, optional IMDSv2), rewrite the file.
    Serve(ServeArgs),
    /// Admission webhook: inject init or serve into pods annotated iamra-bootstrap/role-arn.
    Webhook(WebhookArgs),
    /// Keep a profile of the credentials file fresh (aws_signing_helper update); --once: write once, exit.
    Update(UpdateArgs),
    /// Sign aws_signing_helper's fixed test string with a private key (checks a key offline).
    SignString(SignStringArgs),
    /// Print a certificate's key type, DER, decimal serial and algorithms (aws_signing_helper's JSON).
    ReadCertificateData(ReadCertificateDataArgs),
    /// Print the version (as --version does).
    Version,
    /// aws-spiffe-workload-helper's x509-credential-process: credential_process JSON from the SPIFFE Workload API's X.509-SVID
    #[command(name = "x509-credential-process")]
    X509CredentialProcess(SpiffeHelperArgs),
    /// aws-spiffe-workload-helper's x509-credential-file: keep the default profile of a credentials file fresh from the X.509-SVID (new session at each rotation)
    #[command(name = "x509-credential-file")]
    X509CredentialFile(SpiffeHelperFileArgs),
    /// aws-spiffe-workload-helper's x509-credential-file-oneshot: write the default profile once from the X.509-SVID, exit
    #[command(name = "x509-credential-file-oneshot")]
    X509CredentialFileOneshot(SpiffeHelperFileArgs),
}

/// `aws-spiffe-workload-helper`'s flags for its X.509 commands, unchanged (no environment
/// variables but `SPIFFE_ENDPOINT_SOCKET`, as the helper).
#[derive(Args, Debug)]
pub struct SpiffeHelperArgs {
    /// The ARN of the role to assume. Required.
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// Overrides AWS region to use when exchanging the SVID for AWS credentials. Optional.
    #[arg(long)]
    pub region: Option<String>,
    /// The ARN of the Roles Anywhere profile to use. Required.
    #[arg(long, value_name = "ARN")]
    pub profile_arn: Option<String>,
    /// The duration, in seconds, of the resulting session. Optional. Can range from 15 minutes (900) to 12 hours (43200).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub session_duration: u32,
    /// The ARN of the Roles Anywhere trust anchor to use. Required.
    #[arg(long, value_name = "ARN")]
    pub trust_anchor_arn: Option<String>,
    /// The identifier for the role session. Optional.
    #[arg(long, value_name = "NAME")]
    pub role_session_name: Option<String>,
    /// Overrides the address of the Workload API endpoint that will be use to fetch the X509 SVID. If unspecified, the value from the SPIFFE_ENDPOINT_SOCKET environment variable will be used.
    #[arg(long, value_name = "URI")]
    pub workload_api_addr: Option<String>,
    /// Overrides the Roles Anywhere API endpoint URL. Optional.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Enable debug logging
    #[arg(long)]
    pub debug: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub deadline: TimeoutArgs,
}

/// `x509-credential-file[-oneshot]`: the helper's flags plus where to write.
#[derive(Args, Debug)]
pub struct SpiffeHelperFileArgs {
    /// The path to the AWS credentials file to write.
    #[arg(long, value_name = "PATH")]
    pub aws_credentials_path: PathBuf,
    /// If set, failures loading the existing AWS credentials file will be ignored and the contents overwritten.
    #[arg(long)]
    pub force: bool,
    /// If set, the AWS credentials file will be replaced if it exists. This will remove any profiles not written by this tool.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: SpiffeHelperArgs,
}

/// What to do with an existing credentials file (`x509-credential-file`'s `--replace` and
/// `--force`; the other commands always merge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExistingFile {
    /// Keep its other profiles; an unreadable file is an error.
    #[default]
    Merge,
    /// Keep its other profiles; start from an empty file when it cannot be read (`--force`).
    MergeOrOverwrite,
    /// Start from an empty file (`--replace`).
    Replace,
}

/// `--certificate`: declared once, for every command that reads a certificate file.
#[derive(Args, Debug, Clone, Default)]
pub struct CertificateArg {
    /// Leaf certificate, PEM or DER (a PEM bundle's further certificates are intermediates); or, without --private-key, a PKCS#12 file or one PEM file with the key and the certificates [default: a certificate from Vault]
    #[arg(long, env = "IAMRA_CERTIFICATE", value_name = "PATH")]
    pub certificate: Option<PathBuf>,
}

/// `--private-key` and its password: declared once, for every command that reads a key file.
#[derive(Args, Debug, Clone, Default)]
pub struct PrivateKeyArgs {
    /// Private key: PKCS#8 (also encrypted), PKCS#1 (RSA) or SEC1 (EC), PEM or DER; RSA, EC P-256/P-384 or ML-DSA
    #[arg(long, env = "IAMRA_PRIVATE_KEY", value_name = "PATH")]
    pub private_key: Option<PathBuf>,
    /// Password of an encrypted PKCS#8 key or a PKCS#12 file (aws_signing_helper's flag; visible to `ps`: prefer --pkcs8-password-file)
    #[arg(long, env = "IAMRA_PKCS8_PASSWORD", hide_env_values = true, value_name = "PASSWORD", value_parser = parse_secret)]
    pub(crate) pkcs8_password: Option<Secret>,
    /// File whose content is that password (one trailing newline ignored)
    #[arg(long, env = "IAMRA_PKCS8_PASSWORD_FILE", value_name = "PATH")]
    pub pkcs8_password_file: Option<PathBuf>,
}

/// The identity from certificate files instead of Vault (`credential-process`, `serve`,
/// `update`; the last two re-read them at every refresh).
#[derive(Args, Debug, Clone, Default)]
pub struct CertificateFileArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cert: CertificateArg,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub key: PrivateKeyArgs,
    /// Intermediate certificates, PEM bundle, nearest issuer first
    #[arg(long, env = "IAMRA_INTERMEDIATES", value_name = "PATH")]
    pub intermediates: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Hardware keys (PKCS#11, TPM)")]
    #[allow(missing_docs)]
    pub hardware: HardwareKeyArgs,
}

/// Keys that never leave a PKCS#11 token or a TPM (`aws_signing_helper`'s flags; see
/// docs/hardware-keys.md).
#[derive(Args, Debug, Clone, Default)]
pub struct HardwareKeyArgs {
    /// PKCS#11 module for pkcs11: URIs (hardware build) [default: p11-kit-proxy.so, every module p11-kit registers]
    #[arg(long, env = "IAMRA_PKCS11_LIB", value_name = "PATH")]
    pub pkcs11_lib: Option<PathBuf>,
    /// The token's user PIN (visible to `ps`: prefer --pkcs11-pin-file or the variable) [or ?pin-value= in the URI; without any: a prompt on a terminal]
    #[arg(long, env = "IAMRA_PKCS11_PIN", hide_env_values = true, value_name = "PIN", value_parser = parse_secret)]
    pub(crate) pkcs11_pin: Option<Secret>,
    /// File whose content is the token's user PIN (one trailing newline ignored)
    #[arg(long, env = "IAMRA_PKCS11_PIN_FILE", value_name = "PATH")]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// Use the user PIN also for keys that ask for it at every signature (CKA_ALWAYS_AUTHENTICATE)
    #[arg(long, env = "IAMRA_REUSE_PIN", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub reuse_pin: bool,
    /// Password of a TPM key (TSS2 PRIVATE KEY file) (visible to `ps`: prefer env IAMRA_TPM_KEY_PASSWORD)
    #[arg(long, env = "IAMRA_TPM_KEY_PASSWORD", hide_env_values = true, value_name = "PASSWORD", value_parser = parse_secret)]
    pub(crate) tpm_key_password: Option<Secret>,
    /// The TPM key has no password: never ask for one
    #[arg(long, env = "IAMRA_NO_TPM_KEY_PASSWORD", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub no_tpm_key_password: bool,
}

/// The SPIFFE Workload API as the source of the certificate (instead of files or Vault).
#[derive(Args, Debug, Clone, Default)]
pub struct SpiffeArgs {
    /// SPIFFE Workload API endpoint: unix:///path/to/socket, unix:/path or tcp://IP:PORT; X.509-SVIDs from it instead of files or Vault [fallback env: SPIFFE_ENDPOINT_SOCKET, used when neither --certificate nor --pki-role is given]
    #[arg(long, env = "IAMRA_SPIFFE_ENDPOINT", value_name = "URI")]
    pub spiffe_endpoint: Option<String>,
    /// Use the SVID with this SPIFFE ID (spiffe://trust-domain/path) [default: the first the agent offers]
    #[arg(long, env = "IAMRA_SPIFFE_ID", value_name = "ID")]
    pub spiffe_id: Option<String>,
    /// Use the SVID with this hint (the registration entry's hint)
    #[arg(long, env = "IAMRA_SPIFFE_HINT", value_name = "HINT")]
    pub spiffe_hint: Option<String>,
}

/// `update`.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Write the profile once and exit (else keep it fresh until stopped)
    #[arg(long, env = "IAMRA_ONCE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub once: bool,
    #[command(
        flatten,
        next_help_heading = "Certificate files (instead of Vault; re-read at every refresh)"
    )]
    #[allow(missing_docs)]
    pub files: CertificateFileArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub flow: FlowArgs,
}

/// `sign-string --digest`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignDigest {
    /// SHA-256
    #[default]
    #[value(name = "SHA256")]
    Sha256,
    /// SHA-384
    #[value(name = "SHA384")]
    Sha384,
    /// SHA-512
    #[value(name = "SHA512")]
    Sha512,
}

/// `sign-string --format`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignFormat {
    /// The hex signature as a JSON string
    #[default]
    Json,
    /// The hex signature
    Text,
    /// The raw signature bytes
    Bin,
}

/// `sign-string`. (The shared flags, with the help this offline use of them needs.)
#[derive(Args, Debug)]
#[command(
    mut_arg("certificate", |a| a.help("Certificate, PEM or DER; when given it must hold the key's public key")),
    mut_arg("pkcs8_password", |a| a.help("Password of an encrypted PKCS#8 key (visible to `ps`: prefer --pkcs8-password-file)"))
)]
pub struct SignStringArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cert: CertificateArg,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub key: PrivateKeyArgs,
    /// Digest the message is hashed with (ML-DSA signs the message itself)
    #[arg(long, env = "IAMRA_SIGN_DIGEST", value_enum, ignore_case = true, default_value_t = SignDigest::Sha256)]
    pub digest: SignDigest,
    /// Output format (no trailing newline)
    #[arg(long, env = "IAMRA_SIGN_FORMAT", value_enum, ignore_case = true, default_value_t = SignFormat::Json)]
    pub format: SignFormat,
    /// Say what is signed on stderr
    #[arg(long, env = "IAMRA_DEBUG", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub debug: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub deadline: TimeoutArgs,
    #[command(flatten, next_help_heading = "Hardware keys (PKCS#11, TPM)")]
    #[allow(missing_docs)]
    pub hardware: HardwareKeyArgs,
}

/// `read-certificate-data`. (The shared `--certificate`, with the help this use of it needs.)
#[derive(Args, Debug)]
#[command(mut_arg("certificate", |a| a.help("Certificate, PEM (the first certificate) or DER; or a pkcs11: URI (every matching certificate is listed with a URI that selects exactly it)")))]
pub struct ReadCertificateDataArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cert: CertificateArg,
    /// Accepted for aws_signing_helper compatibility (nothing else is logged)
    #[arg(long, env = "IAMRA_DEBUG", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub debug: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub deadline: TimeoutArgs,
    #[command(flatten, next_help_heading = "Hardware keys (PKCS#11, TPM)")]
    #[allow(missing_docs)]
    pub hardware: HardwareKeyArgs,
}

/// Flags shared with `aws_signing_helper` for the session itself.
#[derive(Args, Debug, Clone, Default)]
pub struct RolesAnywhereArgs {
    /// Trust anchor ARN [fallback env: ANCHOR_ARN]
    #[arg(long, env = "IAMRA_TRUST_ANCHOR_ARN", value_name = "ARN")]
    pub trust_anchor_arn: Option<String>,
    /// Profile ARN [fallback env: PROFILE_ARN]
    #[arg(long, env = "IAMRA_PROFILE_ARN", value_name = "ARN")]
    pub profile_arn: Option<String>,
    /// Role ARN to assume [fallback env: ROLE_ARN]
    #[arg(long, env = "IAMRA_ROLE_ARN", value_name = "ARN")]
    pub role_arn: Option<String>,
    /// Session duration in seconds, 900 to 43200
    #[arg(
        long,
        env = "IAMRA_SESSION_DURATION",
        value_name = "SECONDS",
        default_value_t = 3600
    )]
    pub session_duration: u32,
    /// Signing region [default: the trust anchor ARN's region]
    #[arg(long, env = "IAMRA_REGION")]
    pub region: Option<String>,
    /// Roles Anywhere endpoint URL (http allowed, for tests) [fallback env: AWS_ENDPOINT_URL_ROLESANYWHERE, AWS_ENDPOINT_URL, ~/.aws/config] [default: https://rolesanywhere.<region>.<dns suffix>, FIPS/dual-stack per AWS_USE_FIPS_ENDPOINT, AWS_USE_DUALSTACK_ENDPOINT]
    #[arg(long, env = "IAMRA_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// Role session name (the profile must accept one)
    #[arg(long, env = "IAMRA_ROLE_SESSION_NAME", value_name = "NAME")]
    pub role_session_name: Option<String>,
    /// Do not verify the Roles Anywhere endpoint's TLS certificate
    #[arg(long, env = "IAMRA_NO_VERIFY_SSL", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub no_verify_ssl: bool,
    /// Use HTTPS_PROXY/HTTP_PROXY/NO_PROXY for Roles Anywhere calls
    #[arg(long, env = "IAMRA_WITH_PROXY", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub with_proxy: bool,
    /// Log each step, the canonical request and the string to sign to stderr (never secrets)
    #[arg(long, env = "IAMRA_DEBUG", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub debug: bool,
}

/// Vault login methods.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// ServiceAccount token through auth/kubernetes (TokenReview)
    #[default]
    Kubernetes,
    /// ServiceAccount (or any) JWT through auth/jwt
    Jwt,
    /// Role id and secret id through auth/approle
    Approle,
    /// An existing token from VAULT_TOKEN
    Token,
}

/// How Vault PKI produces the certificate.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PkiMode {
    /// Our CSR, key generated in memory (the key never leaves the process)
    #[default]
    Sign,
    /// Vault generates key and certificate (for a Vault that only allows issue)
    Issue,
}

/// Key types for the generated key.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyType {
    /// EC P-256
    #[default]
    #[value(name = "ec-p256")]
    EcP256,
    /// EC P-384
    #[value(name = "ec-p384")]
    EcP384,
    /// RSA 2048
    #[value(name = "rsa-2048")]
    Rsa2048,
    /// RSA 3072
    #[value(name = "rsa-3072")]
    Rsa3072,
    /// RSA 4096
    #[value(name = "rsa-4096")]
    Rsa4096,
}

/// Where the certificate comes from when it comes from Vault.
#[derive(Args, Debug, Clone, Default)]
pub struct VaultArgs {
    /// Vault address, or several comma-separated (tried in turn) where no load balancer stands in front [fallback env: VAULT_ADDR] [default: https://127.0.0.1:8200]
    #[arg(long, env = "IAMRA_VAULT_ADDR", value_name = "URL")]
    pub vault_addr: Option<String>,
    /// Vault auth method
    #[arg(long, env = "IAMRA_VAULT_AUTH", value_enum, default_value_t = AuthMethod::Kubernetes)]
    pub vault_auth: AuthMethod,
    /// Auth mount path [default: the method's name]
    #[arg(long, env = "IAMRA_VAULT_AUTH_MOUNT", value_name = "PATH")]
    pub vault_auth_mount: Option<String>,
    /// Vault auth role (kubernetes, jwt) [fallback env: VAULT_ROLE]
    #[arg(long, env = "IAMRA_VAULT_ROLE", value_name = "ROLE")]
    pub vault_role: Option<String>,
    /// ServiceAccount token (or JWT) file, re-read at every login
    #[arg(
        long,
        env = "IAMRA_SERVICE_ACCOUNT_TOKEN_FILE",
        value_name = "PATH",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )]
    pub service_account_token_file: PathBuf,
    /// AppRole role id
    #[arg(long, env = "IAMRA_APPROLE_ROLE_ID", value_name = "ID")]
    pub approle_role_id: Option<String>,
    /// File holding the AppRole secret id
    #[arg(long, env = "IAMRA_APPROLE_SECRET_ID_FILE", value_name = "PATH")]
    pub approle_secret_id_file: Option<PathBuf>,
    /// PKI secrets engine mount
    #[arg(
        long,
        env = "IAMRA_PKI_MOUNT",
        value_name = "PATH",
        default_value = "pki_int"
    )]
    pub pki_mount: String,
    /// PKI role
    #[arg(long, env = "IAMRA_PKI_ROLE", value_name = "ROLE")]
    pub pki_role: Option<String>,
    /// sign (CSR, key stays here) or issue (Vault makes the key)
    #[arg(long, env = "IAMRA_PKI_MODE", value_enum, default_value_t = PkiMode::Sign)]
    pub pki_mode: PkiMode,
    /// Certificate common name [fallback env: VAULT_CERT_CN] [default: <sa>.<namespace>.workload.internal from the ServiceAccount]
    #[arg(long, env = "IAMRA_COMMON_NAME", value_name = "CN")]
    pub common_name: Option<String>,
    /// Type of the key generated in memory
    #[arg(long, env = "IAMRA_KEY_TYPE", value_enum, default_value_t = KeyType::EcP256)]
    pub key_type: KeyType,
    /// Certificate lifetime asked of Vault (e.g. 1h, 30m)
    #[arg(
        long,
        env = "IAMRA_CERT_TTL",
        value_name = "DURATION",
        default_value = "1h"
    )]
    pub cert_ttl: String,
    /// Do not revoke the Vault token after use
    #[arg(long, env = "IAMRA_KEEP_VAULT_TOKEN", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub keep_vault_token: bool,
}

/// The deadline of a whole run, shared by every command: it bounds file reads, key derivation
/// and network retries. (Shown in the Vault help section of the network commands, where it has
/// always been listed.)
#[derive(Args, Debug, Clone)]
pub struct TimeoutArgs {
    /// Deadline of the whole run: file reads, key derivation, retries (Vault and Roles Anywhere), e.g. 2m, 90s
    #[arg(
        long,
        env = "IAMRA_TIMEOUT",
        value_name = "DURATION",
        default_value = "2m"
    )]
    pub timeout: String,
}

impl Default for TimeoutArgs {
    fn default() -> Self {
        TimeoutArgs {
            timeout: "2m".into(),
        }
    }
}

/// Logging.
#[derive(Args, Debug, Clone)]
pub struct LogArgs {
    /// Log format
    #[arg(long, env = "IAMRA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug)
    #[arg(
        long,
        env = "IAMRA_LOG_LEVEL",
        value_name = "LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
}

/// Log formats.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines
    Text,
    /// One JSON object per line
    Json,
}

/// `credential-process`.
#[derive(Args, Debug)]
pub struct CredentialProcessArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub files: CertificateFileArgs,
    /// Do not read or write the credentials cache
    #[arg(long, env = "IAMRA_NO_CACHE", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub no_cache: bool,
    /// Cache folder [default: $XDG_CACHE_HOME/iamra-bootstrap]
    #[arg(long, env = "IAMRA_CACHE_DIR", value_name = "PATH")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten, next_help_heading = "SPIFFE (instead of files or Vault)")]
    #[allow(missing_docs)]
    pub spiffe: SpiffeArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub ra: RolesAnywhereArgs,
    #[command(flatten, next_help_heading = "Vault (when no --certificate is given)")]
    #[allow(missing_docs)]
    pub vault: VaultArgs,
    #[command(flatten, next_help_heading = "Vault (when no --certificate is given)")]
    #[allow(missing_docs)]
    pub deadline: TimeoutArgs,
}

/// Where `init` and `serve` write.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Credentials file [fallback env: AWS_SHARED_CREDENTIALS_FILE] [default: ~/.aws/credentials]
    #[arg(long, env = "IAMRA_CREDENTIALS_FILE", value_name = "PATH")]
    pub credentials_file: Option<PathBuf>,
    /// Profile name in the credentials file
    #[arg(long, env = "IAMRA_PROFILE", default_value = "default")]
    pub profile: String,
    /// Also record the region for the profile in this AWS config file
    #[arg(long, env = "IAMRA_CONFIG_FILE", value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    /// Where Kubernetes reads the failure reason (written only when writable)
    #[arg(
        long,
        env = "IAMRA_TERMINATION_LOG",
        value_name = "PATH",
        default_value = "/dev/termination-log"
    )]
    pub termination_log: PathBuf,
    /// Set by `x509-credential-file --replace/--force` only.
    #[arg(skip)]
    pub existing: ExistingFile,
}

/// What `init` and `serve` share: the Vault → Roles Anywhere flow, its output and its logs.
#[derive(Args, Debug)]
pub struct FlowArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub log: LogArgs,
    #[command(flatten, next_help_heading = "Roles Anywhere")]
    #[allow(missing_docs)]
    pub ra: RolesAnywhereArgs,
    #[command(flatten, next_help_heading = "SPIFFE (instead of files or Vault)")]
    #[allow(missing_docs)]
    pub spiffe: SpiffeArgs,
    #[command(flatten, next_help_heading = "Vault")]
    #[allow(missing_docs)]
    pub vault: VaultArgs,
    #[command(flatten, next_help_heading = "Vault")]
    #[allow(missing_docs)]
    pub deadline: TimeoutArgs,
}

impl FlowArgs {
    /// `--log-level`, raised to `debug` by `--debug`.
    pub fn log_level(&self) -> &str {
        if self.ra.debug {
            "debug"
        } else {
            &self.log.log_level
        }
    }
}

/// `init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// Check the credentials with STS GetCallerIdentity and log the assumed role
    #[arg(long, env = "IAMRA_VERIFY", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub verify: bool,
    /// STS endpoint for --verify [fallback env: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, ~/.aws/config] [default: https://sts.<region>.<dns suffix>, FIPS/dual-stack as for --endpoint]
    #[arg(long, env = "IAMRA_STS_ENDPOINT", value_name = "URL")]
    pub sts_endpoint: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub flow: FlowArgs,
}

/// `serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address for the credentials, health and metrics endpoints (IPv6: [::1]:9911)
    #[arg(
        long,
        env = "IAMRA_LISTEN",
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:9911"
    )]
    pub listen: std::net::SocketAddr,
    /// Also serve /healthz, /readyz and /metrics (and nothing else) here, e.g. on the pod IP for the kubelet's probes
    #[arg(long, env = "IAMRA_HEALTH_LISTEN", value_name = "ADDR:PORT")]
    pub health_listen: Option<std::net::SocketAddr>,
    /// Write a random token here (0600, no newline; a valid one already there is kept); /v1/credentials requires it
    #[arg(long, env = "IAMRA_AUTH_TOKEN_FILE", value_name = "PATH")]
    pub auth_token_file: Option<PathBuf>,
    /// Also serve IMDSv2 (token, role listing, credentials) on the same address
    #[arg(long, env = "IAMRA_IMDS", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub imds: bool,
    /// IMDSv2 on 127.0.0.1:PORT, as aws_signing_helper serve --port (implies --imds; instead of --listen)
    #[arg(
        long,
        env = "IAMRA_PORT",
        value_name = "PORT",
        conflicts_with = "listen"
    )]
    pub port: Option<u16>,
    /// IP TTL (IPv6: hop limit) of the responses; 1 keeps them on this host
    #[arg(long, env = "IAMRA_HOP_LIMIT", value_name = "HOPS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=255))]
    pub hop_limit: u32,
    #[command(
        flatten,
        next_help_heading = "Certificate files (instead of Vault; re-read at every refresh; with nothing else asked, IMDSv2 on --listen as aws_signing_helper serve)"
    )]
    #[allow(missing_docs)]
    pub files: CertificateFileArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub flow: FlowArgs,
}

/// Wraps a password flag value at once, so that `Debug` of the arguments never shows it.
fn parse_secret(s: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(s))
}

/// What the webhook injects when a pod does not say.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InjectMode {
    /// An init container writes a credentials file before the app starts
    #[default]
    Init,
    /// A native sidecar (`serve`) serves the ECS credentials endpoint, refreshed
    Sidecar,
}

/// Where an injected container gets its certificate when a pod does not say.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InjectSource {
    /// Vault login with a projected ServiceAccount token, Vault PKI
    #[default]
    Vault,
    /// The SPIFFE Workload API on the SPIFFE CSI driver's socket volume (csi.spiffe.io)
    Spiffe,
}

/// `webhook`.
#[derive(Args, Debug)]
pub struct WebhookArgs {
    /// HTTPS address for /mutate, /healthz, /readyz and /metrics
    #[arg(
        long,
        env = "IAMRA_LISTEN",
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:8443"
    )]
    pub listen: std::net::SocketAddr,
    /// Serving certificate chain, PEM (re-read when it changes)
    #[arg(long, env = "IAMRA_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// Serving private key, PEM (re-read when it changes)
    #[arg(long, env = "IAMRA_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// Image of the injected container
    #[arg(long, env = "IAMRA_IMAGE", value_name = "IMAGE")]
    pub image: Option<String>,
    /// Default trust anchor ARN (annotation iamra-bootstrap/trust-anchor-arn overrides)
    #[arg(long, env = "IAMRA_TRUST_ANCHOR_ARN", value_name = "ARN")]
    pub trust_anchor_arn: Option<String>,
    /// Default profile ARN (annotation iamra-bootstrap/profile-arn overrides)
    #[arg(long, env = "IAMRA_PROFILE_ARN", value_name = "ARN")]
    pub profile_arn: Option<String>,
    /// Vault address the injected container logs in to (required unless --default-source spiffe)
    #[arg(long, env = "IAMRA_VAULT_ADDR", value_name = "URL")]
    pub vault_addr: Option<String>,
    /// Default Vault PKI role (annotation iamra-bootstrap/pki-role overrides)
    #[arg(long, env = "IAMRA_PKI_ROLE", value_name = "ROLE")]
    pub pki_role: Option<String>,
    /// Default Vault auth role (annotation iamra-bootstrap/vault-role overrides) [default: the pod's ServiceAccount name]
    #[arg(long, env = "IAMRA_VAULT_ROLE", value_name = "ROLE")]
    pub vault_role: Option<String>,
    /// Mode when the pod has no iamra-bootstrap/mode annotation
    #[arg(long, env = "IAMRA_DEFAULT_MODE", value_enum, default_value_t = InjectMode::Init)]
    pub default_mode: InjectMode,
    /// Certificate source when the pod has no iamra-bootstrap/source annotation (spiffe: the SPIFFE CSI driver's socket, no Vault settings needed)
    #[arg(long, env = "IAMRA_DEFAULT_SOURCE", value_enum, default_value_t = InjectSource::Vault)]
    pub default_source: InjectSource,
    /// Audience of the projected ServiceAccount token the injected container logs in with
    #[arg(
        long,
        env = "IAMRA_TOKEN_AUDIENCE",
        value_name = "AUDIENCE",
        default_value = "vault"
    )]
    pub token_audience: String,
    /// Operator's namespace policy, JSON or YAML: the role ARNs each namespace's pods may request and whether they may override the defaults; re-read when it changes [default: none, any role]
    #[arg(long, env = "IAMRA_NAMESPACE_POLICY", value_name = "PATH")]
    pub namespace_policy: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub log: LogArgs,
}
