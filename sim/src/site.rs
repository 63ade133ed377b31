//! What the actors of a run share, owned by the scheduler: the world (storage, VMs, the
//! oracle and its observer) and the backup server. The two stay apart so the world knows
//! nothing of backups; the site reads as the world (`Deref`), so a handler writes
//! `cx.world.vms` and `cx.world.server` alike.

use std::ops::{Deref, DerefMut};

use crate::backup::BackupServer;
use crate::sched::World;
use crate::world::Lab;

/// The scheduler's world of a simulated run.
pub struct Site {
    pub lab: Lab,
    /// The backup server: replicas, recovery points and their figures, checks, restores.
    pub server: BackupServer,
}

impl Site {
    pub fn new(lab: Lab) -> Self {
        Site {
            lab,
            server: BackupServer::default(),
        }
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

impl World for Site {
    fn after_step(&mut self, step: u64) {
        let point = self.server.points.last().map_or(0, |p| p.number);
        self.lab.observe(step, point);
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        self.lab.digest(h);
        self.server.digest(h);
    }
}
