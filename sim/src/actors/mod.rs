//! The parties of the protocol (SPEC.md's actor table), one module each. `HostVss` and
//! `GuestVss` are both [`VssService`].

mod file_server_vss;
mod fss;
mod guest_writer;
mod hv_ic;
mod hyperv_writer;
mod linux_daemon;
mod providers;
mod requester;
mod vmms;
mod vss_service;
mod workload;

pub use file_server_vss::{FileServerProvider, FileServerVss, FileServerWriter};
pub use fss::{FssAgentActor, FssProvider};
pub use guest_writer::GuestWriter;
pub use hv_ic::HvIc;
pub use hyperv_writer::HyperVWriter;
pub use linux_daemon::LinuxVssDaemon;
pub use providers::{GuestProvider, GuestProviderKind, HostProvider};
pub use requester::Requester;
pub use vmms::Vmms;
pub use vss_service::VssService;
pub use workload::{Workload, WORKLOAD_CAP_US};

use crate::plan::Stage;
use crate::protocol::msg::Msg;
use crate::sched::Out;
use crate::world::Lab;

/// Adds the SPEC.md item of `stage` of `vm`'s flow to the current step's details.
pub(crate) fn tag(lab: &Lab, out: &mut Out<'_, Msg>, vm: usize, stage: Stage) {
    let spec = lab.spec(vm, stage);
    if !spec.is_empty() {
        out.detail("spec", spec);
    }
}
