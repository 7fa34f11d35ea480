//! Named volumes: create, remove, list.

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListVolumesOptions, RemoveVolumeOptions};

use super::{engine_error, gone_is_ok, label_filters, Docker};
use e2e_runtime::engine::{EngineResult, Found, Labels, Selector};

impl Docker {
    pub(super) async fn new_volume(&self, name: &str, labels: &Labels) -> EngineResult<()> {
        let req = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.api.create_volume(req).await.map(|_| ()).map_err(engine_error)
    }

    pub(super) async fn drop_volume(&self, name: &str) -> EngineResult<()> {
        gone_is_ok(self.api.remove_volume(name, Some(RemoveVolumeOptions { force: true })).await)
    }

    pub(super) async fn list_volumes(&self, selector: &Selector) -> EngineResult<Vec<Found>> {
        let opts = ListVolumesOptions { filters: Some(label_filters(selector)) };
        let found = self.api.list_volumes(Some(opts)).await.map_err(engine_error)?;
        Ok(found
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| Found { id: v.name, labels: v.labels.into_iter().collect() })
            .collect())
    }
}
