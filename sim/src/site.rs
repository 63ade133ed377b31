//! What the actors of a run share, owned by the scheduler: the world (storage, VMs, the
//! oracle and its observer), the backup server, and the checkers that watch every step
//! (`watch`). The world knows nothing of backups; the site reads as the world (`Deref`),
//! so a handler writes `cx.world.vms` and `cx.world.server` alike.

use std::ops::{Deref, DerefMut};

use crate::backup::BackupServer;
use crate::protocol::msg::Msg;
use crate::sched::{Delivery, World};
use crate::watch::Watch;
use crate::world::Lab;

/// The scheduler's world of a simulated run.
pub struct Site {
    pub lab: Lab,
    /// The backup server: replicas, recovery points and their figures, checks, restores.
    pub server: BackupServer,
    /// The checkers, fed by the scheduler only: private, so no actor writes here.
    watch: Watch,
}

impl Site {
    pub fn new(lab: Lab) -> Self {
        Site {
            watch: Watch::new(&lab.scenario),
            lab,
            server: BackupServer::default(),
        }
    }
}

impl Site {
    /// What the run's checkers saw.
    pub fn watch(&self) -> &Watch {
        &self.watch
    }

    /// While the world is built: `service` is the VSS service of VM `vm`'s guest (see
    /// [`Watch::guest_vss`]).
    pub fn watch_guest_writers(&mut self, vm: usize, writers: &[crate::sched::ActorId]) {
        self.watch.guest_writers(vm, writers);
    }
}

impl Deref for Site {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

impl DerefMut for Site {
    fn deref_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }
}

impl World<Msg> for Site {
    fn delivered(&mut self, delivery: &Delivery<'_, Msg>) {
        self.watch.delivered(delivery);
    }

    fn after_step(&mut self, step: u64) {
        let point = self.server.points.last().map_or(0, |p| p.number);
        self.lab.observe(step, point);
        self.watch.after_step(&self.lab.vms);
    }

    /// The watch is left out: it only looks.
    fn digest(&self, h: &mut blake3::Hasher) {
        self.lab.digest(h);
        self.server.digest(h);
    }
}
