//! The host's Hyper-V parties: the Hyper-V VSS writer and VMMS (F1–F3, R1–R8).

pub mod csv;
pub mod migration;
pub mod replica;
pub mod vmms;
pub mod wmi;
pub mod writer;

pub use vmms::{
    Quiesce, Recovery, VmmsCore, VmmsEffect, VmmsPort, VmmsTimer, VmmsVm, WaitKey, Waiting,
    CHECKPOINT_US, MERGE_STEP_US, RESUME_US, SAVE_US,
};
pub use writer::{
    Image, Readiness, WriterCore, WriterEffect, WriterPort, WriterStep, WriterVm, HANDLE_US,
    WRITER_ID,
};
