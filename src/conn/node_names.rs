//! Cluster nodes that announce IP addresses (Azure does) present certificates issued for the
//! host name the client was given, not for those addresses. So each node announced as
//! `ip:port` is dialled as `<seed host>:port`: TLS verifies it against the seed's host name,
//! and a resolver sends that name back to the announced ip. Verification stays on throughout.
//!
//! redis-rs applies a `node_address_map` wherever it dials a node and keeps the announced
//! addresses in its slot map, so `MOVED` and `ASK` still match (see
//! `ClusterClientBuilder::node_address_map`). A client's map and resolver are fixed when it
//! is built: a node that needs a new renaming needs a new client, which the supervisor
//! builds when `Routes::covers` says so.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use redis::cluster::NodeAddress;
use redis::io::AsyncDNSResolver;
use redis::RedisFuture;

/// One reachable node as `CLUSTER NODES` announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Announced {
    pub(super) host: String,
    pub(super) port: u16,
    /// A primary that serves slots and is not flagged as failing: a good place to start a
    /// new client from.
    pub(super) primary: bool,
}

/// The nodes of a `CLUSTER NODES` reply that can be dialled. Nodes in handshake, without an
/// address, or flagged as failing are left out: a failed node may linger in the reply long
/// after another took its port.
pub(super) fn parse_cluster_nodes(text: &str) -> Vec<Announced> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _id = fields.next()?;
            // ip:port@cport[,hostname]; an IPv6 ip keeps its colons, so split at the last one.
            let address = fields.next()?.split(['@', ',']).next()?;
            let flags: Vec<&str> = fields.next()?.split(',').collect();
            // Then: primary id, ping sent, pong received, epoch, link state, slots; "[…]" marks
            // a slot in migration, not one served.
            let serves_slots = fields.skip(5).any(|slot| !slot.starts_with('['));
            let unusable = ["handshake", "noaddr", "fail", "fail?"];
            if flags.iter().any(|flag| unusable.contains(flag)) {
                return None;
            }
            let (host, port) = address.rsplit_once(':')?;
            let port = port.parse().ok().filter(|p| *p != 0)?;
            (!host.is_empty()).then(|| Announced {
                host: host.to_owned(),
                port,
                primary: flags.contains(&"master") && serves_slots,
            })
        })
        .collect()
}

/// What one `CLUSTER NODES` reply says: how to rename the IP-announced nodes to the seed's
/// host name, and where a new client can start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Routes {
    seed_host: Arc<str>,
    /// False when the seed is itself an IP address: then every node is verified against the
    /// address it announces, as the seed was, and nothing is renamed.
    renames: bool,
    /// Port → the ip the node on that port announced, for nodes dialled by the seed's name.
    by_port: BTreeMap<u16, IpAddr>,
    /// Ports announced by two different ips: the seed's name cannot stand for both, so
    /// those nodes are verified against their own ip.
    pub(super) ambiguous: BTreeSet<u16>,
    /// The primaries that were up, as announced: where a new client starts.
    pub(super) primaries: Vec<(String, u16)>,
}

impl Routes {
    /// Nothing learned yet, for a seed URL naming `seed_host`.
    pub(super) fn for_seed(seed_host: &str) -> Routes {
        Routes {
            seed_host: seed_host.into(),
            renames: seed_host.parse::<IpAddr>().is_err(),
            by_port: BTreeMap::new(),
            ambiguous: BTreeSet::new(),
            primaries: Vec::new(),
        }
    }

    /// Whether a client needs `address_map` and `resolver` at all.
    pub(super) fn renames(&self) -> bool {
        self.renames
    }

    /// The renaming a reply's nodes call for, for the same seed.
    pub(super) fn learn(&self, nodes: &[Announced]) -> Routes {
        let mut by_port = BTreeMap::new();
        let mut ambiguous = BTreeSet::new();
        for node in nodes.iter().filter(|_| self.renames) {
            let Ok(ip) = node.host.parse::<IpAddr>() else {
                continue;
            };
            // 0.0.0.0 or :: means "the node that answered" to redis-rs, not a place to dial.
            if ip.is_unspecified() {
                continue;
            }
            if let Some(other) = by_port.insert(node.port, ip) {
                if other != ip {
                    ambiguous.insert(node.port);
                }
            }
        }
        for port in &ambiguous {
            by_port.remove(port);
        }
        let primaries = nodes
            .iter()
            .filter(|n| n.primary)
            .map(|n| (n.host.clone(), n.port))
            .collect();
        Routes {
            seed_host: self.seed_host.clone(),
            renames: self.renames,
            by_port,
            ambiguous,
            primaries,
        }
    }

    /// Whether a client built with these routes reaches every node `newer` renames.
    pub(super) fn covers(&self, newer: &Routes) -> bool {
        newer
            .by_port
            .iter()
            .all(|(port, ip)| self.by_port.get(port) == Some(ip))
    }

    /// Announced address → the seed's name with the same port, for redis-rs.
    pub(super) fn address_map(&self) -> HashMap<NodeAddress, NodeAddress> {
        self.by_port
            .iter()
            .map(|(port, ip)| {
                (
                    NodeAddress::new(ip.to_string(), *port),
                    NodeAddress::new(self.seed_host.to_string(), *port),
                )
            })
            .collect()
    }

    /// Whether a client built with these routes dials `host:port` by the seed's name.
    pub(super) fn renamed(&self, host: &str, port: u16) -> bool {
        host.parse::<IpAddr>()
            .is_ok_and(|ip| self.by_port.get(&port) == Some(&ip))
    }

    /// The resolver that goes with `address_map`.
    pub(super) fn resolver(&self) -> SeedNameResolver {
        SeedNameResolver(Arc::new(self.clone()))
    }

    fn route(&self, host: &str, port: u16) -> Option<SocketAddr> {
        if !host.eq_ignore_ascii_case(&self.seed_host) {
            return None;
        }
        self.by_port.get(&port).map(|ip| SocketAddr::new(*ip, port))
    }
}

/// Resolves `<seed host>:port` to the ip the node on that port announced; any other name as
/// the system would.
pub(super) struct SeedNameResolver(Arc<Routes>);

impl AsyncDNSResolver for SeedNameResolver {
    fn resolve<'a, 'b: 'a>(
        &'a self,
        host: &'b str,
        port: u16,
    ) -> RedisFuture<'a, Box<dyn Iterator<Item = SocketAddr> + Send + 'a>> {
        Box::pin(async move {
            if let Some(address) = self.0.route(host, port) {
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
            primary: true,
        }
    }

    fn seed() -> Routes {
        Routes::for_seed("cache.example")
    }

    #[test]
    fn parses_the_dialable_nodes_of_cluster_nodes_lines() {
        let text = "\
07c3 10.0.0.4:15000@25000 myself,master - 0 0 1 connected 0-5460
67ed 10.0.0.5:15001@25001,node-b.example master - 0 1426238316232 2 connected 5461-10922
292f fe80::1:15002@25002 slave 67ed 0 1426238318243 3 connected
aaaa :0@0 master,noaddr - 1 1 0 disconnected
bbbb 10.0.0.9:15009@25009 handshake - 0 0 0 connected
cccc 10.0.0.8:15008@25008 master,fail - 0 0 0 disconnected
dddd 10.0.0.7:15007@25007 master,fail? - 0 0 0 connected
eeee 10.0.0.6:15006@25006 master - 0 0 4 connected
ffff 10.0.0.3:15003@25003 master - 0 0 5 connected [77->-07c3]
";
        let replica = Announced {
            primary: false,
            ..node("fe80::1", 15002)
        };
        let slotless = |host, port| Announced {
            primary: false,
            ..node(host, port)
        };
        assert_eq!(
            parse_cluster_nodes(text),
            vec![
                node("10.0.0.4", 15000),
                node("10.0.0.5", 15001),
                replica,
                slotless("10.0.0.6", 15006),
                slotless("10.0.0.3", 15003),
            ]
        );
    }

    #[test]
    fn an_ip_seed_renames_nothing_but_still_knows_the_primaries() {
        for ip_seed in ["10.0.0.4", "::1"] {
            let routes = Routes::for_seed(ip_seed).learn(&[node("10.0.0.5", 15001)]);
            assert!(!routes.renames());
            assert!(routes.address_map().is_empty());
            assert!(!routes.renamed("10.0.0.5", 15001));
            assert_eq!(routes.primaries, vec![("10.0.0.5".to_owned(), 15001)]);
        }
        assert!(Routes::for_seed("cache.example").renames());
    }

    #[test]
    fn ip_nodes_are_dialled_by_the_seed_name_and_resolved_back() {
        let routes = seed().learn(&[
            node("10.0.0.4", 15000),
            node("10.0.0.5", 15001),
            node("named.example", 15002),
            node("0.0.0.0", 15003),
        ]);
        let map = routes.address_map();
        assert_eq!(map.len(), 2);
        assert_eq!(
            map[&NodeAddress::new("10.0.0.5", 15001)],
            NodeAddress::new("cache.example", 15001)
        );
        assert_eq!(
            routes.route("CACHE.example", 15001),
            Some("10.0.0.5:15001".parse().unwrap())
        );
        assert_eq!(routes.route("other.example", 15001), None);
        assert_eq!(routes.route("cache.example", 15002), None);
        assert_eq!(routes.route("cache.example", 15003), None);
        // What is dialled by the seed's name, and what by its own address.
        assert!(routes.renamed("10.0.0.5", 15001));
        assert!(!routes.renamed("10.0.0.5", 15000));
        assert!(!routes.renamed("named.example", 15002));
        assert!(!routes.renamed("0.0.0.0", 15003));
        assert_eq!(routes.primaries.len(), 4);
        assert_eq!(routes.primaries[2], ("named.example".to_owned(), 15002));
    }

    #[test]
    fn a_client_covers_a_newer_reply_until_a_node_appears_or_moves() {
        let built = seed().learn(&[node("10.0.0.4", 15000), node("10.0.0.5", 15001)]);
        // A node gone from the reply needs no new client.
        assert!(built.covers(&built.learn(&[node("10.0.0.4", 15000)])));
        assert!(!built.covers(&built.learn(&[node("10.0.0.4", 15000), node("10.0.0.4", 15003)])));
        assert!(!built.covers(&built.learn(&[node("10.0.0.7", 15001)])));
    }

    #[test]
    fn a_port_two_ips_announce_is_not_renamed_while_both_do() {
        let both = seed().learn(&[node("10.0.0.4", 6380), node("10.0.0.5", 6380)]);
        assert_eq!(both.ambiguous, BTreeSet::from([6380]));
        assert!(both.address_map().is_empty());
        assert_eq!(both.route("cache.example", 6380), None);
        // Each reply stands alone: once one of them is gone, the port is renamed again.
        let one = both.learn(&[node("10.0.0.5", 6380)]);
        assert!(one.ambiguous.is_empty());
        assert_eq!(
            one.route("cache.example", 6380),
            Some("10.0.0.5:6380".parse().unwrap())
        );
    }
}
