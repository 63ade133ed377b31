//! A smaller topology (issue 10 §3): cluster nodes, Cluster Shared Volumes made local
//! volumes, the cluster itself, file server shares. A candidate that leaves a reference
//! dangling (a VM on a removed node, a disk on a removed share) is refused by the
//! scenario rules and skipped by the search.

use crate::scenario::Scenario;

/// `s` without host `name` as a cluster node (nor as a CSV's coordinator).
pub(super) fn drop_node(s: &mut Scenario, name: &str) {
    if let Some(cluster) = &mut s.cluster {
        cluster.nodes.retain(|n| n != name);
    }
    for v in &mut s.volumes {
        if v.coordinator.as_deref() == Some(name) {
            v.coordinator = None;
        }
    }
}

/// The topology candidates of `s`, pushed with what each removed.
pub(super) fn topology(s: &Scenario, push: &mut impl FnMut(Scenario, String)) {
    if let Some(cluster) = &s.cluster {
        let mut c = s.clone();
        c.cluster = None;
        push(c, format!("removed cluster {}", cluster.name));
        if cluster.nodes.len() > 1 {
            for node in &cluster.nodes {
                let mut c = s.clone();
                drop_node(&mut c, node);
                push(
                    c,
                    format!("removed node {node} from cluster {}", cluster.name),
                );
            }
        }
        // A CSV as a plain volume of one node: valid when every VM on it runs there.
        for (v, vol) in s.volumes.iter().enumerate().filter(|(_, v)| v.csv) {
            for node in &cluster.nodes {
                let mut c = s.clone();
                let to = &mut c.volumes[v];
                to.csv = false;
                to.host = Some(node.clone());
                to.coordinator = None;
                push(c, format!("CSV {} → a local volume of {node}", vol.name));
            }
        }
    }
    for (f, server) in s.file_servers.iter().enumerate() {
        for (k, share) in server.shares.iter().enumerate() {
            let mut c = s.clone();
            c.file_servers[f].shares.remove(k);
            push(
                c,
                format!("removed share \\\\{}\\{}", server.name, share.name),
            );
        }
    }
}
