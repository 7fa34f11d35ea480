//! Files in and out of containers, as tar archives (the engine's archive API): it works on any
//! engine, whereas a bind mount names a path of the engine's own host.

use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use futures_util::StreamExt;

use super::{engine_error, Docker};
use e2e_runtime::engine::EngineResult;

impl Docker {
    pub(super) async fn put_archive(&self, id: &str, dir: &str, tar: Vec<u8>) -> EngineResult<()> {
        let opts = UploadToContainerOptions { path: dir.to_string(), ..Default::default() };
        self.api.upload_to_container(id, Some(opts), bollard::body_full(tar.into())).await.map_err(engine_error)
    }

    pub(super) async fn get_archive(&self, id: &str, path: &str) -> EngineResult<Vec<u8>> {
        let opts = DownloadFromContainerOptions { path: path.to_string() };
        let mut stream = self.api.download_from_container(id, Some(opts));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            tar.extend_from_slice(&chunk.map_err(engine_error)?);
        }
        Ok(tar)
    }
}
