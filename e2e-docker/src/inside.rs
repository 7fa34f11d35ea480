//! Whether this process runs inside a container of the engine it talks to (docker outside of
//! docker: a CI job in a container with the host's socket mounted), and how it then reaches the
//! containers it starts.
//!
//! Docker bind-mounts `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` into each container
//! from `<data root>/containers/<id>/`; the mount table names that id, whatever the cgroup
//! layout. The engine is then asked about that container: if it knows it, this process is in it.

/// How a process inside one of the engine's containers reaches the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Inside {
    /// It shares the engine host's network (`--network host`): the containers' own addresses
    /// work as on the host. Its files are still not the host's.
    HostNetwork,
    /// On a network of its own: it reaches the engine's host at the gateway of that network,
    /// where the engine publishes ports.
    Gateway(String),
}

/// The mount points by which Docker hands a container its identity files.
const IDENTITY_MOUNTS: [&str; 3] = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];

/// The container ids named by the identity mounts of a mount table (`/proc/self/mountinfo`).
pub(super) fn container_ids(mountinfo: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for line in mountinfo.lines() {
        // Fields: id, parent, major:minor, root, mount point, ...
        let mut fields = line.split_whitespace().skip(3);
        let (Some(root), Some(point)) = (fields.next(), fields.next()) else { continue };
        if !IDENTITY_MOUNTS.contains(&point) {
            continue;
        }
        let Some((_, rest)) = root.rsplit_once("/containers/") else { continue };
        let id = rest.split('/').next().unwrap_or_default();
        if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }
    ids
}

/// The default route's gateway in a route table (`/proc/net/route`: addresses in hex, in the
/// host's byte order, which is little-endian on every platform Docker runs containers on).
pub(super) fn default_gateway(route: &str) -> Option<std::net::Ipv4Addr> {
    route.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || f[1] != "00000000" {
            return None;
        }
        let raw = u32::from_str_radix(f[2], 16).ok()?;
        (raw != 0).then(|| std::net::Ipv4Addr::from(raw.to_le_bytes()))
    })
}

/// What the engine says of the container this process runs in, if it runs in one of its.
pub(super) async fn detect(api: &bollard::Docker) -> Option<Inside> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for id in container_ids(&mountinfo) {
        let Ok(c) = api.inspect_container(&id, None).await else { continue };
        if c.host_config.as_ref().and_then(|h| h.network_mode.as_deref()) == Some("host") {
            return Some(Inside::HostNetwork);
        }
        let networks = c.network_settings.and_then(|n| n.networks).unwrap_or_default();
        let mut gateways: Vec<(String, String)> =
            networks.into_iter().filter_map(|(name, ep)| Some((name, ep.gateway.filter(|g| !g.is_empty())?))).collect();
        gateways.sort();
        let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        let default = default_gateway(&route).map(|g| g.to_string());
        let chosen =
            gateways.iter().find(|(_, g)| Some(g) == default.as_ref()).or(gateways.first()).map(|(_, g)| g.clone());
        return chosen.map(Inside::Gateway);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5f1e4b8a1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f";

    #[test]
    fn the_identity_mounts_name_the_container() {
        let mountinfo = format!(
            "600 500 0:50 / / rw,relatime - overlay overlay rw\n\
             610 600 8:1 /docker/containers/{ID}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw\n\
             611 600 8:1 /docker/containers/{ID}/hostname /etc/hostname rw - ext4 /dev/vda rw\n\
             612 600 8:1 /docker/containers/{ID}/hosts /etc/hosts rw - ext4 /dev/vda rw\n"
        );
        assert_eq!(container_ids(&mountinfo), [ID]);
    }

    #[test]
    fn the_hosts_mounts_of_its_containers_name_none() {
        // On the engine's host, every container's shm mount is in the table, but not at an
        // identity mount point.
        let mountinfo = format!(
            "30 25 0:26 / /var/lib/docker/containers/{ID}/mounts/shm rw - tmpfs shm rw\n\
             31 25 8:1 / /etc/hosts rw - ext4 /dev/vda rw\n"
        );
        assert!(container_ids(&mountinfo).is_empty());
    }

    #[test]
    fn the_default_route_gives_the_gateway() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\n\
                     eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\n";
        assert_eq!(default_gateway(route), Some(std::net::Ipv4Addr::new(172, 17, 0, 1)));
        assert_eq!(default_gateway("Iface\tDestination\tGateway\n"), None);
    }
}
