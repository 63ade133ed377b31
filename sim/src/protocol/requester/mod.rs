//! The requester's decisions: the backup application's side of every flow (SPEC F1–F5,
//! R16–R18). Which VSS call or Vmms job comes next and to which host, what is read, when
//! a recovery point is made, restored or the job fails, with which code. Pure: an
//! [`Input`] in, [`Effect`]s out; `actors::Requester` applies them to the world.

mod effect;
mod input;
mod job;
mod lane;
mod limits;
mod retry;
mod sequence;
mod task;

#[cfg(test)]
mod tests;

pub use effect::Effect;
pub use input::Input;
pub use job::{Job, JobVm};
pub use limits::{admits, Footprint};
pub use retry::{retryable, MAX_RETRIES, RETRY_WAIT_US};
pub use sequence::{RequesterCore, POINT_INTERVAL_US};
pub use task::{plan_tasks, Task};
