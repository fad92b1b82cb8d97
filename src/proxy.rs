//! HTTP `CONNECT` proxies for the streaming client (`ws://` and `wss://`).
//!
//! Which proxy is used, in this order (the rules of reqwest and curl):
//!
//! 1. [`StreamingClientBuilder::no_proxy`](crate::StreamingClientBuilder::no_proxy): none.
//! 2. [`StreamingClientBuilder::proxy`](crate::StreamingClientBuilder::proxy): that one, for
//!    every host.
//! 3. The environment, read once by `build()`: for `wss://` `HTTPS_PROXY` / `https_proxy`, for
//!    `ws://` `HTTP_PROXY` / `http_proxy`, then `ALL_PROXY` / `all_proxy` for both; a host
//!    listed in `NO_PROXY` / `no_proxy` goes direct.
//!
//! `NO_PROXY` is a comma-separated list: `*` (every host), a domain (`example.com` or
//! `.example.com`: the domain and all its subdomains), an IP address, or an IP range in CIDR
//! form (`10.0.0.0/8`). A `:port` on an entry is ignored.
//!
//! A proxy URL is `http://[user:password@]host[:port]` (port 80 by default; a URL without a
//! scheme is read as `http://`, as curl does). The user and password are percent-decoded and
//! sent as `Proxy-Authorization: Basic …` on the `CONNECT` request only; they never appear in
//! `Debug`, logs or errors. HTTPS and SOCKS proxies are not supported: such a URL, given or
//! from the environment, fails `build()` with [`Error::Config`] rather than being bypassed.

use base64::Engine;

use crate::error::{Error, Result};

/// How the builder was told to choose a proxy.
#[derive(Debug, Clone, Default)]
pub(crate) enum ProxySetting {
    /// Read the environment (default).
    #[default]
    FromEnv,
    /// Always this proxy URL (may hold credentials: never shown).
    Explicit(crate::client::Secret),
    /// Never use a proxy.
    Disabled,
}

/// A parsed HTTP proxy.
#[derive(Clone)]
pub(crate) struct Proxy {
    pub host: String,
    pub port: u16,
    /// `Basic …` for `Proxy-Authorization`, when the URL had userinfo.
    pub authorization: Option<String>,
    /// The password and the encoded credentials, for the redactor.
    pub secrets: Vec<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("auth", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Proxy {
    /// `host:port` for messages (never the credentials).
    pub fn display(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }

    /// Parses `http://[user:password@]host[:port][/]`. `origin` names where the URL came from,
    /// for the error message (which never repeats the URL: it may hold a password).
    pub fn parse(url: &str, origin: &str) -> Result<Proxy> {
        let bad = |why: &str| Error::config(format!("invalid proxy URL in {origin}: {why}"));
        let url = url.trim();
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("control characters or whitespace"));
        }
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(bad(&format!(
                    "scheme {scheme:?} is not supported (only http:// CONNECT proxies)"
                )));
            }
            None => url,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport, 80).ok_or_else(|| bad("expected a host"))?;
        let mut secrets = Vec::new();
        let authorization = match userinfo {
            None => None,
            Some(info) => {
                let (user, pass) = info.split_once(':').unwrap_or((info, ""));
                let user = percent_decode(user);
                let pass = percent_decode(pass);
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{pass}").as_bytes());
                secrets.push(pass);
                secrets.push(encoded.clone());
                Some(format!("Basic {encoded}"))
            }
        };
        Ok(Proxy {
            host,
            port,
            authorization,
            secrets,
        })
    }
}

/// Splits `host[:port]` / `[v6][:port]`; `None` when the host is empty or the port invalid.
pub(crate) fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (host.to_owned(), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()?),
            None => (s.to_owned(), default_port),
        }
    };
    (!host.is_empty()).then_some((host, port))
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The proxy for a connection to `host` (`secure`: `wss://`), given the setting and a way to
/// read environment variables (the real environment, or a table in tests).
pub(crate) fn resolve(
    setting: &ProxySetting,
    secure: bool,
    host: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Proxy>> {
    match setting {
        ProxySetting::Disabled => Ok(None),
        ProxySetting::Explicit(url) => Proxy::parse(url.expose(), "proxy()").map(Some),
        ProxySetting::FromEnv => {
            let var = |name: &str| {
                env(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name.to_owned(), v))
            };
            let scheme_vars: &[&str] = if secure {
                &["HTTPS_PROXY", "https_proxy"]
            } else {
                &["HTTP_PROXY", "http_proxy"]
            };
            let found = scheme_vars
                .iter()
                .chain(&["ALL_PROXY", "all_proxy"])
                .find_map(|name| var(name));
            let Some((name, url)) = found else {
                return Ok(None);
            };
            let no_proxy = var("NO_PROXY").or_else(|| var("no_proxy"));
            if let Some((_, list)) = no_proxy {
                if bypass(&list, host) {
                    return Ok(None);
                }
            }
            Proxy::parse(&url, &name).map(Some)
        }
    }
}

/// Whether `NO_PROXY`-style `list` exempts `host`.
pub(crate) fn bypass(list: &str, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ip: Option<std::net::IpAddr> = host.parse().ok();
    list.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        if entry.is_empty() {
            return false;
        }
        if let Some(ip) = ip {
            return ip_matches(entry, ip);
        }
        // Drop a port, then compare as a domain suffix.
        let entry = match split_host_port(entry, 0) {
            Some((h, _)) if !entry.contains('/') => h,
            _ => entry.to_owned(),
        };
        let domain = entry
            .trim_start_matches("*.")
            .trim_start_matches('.')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        !domain.is_empty()
            && (host == domain
                || (host.ends_with(&domain) && host[..host.len() - domain.len()].ends_with('.')))
    })
}

fn ip_matches(entry: &str, ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    let (net, bits) = match entry.split_once('/') {
        Some((n, b)) => match b.parse::<u32>() {
            Ok(b) => (n, Some(b)),
            Err(_) => return false,
        },
        None => (entry, None),
    };
    let net = net.trim_start_matches('[').trim_end_matches(']');
    let net: IpAddr = match net.parse() {
        Ok(n) => n,
        // An IP with a port.
        Err(_) => match split_host_port(net, 0).and_then(|(h, _)| h.parse().ok()) {
            Some(n) => n,
            None => return false,
        },
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn pick(vars: &[(&str, &str)], secure: bool, host: &str) -> Option<(String, u16)> {
        resolve(&ProxySetting::FromEnv, secure, host, env(vars))
            .unwrap()
            .map(|p| (p.host, p.port))
    }

    #[test]
    fn wss_reads_https_proxy_then_all_proxy_and_ws_reads_http_proxy() {
        let vars = [
            ("HTTPS_PROXY", "http://s:1"),
            ("HTTP_PROXY", "http://p:2"),
            ("ALL_PROXY", "http://a:3"),
        ];
        assert_eq!(pick(&vars, true, "h"), Some(("s".into(), 1)));
        assert_eq!(pick(&vars, false, "h"), Some(("p".into(), 2)));
        assert_eq!(
            pick(&[("all_proxy", "a:3")], true, "h"),
            Some(("a".into(), 3))
        );
        assert_eq!(
            pick(&[("https_proxy", "http://s")], true, "h"),
            Some(("s".into(), 80))
        );
        // HTTPS_PROXY is not read for ws://.
        assert_eq!(pick(&[("HTTPS_PROXY", "http://s:1")], false, "h"), None);
        assert_eq!(pick(&[], true, "h"), None);
    }

    #[test]
    fn no_proxy_lists_domains_ips_ranges_and_star() {
        let list = "localhost, .internal.example,example.org:8443, 10.0.0.0/8, ::1, 192.168.1.5";
        for host in [
            "localhost",
            "a.internal.example",
            "internal.example",
            "example.org",
            "api.example.org",
            "10.2.3.4",
            "[::1]",
            "192.168.1.5",
        ] {
            assert!(bypass(list, host), "{host} should bypass");
        }
        for host in [
            "notexample.org",
            "example.com",
            "11.0.0.1",
            "192.168.1.6",
            "::2",
        ] {
            assert!(!bypass(list, host), "{host} should use the proxy");
        }
        assert!(bypass("*", "anything"));
        let vars = [("HTTPS_PROXY", "http://s:1"), ("no_proxy", "example.org")];
        assert_eq!(pick(&vars, true, "streaming.example.org"), None);
        assert!(pick(&vars, true, "streaming.assemblyai.com").is_some());
    }

    #[test]
    fn credentials_become_basic_auth_and_are_never_shown() {
        let p = Proxy::parse("http://us%40er:p%3Ass@proxy.local:3128/", "test").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.local", 3128));
        // base64("us@er:p:ss")
        assert_eq!(p.authorization.as_deref(), Some("Basic dXNAZXI6cDpzcw=="));
        assert!(p.secrets.contains(&"p:ss".to_owned()));
        let shown = format!("{p:?} {}", p.display());
        assert!(!shown.contains("p:ss") && !shown.contains("dXNAZXI6cDpzcw"));
    }

    #[test]
    fn unsupported_or_malformed_proxies_are_config_errors_without_the_url() {
        for url in [
            "socks5://u:secretpw@h:1",
            "https://u:secretpw@h:1",
            "http://u:secretpw@",
            "http://u:secretpw@h:notaport",
            "http://h:1\r\nX: y",
        ] {
            let e = Proxy::parse(url, "HTTPS_PROXY").unwrap_err();
            assert_eq!(e.kind(), "config", "{url}");
            assert!(!e.to_string().contains("secretpw"), "{e}");
        }
        assert_eq!(
            Proxy::parse("http://[::1]:8080", "t").unwrap().display(),
            "http://[::1]:8080"
        );
    }
}
