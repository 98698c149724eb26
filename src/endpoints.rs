//! AWS endpoints as the AWS SDKs resolve them: one table of partitions, the FIPS and dual-stack
//! variants, and the configured-endpoint overrides, for Roles Anywhere and for STS (`--verify`).
//!
//! Contract (`docs/rolesanywhere-protocol.md` §1 and §3; the SDKs' `partitions.json` and
//! endpoint rules; the "Use FIPS endpoints", "Dual-stack" and "Service-specific endpoints"
//! pages of the AWS SDKs and Tools reference guide):
//! - host `<service>.<region>.<dnsSuffix>`; FIPS `<service>-fips.<region>.<dnsSuffix>`;
//!   dual-stack `<service>.<region>.<dualStackDnsSuffix>`; both `<service>-fips.<region>.<dualStackDnsSuffix>`.
//!   One exception, from the STS rules: FIPS STS in `aws-us-gov` is `sts.<region>.amazonaws.com`
//!   (GovCloud's regular endpoints are the FIPS ones).
//! - FIPS: `AWS_USE_FIPS_ENDPOINT`, else `use_fips_endpoint` of the selected profile in the shared
//!   config file; dual-stack: `AWS_USE_DUALSTACK_ENDPOINT`, else `use_dualstack_endpoint`. Values
//!   are `true`/`false` in any case; anything else is an error (as the Go and Rust SDKs do).
//! - Configured endpoints, first found wins: `AWS_ENDPOINT_URL_<SERVICE>`
//!   (`AWS_ENDPOINT_URL_ROLESANYWHERE`, `AWS_ENDPOINT_URL_STS`), the profile's `services` section
//!   (`[services NAME]` with `rolesanywhere =` / `sts =` and an indented `endpoint_url =`),
//!   `AWS_ENDPOINT_URL`, the profile's own `endpoint_url`. `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`
//!   (or `ignore_configured_endpoint_urls`) = true turns all four off. FIPS or dual-stack
//!   together with a configured endpoint is a configuration error, as in the SDKs' endpoint
//!   rules ("FIPS and custom endpoint are not supported"); an explicit `--endpoint` (ours and
//!   the helper's flag) overrides all of this.
//! - Shared config file: `AWS_CONFIG_FILE`, else `~/.aws/config`; profile `AWS_PROFILE`, else
//!   `AWS_DEFAULT_PROFILE`, else `default`; sections `[default]` / `[profile NAME]`. A missing
//!   file is no configuration; an unreadable one is an error.

use crate::limits::quote;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Reads an environment variable (empty counts as unset); `config::Env` behind a closure.
pub(crate) type Var<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One AWS partition, as in the SDKs' `partitions.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Partition {
    /// `aws`, `aws-cn`, ...
    pub(crate) id: &'static str,
    /// Region names start with one of these (the `regionRegex` of `partitions.json`).
    region_prefixes: &'static [&'static str],
    /// Regular endpoints: `<service>.<region>.<dns_suffix>`.
    pub(crate) dns_suffix: &'static str,
    /// Dual-stack (IPv4 and IPv6) endpoints.
    pub(crate) dual_stack_dns_suffix: &'static str,
}

/// Every partition. `aws` is last: it is the fallback for a region no other prefix claims.
pub(crate) const PARTITIONS: [Partition; 8] = [
    Partition {
        id: "aws-cn",
        region_prefixes: &["cn-"],
        dns_suffix: "amazonaws.com.cn",
        dual_stack_dns_suffix: "api.amazonwebservices.com.cn",
    },
    Partition {
        id: "aws-us-gov",
        region_prefixes: &["us-gov-"],
        dns_suffix: "amazonaws.com",
        dual_stack_dns_suffix: "api.aws",
    },
    Partition {
        id: "aws-iso",
        region_prefixes: &["us-iso-"],
        dns_suffix: "c2s.ic.gov",
        dual_stack_dns_suffix: "api.aws.ic.gov",
    },
    Partition {
        id: "aws-iso-b",
        region_prefixes: &["us-isob-"],
        dns_suffix: "sc2s.sgov.gov",
        dual_stack_dns_suffix: "api.aws.scloud",
    },
    Partition {
        id: "aws-iso-e",
        region_prefixes: &["eu-isoe-"],
        dns_suffix: "cloud.adc-e.uk",
        dual_stack_dns_suffix: "api.cloud-aws.adc-e.uk",
    },
    Partition {
        id: "aws-iso-f",
        region_prefixes: &["us-isof-"],
        dns_suffix: "csp.hci.ic.gov",
        dual_stack_dns_suffix: "api.aws.hci.ic.gov",
    },
    Partition {
        id: "aws-eusc",
        region_prefixes: &["eusc-"],
        dns_suffix: "amazonaws.eu",
        dual_stack_dns_suffix: "api.amazonwebservices.eu",
    },
    Partition {
        id: "aws",
        region_prefixes: &[],
        dns_suffix: "amazonaws.com",
        dual_stack_dns_suffix: "api.aws",
    },
];

/// The partition named `id`.
pub(crate) fn partition(id: &str) -> Option<&'static Partition> {
    PARTITIONS.iter().find(|p| p.id == id)
}

/// The partition a region belongs to, by its prefix (`aws` when none matches).
pub(crate) fn partition_of_region(region: &str) -> &'static Partition {
    PARTITIONS
        .iter()
        .find(|p| p.region_prefixes.iter().any(|pre| region.starts_with(pre)))
        .unwrap_or(&PARTITIONS[PARTITIONS.len() - 1])
}

/// The services this tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// IAM Roles Anywhere (`CreateSession`).
    RolesAnywhere,
    /// STS (`GetCallerIdentity` for `init --verify`).
    Sts,
}

impl Service {
    /// The endpoint prefix (and the `services` section key).
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Service::RolesAnywhere => "rolesanywhere",
            Service::Sts => "sts",
        }
    }

    /// `AWS_ENDPOINT_URL_<SERVICE>`.
    fn env_name(self) -> &'static str {
        match self {
            Service::RolesAnywhere => "AWS_ENDPOINT_URL_ROLESANYWHERE",
            Service::Sts => "AWS_ENDPOINT_URL_STS",
        }
    }
}

/// FIPS and dual-stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Variant {
    /// FIPS 140 endpoints.
    pub(crate) fips: bool,
    /// IPv4 + IPv6 endpoints.
    pub(crate) dual_stack: bool,
}

/// `https://<host>` of `service` in `region` of `partition`, for `variant`.
pub(crate) fn default_url(
    service: Service,
    region: &str,
    partition: &Partition,
    v: Variant,
) -> String {
    let suffix = if v.dual_stack {
        partition.dual_stack_dns_suffix
    } else {
        partition.dns_suffix
    };
    let name = match (service, v.fips) {
        // The STS rules: GovCloud's regular STS endpoints are FIPS endpoints.
        (Service::Sts, true) if partition.id == "aws-us-gov" && !v.dual_stack => "sts",
        (s, true) => return format!("https://{}-fips.{region}.{suffix}", s.prefix()),
        (s, false) => s.prefix(),
    };
    format!("https://{name}.{region}.{suffix}")
}

/// A problem with the endpoint settings, naming the variable or file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointError(pub(crate) String);

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EndpointError {}

/// A configured endpoint and where it was configured (for logs and errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Configured {
    /// The URL.
    pub(crate) url: String,
    /// e.g. `AWS_ENDPOINT_URL_ROLESANYWHERE` or `endpoint_url of profile dev in ~/.aws/config`.
    pub(crate) from: String,
}

/// The endpoint settings of the environment and the selected shared-config profile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EndpointSettings {
    /// FIPS / dual-stack.
    pub(crate) variant: Variant,
    /// Configured URLs by service prefix (`rolesanywhere`, `sts`).
    configured: HashMap<&'static str, Configured>,
}

/// How long reading `~/.aws/config` may take (capped at [`crate::limits::MAX_INI_FILE`];
/// a FIFO with no writer gives up here, before the run's own deadline is set).
const CONFIG_READ_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl EndpointSettings {
    /// Reads the environment and the shared config file (through [`crate::bounded`]).
    pub(crate) fn from_env(env: Var<'_>) -> Result<Self, EndpointError> {
        let (path, profile_name) = config_location(env);
        let profile = match path {
            Some(path) => match crate::bounded::read_file(
                &path,
                crate::limits::MAX_INI_FILE,
                std::time::Instant::now() + CONFIG_READ_WAIT,
            ) {
                Ok(bytes) => SharedConfig::parse(&String::from_utf8_lossy(&bytes))
                    .profile(&profile_name, &path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Profile::default(),
                Err(e) => {
                    return Err(EndpointError(format!(
                        "cannot read the AWS config file {}: {e}; fix its permissions or point AWS_CONFIG_FILE elsewhere",
                        path.display()
                    )));
                }
            },
            None => Profile::default(),
        };
        Self::resolve(env, &profile)
    }

    fn resolve(env: Var<'_>, profile: &Profile) -> Result<Self, EndpointError> {
        let flag = |var: &str, key: &str| -> Result<bool, EndpointError> {
            if let Some(v) = env(var) {
                return parse_bool(&v).ok_or_else(|| {
                    EndpointError(format!(
                        "{var}={} is not a boolean; use true or false",
                        quote(&v)
                    ))
                });
            }
            match profile.get(key) {
                Some(v) => parse_bool(v).ok_or_else(|| {
                    EndpointError(format!(
                        "{key} = {} in {} is not a boolean; use true or false",
                        quote(v),
                        profile.origin
                    ))
                }),
                None => Ok(false),
            }
        };
        let variant = Variant {
            fips: flag("AWS_USE_FIPS_ENDPOINT", "use_fips_endpoint")?,
            dual_stack: flag("AWS_USE_DUALSTACK_ENDPOINT", "use_dualstack_endpoint")?,
        };
        let mut configured = HashMap::new();
        if !flag(
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
            "ignore_configured_endpoint_urls",
        )? {
            for service in [Service::RolesAnywhere, Service::Sts] {
                let found = env(service.env_name())
                    .map(|url| Configured {
                        url,
                        from: service.env_name().into(),
                    })
                    .or_else(|| {
                        profile
                            .service_endpoint(service.prefix())
                            .map(|url| Configured {
                                url: url.into(),
                                from: format!(
                                    "endpoint_url for {} in the services section of {}",
                                    service.prefix(),
                                    profile.origin
                                ),
                            })
                    })
                    .or_else(|| {
                        env("AWS_ENDPOINT_URL").map(|url| Configured {
                            url,
                            from: "AWS_ENDPOINT_URL".into(),
                        })
                    })
                    .or_else(|| {
                        profile.get("endpoint_url").map(|url| Configured {
                            url: url.into(),
                            from: format!("endpoint_url of {}", profile.origin),
                        })
                    });
                if let Some(c) = found {
                    configured.insert(service.prefix(), c);
                }
            }
        }
        Ok(EndpointSettings {
            variant,
            configured,
        })
    }

    /// The configured endpoint of `service`, if any.
    pub(crate) fn configured(&self, service: Service) -> Option<&Configured> {
        self.configured.get(service.prefix())
    }

    /// The URL to call: the configured one, else the table's for `region` and `partition`.
    pub(crate) fn url(
        &self,
        service: Service,
        region: &str,
        partition: &Partition,
    ) -> Result<String, EndpointError> {
        match self.configured(service) {
            Some(c) if self.variant.fips || self.variant.dual_stack => Err(EndpointError(format!(
                "{} endpoints cannot be used with the custom endpoint {} (from {}), as in the AWS SDKs: unset one of them",
                if self.variant.fips {
                    "FIPS"
                } else {
                    "dual-stack"
                },
                c.url,
                c.from
            ))),
            Some(c) => Ok(c.url.clone()),
            None => Ok(default_url(service, region, partition, self.variant)),
        }
    }
}

/// `true`/`false`, any case (the SDKs refuse anything else).
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The shared config file and the profile name, as the SDKs pick them.
fn config_location(env: Var<'_>) -> (Option<PathBuf>, String) {
    let path = env("AWS_CONFIG_FILE")
        .map(|p| expand_home(&p, env))
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".aws/config")));
    let profile = env("AWS_PROFILE")
        .or_else(|| env("AWS_DEFAULT_PROFILE"))
        .unwrap_or_else(|| "default".into());
    (path, profile)
}

fn expand_home(p: &str, env: Var<'_>) -> PathBuf {
    match (p.strip_prefix("~/"), env("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// The sections of a shared config file, as `(header, key/values)`; an indented
/// `key = value` under a key with an empty value is stored as `key.sub`.
#[derive(Debug, Default)]
struct SharedConfig {
    sections: Vec<(String, HashMap<String, String>)>,
}

impl SharedConfig {
    /// Parses the INI dialect of the shared config file (comments `#` and `;`, sub-properties
    /// indented under a key with an empty value). Lines it cannot read are skipped, as botocore does.
    fn parse(text: &str) -> SharedConfig {
        let mut sections: Vec<(String, HashMap<String, String>)> = Vec::new();
        let mut parent: Option<String> = None;
        for raw in text.lines() {
            let line = raw.trim_end();
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
                continue;
            }
            if let Some(header) = trimmed.strip_prefix('[') {
                let name = header.split(']').next().unwrap_or("").trim();
                let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
                sections.push((name, HashMap::new()));
                parent = None;
                continue;
            }
            let Some((_, values)) = sections.last_mut() else {
                continue;
            };
            let Some((k, v)) = trimmed.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), strip_comment(v.trim()));
            let indented = line.starts_with([' ', '\t']);
            match (&parent, indented) {
                (Some(p), true) => {
                    values.insert(format!("{p}.{k}"), v.to_string());
                }
                _ => {
                    parent = v.is_empty().then(|| k.clone());
                    values.insert(k, v.to_string());
                }
            }
        }
        SharedConfig { sections }
    }

    /// The profile `name` (`[default]`/`[profile default]`, `[profile NAME]`) and the
    /// `[services X]` section it names, merged into one lookup.
    fn profile(&self, name: &str, path: &Path) -> Profile {
        let find = |want: &dyn Fn(&str) -> bool| {
            let mut merged = HashMap::new();
            for (header, values) in &self.sections {
                if want(header) {
                    merged.extend(values.clone());
                }
            }
            merged
        };
        let values = find(&|h: &str| {
            h == format!("profile {name}") || (name == "default" && h == "default")
        });
        let services = values
            .get("services")
            .map(|s| find(&|h: &str| h == format!("services {s}")))
            .unwrap_or_default();
        Profile {
            values,
            services,
            origin: format!("profile {name} of {}", path.display()),
        }
    }
}

/// `value # comment` → `value` (an inline comment needs whitespace before it).
fn strip_comment(v: &str) -> &str {
    let cut = v
        .char_indices()
        .find(|&(i, c)| (c == '#' || c == ';') && i > 0 && v[..i].ends_with([' ', '\t']))
        .map(|(i, _)| i)
        .unwrap_or(v.len());
    v[..cut].trim_end()
}

/// The selected profile's keys and its services section.
#[derive(Debug, Default)]
struct Profile {
    values: HashMap<String, String>,
    services: HashMap<String, String>,
    origin: String,
}

impl Profile {
    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn service_endpoint(&self, prefix: &str) -> Option<&str> {
        self.services
            .get(&format!("{prefix}.endpoint_url"))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment of `pairs`, as the closure the resolver reads.
    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn host(service: Service, region: &str, fips: bool, dual_stack: bool) -> String {
        let p = partition_of_region(region);
        default_url(service, region, p, Variant { fips, dual_stack })
    }

    /// Every partition, every variant: the host names of the SDKs' endpoint rules.
    #[test]
    fn the_table() {
        use Service::RolesAnywhere as Ra;
        let cases = [
            ("us-east-1", "aws", "amazonaws.com", "api.aws"),
            ("eu-west-1", "aws", "amazonaws.com", "api.aws"),
            (
                "cn-north-1",
                "aws-cn",
                "amazonaws.com.cn",
                "api.amazonwebservices.com.cn",
            ),
            ("us-gov-west-1", "aws-us-gov", "amazonaws.com", "api.aws"),
            ("us-iso-east-1", "aws-iso", "c2s.ic.gov", "api.aws.ic.gov"),
            (
                "us-isob-east-1",
                "aws-iso-b",
                "sc2s.sgov.gov",
                "api.aws.scloud",
            ),
            (
                "eu-isoe-west-1",
                "aws-iso-e",
                "cloud.adc-e.uk",
                "api.cloud-aws.adc-e.uk",
            ),
            (
                "us-isof-south-1",
                "aws-iso-f",
                "csp.hci.ic.gov",
                "api.aws.hci.ic.gov",
            ),
            (
                "eusc-de-east-1",
                "aws-eusc",
                "amazonaws.eu",
                "api.amazonwebservices.eu",
            ),
        ];
        for (region, id, dns, dual) in cases {
            assert_eq!(partition_of_region(region).id, id, "{region}");
            assert_eq!(partition(id).unwrap().dns_suffix, dns);
            assert_eq!(
                host(Ra, region, false, false),
                format!("https://rolesanywhere.{region}.{dns}")
            );
            assert_eq!(
                host(Ra, region, true, false),
                format!("https://rolesanywhere-fips.{region}.{dns}")
            );
            assert_eq!(
                host(Ra, region, false, true),
                format!("https://rolesanywhere.{region}.{dual}")
            );
            assert_eq!(
                host(Ra, region, true, true),
                format!("https://rolesanywhere-fips.{region}.{dual}")
            );
        }
        assert_eq!(partition("aws-mars"), None);
        assert_eq!(PARTITIONS.len(), 8);
    }

    #[test]
    fn sts_follows_its_own_rules_in_govcloud() {
        assert_eq!(
            host(Service::Sts, "us-east-1", true, false),
            "https://sts-fips.us-east-1.amazonaws.com"
        );
        assert_eq!(
            host(Service::Sts, "us-gov-west-1", true, false),
            "https://sts.us-gov-west-1.amazonaws.com"
        );
        assert_eq!(
            host(Service::Sts, "us-gov-west-1", true, true),
            "https://sts-fips.us-gov-west-1.api.aws"
        );
        assert_eq!(
            host(Service::Sts, "cn-north-1", false, false),
            "https://sts.cn-north-1.amazonaws.com.cn"
        );
    }

    fn settings(e: &[(&str, &str)], config: &str, profile: &str) -> EndpointSettings {
        let p = SharedConfig::parse(config).profile(profile, Path::new("/cfg"));
        EndpointSettings::resolve(&env(e), &p).unwrap()
    }

    #[test]
    fn fips_and_dual_stack_from_env_then_profile() {
        let cfg = "[default]\nuse_fips_endpoint = true\n\n[profile v6]\nuse_dualstack_endpoint=TRUE # ipv6\nuse_fips_endpoint = false\n";
        let s = settings(&[], cfg, "default");
        assert_eq!(
            s.variant,
            Variant {
                fips: true,
                dual_stack: false
            }
        );
        let s = settings(&[], cfg, "v6");
        assert_eq!(
            s.variant,
            Variant {
                fips: false,
                dual_stack: true
            }
        );
        // The environment wins over the profile.
        let s = settings(&[("AWS_USE_FIPS_ENDPOINT", "false")], cfg, "default");
        assert!(!s.variant.fips);
        let s = settings(&[("AWS_USE_DUALSTACK_ENDPOINT", "true")], "", "default");
        assert!(s.variant.dual_stack);
        // A profile that is not selected does not count.
        assert_eq!(settings(&[], cfg, "other").variant, Variant::default());
    }

    #[test]
    fn non_booleans_are_errors_naming_the_source() {
        let p = SharedConfig::parse("").profile("default", Path::new("/cfg"));
        let e = EndpointSettings::resolve(&env(&[("AWS_USE_FIPS_ENDPOINT", "yes")]), &p)
            .unwrap_err()
            .0;
        assert!(e.contains("AWS_USE_FIPS_ENDPOINT"), "{e}");
        let p = SharedConfig::parse("[default]\nuse_dualstack_endpoint = 1\n")
            .profile("default", Path::new("/cfg"));
        let e = EndpointSettings::resolve(&env(&[]), &p).unwrap_err().0;
        assert!(
            e.contains("use_dualstack_endpoint") && e.contains("/cfg"),
            "{e}"
        );
    }

    #[test]
    fn configured_endpoints_in_sdk_order() {
        let cfg = "[profile dev]\nendpoint_url = https://global.example\nservices = local\n\n[services local]\nrolesanywhere =\n  endpoint_url = https://ra.example\n";
        let pa = partition("aws").unwrap();
        let ra = |e: &[(&str, &str)], profile: &str| {
            settings(e, cfg, profile)
                .url(Service::RolesAnywhere, "us-east-1", pa)
                .unwrap()
        };
        let sts = |e: &[(&str, &str)], profile: &str| {
            settings(e, cfg, profile)
                .url(Service::Sts, "us-east-1", pa)
                .unwrap()
        };
        assert_eq!(ra(&[], "dev"), "https://ra.example");
        assert_eq!(sts(&[], "dev"), "https://global.example");
        assert_eq!(
            ra(
                &[("AWS_ENDPOINT_URL_ROLESANYWHERE", "http://env.example")],
                "dev"
            ),
            "http://env.example"
        );
        assert_eq!(
            sts(&[("AWS_ENDPOINT_URL", "http://all.example")], "dev"),
            "http://all.example"
        );
        assert_eq!(
            ra(&[("AWS_ENDPOINT_URL", "http://all.example")], "dev"),
            "https://ra.example"
        );
        assert_eq!(
            ra(&[("AWS_ENDPOINT_URL", "http://all.example")], "default"),
            "http://all.example"
        );
        assert_eq!(
            ra(&[], "default"),
            "https://rolesanywhere.us-east-1.amazonaws.com"
        );
        assert_eq!(
            ra(
                &[
                    ("AWS_ENDPOINT_URL", "http://all.example"),
                    ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
                ],
                "dev"
            ),
            "https://rolesanywhere.us-east-1.amazonaws.com"
        );
        // FIPS or dual-stack with a configured endpoint: refused, as the SDKs do.
        for flag in ["AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"] {
            let e = settings(
                &[(flag, "true"), ("AWS_ENDPOINT_URL", "http://all.example")],
                cfg,
                "default",
            )
            .url(Service::RolesAnywhere, "us-east-1", pa)
            .unwrap_err()
            .0;
            assert!(
                e.contains("http://all.example") && e.contains("AWS_ENDPOINT_URL"),
                "{e}"
            );
        }
    }

    #[test]
    fn config_file_location_and_profile() {
        let (path, profile) = config_location(&env(&[("HOME", "/home/u")]));
        assert_eq!(path.unwrap(), Path::new("/home/u/.aws/config"));
        assert_eq!(profile, "default");
        let (path, profile) = config_location(&env(&[
            ("HOME", "/home/u"),
            ("AWS_CONFIG_FILE", "~/cfg"),
            ("AWS_DEFAULT_PROFILE", "old"),
        ]));
        assert_eq!(path.unwrap(), Path::new("/home/u/cfg"));
        assert_eq!(profile, "old");
        let (_, profile) = config_location(&env(&[
            ("AWS_PROFILE", "new"),
            ("AWS_DEFAULT_PROFILE", "old"),
        ]));
        assert_eq!(profile, "new");
        // [profile default] counts as the default profile too; [dev] without "profile" does not.
        let c = SharedConfig::parse(
            "[profile default]\nuse_fips_endpoint=true\n[dev]\nuse_fips_endpoint=true\n",
        );
        assert_eq!(
            c.profile("default", Path::new("/c"))
                .get("use_fips_endpoint"),
            Some("true")
        );
        assert_eq!(
            c.profile("dev", Path::new("/c")).get("use_fips_endpoint"),
            None
        );
    }

    #[test]
    fn missing_config_file_is_no_configuration() {
        let s =
            EndpointSettings::from_env(&env(&[("AWS_CONFIG_FILE", "/nonexistent/cfg")])).unwrap();
        assert_eq!(s, EndpointSettings::default());
    }
}
