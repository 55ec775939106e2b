//! HTTP CONNECT proxies for TLS probes, as `HTTPS_PROXY` and `NO_PROXY` say.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{lookup_host, TcpStream};
use tokio::time::{timeout_at, Instant};

use crate::engine::{classify, Attempt};
use crate::types::{OutcomeClass, ProbeDetails, Target};
use crate::Error;

/// The longest proxy response head read before giving up.
const MAX_HEAD: usize = 8 * 1024;

/// An HTTP proxy that TLS probes tunnel through with `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    host: String,
    port: u16,
    /// `user:password` in base64, for `Proxy-Authorization: Basic`.
    credentials: Option<String>,
    no_proxy: Vec<String>,
}

impl Proxy {
    /// A proxy from a URL: `http://[user:password@]host[:port]` or `host:port`.
    /// The port defaults to 1080, as in curl; user and password are taken as is
    /// (not percent-decoded).
    pub fn new(url: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidProxy {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = match url.trim().split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some(_) => return Err(invalid("only http:// proxies are supported")),
            None => url.trim(),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| invalid("unclosed '['"))?;
            (host, after.strip_prefix(':'))
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let port = match port {
            Some(port) => port.parse().map_err(|_| invalid("invalid port"))?,
            None => 1080,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            credentials: userinfo.map(|u| base64(u.as_bytes())),
            no_proxy: Vec::new(),
        })
    }

    /// The same proxy, bypassed for the hosts of a `NO_PROXY` list: comma
    /// separated host names (which also match their subdomains, with or
    /// without a leading dot), addresses, CIDR blocks, or `*` for all.
    #[must_use]
    pub fn with_no_proxy(mut self, list: &str) -> Self {
        self.no_proxy = list
            .split(',')
            .map(|entry| entry.trim().to_ascii_lowercase())
            .filter(|entry| !entry.is_empty())
            .collect();
        self
    }

    /// The proxy named by `https_proxy` or `HTTPS_PROXY`, bypassed as
    /// `no_proxy` or `NO_PROXY` say; `None` if neither is set.
    pub fn from_env() -> Result<Option<Self>, Error> {
        let var = |lower: &str, upper: &str| {
            [lower, upper]
                .into_iter()
                .filter_map(|name| std::env::var(name).ok())
                .find(|value| !value.trim().is_empty())
        };
        let Some(url) = var("https_proxy", "HTTPS_PROXY") else {
            return Ok(None);
        };
        let no_proxy = var("no_proxy", "NO_PROXY").unwrap_or_default();
        Ok(Some(Self::new(&url)?.with_no_proxy(&no_proxy)))
    }

    /// `host:port` of the proxy.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether a connection to `host` goes through the proxy (`NO_PROXY` does not match it).
    pub fn applies_to(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        !self.no_proxy.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some(ip) = ip {
                if let Ok(net) = entry.parse::<IpNet>() {
                    return net.contains(&ip);
                }
                let entry = entry.trim_start_matches('[').trim_end_matches(']');
                return entry.parse::<IpAddr>() == Ok(ip);
            }
            let domain = entry.trim_start_matches("*.").trim_start_matches('.');
            host == domain
                || host
                    .strip_suffix(domain)
                    .is_some_and(|prefix| prefix.ends_with('.'))
        })
    }

    /// The `CONNECT` request for a target.
    fn request(&self, target: &Target) -> String {
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(credentials) = &self.credentials {
            request.push_str(&format!("Proxy-Authorization: Basic {credentials}\r\n"));
        }
        request.push_str("\r\n");
        request
    }

    /// Opens a tunnel to the target through the proxy.
    pub(crate) async fn connect(
        &self,
        target: &Target,
        deadline: Instant,
        details: &mut ProbeDetails,
    ) -> Result<TcpStream, Attempt> {
        let failed = |reason: String, os_error: Option<String>| {
            Attempt::new(OutcomeClass::ProxyFailed { reason }, os_error)
        };
        let timed_out = |what: &str| {
            Attempt::timed_out(OutcomeClass::ProxyFailed {
                reason: format!("{what} {} timed out", self.authority()),
            })
        };
        let addrs: Vec<SocketAddr> =
            match timeout_at(deadline, lookup_host((self.host.as_str(), self.port))).await {
                Err(_) => return Err(timed_out("resolving the proxy")),
                Ok(Err(e)) => {
                    let reason = format!("cannot resolve the proxy {}", self.authority());
                    return Err(failed(reason, Some(e.to_string())));
                }
                Ok(Ok(addrs)) => addrs.collect(),
            };
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            details.peer = Some(addr);
            match timeout_at(deadline, TcpStream::connect(addr)).await {
                Err(_) => return Err(timed_out("connecting to the proxy")),
                Ok(Ok(s)) => {
                    stream = Some(s);
                    break;
                }
                Ok(Err(e)) => last = Some(e),
            }
        }
        let Some(mut stream) = stream else {
            let reason = match &last {
                Some(e) => format!(
                    "cannot reach the proxy {}: {}",
                    self.authority(),
                    classify(e)
                ),
                None => format!("the proxy {} has no address", self.authority()),
            };
            return Err(failed(reason, last.map(|e| e.to_string())));
        };
        details.local = stream.local_addr().ok();
        let exchange = async {
            stream.write_all(self.request(target).as_bytes()).await?;
            read_head(&mut stream).await
        };
        let head = match timeout_at(deadline, exchange).await {
            Err(_) => return Err(timed_out("CONNECT through the proxy")),
            Ok(Err(e)) => {
                let reason = format!("CONNECT through the proxy {} failed", self.authority());
                return Err(failed(reason, Some(e.to_string())));
            }
            Ok(Ok(head)) => head,
        };
        let status_line = head.lines().next().unwrap_or_default().trim().to_owned();
        let status = status_line.split_whitespace().nth(1).unwrap_or_default();
        if status.len() == 3 && status.starts_with('2') {
            Ok(stream)
        } else {
            let reason = format!("the proxy {} answered {status_line:?}", self.authority());
            Err(failed(reason, None))
        }
    }
}

/// Reads a response head up to the blank line, byte by byte so that nothing
/// of the tunnel is consumed.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(std::io::Error::other("the proxy response head is too long"));
        }
        head.push(stream.read_u8().await?);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Standard base64 with padding.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn proxy_urls_are_parsed() {
        let proxy = Proxy::new("http://user:pa:ss@proxy.corp:3128/").expect("valid");
        assert_eq!(proxy.authority(), "proxy.corp:3128");
        assert_eq!(proxy.credentials.as_deref(), Some("dXNlcjpwYTpzcw=="));
        assert_eq!(
            Proxy::new("proxy:8080").expect("valid").authority(),
            "proxy:8080"
        );
        assert_eq!(
            Proxy::new("HTTP://proxy").expect("valid").authority(),
            "proxy:1080"
        );
        assert_eq!(
            Proxy::new("http://[::1]:3128").expect("valid").authority(),
            "[::1]:3128"
        );
        for bad in [
            "https://proxy:443",
            "socks5://p:1080",
            "http://:3128",
            "http://p:x",
            "[::1",
        ] {
            assert!(Proxy::new(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn connect_requests_carry_the_target_and_credentials() {
        let proxy = Proxy::new("http://u:p@proxy:3128").expect("valid");
        assert_eq!(
            proxy.request(&Target::host("example.com", 443)),
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\
             Proxy-Authorization: Basic dTpw\r\n\r\n"
        );
        let v6 = Target::Addr("[2001:db8::1]:443".parse().expect("addr"));
        assert!(proxy
            .request(&v6)
            .starts_with("CONNECT [2001:db8::1]:443 HTTP/1.1\r\n"));
    }

    #[test]
    fn no_proxy_matches_names_suffixes_addresses_and_blocks() {
        let proxy = Proxy::new("proxy:3128")
            .expect("valid")
            .with_no_proxy(" internal.corp, .svc.local,10.0.0.0/8, 192.0.2.7 ,::1,*.example.org");
        for bypassed in [
            "internal.corp",
            "db.internal.corp",
            "INTERNAL.CORP.",
            "a.svc.local",
            "svc.local",
            "10.1.2.3",
            "192.0.2.7",
            "::1",
            "[::1]",
            "www.example.org",
        ] {
            assert!(
                !proxy.applies_to(bypassed),
                "{bypassed} should bypass the proxy"
            );
        }
        for proxied in [
            "notinternal.corp",
            "example.com",
            "11.0.0.1",
            "192.0.2.8",
            "corp",
        ] {
            assert!(proxy.applies_to(proxied), "{proxied} should use the proxy");
        }
        let all = Proxy::new("proxy:3128").expect("valid").with_no_proxy("*");
        assert!(!all.applies_to("anything.example"));
        let none = Proxy::new("proxy:3128").expect("valid");
        assert!(none.applies_to("localhost"));
    }
}
