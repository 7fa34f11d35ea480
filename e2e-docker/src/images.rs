//! Images: look up, pull, build (the legacy builder: the engines met here have no BuildKit).

use bollard::query_parameters::{BuildImageOptions, BuilderVersion, CreateImageOptions};
use futures_util::StreamExt;

use super::{engine_error, labels_of, Docker};
use e2e_runtime::engine::{EngineError, EngineErrorKind, EngineResult, ImageBuild, ImageInfo, ImageRef};

impl Docker {
    pub(super) async fn image_info(&self, reference: &str) -> EngineResult<Option<ImageInfo>> {
        match self.api.inspect_image(reference).await.map_err(engine_error) {
            Ok(found) => Ok(Some(ImageInfo {
                id: found.id.unwrap_or_default(),
                labels: labels_of(found.config.and_then(|c| c.labels)),
            })),
            Err(e) if matches!(e.kind(), EngineErrorKind::NotFound | EngineErrorKind::NoSuchImage) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn remove_image_id(&self, id: &str) -> EngineResult<()> {
        let opts = bollard::query_parameters::RemoveImageOptions { force: false, noprune: false, ..Default::default() };
        self.api.remove_image(id, Some(opts), None).await.map(|_| ()).map_err(engine_error)
    }

    pub(super) async fn pull(
        &self,
        reference: &ImageRef,
        progress: &mut (dyn for<'s> FnMut(&'s str) + Send),
    ) -> EngineResult<()> {
        let opts = CreateImageOptions {
            from_image: Some(reference.repository.clone()),
            tag: Some(reference.pull_tag().to_string()),
            ..Default::default()
        };
        let mut stream = self.api.create_image(Some(opts), None, None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(engine_error)?;
            if let Some(message) = info.error_detail.and_then(|d| d.message) {
                return Err(EngineError::new(EngineErrorKind::NotFound, None, message));
            }
            progress(&format!("{} {}", info.status.unwrap_or_default(), info.id.unwrap_or_default()));
        }
        Ok(())
    }

    pub(super) async fn build(
        &self,
        build: &ImageBuild,
        output: &mut (dyn for<'s> FnMut(&'s str) + Send),
    ) -> EngineResult<()> {
        let options = BuildImageOptions {
            t: Some(build.tag.clone()),
            dockerfile: build.dockerfile.clone(),
            labels: Some(build.labels.clone().into_iter().collect()),
            rm: true,
            forcerm: true,
            version: BuilderVersion::BuilderV1,
            ..Default::default()
        };
        let mut stream = self.api.build_image(options, None, Some(bollard::body_full(build.context.clone().into())));
        while let Some(item) = stream.next().await {
            // bollard turns an item with an error detail into a stream error; the item is
            // checked too.
            let info = item.map_err(engine_error)?;
            if let Some(message) = info.error_detail.and_then(|d| d.message) {
                return Err(EngineError::new(EngineErrorKind::Other, None, message));
            }
            for line in info.stream.iter().chain(&info.status).flat_map(|s| s.lines()).map(str::trim) {
                if !line.is_empty() {
                    output(line);
                }
            }
        }
        Ok(())
    }
}
