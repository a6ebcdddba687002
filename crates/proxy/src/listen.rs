//! `--listen`: what the proxy binds and speaks there. The forms are those people write in pod
//! specs: `:8090`, `http://:8090`, `http://127.0.0.1:8090`, `https://:8443`, `tcp://127.0.0.1:6379`,
//! `[::]:8090`. An empty host means every IPv4 address (what a Service targeting the pod needs);
//! `localhost` means 127.0.0.1. Other host names are refused: a listener binds an address, and
//! resolving a name here would only hide which one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::config::{ListenMode, ListenSpec};

/// What a bad `--listen` value is told (with the value itself in front).
const EXPECTED: &str = "expected [http://|https://|tcp://][IP]:PORT, e.g. :8090, http://127.0.0.1:8090, \
     https://:8443 or tcp://127.0.0.1:6379";

/// Parses a `--listen` value, for clap's `value_parser`. The error names the value.
pub fn parse(value: &str) -> Result<ListenSpec, String> {
    let bad = |why: &str| format!("invalid --listen {value:?}: {why}; {EXPECTED}");
    let text = value.trim();
    let (mode, rest) = match text.split_once("://") {
        Some((scheme, rest)) => {
            let mode = match scheme.to_ascii_lowercase().as_str() {
                "http" => ListenMode::Http,
                "https" => ListenMode::Https,
                "tcp" => ListenMode::Tcp,
                _ => return Err(bad(&format!("unknown scheme {scheme:?}"))),
            };
            (mode, rest)
        }
        None => (ListenMode::Http, text),
    };
    // A trailing `/` is harmless (`http://:8090/`); a path is not: the proxy serves every path.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err(bad("a listener takes no path or query"));
    }
    if rest.contains('@') {
        return Err(bad("a listener takes no user name or password"));
    }
    let (host, port) = split_host_port(rest).ok_or_else(|| bad("no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad(&format!("port {port:?} is not a number from 0 to 65535")))?;
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        literal => literal.parse().map_err(|_| {
            bad(&format!(
                "{literal:?} is not an IP address (a listener binds an address: use 0.0.0.0 or leave it out for every address)"
            ))
        })?,
    };
    Ok(ListenSpec {
        mode,
        addr: SocketAddr::new(ip, port),
    })
}

/// `host:port`, `[v6]:port`, `:port` → (host without brackets, port).
fn split_host_port(text: &str) -> Option<(&str, &str)> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = text.rsplit_once(':')?;
    // `::1:8090` without brackets is ambiguous; ask for brackets rather than guess.
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mode: ListenMode, addr: &str) -> ListenSpec {
        ListenSpec {
            mode,
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn the_documented_forms_parse() {
        for (value, expected) in [
            (":8090", spec(ListenMode::Http, "0.0.0.0:8090")),
            ("http://:8090", spec(ListenMode::Http, "0.0.0.0:8090")),
            ("http://:8090/", spec(ListenMode::Http, "0.0.0.0:8090")),
            ("HTTP://127.0.0.1:8090", spec(ListenMode::Http, "127.0.0.1:8090")),
            ("https://:8443", spec(ListenMode::Https, "0.0.0.0:8443")),
            ("tcp://127.0.0.1:6379", spec(ListenMode::Tcp, "127.0.0.1:6379")),
            ("localhost:1", spec(ListenMode::Http, "127.0.0.1:1")),
            ("[::]:8090", spec(ListenMode::Http, "[::]:8090")),
            ("https://[::1]:0", spec(ListenMode::Https, "[::1]:0")),
            (" :8090 ", spec(ListenMode::Http, "0.0.0.0:8090")),
        ] {
            assert_eq!(parse(value), Ok(expected), "{value}");
        }
    }

    #[test]
    fn bad_values_are_named_with_the_reason() {
        for (value, why) in [
            ("8090", "no port"),
            ("", "no port"),
            (":", "port \"\""),
            (":65536", "port \"65536\""),
            (":-1", "port \"-1\""),
            ("ftp://:21", "unknown scheme \"ftp\""),
            ("http://:8090/app", "no path"),
            ("http://:8090?x", "no path"),
            ("http://u:p@:8090", "no user name"),
            ("example.com:80", "\"example.com\" is not an IP address"),
            ("::1:8090", "no port"),
            ("[::1]8090", "no port"),
            ("http://[nope]:80", "\"nope\" is not an IP address"),
        ] {
            let err = parse(value).unwrap_err();
            assert!(err.contains(&format!("{value:?}")), "{err}");
            assert!(err.contains(why), "{value}: {err}");
            assert!(err.contains("e.g. :8090"), "{err}");
        }
    }
}
