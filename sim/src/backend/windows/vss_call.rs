//! A host plan's `IVssBackupComponents` steps (`Action::VssCall`) as typed requests the
//! requester executes, and an `IVssBackupComponents` call's failure HRESULT as the model's
//! code. Plain data: tested on every platform; the calls are `vss_requester`'s (Windows).
//!
//! The plan prints each call with its arguments in the API's spelling
//! (`SetContext(lContext=VSS_CTX_BACKUP)`); [`VssStep::parse`] reads exactly what the plan
//! writes and refuses anything else by name, so a plan the requester cannot execute is
//! found before a host is touched. Arguments the API computes (the snapshot set's id, a
//! VM's component GUID, a shadow copy's id) stay symbolic: the requester resolves them on
//! the host (`(out) set 1` is the id StartSnapshotSet returns, `(Get-VM -Name 'app01').Id`
//! is the VM's GUID, "the shadow copy of D:\" the id AddToSnapshotSet returned for it).

use std::fmt;

use crate::protocol::Fail;
use crate::scenario::{FailureClass, Hresult};

/// `VSS_CTX_BACKUP` (vss.h `_VSS_SNAPSHOT_CONTEXT`).
pub const VSS_CTX_BACKUP: i32 = 0;
/// `VSS_VOLSNAP_ATTR_TRANSPORTABLE` (vss.h `_VSS_VOLUME_SNAPSHOT_ATTRIBUTES`): a set the
/// proxy imports (R9, off-host).
pub const VSS_VOLSNAP_ATTR_TRANSPORTABLE: i32 = 0x20;

/// `VSS_BACKUP_TYPE` (vss.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackupType {
    Full,
    Incremental,
    Differential,
    Log,
    Copy,
}

impl BackupType {
    pub const ALL: [BackupType; 5] = [
        BackupType::Full,
        BackupType::Incremental,
        BackupType::Differential,
        BackupType::Log,
        BackupType::Copy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BackupType::Full => "VSS_BT_FULL",
            BackupType::Incremental => "VSS_BT_INCREMENTAL",
            BackupType::Differential => "VSS_BT_DIFFERENTIAL",
            BackupType::Log => "VSS_BT_LOG",
            BackupType::Copy => "VSS_BT_COPY",
        }
    }

    /// The enum's value in vss.h (VSS_BT_UNDEFINED is 0, VSS_BT_OTHER 6).
    pub fn value(self) -> u32 {
        match self {
            BackupType::Full => 1,
            BackupType::Incremental => 2,
            BackupType::Differential => 3,
            BackupType::Log => 4,
            BackupType::Copy => 5,
        }
    }
}

/// `VSS_COMPONENT_TYPE` (vswriter.h): the Hyper-V writer's VMs are file groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentType {
    Database,
    Filegroup,
}

impl ComponentType {
    pub fn name(self) -> &'static str {
        match self {
            ComponentType::Database => "VSS_CT_DATABASE",
            ComponentType::Filegroup => "VSS_CT_FILEGROUP",
        }
    }

    /// The enum's value in vswriter.h (VSS_CT_UNDEFINED is 0).
    pub fn value(self) -> u32 {
        match self {
            ComponentType::Database => 1,
            ComponentType::Filegroup => 2,
        }
    }
}

/// A component's name as the plan gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComponentName {
    /// `(Get-VM -Name 'app01').Id`: the Hyper-V writer names a VM's component by the VM's
    /// GUID, which the host knows and the plan does not.
    VmId { vm: String },
    /// A literal name (a GUID the caller already resolved).
    Literal(String),
}

/// A writer's component, as AddComponent and SetBackupSucceeded take it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    /// `{66841cd4-…}`, with braces, as the plan prints it.
    pub writer_id: String,
    pub component_type: ComponentType,
    /// `wszLogicalPath`; `NULL` is None.
    pub logical_path: Option<String>,
    pub name: ComponentName,
}

/// One `IVssBackupComponents` call of a plan, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VssRequest {
    /// `bstrXML=NULL`: a new session, no saved backup document.
    InitializeForBackup,
    /// `lContext`: VSS_CTX_BACKUP, with VSS_VOLSNAP_ATTR_TRANSPORTABLE off-host.
    SetContext {
        context: i32,
    },
    SetBackupState {
        select_components: bool,
        bootable_system_state: bool,
        backup_type: BackupType,
        partial_file_support: bool,
    },
    /// Asynchronous.
    GatherWriterMetadata,
    /// The writer's metadata is read for these VMs' components (their ids, files).
    GetWriterMetadata {
        writer_id: String,
        vms: Vec<String>,
    },
    /// `(out) set N`: the id is the host's; N is the model's number for it.
    StartSnapshotSet {
        set: u64,
    },
    AddComponent(Component),
    /// `ProviderId=GUID_NULL`: VSS chooses the provider.
    AddToSnapshotSet {
        volume: String,
    },
    /// Asynchronous.
    PrepareForBackup,
    /// Asynchronous. `host_side` is the plan's note of what the host does meanwhile.
    DoSnapshotSet {
        host_side: Option<String>,
    },
    /// Asynchronous.
    GatherWriterStatus,
    /// Every writer's status; `must_be_stable` names the writer (id) the plan requires in
    /// VSS_WS_STABLE.
    GetWriterStatus {
        must_be_stable: Option<String>,
    },
    /// The shadow copy of `volume` (the one AddToSnapshotSet returned for it).
    GetSnapshotProperties {
        volume: String,
    },
    SetBackupSucceeded {
        component: Component,
        succeeded: bool,
    },
    /// Asynchronous.
    BackupComplete,
    AbortBackup,
    /// The backup-components object released: its non-persistent set `set` goes with it.
    Release {
        set: Option<u64>,
    },
}

impl VssRequest {
    /// The `IVssBackupComponents` method (Release is IUnknown's).
    pub fn method(&self) -> &'static str {
        match self {
            VssRequest::InitializeForBackup => "InitializeForBackup",
            VssRequest::SetContext { .. } => "SetContext",
            VssRequest::SetBackupState { .. } => "SetBackupState",
            VssRequest::GatherWriterMetadata => "GatherWriterMetadata",
            VssRequest::GetWriterMetadata { .. } => "GetWriterMetadata",
            VssRequest::StartSnapshotSet { .. } => "StartSnapshotSet",
            VssRequest::AddComponent(_) => "AddComponent",
            VssRequest::AddToSnapshotSet { .. } => "AddToSnapshotSet",
            VssRequest::PrepareForBackup => "PrepareForBackup",
            VssRequest::DoSnapshotSet { .. } => "DoSnapshotSet",
            VssRequest::GatherWriterStatus => "GatherWriterStatus",
            VssRequest::GetWriterStatus { .. } => "GetWriterStatus",
            VssRequest::GetSnapshotProperties { .. } => "GetSnapshotProperties",
            VssRequest::SetBackupSucceeded { .. } => "SetBackupSucceeded",
            VssRequest::BackupComplete => "BackupComplete",
            VssRequest::AbortBackup => "AbortBackup",
            VssRequest::Release { .. } => "Release",
        }
    }

    /// The calls that answer with an `IVssAsync` the requester waits on.
    pub fn is_async(&self) -> bool {
        matches!(
            self,
            VssRequest::GatherWriterMetadata
                | VssRequest::PrepareForBackup
                | VssRequest::DoSnapshotSet { .. }
                | VssRequest::GatherWriterStatus
                | VssRequest::BackupComplete
        )
    }

    /// A volume the plan could not name on the host (`<hv1-D>\`: no inventory gave its
    /// path), which no real call can take.
    pub fn unresolved_volume(&self) -> Option<&str> {
        match self {
            VssRequest::AddToSnapshotSet { volume }
            | VssRequest::GetSnapshotProperties { volume }
                if volume.starts_with('<') =>
            {
                Some(volume)
            }
            _ => None,
        }
    }
}

/// A plan step: its recovery point (`point 2: DoSnapshotSet`, when the job makes more
/// than one) and the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VssStep {
    pub point: Option<u32>,
    pub request: VssRequest,
}

/// Why a plan step is no request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VssCallError {
    #[error("IVssBackupComponents::{method}: not a call this requester makes")]
    UnknownMethod { method: String },
    #[error("IVssBackupComponents::{method}: unknown argument {arg}")]
    UnknownArg { method: String, arg: String },
    #[error("IVssBackupComponents::{method}: argument {arg} is missing")]
    MissingArg { method: String, arg: String },
    #[error("IVssBackupComponents::{method}: {arg}={value}: {why}")]
    BadValue {
        method: String,
        arg: String,
        value: String,
        why: String,
    },
}

/// The arguments of one step, each taken once; what is left over is refused.
struct Args<'a> {
    method: &'a str,
    args: Vec<(&'a str, &'a str)>,
}

impl<'a> Args<'a> {
    fn take(&mut self, name: &str) -> Option<&'a str> {
        let i = self.args.iter().position(|(n, _)| *n == name)?;
        Some(self.args.remove(i).1)
    }

    fn need(&mut self, name: &str) -> Result<&'a str, VssCallError> {
        self.take(name).ok_or_else(|| VssCallError::MissingArg {
            method: self.method.to_string(),
            arg: name.to_string(),
        })
    }

    fn bad(&self, arg: &str, value: &str, why: impl Into<String>) -> VssCallError {
        VssCallError::BadValue {
            method: self.method.to_string(),
            arg: arg.to_string(),
            value: value.to_string(),
            why: why.into(),
        }
    }

    fn boolean(&mut self, name: &str) -> Result<bool, VssCallError> {
        match self.need(name)? {
            "TRUE" => Ok(true),
            "FALSE" => Ok(false),
            v => Err(self.bad(name, v, "not TRUE or FALSE")),
        }
    }

    fn guid(&mut self, name: &str) -> Result<String, VssCallError> {
        let v = self.need(name)?;
        if is_guid(v) {
            Ok(v.to_string())
        } else {
            Err(self.bad(name, v, "not a {GUID}"))
        }
    }

    fn component(&mut self, logical_path: bool) -> Result<Component, VssCallError> {
        let writer_id = self.guid("writerId")?;
        let ct = self.need("ct")?;
        let component_type = match ct {
            "VSS_CT_FILEGROUP" => ComponentType::Filegroup,
            "VSS_CT_DATABASE" => ComponentType::Database,
            v => return Err(self.bad("ct", v, "not a VSS_COMPONENT_TYPE")),
        };
        let logical_path = if logical_path {
            match self.need("wszLogicalPath")? {
                "NULL" => None,
                p => Some(p.to_string()),
            }
        } else {
            None
        };
        let n = self.need("wszComponentName")?;
        let name = if let Some(vm) = n
            .strip_prefix("(Get-VM -Name '")
            .and_then(|r| r.strip_suffix("').Id"))
            .filter(|vm| !vm.is_empty() && !vm.contains('\''))
        {
            ComponentName::VmId { vm: vm.to_string() }
        } else if is_guid(n) || is_bare_guid(n) {
            ComponentName::Literal(n.to_string())
        } else {
            return Err(self.bad(
                "wszComponentName",
                n,
                "neither (Get-VM -Name '<vm>').Id nor a GUID",
            ));
        };
        Ok(Component {
            writer_id,
            component_type,
            logical_path,
            name,
        })
    }

    /// `set N` at the start of `v` after `prefix`.
    fn set(&self, arg: &str, v: &str, prefix: &str) -> Result<u64, VssCallError> {
        let rest = v
            .strip_prefix(prefix)
            .ok_or_else(|| self.bad(arg, v, format!("does not start with \"{prefix}\"")))?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = &rest[digits.len()..];
        if digits.is_empty() || !(after.is_empty() || after.starts_with(" (")) {
            return Err(self.bad(arg, v, "no snapshot set number"));
        }
        digits
            .parse()
            .map_err(|_| self.bad(arg, v, "snapshot set number out of range"))
    }

    fn done(self) -> Result<(), VssCallError> {
        match self.args.first() {
            None => Ok(()),
            Some((n, _)) => Err(VssCallError::UnknownArg {
                method: self.method.to_string(),
                arg: n.to_string(),
            }),
        }
    }
}

fn is_bare_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_guid(s: &str) -> bool {
    s.strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .is_some_and(is_bare_guid)
}

/// `lContext`: `|`-joined names of VSS_CTX_BACKUP and the volume attributes the plan uses.
fn context(a: &Args<'_>, v: &str) -> Result<i32, VssCallError> {
    let mut ctx = None;
    let mut attrs = 0;
    for part in v.split('|').map(str::trim) {
        match part {
            "VSS_CTX_BACKUP" if ctx.is_none() => ctx = Some(VSS_CTX_BACKUP),
            "VSS_VOLSNAP_ATTR_TRANSPORTABLE" => attrs |= VSS_VOLSNAP_ATTR_TRANSPORTABLE,
            p => return Err(a.bad("lContext", v, format!("{p} is not a context it takes"))),
        }
    }
    match ctx {
        Some(c) => Ok(c | attrs),
        None => Err(a.bad("lContext", v, "no VSS_CTX_BACKUP")),
    }
}

impl VssStep {
    /// A plan step's method (`point 2: DoSnapshotSet`) and its `(name, value)` arguments.
    pub fn parse<'a>(
        method: &'a str,
        args: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<VssStep, VssCallError> {
        let (point, method) = match method.strip_prefix("point ") {
            Some(rest) => {
                let (n, m) = rest.split_once(": ").ok_or(VssCallError::UnknownMethod {
                    method: method.to_string(),
                })?;
                let n = n.parse().map_err(|_| VssCallError::UnknownMethod {
                    method: method.to_string(),
                })?;
                (Some(n), m)
            }
            None => (None, method),
        };
        let mut a = Args {
            method,
            args: args.into_iter().collect(),
        };
        let request = match method {
            "InitializeForBackup" => {
                let x = a.need("bstrXML")?;
                if x != "NULL" {
                    return Err(a.bad("bstrXML", x, "a saved backup document is not supported"));
                }
                VssRequest::InitializeForBackup
            }
            "SetContext" => {
                let v = a.need("lContext")?;
                VssRequest::SetContext {
                    context: context(&a, v)?,
                }
            }
            "SetBackupState" => {
                let select_components = a.boolean("bSelectComponents")?;
                let bootable_system_state = a.boolean("bBackupBootableSystemState")?;
                let t = a.need("backupType")?;
                let backup_type = BackupType::ALL
                    .into_iter()
                    .find(|b| b.name() == t)
                    .ok_or_else(|| a.bad("backupType", t, "not a VSS_BACKUP_TYPE"))?;
                let partial_file_support = a.boolean("bPartialFileSupport")?;
                VssRequest::SetBackupState {
                    select_components,
                    bootable_system_state,
                    backup_type,
                    partial_file_support,
                }
            }
            "GatherWriterMetadata" => VssRequest::GatherWriterMetadata,
            "GetWriterMetadata" => {
                let w = a.need("writer")?;
                let writer_id = w
                    .rsplit_once(' ')
                    .map(|(_, id)| id)
                    .filter(|id| is_guid(id))
                    .ok_or_else(|| a.bad("writer", w, "does not end with the writer's {GUID}"))?
                    .to_string();
                let c = a.need("components")?;
                let list = c
                    .strip_prefix("the VMs ")
                    .ok_or_else(|| a.bad("components", c, "not \"the VMs '<vm>', …\""))?;
                let mut vms = Vec::new();
                for q in list.split(", ") {
                    match q.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
                        Some(vm) if !vm.is_empty() && !vm.contains('\'') => {
                            vms.push(vm.to_string())
                        }
                        _ => return Err(a.bad("components", c, "a VM name is not quoted")),
                    }
                }
                VssRequest::GetWriterMetadata { writer_id, vms }
            }
            "StartSnapshotSet" => {
                let v = a.need("pSnapshotSetId")?;
                VssRequest::StartSnapshotSet {
                    set: a.set("pSnapshotSetId", v, "(out) set ")?,
                }
            }
            "AddComponent" => VssRequest::AddComponent(a.component(true)?),
            "AddToSnapshotSet" => {
                let volume = a.need("pwszVolumeName")?.to_string();
                if volume.is_empty() {
                    return Err(a.bad("pwszVolumeName", "", "empty"));
                }
                let p = a.need("ProviderId")?;
                if p != "GUID_NULL" {
                    return Err(a.bad("ProviderId", p, "only GUID_NULL (VSS chooses)"));
                }
                VssRequest::AddToSnapshotSet { volume }
            }
            "PrepareForBackup" => VssRequest::PrepareForBackup,
            "DoSnapshotSet" => VssRequest::DoSnapshotSet {
                host_side: a.take("host side").map(str::to_string),
            },
            "GatherWriterStatus" => VssRequest::GatherWriterStatus,
            "GetWriterStatus" => {
                let w = a.need("writer")?;
                let must_be_stable = match w.strip_prefix("each") {
                    Some("") => None,
                    Some(rest) => Some(
                        rest.strip_prefix("; the Hyper-V writer ")
                            .and_then(|r| r.strip_suffix(" must be VSS_WS_STABLE"))
                            .filter(|id| is_guid(id))
                            .ok_or_else(|| {
                                a.bad(
                                    "writer",
                                    w,
                                    "not \"each; the Hyper-V writer {GUID} must be VSS_WS_STABLE\"",
                                )
                            })?
                            .to_string(),
                    ),
                    None => return Err(a.bad("writer", w, "not \"each\"")),
                };
                VssRequest::GetWriterStatus { must_be_stable }
            }
            "GetSnapshotProperties" => {
                let s = a.need("SnapshotId")?;
                let volume = s
                    .strip_prefix("the shadow copy of ")
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| a.bad("SnapshotId", s, "not \"the shadow copy of <volume>\""))?
                    .to_string();
                if let Some(r) = a.take("reads") {
                    if r != "m_pwszSnapshotDeviceObject" {
                        return Err(a.bad("reads", r, "only m_pwszSnapshotDeviceObject is read"));
                    }
                }
                VssRequest::GetSnapshotProperties { volume }
            }
            "SetBackupSucceeded" => {
                let component = a.component(false)?;
                // The SDK's own spelling of the parameter.
                let succeeded = a.boolean("bSucceded")?;
                VssRequest::SetBackupSucceeded {
                    component,
                    succeeded,
                }
            }
            "BackupComplete" => VssRequest::BackupComplete,
            "AbortBackup" => VssRequest::AbortBackup,
            "Release" => {
                let d = a.need("deletes")?;
                VssRequest::Release {
                    set: Some(a.set("deletes", d, "snapshot set ")?),
                }
            }
            // The model's name for the release of the backup-components object.
            "BackupShutdown" => VssRequest::Release { set: None },
            m => {
                return Err(VssCallError::UnknownMethod {
                    method: m.to_string(),
                })
            }
        };
        a.done()?;
        Ok(VssStep { point, request })
    }
}

impl fmt::Display for VssStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = self.point {
            write!(f, "point {p}: ")?;
        }
        f.write_str(self.request.method())
    }
}

/// A GUID's fields (`VSS_ID`), as the plan prints it (`{66841cd4-6ded-4f4b-8f17-fd23f8ddc3de}`)
/// and as COM lays it out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Guid {
    pub data1: u32,
    pub data2: u16,
    pub data3: u16,
    pub data4: [u8; 8],
}

impl Guid {
    /// `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`, braces optional, either case.
    pub fn parse(s: &str) -> Option<Guid> {
        let bare = s
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .unwrap_or(s);
        if !is_bare_guid(bare) {
            return None;
        }
        let hex: String = bare.chars().filter(|c| *c != '-').collect();
        let byte = |i: usize| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok();
        let mut data4 = [0u8; 8];
        for (i, b) in data4.iter_mut().enumerate() {
            *b = byte(8 + i)?;
        }
        Some(Guid {
            data1: u32::from_str_radix(&hex[0..8], 16).ok()?,
            data2: u16::from_str_radix(&hex[8..12], 16).ok()?,
            data3: u16::from_str_radix(&hex[12..16], 16).ok()?,
            data4,
        })
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.data4;
        write!(
            f,
            "{{{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}}}",
            self.data1, self.data2, self.data3, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
        )
    }
}

/// The codes a failed `IVssBackupComponents` call (or its IVssAsync) can carry that the
/// model names: the VSS_E_* of vsserror.h and the COM/Win32 HRESULTs it knows. The
/// model's other codes are not HRESULTs of these calls (WMI job codes, WAIT_TIMEOUT,
/// hv_vss_daemon's HV_E_FAIL: E_FAIL from VSS stays unnamed).
pub fn call_codes() -> impl Iterator<Item = Hresult> {
    Hresult::ALL.iter().copied().filter(|h| {
        let name = h.as_str();
        (name.starts_with("VSS_E_") || name.starts_with("E_") || name.starts_with("ERROR_"))
            && h.value() & 0x8000_0000 != 0
    })
}

/// The model's code for an `IVssBackupComponents` HRESULT, when it names it.
pub fn call_code(hr: u32) -> Option<Hresult> {
    call_codes().find(|h| h.value() == hr)
}

/// A failed call as the model's failure: its code when the model names the HRESULT,
/// else VSS_E_UNEXPECTED with the value kept in the text. The requester's VSS runs on the
/// host: the failure is the host's.
pub fn call_failure(call: &str, hr: u32) -> Fail {
    let (code, text) = match call_code(hr) {
        Some(h) => (h, h.as_str().to_string()),
        None => (Hresult::VssEUnexpected, format!("0x{hr:08X}")),
    };
    Fail::new(code, FailureClass::Host, format!("{call}: {text}"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::backend::hyperv::{Action, HostPlan};
    use crate::scenario::Scenario;

    fn library(name: &str) -> Scenario {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios")
            .join(format!("{name}.toml"));
        Scenario::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn vss_steps(s: &Scenario) -> Vec<Result<VssStep, VssCallError>> {
        let plan = HostPlan::build(s, None).expect("plan");
        plan.steps
            .iter()
            .filter_map(|st| match &st.action {
                Action::VssCall { method, args, .. } => Some(VssStep::parse(
                    method,
                    args.iter().map(|a| (a.name.as_str(), a.value.as_str())),
                )),
                _ => None,
            })
            .collect()
    }

    const HV: &str = "{66841cd4-6ded-4f4b-8f17-fd23f8ddc3de}";

    fn vm_component(vm: &str) -> Component {
        Component {
            writer_id: HV.into(),
            component_type: ComponentType::Filegroup,
            logical_path: None,
            name: ComponentName::VmId { vm: vm.into() },
        }
    }

    /// F2's plan (2012 R2, one VM through the Hyper-V writer), step by step.
    #[test]
    fn the_f2_plan_parses_into_the_requesters_calls_in_order() {
        let steps: Vec<VssRequest> = vss_steps(&library("f2-online-backup-checkpoint"))
            .into_iter()
            .map(|r| r.expect("parses").request)
            .collect();
        let expected = vec![
            VssRequest::InitializeForBackup,
            VssRequest::SetContext {
                context: VSS_CTX_BACKUP,
            },
            VssRequest::SetBackupState {
                select_components: true,
                bootable_system_state: false,
                backup_type: BackupType::Full,
                partial_file_support: false,
            },
            VssRequest::GatherWriterMetadata,
            VssRequest::GetWriterMetadata {
                writer_id: HV.into(),
                vms: vec!["app01".into()],
            },
            VssRequest::StartSnapshotSet { set: 1 },
            VssRequest::AddComponent(vm_component("app01")),
            VssRequest::AddToSnapshotSet {
                volume: r"<hv1-D>\".into(),
            },
            VssRequest::PrepareForBackup,
        ];
        assert_eq!(steps[..expected.len()], expected[..]);
        let rest: Vec<&str> = steps[expected.len()..]
            .iter()
            .map(VssRequest::method)
            .collect();
        assert_eq!(
            rest,
            [
                // The writers' status after each asynchronous call (F2.3, F2.13, F2.14).
                "GatherWriterStatus",
                "GetWriterStatus",
                "DoSnapshotSet",
                "GatherWriterStatus",
                "GetWriterStatus",
                "GetSnapshotProperties",
                "SetBackupSucceeded",
                "BackupComplete",
                "GatherWriterStatus",
                "GetWriterStatus",
                "Release"
            ]
        );
        assert_eq!(
            steps[expected.len() + 1],
            VssRequest::GetWriterStatus {
                must_be_stable: Some(HV.into())
            }
        );
        assert_eq!(
            steps[expected.len() + 6],
            VssRequest::SetBackupSucceeded {
                component: vm_component("app01"),
                succeeded: true
            }
        );
        assert_eq!(steps.last(), Some(&VssRequest::Release { set: Some(1) }));
        assert_eq!(
            steps[7].unresolved_volume(),
            Some(r"<hv1-D>\"),
            "no inventory: the volume is the scenario's name"
        );
        let asynchronous: Vec<&str> = steps
            .iter()
            .filter(|r| r.is_async())
            .map(VssRequest::method)
            .collect();
        assert_eq!(
            asynchronous,
            [
                "GatherWriterMetadata",
                "PrepareForBackup",
                "GatherWriterStatus",
                "DoSnapshotSet",
                "GatherWriterStatus",
                "BackupComplete",
                "GatherWriterStatus"
            ]
        );
    }

    /// Every VSS step of every library scenario's plan is a request: the requester can
    /// execute any plan the library makes (F1, F2, F4, R2, off-host F3.5 sessions,
    /// several recovery points).
    #[test]
    fn every_library_plan_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let n = e.ok()?.file_name().into_string().ok()?;
                n.strip_suffix(".toml").map(str::to_string)
            })
            .collect();
        names.sort();
        let (mut plans, mut calls) = (0, 0);
        let mut methods = std::collections::BTreeSet::new();
        for name in &names {
            let Ok(s) = Scenario::load(&dir.join(format!("{name}.toml"))) else {
                continue;
            };
            if HostPlan::build(&s, None).is_err() {
                continue;
            }
            let steps = vss_steps(&s);
            plans += usize::from(!steps.is_empty());
            for r in steps {
                let step = r.unwrap_or_else(|e| panic!("{name}: {e}"));
                calls += 1;
                methods.insert(step.request.method());
            }
        }
        assert!(plans >= 5, "{plans} plans with VSS calls");
        assert!(calls >= 50, "{calls} calls");
        for m in [
            "InitializeForBackup",
            "SetContext",
            "SetBackupState",
            "GatherWriterMetadata",
            "AddComponent",
            "StartSnapshotSet",
            "AddToSnapshotSet",
            "PrepareForBackup",
            "DoSnapshotSet",
            "GatherWriterStatus",
            "GetWriterStatus",
            "BackupComplete",
        ] {
            assert!(methods.contains(m), "no plan calls {m}: {methods:?}");
        }
    }

    #[test]
    fn contexts_points_and_sets() {
        let s = VssStep::parse(
            "point 3: SetContext",
            [(
                "lContext",
                "VSS_CTX_BACKUP | VSS_VOLSNAP_ATTR_TRANSPORTABLE",
            )],
        )
        .unwrap();
        assert_eq!(s.point, Some(3));
        assert_eq!(s.request, VssRequest::SetContext { context: 0x20 });
        assert_eq!(s.to_string(), "point 3: SetContext");
        let s = VssStep::parse(
            "Release",
            [(
                "deletes",
                "snapshot set 12 (VSS_CTX_BACKUP, not persistent)",
            )],
        )
        .unwrap();
        assert_eq!(s.request, VssRequest::Release { set: Some(12) });
        let s = VssStep::parse("StartSnapshotSet", [("pSnapshotSetId", "(out) set 2")]).unwrap();
        assert_eq!(s.request, VssRequest::StartSnapshotSet { set: 2 });
        let s = VssStep::parse(
            "AddComponent",
            [
                ("writerId", HV),
                ("ct", "VSS_CT_FILEGROUP"),
                ("wszLogicalPath", "NULL"),
                ("wszComponentName", "7A6B1F2C-0D3E-4F50-8A9B-0C1D2E3F4A5B"),
            ],
        )
        .unwrap();
        assert!(matches!(
            s.request,
            VssRequest::AddComponent(Component {
                name: ComponentName::Literal(_),
                ..
            })
        ));
        for b in BackupType::ALL {
            let s = VssStep::parse(
                "SetBackupState",
                [
                    ("bSelectComponents", "FALSE"),
                    ("bBackupBootableSystemState", "FALSE"),
                    ("backupType", b.name()),
                    ("bPartialFileSupport", "FALSE"),
                ],
            )
            .unwrap();
            assert!(
                matches!(s.request, VssRequest::SetBackupState { backup_type, .. } if backup_type == b)
            );
        }
    }

    #[test]
    fn unknown_methods_and_arguments_are_refused_by_name() {
        let e = |m: &str, a: &[(&str, &str)]| {
            VssStep::parse(m, a.iter().copied())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("RevertToSnapshot", &[]),
            "IVssBackupComponents::RevertToSnapshot: not a call this requester makes"
        );
        assert_eq!(
            e("point x: DoSnapshotSet", &[]),
            "IVssBackupComponents::point x: DoSnapshotSet: not a call this requester makes"
        );
        assert_eq!(
            e("PrepareForBackup", &[("timeout", "5")]),
            "IVssBackupComponents::PrepareForBackup: unknown argument timeout"
        );
        assert_eq!(
            e("SetContext", &[]),
            "IVssBackupComponents::SetContext: argument lContext is missing"
        );
        assert_eq!(
            e("SetContext", &[("lContext", "VSS_CTX_APP_ROLLBACK")]),
            "IVssBackupComponents::SetContext: lContext=VSS_CTX_APP_ROLLBACK: VSS_CTX_APP_ROLLBACK is not a context it takes"
        );
        assert_eq!(
            e("InitializeForBackup", &[("bstrXML", "<doc/>")]),
            "IVssBackupComponents::InitializeForBackup: bstrXML=<doc/>: a saved backup document is not supported"
        );
        assert_eq!(
            e(
                "AddToSnapshotSet",
                &[
                    ("pwszVolumeName", r"D:\"),
                    ("ProviderId", "{b5946137-7b9f-4925-af80-51abd60b20d5}")
                ]
            ),
            r"IVssBackupComponents::AddToSnapshotSet: ProviderId={b5946137-7b9f-4925-af80-51abd60b20d5}: only GUID_NULL (VSS chooses)"
        );
        assert_eq!(
            e(
                "SetBackupSucceeded",
                &[
                    ("writerId", HV),
                    ("ct", "VSS_CT_FILEGROUP"),
                    ("wszComponentName", "app01"),
                    ("bSucceded", "TRUE")
                ]
            ),
            "IVssBackupComponents::SetBackupSucceeded: wszComponentName=app01: neither (Get-VM -Name '<vm>').Id nor a GUID"
        );
        assert_eq!(
            e("StartSnapshotSet", &[("pSnapshotSetId", "(out) set one")]),
            "IVssBackupComponents::StartSnapshotSet: pSnapshotSetId=(out) set one: no snapshot set number"
        );
        assert_eq!(
            e("AddComponent", &[("writerId", "66841cd4")]),
            "IVssBackupComponents::AddComponent: writerId=66841cd4: not a {GUID}"
        );
    }

    #[test]
    fn guids_parse_and_print_as_the_plan_writes_them() {
        let g = Guid::parse(HV).unwrap();
        assert_eq!(
            g,
            Guid {
                data1: 0x66841cd4,
                data2: 0x6ded,
                data3: 0x4f4b,
                data4: [0x8f, 0x17, 0xfd, 0x23, 0xf8, 0xdd, 0xc3, 0xde],
            }
        );
        assert_eq!(g.to_string(), HV);
        assert_eq!(
            Guid::parse("66841CD4-6DED-4F4B-8F17-FD23F8DDC3DE"),
            Some(g),
            "braces are optional, case is not kept"
        );
        assert_eq!(Guid::parse("GUID_NULL"), None);
        assert_eq!(Guid::parse("{66841cd4-6ded-4f4b-8f17-fd23f8ddc3d}"), None);
        assert_eq!(
            Guid::default().to_string(),
            "{00000000-0000-0000-0000-000000000000}"
        );
    }

    /// Every VSS_E_* (and COM/Win32) code the model names comes back from its value;
    /// the values are vsserror.h's (checked against winapi's `um::vsserror` on Windows).
    #[test]
    fn every_call_code_round_trips() {
        let codes: Vec<Hresult> = call_codes().collect();
        assert!(codes.len() >= 30, "{codes:?}");
        for h in &codes {
            assert_eq!(call_code(h.value()), Some(*h), "{}", h.as_str());
            let f = call_failure("DoSnapshotSet", h.value());
            assert_eq!((f.code, f.class), (*h, FailureClass::Host));
            assert_eq!(f.detail, format!("DoSnapshotSet: {}", h.as_str()));
        }
        for (name, value) in [
            ("VSS_E_BAD_STATE", 0x8004_2301),
            ("VSS_E_UNEXPECTED_PROVIDER_ERROR", 0x8004_230F),
            ("VSS_E_SNAPSHOT_SET_IN_PROGRESS", 0x8004_2316),
            ("VSS_E_INSUFFICIENT_STORAGE", 0x8004_231F),
            ("VSS_E_WRITERERROR_TIMEOUT", 0x8004_23F2),
        ] {
            assert_eq!(call_code(value).map(Hresult::as_str), Some(name));
        }
        // Not HRESULTs of these calls: WAIT_TIMEOUT, WMI's job codes, E_FAIL.
        for v in [0x102, 32768, 32775, 0x8000_4005, 0] {
            assert_eq!(call_code(v), None, "0x{v:X}");
        }
        let f = call_failure("PrepareForBackup", 0x8004_2400);
        assert_eq!(f.code, Hresult::VssEUnexpected);
        assert_eq!(f.detail, "PrepareForBackup: 0x80042400");
    }
}
