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
    match (spec, dpm_spec(lab, vm, stage)) {
        ("", "") => {}
        (one, "") | ("", one) => out.detail("spec", one),
        (spec, dpm) => out.detail("spec", format!("{spec} {dpm}")),
    }
}

/// F5's snapshot phase (DPM 2007 SP1, whose Hyper-V hosts run 2008 R2) is F1's steps as
/// the protection agent drives them: on such a host they carry F5's ids too.
fn dpm_spec(lab: &Lab, vm: usize, stage: Stage) -> &'static str {
    let Some(plan) = lab.plans.get(&vm) else {
        return "";
    };
    let on_2008_r2 = lab
        .scenario
        .host(&lab.vms[vm].host)
        .is_some_and(|h| h.version == crate::scenario::HyperVVersion::V2008R2);
    if plan.flow != crate::plan::Flow::F1 || !on_2008_r2 {
        return "";
    }
    let online = plan.method != crate::plan::Method::SavedState;
    match stage {
        Stage::Request => "F5.1-F5.2",
        Stage::GuestRequest if online => "F5.3 F5.4b",
        Stage::WriterPrepare if online => "F5.5-F5.6",
        _ => "",
    }
}
