//! Fetching a runnable's metrics over HTTP.

use super::exposition::Exposition;
use crate::error::{Error, Result};
use crate::runnable::Runnable;

impl Runnable {
    /// Fetches and parses the runnable's metrics, from its metrics port with the configured
    /// scheme and path (HTTPS without checking the certificate). An error if the runnable is not
    /// instrumented, not started, or does not answer with a 2xx status.
    pub async fn metrics(&self) -> Result<Exposition> {
        Ok(Exposition::parse(self.scrape_text().await?))
    }

    pub(super) async fn scrape_text(&self) -> Result<String> {
        let m = self
            .options()
            .metrics_endpoint()
            .ok_or_else(|| Error::NotInstrumented { runnable: self.name().to_string() })?;
        if m.scheme != "http" && m.scheme != "https" {
            return Err(Error::InvalidName {
                what: "metrics scheme",
                name: m.scheme.clone(),
                reason: "use http or https".into(),
            });
        }
        let addr = self.endpoint(&m.port)?;
        let slash = if m.path.starts_with('/') { "" } else { "/" };
        let url = format!("{}://{addr}{slash}{}", m.scheme, m.path);
        let failed =
            |detail: String| Error::MetricsFetch { runnable: self.name().to_string(), url: url.clone(), detail };
        let resp = self
            .http()
            // The text format, not protobuf or OpenMetrics, whatever the server prefers.
            .get(&url, &[("accept", "text/plain;version=0.0.4")])
            .await
            .map_err(|e| failed(e.0))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(failed(format!("answered {status}")));
        }
        resp.text().await.map_err(|e| failed(e.0))
    }
}
