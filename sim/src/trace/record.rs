//! Recording a run: the scheduler's steps written to a trace as they are taken.

use std::io::Write;

use super::TraceWriter;
use crate::sched::{Message, Scheduler, SimError, Stop, World};

impl<M: Message, W: World<M>> Scheduler<M, W> {
    /// Like [`Scheduler::run_until_quiet`], writing each step and the end line to `trace`
    /// (the caller has written the header when creating it).
    pub fn run_traced<T: Write>(
        &mut self,
        max_steps: u64,
        trace: &mut TraceWriter<T>,
    ) -> Result<Stop, SimError> {
        self.set_recording(true);
        let stop = self.run_with(max_steps, |_, record, names, _| {
            trace.write_step(record, names).map_err(SimError::from)
        })?;
        trace.write_end(stop, self.steps())?;
        Ok(stop)
    }
}
