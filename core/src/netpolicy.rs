//! Where nodes and brokers may live (any thread): `eventeum.allowed_hosts`,
//! a superuser's list of address classes, networks and host names.
//!
//! The worker connects with the postgres OS user's network position, so a
//! node or broker URL chosen by a non-superuser could reach what only the
//! server should (a cloud metadata endpoint, say). The SQL API refuses what
//! the URL alone shows (an IP literal, `localhost`, a known metadata name);
//! the worker checks every address a name resolves to before it connects
//! ([`CheckedResolver`] for reqwest, [`resolve_checked`] for the others).

#![warn(missing_docs)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;

/// The setting's name, quoted in every refusal.
pub const SETTING: &str = "eventeum.allowed_hosts";
/// What is allowed unless a superuser says otherwise: everything but
/// link-local addresses, where clouds serve instance metadata and credentials.
pub const DEFAULT_POLICY: &str = "public, private, loopback";

/// Addresses clouds serve instance metadata on, outside 169.254.0.0/16 and
/// fe80::/10: AWS's IPv6 endpoint and Alibaba's. They count as link-local.
const METADATA_V4: [Ipv4Addr; 1] = [Ipv4Addr::new(100, 100, 100, 200)];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)];
/// Names that always mean a metadata endpoint, refused without a lookup.
const METADATA_NAMES: [&str; 4] = [
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
];

/// The class of an address, as `eventeum.allowed_hosts` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1, and the unspecified addresses (which reach this host).
    Loopback,
    /// RFC 1918, 100.64.0.0/10 (carrier-grade NAT), fc00::/7.
    Private,
    /// 169.254.0.0/16, fe80::/10 and the cloud metadata addresses.
    LinkLocal,
    /// Every other unicast address.
    Public,
    /// Multicast, broadcast and reserved: never a node or a broker.
    Unroutable,
}

impl AddressClass {
    /// The class an address is in.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => Self::of_v4(v4),
                None => Self::of_v6(v6),
            },
        }
    }

    fn of_v4(ip: Ipv4Addr) -> Self {
        let [a, b, ..] = ip.octets();
        if ip.is_loopback() || a == 0 {
            AddressClass::Loopback
        } else if ip.is_link_local() || METADATA_V4.contains(&ip) {
            AddressClass::LinkLocal
        } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
            AddressClass::Private
        } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
            AddressClass::Unroutable
        } else {
            AddressClass::Public
        }
    }

    fn of_v6(ip: Ipv6Addr) -> Self {
        let first = ip.segments()[0];
        if ip.is_loopback() || ip.is_unspecified() {
            AddressClass::Loopback
        } else if first & 0xffc0 == 0xfe80 || METADATA_V6.contains(&ip) {
            AddressClass::LinkLocal
        } else if first & 0xfe00 == 0xfc00 {
            AddressClass::Private
        } else if ip.is_multicast() {
            AddressClass::Unroutable
        } else {
            AddressClass::Public
        }
    }

    fn parse(word: &str) -> Option<Self> {
        match word {
            "loopback" => Some(AddressClass::Loopback),
            "private" => Some(AddressClass::Private),
            "link-local" => Some(AddressClass::LinkLocal),
            "public" => Some(AddressClass::Public),
            _ => None,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::LinkLocal => "a link-local (cloud metadata) address",
            AddressClass::Public => "a public address",
            AddressClass::Unroutable => "a multicast or reserved address",
        }
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or NAT64
/// (`64:ff9b::a.b.c.d`) address: the one a connection really reaches.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
        let [.., c, d, e, f] = ip.octets();
        Ipv4Addr::new(c, d, e, f)
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Class(AddressClass),
    Network(IpNet),
    /// `rpc.example.com`, or `*.example.com` for its subdomains.
    Host {
        name: String,
        subdomains: bool,
    },
}

/// A connection the policy refuses: SQLSTATE 42501 in the SQL API, an error
/// in `node_status` or the outbox in the worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} is {what}, which {SETTING} ('{policy}') does not allow")]
pub struct Refused {
    /// The host or address refused.
    pub host: String,
    /// What it is: its address class, or that it matches nothing allowed.
    pub what: String,
    /// The setting's value that refused it.
    pub policy: String,
}

/// `eventeum.allowed_hosts`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    entries: Vec<Entry>,
    text: String,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        NetworkPolicy::parse(DEFAULT_POLICY).expect("the default policy parses")
    }
}

/// What a URL's host alone decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostCheck {
    /// Allowed as it is: an address or a name the policy lists.
    Allowed,
    /// A name the policy does not list: each address it resolves to decides.
    Resolve,
}

impl NetworkPolicy {
    /// Parses a comma- or space-separated list of address classes
    /// (`public`, `private`, `loopback`, `link-local`), networks in CIDR
    /// notation or single addresses, and host names (`*.` for subdomains).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for word in text
            .split([',', ' ', '\t', '\n'])
            .map(str::trim)
            .filter(|w| !w.is_empty())
        {
            let lower = word.to_ascii_lowercase();
            let entry = if let Some(class) = AddressClass::parse(&lower) {
                Entry::Class(class)
            } else if let Ok(net) = lower.parse::<IpNet>() {
                Entry::Network(net.trunc())
            } else if let Ok(ip) = lower.parse::<IpAddr>() {
                Entry::Network(IpNet::from(ip))
            } else if let Some(name) = lower.strip_prefix("*.") {
                Entry::Host {
                    name: valid_name(name, word)?,
                    subdomains: true,
                }
            } else {
                Entry::Host {
                    name: valid_name(&lower, word)?,
                    subdomains: false,
                }
            };
            entries.push(entry);
        }
        Ok(NetworkPolicy {
            entries,
            text: text.trim().to_string(),
        })
    }

    /// Every unicast address: for parsing options whose hosts are checked
    /// later, when a client connects, against the policy in force then.
    pub fn any() -> Self {
        NetworkPolicy::parse("public, private, loopback, link-local").expect("classes parse")
    }

    /// Refuses everything: what the worker follows when the setting does not parse.
    pub fn deny_all(reason: &str) -> Self {
        NetworkPolicy {
            entries: vec![],
            text: format!("invalid: {reason}"),
        }
    }

    /// Whether an address may be connected to.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        let class = AddressClass::of(ip);
        let reached = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.entries.iter().any(|entry| match entry {
            Entry::Class(c) => *c == class,
            Entry::Network(net) => net.contains(&ip) || net.contains(&reached),
            Entry::Host { .. } => false,
        })
    }

    fn lists_name(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.entries.iter().any(|entry| match entry {
            Entry::Host {
                name,
                subdomains: false,
            } => host == *name,
            Entry::Host {
                name,
                subdomains: true,
            } => host
                .strip_suffix(name.as_str())
                .is_some_and(|rest| rest.ends_with('.')),
            _ => false,
        })
    }

    /// Decides what the host of a URL alone can: an address, a name the
    /// policy lists, `localhost` and known metadata names.
    pub fn check_host<S: AsRef<str>>(&self, host: &url::Host<S>) -> Result<HostCheck, Refused> {
        let ip = match host {
            url::Host::Ipv4(v4) => IpAddr::V4(*v4),
            url::Host::Ipv6(v6) => IpAddr::V6(*v6),
            url::Host::Domain(name) => {
                let name = name.as_ref();
                if self.lists_name(name) {
                    return Ok(HostCheck::Allowed);
                }
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                } else if METADATA_NAMES.contains(&name.as_str()) {
                    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254))
                } else {
                    return Ok(HostCheck::Resolve);
                }
            }
        };
        if self.allows_ip(ip) {
            Ok(HostCheck::Allowed)
        } else {
            Err(self.refuse(&host.to_string(), AddressClass::of(ip).describe()))
        }
    }

    /// [`Self::check_host`] of a URL's host; a URL without one is left to its parser.
    pub fn check_url(&self, url: &url::Url) -> Result<HostCheck, Refused> {
        match url.host() {
            Some(host) => self.check_host(&host),
            None => Ok(HostCheck::Resolve),
        }
    }

    /// The addresses `host` resolved to that the policy allows, or a refusal
    /// naming the first that it does not when none is allowed.
    pub fn filter_resolved(
        &self,
        host: &str,
        addresses: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refused> {
        let addresses: Vec<SocketAddr> = addresses.into_iter().collect();
        if self.lists_name(host) {
            return Ok(addresses);
        }
        let (allowed, refused): (Vec<_>, Vec<_>) =
            addresses.into_iter().partition(|a| self.allows_ip(a.ip()));
        match (allowed.is_empty(), refused.first()) {
            (true, Some(first)) => {
                let what = format!(
                    "a name that resolves to {} ({})",
                    first.ip(),
                    AddressClass::of(first.ip()).describe()
                );
                Err(self.refuse(host, &what))
            }
            _ => Ok(allowed),
        }
    }

    fn refuse(&self, host: &str, what: &str) -> Refused {
        Refused {
            host: host.to_string(),
            what: what.to_string(),
            policy: self.text.clone(),
        }
    }
}

fn valid_name(name: &str, word: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(name.trim_end_matches('.').to_string())
    } else {
        Err(format!(
            "\"{word}\" is not an address class (public, private, loopback, link-local), a network, an address or a host name"
        ))
    }
}

static CURRENT: RwLock<Option<Arc<NetworkPolicy>>> = RwLock::new(None);

/// Installs the policy the worker's main thread read from the setting.
pub fn install(policy: NetworkPolicy) {
    let mut current = CURRENT.write().unwrap_or_else(|e| e.into_inner());
    *current = Some(Arc::new(policy));
}

/// The policy in force: the one installed, else the default.
pub fn current() -> Arc<NetworkPolicy> {
    let current = CURRENT.read().unwrap_or_else(|e| e.into_inner());
    current.clone().unwrap_or_default()
}

/// Resolves `host` and returns its addresses if the current policy allows
/// every one: for clients that resolve again themselves (lapin, the
/// WebSocket client, librdkafka), none may be outside the policy.
pub async fn resolve_checked(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let policy = current();
    let parsed = url::Host::parse(host).map_err(|e| format!("{host}: {e}"))?;
    if policy.check_host(&parsed).map_err(|e| e.to_string())? == HostCheck::Allowed {
        return Ok(vec![]);
    }
    // Callers wait on this outside their own connect deadlines.
    let lookup = tokio::net::lookup_host((host, port));
    let addresses: Vec<SocketAddr> = tokio::time::timeout(crate::limits::RESOLVE_TIMEOUT, lookup)
        .await
        .map_err(|_| format!("resolving {host} timed out"))?
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    if let Some(bad) = addresses.iter().find(|a| !policy.allows_ip(a.ip())) {
        return Err(policy
            .filter_resolved(host, [*bad])
            .expect_err("a refused address")
            .to_string());
    }
    Ok(addresses)
}

/// A reqwest resolver that drops the addresses the policy refuses, and
/// fails when none is left. Addresses written in a URL never reach a
/// resolver: check those with [`NetworkPolicy::check_url`] before sending.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckedResolver;

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = current().filter_resolved(&host, found)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A reqwest client builder that resolves through the policy and follows a
/// redirect only to where the policy allows (at most 5).
pub fn http_client() -> reqwest::ClientBuilder {
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.stop();
        }
        match current().check_url(attempt.url()) {
            Ok(_) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    });
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver))
        .redirect(redirects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> url::Host<String> {
        url::Host::parse(s).unwrap()
    }

    fn check(policy: &NetworkPolicy, h: &str) -> Result<HostCheck, Refused> {
        policy.check_host(&host(h))
    }

    #[test]
    fn classes() {
        let class = |s: &str| AddressClass::of(s.parse().unwrap());
        assert_eq!(class("127.0.0.1"), AddressClass::Loopback);
        assert_eq!(class("0.0.0.0"), AddressClass::Loopback);
        assert_eq!(class("::"), AddressClass::Loopback);
        assert_eq!(class("10.1.2.3"), AddressClass::Private);
        assert_eq!(class("172.31.0.1"), AddressClass::Private);
        assert_eq!(class("100.64.0.1"), AddressClass::Private);
        assert_eq!(class("fd12::1"), AddressClass::Private);
        assert_eq!(class("169.254.169.254"), AddressClass::LinkLocal);
        assert_eq!(class("::ffff:169.254.169.254"), AddressClass::LinkLocal);
        assert_eq!(class("64:ff9b::a9fe:a9fe"), AddressClass::LinkLocal);
        assert_eq!(class("fd00:ec2::254"), AddressClass::LinkLocal);
        assert_eq!(class("100.100.100.200"), AddressClass::LinkLocal);
        assert_eq!(class("fe80::1"), AddressClass::LinkLocal);
        assert_eq!(class("8.8.8.8"), AddressClass::Public);
        assert_eq!(class("2606:4700::1111"), AddressClass::Public);
        assert_eq!(class("224.0.0.1"), AddressClass::Unroutable);
        assert_eq!(class("255.255.255.255"), AddressClass::Unroutable);
    }

    #[test]
    fn the_default_refuses_metadata_only() {
        let policy = NetworkPolicy::default();
        for allowed in [
            "127.0.0.1",
            "10.0.0.1",
            "8.8.8.8",
            "localhost",
            "rpc.example.com",
        ] {
            assert!(check(&policy, allowed).is_ok(), "{allowed}");
        }
        assert_eq!(check(&policy, "rpc.example.com"), Ok(HostCheck::Resolve));
        for refused in [
            "169.254.169.254",
            "[fe80::1]",
            "metadata.google.internal",
            "[::ffff:a9fe:a9fe]",
            "224.0.0.1",
        ] {
            let error = check(&policy, refused).unwrap_err();
            assert!(error.to_string().contains(SETTING), "{error}");
        }
    }

    #[test]
    fn networks_and_names() {
        let policy =
            NetworkPolicy::parse("10.0.0.0/8, 192.0.2.7 *.infura.io,kafka.internal").unwrap();
        assert_eq!(check(&policy, "10.9.9.9"), Ok(HostCheck::Allowed));
        assert_eq!(check(&policy, "192.0.2.7"), Ok(HostCheck::Allowed));
        assert!(check(&policy, "192.0.2.8").is_err());
        assert!(
            check(&policy, "127.0.0.1").is_err(),
            "loopback is not listed"
        );
        assert_eq!(check(&policy, "mainnet.infura.io"), Ok(HostCheck::Allowed));
        assert_eq!(check(&policy, "infura.io"), Ok(HostCheck::Resolve));
        assert_eq!(check(&policy, "evilinfura.io"), Ok(HostCheck::Resolve));
        assert_eq!(check(&policy, "KAFKA.internal."), Ok(HostCheck::Allowed));
        let addr = |s: &str| -> SocketAddr { s.parse().unwrap() };
        assert_eq!(
            policy.filter_resolved(
                "x.example",
                [addr("10.1.1.1:80"), addr("169.254.169.254:80")]
            ),
            Ok(vec![addr("10.1.1.1:80")])
        );
        let refused = policy
            .filter_resolved("x.example", [addr("169.254.169.254:80")])
            .unwrap_err();
        assert!(
            refused.to_string().contains("resolves to 169.254.169.254"),
            "{refused}"
        );
        assert!(NetworkPolicy::parse("public, 10.0.0.0/33").is_err());
        assert!(NetworkPolicy::parse("pub lic!").is_err());
        assert!(
            check(&NetworkPolicy::parse("").unwrap(), "8.8.8.8").is_err(),
            "empty allows nothing"
        );
    }
}
