//! The real Hyper-V host's side of the Backend seam, for Windows Server 2016 and later
//! (WMI `root\virtualization\v2`) and, for 2008 R2–2012 R2, a VSS requester on the host.
//!
//! What the host answers is decoded here into the model's vocabulary, so a real run's
//! trace says what a simulated one says (the seam's observations, see `backend`):
//!
//! - [`method_result`]: a Hyper-V WMI method's `ReturnValue` (0 completed, 4096 job
//!   started, 32768 and up an error) → done, a job to poll, or a [`Fail`];
//! - [`concrete_job`]: an `Msvm_ConcreteJob`'s `JobState` (2..=12) and `ErrorCode` /
//!   `ErrorDescription` → still running, completed, or a [`Fail`] (F3.3, FF39);
//! - [`snapshot_settings`]: the `Msvm_VirtualSystemSnapshotSettingData` embedded instance
//!   `CreateSnapshot` takes, with its consistency level (F3.3, SnapshotType 32768);
//! - [`rct`]: `Msvm_ImageManagementService.GetVirtualDiskChanges`' changed ranges (RCT,
//!   the incremental read of R18) checked and merged;
//! - [`wbem`]: a failed WMI call's HRESULT by its constant's name, with what to check
//!   (no Hyper-V WMI namespace, access denied, host unreachable);
//! - [`writer_status`]: `IVssBackupComponents::GetWriterStatus`' `VSS_WRITER_STATE` and
//!   failure HRESULT (GatherWriterStatus) → the model's `WriterState` and [`Fail`];
//! - [`vss_call`]: a host plan's `IVssBackupComponents` steps as typed requests, and a
//!   failed call's HRESULT as the model's VSS_E_* code;
//! - [`powershell`]: a script's `-EncodedCommand` (UTF-16LE, base64) and the collection
//!   script's output read as a host inventory; running `powershell.exe` is Windows only.
//!
//! Everything above is plain data and is tested on every platform. The calls themselves
//! are Windows only: `client` through the `wmi` crate, `vss_requester` (the 2008 R2–2012
//! R2 requester, not yet run on a real host) through winapi's `um::vsbackup`.
//!
//! [`Fail`]: crate::protocol::Fail

pub mod concrete_job;
pub mod method_result;
pub mod powershell;
pub mod rct;
pub mod snapshot_settings;
pub mod vss_call;
pub mod wbem;
pub mod writer_status;

#[cfg(windows)]
pub mod client;
#[cfg(windows)]
pub mod vss_requester;
