//! Field failure 10: a writer's backup session opens with PrepareForBackup and must be
//! closed with BackupComplete or Abort; VSS garbage-collects a session left open only
//! after two days, holding the writer meanwhile. The requester must always close what it
//! opened: every writer that got OnPrepareBackup later gets OnBackupComplete or OnAbort.
//! Judged from deliveries alone.

use std::collections::BTreeMap;

use crate::protocol::msg::Msg;
use crate::protocol::vss::WriterEvent;
use crate::sched::{ActorId, Delivery};

/// A writer session the run left open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSession {
    /// The step of its OnPrepareBackup.
    pub step: u64,
    pub writer: ActorId,
    pub service: ActorId,
}

impl OpenSession {
    pub fn describe(&self, names: &[String]) -> String {
        let name = |id: ActorId| names.get(id.index()).map_or("?", String::as_str);
        format!(
            "step {}: {} got OnPrepareBackup from {} and never OnBackupComplete or OnAbort \
             (its session stays open until VSS collects it two days later; field failure 10)",
            self.step,
            name(self.writer),
            name(self.service)
        )
    }
}

/// The checker of one run.
#[derive(Debug, Default)]
pub struct Sessions {
    open: BTreeMap<ActorId, OpenSession>,
    opened: u64,
}

impl Sessions {
    pub fn delivered(&mut self, d: &Delivery<'_, Msg>) {
        let (Msg::Writer { event, .. }, Some(service)) = (d.msg, d.sender()) else {
            return;
        };
        match event {
            WriterEvent::OnPrepareBackup => {
                self.opened += 1;
                self.open.insert(
                    d.to,
                    OpenSession {
                        step: d.step,
                        writer: d.to,
                        service,
                    },
                );
            }
            WriterEvent::OnBackupComplete | WriterEvent::OnAbort => {
                self.open.remove(&d.to);
            }
            _ => {}
        }
    }

    /// Sessions still open, in writer order.
    pub fn open(&self) -> Vec<&OpenSession> {
        self.open.values().collect()
    }

    /// "4 writer session(s) closed".
    pub fn compared(&self) -> String {
        format!(
            "{} writer session(s) opened, {} closed",
            self.opened,
            self.opened - self.open.len() as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::Origin;

    fn tell(s: &mut Sessions, step: u64, writer: u32, event: WriterEvent) {
        let msg = Msg::Writer { event, set: 1 };
        s.delivered(&Delivery {
            step,
            time_us: step,
            to: ActorId::new(writer),
            origin: Origin::Actor(ActorId::new(9)),
            msg: &msg,
        });
    }

    #[test]
    fn a_session_is_closed_by_backup_complete_or_abort_and_open_otherwise() {
        let mut s = Sessions::default();
        tell(&mut s, 1, 1, WriterEvent::OnPrepareBackup);
        tell(&mut s, 2, 2, WriterEvent::OnPrepareBackup);
        tell(&mut s, 3, 3, WriterEvent::OnPrepareBackup);
        tell(&mut s, 4, 1, WriterEvent::OnBackupComplete);
        tell(&mut s, 5, 2, WriterEvent::OnAbort);
        tell(&mut s, 6, 3, WriterEvent::OnPostSnapshot);
        let open: Vec<(u64, ActorId)> = s.open().iter().map(|o| (o.step, o.writer)).collect();
        assert_eq!(open, [(3, ActorId::new(3))]);
        assert_eq!(s.compared(), "3 writer session(s) opened, 2 closed");
        let names: Vec<String> = (0..10).map(|i| format!("A{i}")).collect();
        assert!(s.open()[0]
            .describe(&names)
            .starts_with("step 3: A3 got OnPrepareBackup from A9 and never"));
    }
}
