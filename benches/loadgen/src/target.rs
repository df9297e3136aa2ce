//! Parses the target address and refuses anything that is not loopback. Host names other than
//! `localhost` are not resolved: a name could point anywhere.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::LoadgenError;

/// `127.x.y.z:PORT`, `[::1]:PORT` or `localhost:PORT` (→ 127.0.0.1), with an optional `http://`
/// prefix and trailing `/`.
pub fn loopback_target(target: &str) -> Result<SocketAddr, LoadgenError> {
    let bad = |reason| LoadgenError::BadTarget {
        target: target.to_owned(),
        reason,
    };
    let rest = target.strip_prefix("http://").unwrap_or(target);
    if rest.contains("://") {
        return Err(bad("only plain http:// is supported"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') {
        return Err(bad("give host:port only, without a path"));
    }
    let addr = match authority.strip_prefix("localhost:") {
        Some(port) => {
            let port = port
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
        }
        None => authority.parse::<SocketAddr>().map_err(|_| {
            bad("expected IPv4:PORT, [IPv6]:PORT or localhost:PORT (other names are not resolved)")
        })?,
    };
    // Ipv4Addr::is_loopback is 127.0.0.0/8; Ipv6Addr::is_loopback is exactly ::1.
    if !addr.ip().is_loopback() {
        return Err(LoadgenError::NotLoopback {
            target: target.to_owned(),
            found: addr.ip().to_string(),
        });
    }
    if addr.port() == 0 {
        return Err(bad("port 0 cannot be connected to"));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_accepted() {
        assert_eq!(
            loopback_target("127.0.0.1:18601").unwrap(),
            "127.0.0.1:18601".parse().unwrap()
        );
        assert_eq!(
            loopback_target("127.200.3.4:80").unwrap(),
            "127.200.3.4:80".parse().unwrap()
        );
        assert_eq!(
            loopback_target("[::1]:8080").unwrap(),
            "[::1]:8080".parse().unwrap()
        );
        assert_eq!(
            loopback_target("localhost:9").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert_eq!(
            loopback_target("http://127.0.0.1:18600/").unwrap(),
            "127.0.0.1:18600".parse().unwrap()
        );
    }

    #[test]
    fn other_addresses_are_refused_as_not_loopback() {
        for target in [
            "10.0.0.1:80",
            "192.168.1.10:80",
            "172.16.0.1:80",
            "8.8.8.8:53",
            "0.0.0.0:80",
            "[::]:80",
            "[::ffff:127.0.0.1]:80",
            "[fe80::1]:80",
            "http://128.0.0.1:80",
        ] {
            let err = loopback_target(target).unwrap_err();
            assert!(
                matches!(err, LoadgenError::NotLoopback { .. }),
                "{target}: {err}"
            );
            assert!(err.to_string().contains("not a loopback address"), "{err}");
        }
    }

    #[test]
    fn names_paths_schemes_and_missing_ports_are_refused() {
        for target in [
            "example.com:80",
            "localhost",
            "127.0.0.1",
            "https://127.0.0.1:443",
            "127.0.0.1:80/v1",
            "localhost:http",
            "127.0.0.1:0",
            "",
        ] {
            let err = loopback_target(target).unwrap_err();
            assert!(
                matches!(err, LoadgenError::BadTarget { .. }),
                "{target}: {err}"
            );
        }
    }
}
