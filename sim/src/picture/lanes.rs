//! The lanes of the diagram: one per actor, grouped by where the actor runs, and one per
//! volume in the group of the host or file server that holds it.

use std::collections::HashMap;

use serde::Serialize;

use crate::scenario::Scenario;

use super::PictureStep;

/// A group of lanes: the backup server, a host, a guest, a file server, or storage
/// that no host or file server holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Group {
    /// "backup server", "host", "guest", "file server", "node" or "storage".
    pub kind: &'static str,
    /// The host, VM or file server name (empty for the backup server and storage).
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lane {
    pub name: String,
    /// Index into [`Layout::groups`].
    pub group: usize,
    /// A volume's lane (marks only), not an actor's.
    pub volume: bool,
}

/// Groups and lanes in drawing order, left to right.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub groups: Vec<Group>,
    pub lanes: Vec<Lane>,
    #[serde(skip)]
    actor_lane: HashMap<String, usize>,
    #[serde(skip)]
    volume_lane: HashMap<String, usize>,
}

/// The computer or VM an actor runs on: `Vss@hv1` and `GuestWriter@app01/SQL` run on
/// `hv1` and `app01`; an actor without `@` runs on the backup server.
fn place(actor: &str) -> Option<&str> {
    let (_, at) = actor.split_once('@')?;
    Some(at.split('/').next().unwrap_or(at))
}

impl Layout {
    /// Lays out the actors that appear in `steps` (in the order they first appear) and
    /// the scenario's volumes. Groups come in the order: backup server; each host
    /// followed by the guests it runs; each file server; anything else.
    pub fn new(scenario: &Scenario, steps: &[PictureStep]) -> Layout {
        let mut actors: Vec<&str> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for s in steps {
            for a in s.from.iter().chain(std::iter::once(&s.actor)) {
                if seen.insert(a.as_str()) {
                    actors.push(a);
                }
            }
        }
        let mut order: Vec<Group> = vec![Group {
            kind: "backup server",
            name: String::new(),
        }];
        for h in &scenario.hosts {
            order.push(Group {
                kind: "host",
                name: h.name.clone(),
            });
            for vm in scenario.vms.iter().filter(|vm| vm.host == h.name) {
                order.push(Group {
                    kind: "guest",
                    name: vm.name.clone(),
                });
            }
        }
        // A VM on a host the scenario does not list (validation forbids it; still drawn).
        for vm in &scenario.vms {
            if !order.iter().any(|g| g.kind == "guest" && g.name == vm.name) {
                order.push(Group {
                    kind: "guest",
                    name: vm.name.clone(),
                });
            }
        }
        for f in &scenario.file_servers {
            order.push(Group {
                kind: "file server",
                name: f.name.clone(),
            });
        }
        let group_of_actor = |actor: &str, order: &mut Vec<Group>| -> usize {
            let found = match place(actor) {
                None => order.iter().position(|g| g.kind == "backup server"),
                Some(at) => order
                    .iter()
                    .position(|g| g.kind != "backup server" && g.name == at),
            };
            found.unwrap_or_else(|| {
                order.push(Group {
                    kind: "node",
                    name: place(actor).unwrap_or_default().to_owned(),
                });
                order.len() - 1
            })
        };
        // (group in `order`, lane) in the order they are found.
        let mut found: Vec<(usize, Lane)> = Vec::new();
        for a in actors {
            let g = group_of_actor(a, &mut order);
            found.push((
                g,
                Lane {
                    name: a.to_owned(),
                    group: g,
                    volume: false,
                },
            ));
        }
        for v in &scenario.volumes {
            let holder = v
                .host
                .as_deref()
                .map(|h| ("host", h))
                .or(v.file_server.as_deref().map(|f| ("file server", f)));
            let g = holder
                .and_then(|(kind, name)| {
                    order.iter().position(|g| g.kind == kind && g.name == name)
                })
                .unwrap_or_else(|| {
                    order
                        .iter()
                        .position(|g| g.kind == "storage")
                        .unwrap_or_else(|| {
                            order.push(Group {
                                kind: "storage",
                                name: String::new(),
                            });
                            order.len() - 1
                        })
                });
            found.push((
                g,
                Lane {
                    name: v.name.clone(),
                    group: g,
                    volume: true,
                },
            ));
        }
        // Keep the groups that have lanes, in `order`; within a group, actors then volumes,
        // each in the order found.
        let mut layout = Layout::default();
        for (gi, g) in order.into_iter().enumerate() {
            let mut members: Vec<Lane> = found
                .iter()
                .filter(|(i, _)| *i == gi)
                .map(|(_, l)| l.clone())
                .collect();
            if members.is_empty() {
                continue;
            }
            members.sort_by_key(|l| l.volume);
            let group = layout.groups.len();
            layout.groups.push(g);
            for mut l in members {
                l.group = group;
                let index = layout.lanes.len();
                if l.volume {
                    layout.volume_lane.insert(l.name.clone(), index);
                } else {
                    layout.actor_lane.insert(l.name.clone(), index);
                }
                layout.lanes.push(l);
            }
        }
        layout
    }

    /// The lane of an actor.
    pub fn actor(&self, name: &str) -> Option<usize> {
        self.actor_lane.get(name).copied()
    }

    /// The lane of a volume.
    pub fn volume(&self, name: &str) -> Option<usize> {
        self.volume_lane.get(name).copied()
    }
}
