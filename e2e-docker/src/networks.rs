//! Networks: create, find by name, inspect, connect and disconnect containers, list.

use bollard::models::{EndpointSettings, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};
use bollard::query_parameters::ListNetworksOptions;

use super::{engine_error, label_filters, labels_of, Docker};
use e2e_runtime::engine::{EngineResult, Found, Labels, NetworkState, Selector};

impl Docker {
    pub(super) async fn new_network(&self, name: &str, labels: &Labels) -> EngineResult<String> {
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        Ok(self.api.create_network(req).await.map_err(engine_error)?.id)
    }

    pub(super) async fn network_named(&self, name: &str) -> EngineResult<bool> {
        let filters = std::collections::HashMap::from([("name".to_string(), vec![format!("^{name}$")])]);
        let found =
            self.api.list_networks(Some(ListNetworksOptions { filters: Some(filters) })).await.map_err(engine_error)?;
        Ok(found.iter().any(|n| n.name.as_deref() == Some(name)))
    }

    pub(super) async fn network_state(&self, id: &str) -> EngineResult<NetworkState> {
        let n = self.api.inspect_network(id, None).await.map_err(engine_error)?;
        Ok(NetworkState {
            containers: n.containers.map(|c| c.len()).unwrap_or(0),
            gateway: n.ipam.and_then(|i| i.config).unwrap_or_default().into_iter().find_map(|c| c.gateway),
        })
    }

    pub(super) async fn attach(&self, network: &str, container: &str, aliases: &[String]) -> EngineResult<()> {
        let req = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(EndpointSettings { aliases: Some(aliases.to_vec()), ..Default::default() }),
        };
        self.api.connect_network(network, req).await.map_err(engine_error)
    }

    pub(super) async fn detach(&self, network: &str, container: &str) -> EngineResult<()> {
        let req = NetworkDisconnectRequest { container: container.to_string(), force: Some(true) };
        self.api.disconnect_network(network, req).await.map_err(engine_error)
    }

    pub(super) async fn list_networks(&self, selector: &Selector) -> EngineResult<Vec<Found>> {
        let opts = ListNetworksOptions { filters: Some(label_filters(selector)) };
        let found = self.api.list_networks(Some(opts)).await.map_err(engine_error)?;
        Ok(found.into_iter().map(|n| Found { id: n.id.unwrap_or_default(), labels: labels_of(n.labels) }).collect())
    }
}
