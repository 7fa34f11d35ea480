//! The HTTP client of the env's probes, metric scrapes and monitoring's queries: hyper-util's
//! client (already built for the engine's connections), HTTP/1, `https://` through rustls with
//! the `tls` feature. Any certificate is accepted (test envs use self-signed ones), no proxy is
//! used, and each call, from its request to the end of its body, has one deadline.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::rt::TokioExecutor;

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// An HTTP client; clones share its connections.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    pool: Pool<Connector, Full<Bytes>>,
    timeout: Duration,
}

/// A failed call: the whole chain of its causes, as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpError(pub String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

/// An answer whose body is read on demand, within what is left of the call's deadline.
pub(crate) struct Response {
    status: StatusCode,
    body: Incoming,
    deadline: Instant,
}

impl Client {
    /// A client whose calls each end after `timeout`.
    pub fn new(timeout: Duration) -> Client {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        #[cfg(feature = "tls")]
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(any_certificate())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        #[cfg(not(feature = "tls"))]
        let connector = http;
        Client { pool: Pool::builder(TokioExecutor::new()).build(connector), timeout }
    }

    /// `GET url` with `headers`.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response, HttpError> {
        self.send(Method::GET, url, headers, Bytes::new()).await
    }

    /// `POST url` with `headers` and `body`.
    #[cfg_attr(not(feature = "monitoring"), allow(dead_code))]
    pub async fn post(&self, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Result<Response, HttpError> {
        self.send(Method::POST, url, headers, Bytes::from(body)).await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, HttpError> {
        let failed = |detail: String| HttpError(format!("{method} {url}: {detail}"));
        #[cfg(not(feature = "tls"))]
        if url.starts_with("https://") {
            return Err(failed("https needs e2e's `tls` feature, which this build leaves out".into()));
        }
        let mut request = Request::builder().method(method.clone()).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body)).map_err(|e| failed(crate::engine::error_chain(&e)))?;
        let deadline = Instant::now() + self.timeout;
        match tokio::time::timeout(self.timeout, self.pool.request(request)).await {
            Ok(Ok(answer)) => {
                let status = answer.status();
                Ok(Response { status, body: answer.into_body(), deadline })
            }
            Ok(Err(e)) => Err(failed(crate::engine::error_chain(&e))),
            Err(_) => Err(failed(format!("no answer within {:?}", self.timeout))),
        }
    }
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, HttpError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.body.collect()).await {
            Ok(Ok(body)) => Ok(body.to_bytes()),
            Ok(Err(e)) => Err(HttpError(format!("reading the body: {}", crate::engine::error_chain(&e)))),
            Err(_) => Err(HttpError("reading the body: the call's deadline passed".into())),
        }
    }

    /// The body as text (invalid UTF-8 replaced).
    pub async fn text(self) -> Result<String, HttpError> {
        Ok(String::from_utf8_lossy(&self.bytes().await?).into_owned())
    }

    /// The body as JSON.
    #[cfg_attr(not(feature = "monitoring"), allow(dead_code))]
    pub async fn json(self) -> Result<serde_json::Value, HttpError> {
        serde_json::from_slice(&self.bytes().await?).map_err(|e| HttpError(format!("the body is not JSON: {e}")))
    }
}

/// `url` with `query` appended as its form-encoded query string.
#[cfg_attr(not(feature = "monitoring"), allow(dead_code))]
pub(crate) fn with_query(url: &str, query: &[(&str, &str)]) -> String {
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(query).finish();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{encoded}")
}

/// A TLS client configuration that takes any certificate, still checking the handshake's
/// signatures with ring's algorithms.
#[cfg(feature = "tls")]
fn any_certificate() -> rustls::ClientConfig {
    use std::sync::Arc;
    // rustls 0.23.48 deprecates ring's provider (no post-quantum key exchange). These probes take
    // any certificate anyway, and ring is what bollard's TLS uses: no second crypto library.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth()
}

#[cfg(feature = "tls")]
#[derive(Debug)]
struct AnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

#[cfg(feature = "tls")]
impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_form_encoded() {
        assert_eq!(
            with_query("http://h:9090/api/v1/query", &[("query", "sum(rate(x[1m])) > 0 & y")]),
            "http://h:9090/api/v1/query?query=sum%28rate%28x%5B1m%5D%29%29+%3E+0+%26+y"
        );
        assert_eq!(with_query("http://h/q?a=1", &[("b", "2")]), "http://h/q?a=1&b=2");
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_url() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/ready");
        let e = Client::new(Duration::from_secs(2)).get(&url, &[]).await.err().expect("nothing listens");
        assert!(e.0.starts_with(&format!("GET {url}: ")), "{e}");
        assert!(e.0.contains("onnect"), "{e}");
    }

    #[tokio::test]
    async fn an_answer_gives_status_and_body_and_a_silent_server_times_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        crate::task::spawn(async move {
            // First connection: an answer. Second: silence.
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).contains("accept: text/plain"));
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 8\r\n\r\nnot yet!").await.unwrap();
            let (_silent, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let client = Client::new(Duration::from_millis(500));
        let r = client.get(&format!("http://{addr}/x"), &[("accept", "text/plain")]).await.unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.text().await.unwrap(), "not yet!");
        // A new connection: the first one is still pooled, so force another by a second client.
        let e = Client::new(Duration::from_millis(300)).get(&format!("http://{addr}/y"), &[]).await.err().unwrap();
        assert!(e.0.contains("no answer within 300ms"), "{e}");
    }

    #[cfg(not(feature = "tls"))]
    #[tokio::test]
    async fn https_without_the_tls_feature_says_so() {
        let e = Client::new(Duration::from_secs(1)).get("https://127.0.0.1:1/", &[]).await.err().unwrap();
        assert!(e.0.contains("`tls` feature"), "{e}");
    }
}
