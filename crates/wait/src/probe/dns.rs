//! `dns://name`: ready when the name resolves through the system resolver.
//!
//! The system resolver (musl's `getaddrinfo` in the image) reads the container's
//! `/etc/resolv.conf` and `/etc/hosts`, so Kubernetes search domains (`db` →
//! `db.default.svc.cluster.local`) and `hostAliases` work exactly as they will for the app.
//! The record type can be narrowed to A (IPv4) or AAAA (IPv6); other record types (SRV, TXT)
//! would need a DNS client of our own and bypass the app's resolver, so they are not offered.

use std::net::IpAddr;

use clap::ValueEnum;
use tokio::time::Instant;

use super::NotReady;
use super::net::resolve;

/// Which addresses a name must resolve to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum RecordType {
    /// Any address (A or AAAA).
    #[default]
    Any,
    /// At least one IPv4 address.
    A,
    /// At least one IPv6 address.
    Aaaa,
}

/// Ready when `name` resolves to at least one address of the wanted kind.
pub async fn check(name: &str, record: RecordType, deadline: Instant) -> Result<(), NotReady> {
    // Port 0: only the name matters.
    let addresses: Vec<IpAddr> = resolve(name, 0, deadline)
        .await
        .map_err(|err| NotReady {
            reason: format!("DNS lookup failed: {}", err.detail),
            ..NotReady::from(err)
        })?
        .into_iter()
        .map(|address| address.ip())
        .collect();
    let wanted = |ip: &IpAddr| match record {
        RecordType::Any => true,
        RecordType::A => ip.is_ipv4(),
        RecordType::Aaaa => ip.is_ipv6(),
    };
    if addresses.iter().any(wanted) {
        Ok(())
    } else {
        let kind = if record == RecordType::A {
            "A (IPv4)"
        } else {
            "AAAA (IPv6)"
        };
        Err(NotReady::unresolved(format!(
            "resolves, but to no {kind} address"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[tokio::test]
    async fn localhost_resolves_through_etc_hosts() {
        check("localhost", RecordType::Any, soon()).await.unwrap();
        check("localhost", RecordType::A, soon()).await.unwrap();
    }

    #[tokio::test]
    async fn an_ip_literal_of_the_wrong_family_is_not_ready() {
        let err = check("127.0.0.1", RecordType::Aaaa, soon()).await.unwrap_err();
        assert_eq!(err.reason, "resolves, but to no AAAA (IPv6) address");
    }
}
