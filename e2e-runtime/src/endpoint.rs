//! An address of a runnable's port: `host:port`, for the test process (`127.0.0.1:<host port>`)
//! or inside the env network (`<env>-<name>:<port>`).

use std::fmt;
use std::net::SocketAddr;

/// A runnable's port as `host:port`, what every address accessor returns
/// ([`Runnable::endpoint`](crate::Runnable::endpoint), `internal_endpoint`, a workload's
/// `<port>_endpoint()` and `<port>_internal_endpoint()`).
///
/// It goes where a string did: it derefs to `"host:port"` (`&endpoint` is a `&str`), prints as
/// it (`format!("http://{endpoint}/")`), compares with strings, and is a
/// [`std::net::ToSocketAddrs`] (`std::net::TcpStream::connect(&endpoint)`); for tokio,
/// `tokio::net::TcpStream::connect(&*endpoint)` or `endpoint.socket_addr()?`.
///
/// ```
/// # use e2e_runtime::Endpoint;
/// let e = Endpoint::new("127.0.0.1", 5432);
/// assert_eq!(e.host(), "127.0.0.1");
/// assert_eq!(e.port(), 5432);
/// assert_eq!(e.url("postgres"), "postgres://127.0.0.1:5432");
/// assert_eq!(e, "127.0.0.1:5432");
/// assert_eq!(e.socket_addr().unwrap().port(), 5432);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    host: String,
    port: u16,
    /// `host:port`, kept for `Deref`.
    text: String,
}

impl Endpoint {
    /// `host:port` (an IPv6 host is bracketed in the text: `[::1]:80`).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        let host = host.into();
        let text = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        Endpoint { host, port, text }
    }

    /// The host: an address (`127.0.0.1`) or a name in the env network (`pg-db`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// As a socket address, when the host is an IP address (host endpoints are); a name is an
    /// error, naming it (resolve it, or use it only inside the network).
    pub fn socket_addr(&self) -> crate::Result<SocketAddr> {
        match self.host.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SocketAddr::new(ip, self.port)),
            Err(_) => Err(crate::Error::InvalidName {
                what: "endpoint",
                name: self.text.clone(),
                reason: format!("its host {:?} is a name, not an address: it has no socket address", self.host),
            }),
        }
    }

    /// `<scheme>://host:port` (`url("http")`, `url("postgres")`), with no path.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.text)
    }

    /// `host:port`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl std::ops::Deref for Endpoint {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl AsRef<str> for Endpoint {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl From<Endpoint> for String {
    fn from(e: Endpoint) -> String {
        e.text
    }
}

impl std::net::ToSocketAddrs for Endpoint {
    type Iter = std::vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> std::io::Result<Self::Iter> {
        (self.host.as_str(), self.port).to_socket_addrs()
    }
}

impl PartialEq<str> for Endpoint {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for Endpoint {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl PartialEq<String> for Endpoint {
    fn eq(&self, other: &String) -> bool {
        &self.text == other
    }
}

impl PartialEq<Endpoint> for String {
    fn eq(&self, other: &Endpoint) -> bool {
        *self == other.text
    }
}

impl PartialEq<Endpoint> for &str {
    fn eq(&self, other: &Endpoint) -> bool {
        *self == other.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_its_parts_and_its_text() {
        let e = Endpoint::new("pg-db", 5432);
        assert_eq!((e.host(), e.port(), e.as_str()), ("pg-db", 5432, "pg-db:5432"));
        assert_eq!(format!("{e}"), "pg-db:5432");
        assert_eq!(format!("{e:?}"), "\"pg-db:5432\"");
        assert_eq!(e.url("http"), "http://pg-db:5432");
        let e2 = e.socket_addr().unwrap_err().to_string();
        assert!(e2.contains("pg-db:5432") && e2.contains("a name"), "{e2}");
        let v6 = Endpoint::new("::1", 80);
        assert_eq!(v6.as_str(), "[::1]:80");
        assert_eq!(v6.socket_addr().unwrap(), "[::1]:80".parse().unwrap());
        let s: &str = &Endpoint::new("127.0.0.1", 1);
        assert_eq!(s, "127.0.0.1:1");
        assert_eq!(String::from(Endpoint::new("a", 2)), "a:2");
        let text = String::from("a:2");
        assert!(text == Endpoint::new("a", 2));
        use std::net::ToSocketAddrs;
        assert_eq!(Endpoint::new("127.0.0.1", 9).to_socket_addrs().unwrap().next().unwrap().port(), 9);
    }
}
