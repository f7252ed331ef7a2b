//! Cluster nodes that announce IP addresses (Azure does) present certificates issued for the
//! host name the client was given, not for those addresses. So each node announced as
//! `ip:port` is dialled as `<seed host>:port`: TLS verifies it against the seed's host name,
//! and a resolver sends that name back to the announced ip. Verification stays on throughout.
//!
//! redis-rs applies a `node_address_map` when it dials a node and keeps the announced
//! addresses in its slot map, so `MOVED` and `ASK` still match (see
//! `ClusterClientBuilder::node_address_map`). The map is fixed per client: a node announced
//! later needs a new client, which the supervisor builds when `learn` says so.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use redis::cluster::NodeAddress;
use redis::io::AsyncDNSResolver;
use redis::RedisFuture;

/// One node as `CLUSTER NODES` announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub host: String,
    pub port: u16,
}

/// Nodes with an address, from `CLUSTER NODES` text. Nodes still in handshake or without an
/// address are skipped: nothing can be dialled there yet.
pub fn parse_cluster_nodes(text: &str) -> Vec<Announced> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _id = fields.next()?;
            // ip:port@cport[,hostname]; an IPv6 ip keeps its colons, so split at the last one.
            let address = fields.next()?.split(['@', ',']).next()?;
            let flags = fields.next()?;
            if flags
                .split(',')
                .any(|flag| flag == "handshake" || flag == "noaddr")
            {
                return None;
            }
            let (host, port) = address.rsplit_once(':')?;
            let port = port.parse().ok().filter(|p| *p != 0)?;
            (!host.is_empty()).then(|| Announced {
                host: host.to_owned(),
                port,
            })
        })
        .collect()
}

#[derive(Default)]
struct Routes {
    /// Port → the ip the node on that port announced, for nodes dialled by the seed's name.
    by_port: HashMap<u16, IpAddr>,
    /// Ports announced by two different ips: the seed's name cannot stand for both.
    ambiguous: HashSet<u16>,
}

/// The renaming of IP-announced nodes to the seed's host name, shared with the resolver.
#[derive(Clone)]
pub struct NodeNames {
    seed_host: Arc<str>,
    routes: Arc<RwLock<Routes>>,
}

/// What `learn` found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Learned {
    /// An IP-announced node the current map does not rename: the client must be rebuilt.
    pub changed: bool,
    /// Ports that two ips announce; their nodes are verified against their ip.
    pub newly_ambiguous: Vec<u16>,
}

impl NodeNames {
    /// `None` when the seed is itself an IP address: then every node is verified against the
    /// address it announces, as the seed was.
    pub fn for_seed(seed_host: &str) -> Option<NodeNames> {
        if seed_host.parse::<IpAddr>().is_ok() {
            return None;
        }
        Some(NodeNames {
            seed_host: seed_host.into(),
            routes: Arc::default(),
        })
    }

    /// Records the nodes a `CLUSTER NODES` reply announced.
    pub fn learn(&self, nodes: &[Announced]) -> Learned {
        let mut learned = Learned::default();
        let mut routes = self.routes.write().unwrap_or_else(|e| e.into_inner());
        for node in nodes {
            let Ok(ip) = node.host.parse::<IpAddr>() else {
                continue;
            };
            if routes.ambiguous.contains(&node.port) {
                continue;
            }
            match routes.by_port.get(&node.port) {
                Some(known) if *known == ip => {}
                Some(_) if nodes_share_port(nodes, node.port) => {
                    routes.by_port.remove(&node.port);
                    routes.ambiguous.insert(node.port);
                    learned.newly_ambiguous.push(node.port);
                    learned.changed = true;
                }
                // The node on that port moved to another ip.
                _ => {
                    routes.by_port.insert(node.port, ip);
                    learned.changed = true;
                }
            }
        }
        learned
    }

    /// Announced address → the seed's name with the same port, for redis-rs.
    pub fn address_map(&self) -> HashMap<NodeAddress, NodeAddress> {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        routes
            .by_port
            .iter()
            .map(|(port, ip)| {
                (
                    NodeAddress::new(ip.to_string(), *port),
                    NodeAddress::new(self.seed_host.to_string(), *port),
                )
            })
            .collect()
    }

    /// Ports of every renamed node: a rebuilt client may start from any of them.
    pub fn ports(&self) -> Vec<u16> {
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        let mut ports: Vec<u16> = routes.by_port.keys().copied().collect();
        ports.sort_unstable();
        ports
    }

    fn route(&self, host: &str, port: u16) -> Option<SocketAddr> {
        if !host.eq_ignore_ascii_case(&self.seed_host) {
            return None;
        }
        let routes = self.routes.read().unwrap_or_else(|e| e.into_inner());
        routes
            .by_port
            .get(&port)
            .map(|ip| SocketAddr::new(*ip, port))
    }
}

/// Whether two different ips announce `port` in one reply.
fn nodes_share_port(nodes: &[Announced], port: u16) -> bool {
    let mut ips = nodes
        .iter()
        .filter(|n| n.port == port)
        .filter_map(|n| n.host.parse::<IpAddr>().ok());
    match ips.next() {
        Some(first) => ips.any(|ip| ip != first),
        None => false,
    }
}

impl AsyncDNSResolver for NodeNames {
    fn resolve<'a, 'b: 'a>(
        &'a self,
        host: &'b str,
        port: u16,
    ) -> RedisFuture<'a, Box<dyn Iterator<Item = SocketAddr> + Send + 'a>> {
        Box::pin(async move {
            if let Some(address) = self.route(host, port) {
                return Ok(Box::new(std::iter::once(address))
                    as Box<dyn Iterator<Item = SocketAddr> + Send>);
            }
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
            Ok(Box::new(found.into_iter()) as Box<dyn Iterator<Item = SocketAddr> + Send>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: u16) -> Announced {
        Announced {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn parses_addresses_of_cluster_nodes_lines() {
        let text = "\
07c3 10.0.0.4:15000@25000 myself,master - 0 0 1 connected 0-5460
67ed 10.0.0.5:15001@25001,node-b.example master - 0 1426238316232 2 connected 5461-10922
292f fe80::1:15002@25002 slave 67ed 0 1426238318243 3 connected
aaaa :0@0 master,noaddr - 1 1 0 disconnected
bbbb 10.0.0.9:15009@25009 handshake - 0 0 0 connected
";
        assert_eq!(
            parse_cluster_nodes(text),
            vec![
                node("10.0.0.4", 15000),
                node("10.0.0.5", 15001),
                node("fe80::1", 15002)
            ]
        );
    }

    #[test]
    fn an_ip_seed_renames_nothing() {
        assert!(NodeNames::for_seed("10.0.0.4").is_none());
        assert!(NodeNames::for_seed("::1").is_none());
        assert!(NodeNames::for_seed("cache.example").is_some());
    }

    #[test]
    fn ip_nodes_are_dialled_by_the_seed_name_and_resolved_back() {
        let names = NodeNames::for_seed("cache.example").unwrap();
        let learned = names.learn(&[
            node("10.0.0.4", 15000),
            node("10.0.0.5", 15001),
            node("named.example", 15002),
        ]);
        assert!(learned.changed);
        let map = names.address_map();
        assert_eq!(map.len(), 2);
        assert_eq!(
            map[&NodeAddress::new("10.0.0.5", 15001)],
            NodeAddress::new("cache.example", 15001)
        );
        assert_eq!(
            names.route("CACHE.example", 15001),
            Some("10.0.0.5:15001".parse().unwrap())
        );
        assert_eq!(names.route("other.example", 15001), None);
        assert_eq!(names.route("cache.example", 15002), None);
        assert_eq!(names.ports(), vec![15000, 15001]);
    }

    #[test]
    fn learning_again_changes_nothing_until_a_node_appears_or_moves() {
        let names = NodeNames::for_seed("cache.example").unwrap();
        names.learn(&[node("10.0.0.4", 15000)]);
        assert_eq!(names.learn(&[node("10.0.0.4", 15000)]), Learned::default());
        assert!(
            names
                .learn(&[node("10.0.0.4", 15000), node("10.0.0.4", 15003)])
                .changed
        );
        assert!(names.learn(&[node("10.0.0.7", 15003)]).changed);
        assert_eq!(
            names.route("cache.example", 15003),
            Some("10.0.0.7:15003".parse().unwrap())
        );
    }

    #[test]
    fn a_port_two_ips_announce_is_not_renamed() {
        let names = NodeNames::for_seed("cache.example").unwrap();
        let learned = names.learn(&[node("10.0.0.4", 6380), node("10.0.0.5", 6380)]);
        assert_eq!(learned.newly_ambiguous, vec![6380]);
        assert!(names.address_map().is_empty());
        assert_eq!(names.route("cache.example", 6380), None);
        // Once ambiguous, it stays so: a later reply listing one of them renames nothing.
        assert_eq!(names.learn(&[node("10.0.0.4", 6380)]), Learned::default());
    }
}
