//! The VSS requester on a 2008 R2–2012 R2 Hyper-V host: a host plan's
//! `IVssBackupComponents` steps ([`VssStep`], parsed by `vss_call`) executed through
//! winapi's `um::vsbackup` (the `windows` crate does not declare IVssBackupComponents).
//!
//! **It has not run on a real host.** It builds and passes clippy for
//! `x86_64-pc-windows-gnu`, and the plain-data half (`vss_call`, `writer_status`) is
//! unit-tested on every platform; the calls, their order and the host's answers are
//! untested until a 2008 R2–2012 R2 host runs a plan through it.
//!
//! One [`VssRequester`] per thread: it enters COM's multithreaded apartment on the
//! thread that makes it and is neither `Send` nor `Sync` (its COM pointers belong to that
//! thread). A session is one `IVssBackupComponents`: InitializeForBackup creates it
//! (CreateVssBackupComponents), the plan's `Release` step releases it, which deletes a
//! VSS_CTX_BACKUP set (not persistent). IVssBackupComponents works on the local machine
//! only: the requester runs on the host the plan's steps name.
//!
//! The asynchronous calls (GatherWriterMetadata, PrepareForBackup, DoSnapshotSet,
//! GatherWriterStatus, BackupComplete) are waited on (`IVssAsync::Wait`, then
//! `QueryStatus`). A failed call is the model's [`Fail`] with its code (`call_failure`);
//! a call failing after StartSnapshotSet and before BackupComplete is followed by
//! AbortBackup, and so is a requester dropped in that span.
//!
//! What the plan leaves symbolic is resolved here: the snapshot set's and shadow copies'
//! ids are the ones StartSnapshotSet and AddToSnapshotSet returned; a VM's component
//! (`(Get-VM -Name 'app01').Id`) is the Hyper-V writer's component whose caption is the
//! VM's name, or ends with `\` and the name (the writer's metadata captions a VM by its
//! backup method, e.g. `Online\app01`: an assumption not yet checked on a host).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::{self, NonNull};
use std::time::Duration;

use winapi::shared::guiddef::GUID;
use winapi::shared::rpcdce::{RPC_C_AUTHN_LEVEL_PKT_PRIVACY, RPC_C_IMP_LEVEL_IDENTIFY};
use winapi::shared::winerror::{RPC_E_CHANGED_MODE, RPC_E_TOO_LATE};
use winapi::shared::wtypes::BSTR;
use winapi::um::combaseapi::{CoInitializeEx, CoInitializeSecurity, CoUninitialize};
use winapi::um::objbase::COINIT_MULTITHREADED;
use winapi::um::objidl::EOAC_DYNAMIC_CLOAKING;
use winapi::um::oleauto::SysFreeString;
use winapi::um::unknwnbase::IUnknown;
use winapi::um::vsbackup::{
    CreateVssBackupComponents, IVssBackupComponents, IVssExamineWriterMetadata, IVssWMComponent,
    VssFreeSnapshotProperties, PVSSCOMPONENTINFO,
};
use winapi::um::vss::{IVssAsync, VSS_SNAPSHOT_PROP, VSS_WRITER_STATE};
use winapi::um::vsserror::{VSS_S_ASYNC_CANCELLED, VSS_S_ASYNC_FINISHED, VSS_S_ASYNC_PENDING};
use winapi::um::vswriter::{VSS_SOURCE_TYPE, VSS_USAGE_TYPE};
use winapi::um::winnt::HRESULT;

use super::vss_call::{call_failure, Component, ComponentName, Guid, VssRequest, VssStep};
use super::writer_status::{WriterReading, WriterStatusError};
use crate::protocol::vss::WriterState;
use crate::protocol::Fail;
use crate::scenario::{FailureClass, Hresult};

/// GUID_NULL: as a ProviderId, "VSS chooses the provider" (winapi does not declare it).
const GUID_NULL: GUID = GUID {
    Data1: 0,
    Data2: 0,
    Data3: 0,
    Data4: [0; 8],
};

/// How long an asynchronous call is waited on before it is cancelled (VSS's own
/// timeouts — a writer's freeze window, a provider's commit — are far shorter).
pub const ASYNC_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, thiserror::Error)]
pub enum VssRequesterError {
    /// The call (or what it waited on) failed: the model's failure.
    #[error("{}: {}", .0.code, .0.detail)]
    Failed(Fail),
    /// COM itself could not be set up on this thread.
    #[error("{call}: 0x{hr:08X}")]
    Com { call: &'static str, hr: u32 },
    /// The step cannot run here: a symbol the plan left the requester cannot resolve, or
    /// a call out of the session's order.
    #[error("{step}: {why}")]
    Refused { step: String, why: String },
    /// The host answered something the model has no word for.
    #[error(transparent)]
    Writer(#[from] WriterStatusError),
}

/// What a step gave back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VssAnswer {
    Done,
    /// StartSnapshotSet: the host's id of the model's set `set`.
    SnapshotSet {
        set: u64,
        id: Guid,
    },
    /// AddToSnapshotSet: the shadow copy's id.
    Snapshot {
        volume: String,
        id: Guid,
    },
    /// GetWriterMetadata: each VM's component name (its GUID) in the writer's metadata.
    Components(Vec<(String, String)>),
    /// GetWriterStatus: every writer, decoded by `writer_status`.
    WriterStatus(Vec<WriterStatusReading>),
    /// GetSnapshotProperties: `m_pwszSnapshotDeviceObject`, where the backup reads.
    DeviceObject {
        volume: String,
        device: String,
    },
}

/// One writer of GetWriterStatus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterStatusReading {
    pub instance_id: Guid,
    pub writer_id: Guid,
    pub reading: WriterReading,
}

/// An owned COM reference, released on drop.
struct Com<T: Deref<Target = IUnknown>>(NonNull<T>);

impl<T: Deref<Target = IUnknown>> Com<T> {
    /// # Safety
    /// `p` is null or a reference the caller owns (an out-parameter of a successful call).
    unsafe fn from_out(p: *mut T) -> Option<Com<T>> {
        NonNull::new(p).map(Com)
    }
}

impl<T: Deref<Target = IUnknown>> Deref for Com<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the pointer is non-null and the reference we hold keeps it alive.
        unsafe { self.0.as_ref() }
    }
}

impl<T: Deref<Target = IUnknown>> Drop for Com<T> {
    fn drop(&mut self) {
        // SAFETY: we own one reference to a live object; this gives it back.
        unsafe { self.Release() };
    }
}

/// This thread in COM's multithreaded apartment until dropped.
struct Apartment {
    uninitialize: bool,
    _thread: PhantomData<*mut ()>,
}

impl Apartment {
    fn enter() -> Result<Apartment, VssRequesterError> {
        // SAFETY: the reserved argument is null, as documented; pairs with CoUninitialize
        // in drop when it succeeds.
        let hr = unsafe { CoInitializeEx(ptr::null_mut(), COINIT_MULTITHREADED) };
        let uninitialize = match hr {
            // The thread is already single-threaded: VSS works there too; it is not ours
            // to uninitialize.
            RPC_E_CHANGED_MODE => false,
            hr if hr < 0 => {
                return Err(VssRequesterError::Com {
                    call: "CoInitializeEx",
                    hr: hr as u32,
                })
            }
            _ => true,
        };
        let apartment = Apartment {
            uninitialize,
            _thread: PhantomData,
        };
        // Writers call back into the requester: identify-level impersonation at least,
        // packet privacy (as Microsoft's requester samples set it). Once per process;
        // RPC_E_TOO_LATE says someone (the WMI client) did it already.
        // SAFETY: null descriptors and lists are documented defaults; -1 lets COM choose
        // the authentication services.
        let hr = unsafe {
            CoInitializeSecurity(
                ptr::null_mut(),
                -1,
                ptr::null_mut(),
                ptr::null_mut(),
                RPC_C_AUTHN_LEVEL_PKT_PRIVACY,
                RPC_C_IMP_LEVEL_IDENTIFY,
                ptr::null_mut(),
                EOAC_DYNAMIC_CLOAKING,
                ptr::null_mut(),
            )
        };
        if hr < 0 && hr != RPC_E_TOO_LATE {
            return Err(VssRequesterError::Com {
                call: "CoInitializeSecurity",
                hr: hr as u32,
            });
        }
        Ok(apartment)
    }
}

impl Drop for Apartment {
    fn drop(&mut self) {
        if self.uninitialize {
            // SAFETY: pairs with this thread's successful CoInitializeEx.
            unsafe { CoUninitialize() };
        }
    }
}

fn check(call: &str, hr: HRESULT) -> Result<(), VssRequesterError> {
    if hr < 0 {
        Err(VssRequesterError::Failed(call_failure(call, hr as u32)))
    } else {
        Ok(())
    }
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

/// # Safety
/// `p` is null or points to a NUL-terminated UTF-16 string.
unsafe fn from_wide(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut n = 0;
    while *p.add(n) != 0 {
        n += 1;
    }
    String::from_utf16_lossy(std::slice::from_raw_parts(p, n))
}

/// A BSTR's text, the BSTR freed.
///
/// # Safety
/// `b` is null or a BSTR the caller owns.
unsafe fn take_bstr(b: BSTR) -> String {
    let s = from_wide(b);
    if !b.is_null() {
        SysFreeString(b);
    }
    s
}

fn to_guid(g: Guid) -> GUID {
    GUID {
        Data1: g.data1,
        Data2: g.data2,
        Data3: g.data3,
        Data4: g.data4,
    }
}

fn from_guid(g: &GUID) -> Guid {
    Guid {
        data1: g.Data1,
        data2: g.Data2,
        data3: g.Data3,
        data4: g.Data4,
    }
}

/// The host's VSS, as a requester. See the module's docs: not yet run on a real host.
pub struct VssRequester {
    /// The session's object (declared before the apartment: released first).
    backup: Option<Com<IVssBackupComponents>>,
    /// StartSnapshotSet was answered and neither BackupComplete nor AbortBackup yet.
    in_set: bool,
    sets: BTreeMap<u64, Guid>,
    /// Each volume's shadow copy in the session's set.
    snapshots: BTreeMap<String, Guid>,
    /// Writer id → its instance id, from GetWriterMetadata.
    instances: BTreeMap<Guid, Guid>,
    /// VM name → its component's name in the Hyper-V writer's metadata.
    components: BTreeMap<String, String>,
    timeout: Duration,
    _apartment: Apartment,
}

impl VssRequester {
    /// Enters COM on this thread; the session's object comes with InitializeForBackup.
    pub fn new() -> Result<VssRequester, VssRequesterError> {
        Ok(VssRequester {
            backup: None,
            in_set: false,
            sets: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            instances: BTreeMap::new(),
            components: BTreeMap::new(),
            timeout: ASYNC_TIMEOUT,
            _apartment: Apartment::enter()?,
        })
    }

    /// A shorter (or longer) wait on each asynchronous call than [`ASYNC_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> VssRequester {
        self.timeout = timeout;
        self
    }

    /// One plan step. A failure inside an open snapshot set aborts the backup first.
    pub fn execute(&mut self, step: &VssStep) -> Result<VssAnswer, VssRequesterError> {
        let answer = self.request(step);
        if answer.is_err() && self.in_set {
            // The step's own failure is what the caller needs; an AbortBackup that fails
            // too changes nothing it can do.
            let _ = self.abort_backup();
        }
        answer
    }

    fn refused(step: &VssStep, why: impl Into<String>) -> VssRequesterError {
        VssRequesterError::Refused {
            step: step.to_string(),
            why: why.into(),
        }
    }

    /// One of the asynchronous calls: `start` begins it on the session's object, then its
    /// IVssAsync is waited for.
    fn asynchronous(
        &self,
        step: &VssStep,
        method: &str,
        start: unsafe fn(&IVssBackupComponents, *mut *mut IVssAsync) -> HRESULT,
    ) -> Result<VssAnswer, VssRequesterError> {
        let b = self.backup(step)?;
        let mut a = ptr::null_mut();
        // SAFETY: a live object; an out-pointer to a local.
        check(method, unsafe { start(b, &mut a) })?;
        self.wait(step, method, a)?;
        Ok(VssAnswer::Done)
    }

    fn backup(&self, step: &VssStep) -> Result<&IVssBackupComponents, VssRequesterError> {
        self.backup
            .as_deref()
            .ok_or_else(|| Self::refused(step, "no session: InitializeForBackup comes first"))
    }

    fn request(&mut self, step: &VssStep) -> Result<VssAnswer, VssRequesterError> {
        if let Some(v) = step.request.unresolved_volume() {
            return Err(Self::refused(
                step,
                format!("{v} is the scenario's name, not a path on the host: plan with the host's inventory"),
            ));
        }
        let method = step.request.method();
        match &step.request {
            VssRequest::InitializeForBackup => {
                if self.backup.is_some() {
                    return Err(Self::refused(
                        step,
                        "a session is open: the plan's Release ends it first",
                    ));
                }
                let mut p = ptr::null_mut();
                // SAFETY: an out-pointer to a local; on success it holds a reference we own.
                check("CreateVssBackupComponents", unsafe {
                    CreateVssBackupComponents(&mut p)
                })?;
                // SAFETY: `p` came from the successful call just above.
                let backup = unsafe { Com::from_out(p) }.ok_or_else(|| {
                    Self::refused(step, "CreateVssBackupComponents gave no object")
                })?;
                // SAFETY: a live object; a null BSTR is "no saved backup document".
                check(method, unsafe {
                    backup.InitializeForBackup(ptr::null_mut())
                })?;
                self.backup = Some(backup);
                Ok(VssAnswer::Done)
            }
            VssRequest::SetContext { context } => {
                let b = self.backup(step)?;
                // SAFETY: a live object; plain value argument.
                check(method, unsafe { b.SetContext(*context) })?;
                Ok(VssAnswer::Done)
            }
            VssRequest::SetBackupState {
                select_components,
                bootable_system_state,
                backup_type,
                partial_file_support,
            } => {
                let b = self.backup(step)?;
                let t = backup_type.value();
                // SAFETY: a live object; plain value arguments.
                check(method, unsafe {
                    b.SetBackupState(
                        *select_components,
                        *bootable_system_state,
                        t,
                        *partial_file_support,
                    )
                })?;
                Ok(VssAnswer::Done)
            }
            VssRequest::GatherWriterMetadata => {
                self.asynchronous(step, method, IVssBackupComponents::GatherWriterMetadata)
            }
            VssRequest::GetWriterMetadata { writer_id, vms } => {
                let writer = Guid::parse(writer_id)
                    .ok_or_else(|| Self::refused(step, format!("{writer_id} is no GUID")))?;
                self.writer_metadata(step, writer, vms)
            }
            VssRequest::StartSnapshotSet { set } => {
                let b = self.backup(step)?;
                let mut id = GUID_NULL;
                // SAFETY: a live object; an out-pointer to a local GUID.
                check(method, unsafe { b.StartSnapshotSet(&mut id) })?;
                let id = from_guid(&id);
                self.in_set = true;
                self.sets.insert(*set, id);
                Ok(VssAnswer::SnapshotSet { set: *set, id })
            }
            VssRequest::AddComponent(c) => {
                let (instance, writer, name) = self.component(step, c)?;
                let path = c.logical_path.as_deref().map(wide);
                let path_ptr = path.as_ref().map_or(ptr::null(), |p| p.as_ptr());
                let name = wide(&name);
                let b = self.backup(step)?;
                // SAFETY: a live object; the strings are NUL-terminated and outlive the
                // call; a null logical path is documented as "none".
                check(method, unsafe {
                    b.AddComponent(
                        to_guid(instance),
                        to_guid(writer),
                        c.component_type.value(),
                        path_ptr,
                        name.as_ptr(),
                    )
                })?;
                Ok(VssAnswer::Done)
            }
            VssRequest::AddToSnapshotSet { volume } => {
                let b = self.backup(step)?;
                let mut name = wide(volume);
                let mut id = GUID_NULL;
                // SAFETY: a live object; the volume name is NUL-terminated and outlives
                // the call (VSS does not write to it); GUID_NULL lets VSS choose the
                // provider; an out-pointer to a local GUID.
                check(method, unsafe {
                    b.AddToSnapshotSet(name.as_mut_ptr(), GUID_NULL, &mut id)
                })?;
                let id = from_guid(&id);
                self.snapshots.insert(volume.clone(), id);
                Ok(VssAnswer::Snapshot {
                    volume: volume.clone(),
                    id,
                })
            }
            VssRequest::PrepareForBackup => {
                self.asynchronous(step, method, IVssBackupComponents::PrepareForBackup)
            }
            VssRequest::DoSnapshotSet { .. } => {
                self.asynchronous(step, method, IVssBackupComponents::DoSnapshotSet)
            }
            VssRequest::GatherWriterStatus => {
                self.asynchronous(step, method, IVssBackupComponents::GatherWriterStatus)
            }
            VssRequest::GetWriterStatus { must_be_stable } => {
                let writers = self.writer_status(step)?;
                if let Some(id) = must_be_stable {
                    Self::require_stable(step, id, &writers)?;
                }
                Ok(VssAnswer::WriterStatus(writers))
            }
            VssRequest::GetSnapshotProperties { volume } => {
                let id = *self.snapshots.get(volume).ok_or_else(|| {
                    Self::refused(step, format!("no shadow copy of {volume} in this session"))
                })?;
                let b = self.backup(step)?;
                // SAFETY: VSS_SNAPSHOT_PROP is plain data (ids, pointers, integers): all
                // zeroes is a valid value for the call to overwrite.
                let mut prop: VSS_SNAPSHOT_PROP = unsafe { std::mem::zeroed() };
                // SAFETY: a live object; an out-pointer to a local.
                check(method, unsafe {
                    b.GetSnapshotProperties(to_guid(id), &mut prop)
                })?;
                // SAFETY: on success the strings are VSS's, NUL-terminated; this reads the
                // one it needs and frees them all, once.
                let device = unsafe {
                    let d = from_wide(prop.m_pwszSnapshotDeviceObject);
                    VssFreeSnapshotProperties(&mut prop);
                    d
                };
                Ok(VssAnswer::DeviceObject {
                    volume: volume.clone(),
                    device,
                })
            }
            VssRequest::SetBackupSucceeded {
                component,
                succeeded,
            } => {
                let (instance, writer, name) = self.component(step, component)?;
                let name = wide(&name);
                let b = self.backup(step)?;
                // SAFETY: a live object; the name is NUL-terminated and outlives the call;
                // no logical path (null), as AddComponent's.
                check(method, unsafe {
                    b.SetBackupSucceeded(
                        to_guid(instance),
                        to_guid(writer),
                        component.component_type.value(),
                        ptr::null(),
                        name.as_ptr(),
                        *succeeded,
                    )
                })?;
                Ok(VssAnswer::Done)
            }
            VssRequest::BackupComplete => {
                let done = self.asynchronous(step, method, IVssBackupComponents::BackupComplete)?;
                self.in_set = false;
                Ok(done)
            }
            VssRequest::AbortBackup => {
                self.backup(step)?;
                self.abort_backup()?;
                Ok(VssAnswer::Done)
            }
            VssRequest::Release { .. } => {
                if self.in_set {
                    self.abort_backup()?;
                }
                // Releasing the object deletes a VSS_CTX_BACKUP set.
                self.backup = None;
                self.sets.clear();
                self.snapshots.clear();
                self.instances.clear();
                self.components.clear();
                Ok(VssAnswer::Done)
            }
        }
    }

    fn abort_backup(&mut self) -> Result<(), VssRequesterError> {
        self.in_set = false;
        match &self.backup {
            // SAFETY: a live object; no arguments.
            Some(b) => check("AbortBackup", unsafe { b.AbortBackup() }),
            None => Ok(()),
        }
    }

    /// Waits on an asynchronous call's IVssAsync; its result is the call's.
    fn wait(
        &self,
        step: &VssStep,
        method: &str,
        a: *mut IVssAsync,
    ) -> Result<(), VssRequesterError> {
        // SAFETY: `a` is the out-parameter of the call that just succeeded.
        let a = unsafe { Com::from_out(a) }
            .ok_or_else(|| Self::refused(step, "the call gave no IVssAsync"))?;
        let ms = u32::try_from(self.timeout.as_millis()).unwrap_or(u32::MAX - 1);
        // SAFETY: a live IVssAsync.
        check(method, unsafe { a.Wait(ms) })?;
        let mut status: HRESULT = 0;
        // SAFETY: a live IVssAsync; an out-pointer to a local; the reserved one is null.
        check(method, unsafe {
            a.QueryStatus(&mut status, ptr::null_mut())
        })?;
        match status {
            VSS_S_ASYNC_FINISHED => Ok(()),
            VSS_S_ASYNC_PENDING => {
                // SAFETY: a live IVssAsync; cancelling is its documented way out.
                unsafe { a.Cancel() };
                Err(VssRequesterError::Failed(Fail::new(
                    Hresult::VssEUnexpected,
                    FailureClass::Host,
                    format!(
                        "{method}: still VSS_S_ASYNC_PENDING after {} s, cancelled",
                        self.timeout.as_secs()
                    ),
                )))
            }
            VSS_S_ASYNC_CANCELLED => Err(VssRequesterError::Failed(Fail::new(
                Hresult::VssEUnexpected,
                FailureClass::Host,
                format!("{method}: VSS_S_ASYNC_CANCELLED"),
            ))),
            s => check(method, s),
        }
    }

    /// The writer's instance id and the component's name, resolved from the metadata.
    fn component(
        &self,
        step: &VssStep,
        c: &Component,
    ) -> Result<(Guid, Guid, String), VssRequesterError> {
        let writer = Guid::parse(&c.writer_id)
            .ok_or_else(|| Self::refused(step, format!("{} is no GUID", c.writer_id)))?;
        let instance = *self.instances.get(&writer).ok_or_else(|| {
            Self::refused(
                step,
                format!(
                    "GetWriterMetadata did not list writer {}: no instance to name",
                    c.writer_id
                ),
            )
        })?;
        let name = match &c.name {
            ComponentName::Literal(n) => n.clone(),
            ComponentName::VmId { vm } => self.components.get(vm).cloned().ok_or_else(|| {
                Self::refused(
                    step,
                    format!("the writer's metadata has no component for VM '{vm}'"),
                )
            })?,
        };
        Ok((instance, writer, name))
    }

    /// GetWriterMetadata over every writer: the instance of `writer`, and its
    /// components captioned with the VMs' names.
    fn writer_metadata(
        &mut self,
        step: &VssStep,
        writer: Guid,
        vms: &[String],
    ) -> Result<VssAnswer, VssRequesterError> {
        let method = "GetWriterMetadata";
        let b = self.backup(step)?;
        let mut count = 0;
        // SAFETY: a live object; an out-pointer to a local.
        check("GetWriterMetadataCount", unsafe {
            b.GetWriterMetadataCount(&mut count)
        })?;
        let mut found = None;
        let mut captions = Vec::new();
        for i in 0..count {
            let mut instance = GUID_NULL;
            let mut m = ptr::null_mut();
            // SAFETY: a live object; out-pointers to locals.
            check(method, unsafe {
                b.GetWriterMetadata(i, &mut instance, &mut m)
            })?;
            // SAFETY: `m` is the out-parameter of the call that just succeeded.
            let Some(m) = (unsafe { Com::<IVssExamineWriterMetadata>::from_out(m) }) else {
                continue;
            };
            let (mut inst, mut id) = (GUID_NULL, GUID_NULL);
            let mut name: BSTR = ptr::null_mut();
            let mut usage: VSS_USAGE_TYPE = 0;
            let mut source: VSS_SOURCE_TYPE = 0;
            // SAFETY: a live object; out-pointers to locals; the name BSTR is ours.
            check("GetIdentity", unsafe {
                m.GetIdentity(&mut inst, &mut id, &mut name, &mut usage, &mut source)
            })?;
            // SAFETY: `name` was just given to us (or is null).
            unsafe { take_bstr(name) };
            if from_guid(&id) != writer {
                continue;
            }
            found = Some(from_guid(&instance));
            let (mut include, mut exclude, mut components) = (0, 0, 0);
            // SAFETY: a live object; out-pointers to locals.
            check("GetFileCounts", unsafe {
                m.GetFileCounts(&mut include, &mut exclude, &mut components)
            })?;
            for j in 0..components {
                let mut c = ptr::null_mut();
                // SAFETY: a live object; an out-pointer to a local.
                check("GetComponent", unsafe { m.GetComponent(j, &mut c) })?;
                // SAFETY: `c` is the out-parameter of the call that just succeeded.
                let Some(c) = (unsafe { Com::<IVssWMComponent>::from_out(c) }) else {
                    continue;
                };
                let mut info: PVSSCOMPONENTINFO = ptr::null();
                // SAFETY: a live object; an out-pointer to a local.
                check("GetComponentInfo", unsafe { c.GetComponentInfo(&mut info) })?;
                if info.is_null() {
                    continue;
                }
                // SAFETY: `info` is the writer's until FreeComponentInfo; its BSTRs are
                // NUL-terminated and are read before it is freed, once.
                let (component, caption) = unsafe {
                    let got = (
                        from_wide((*info).bstrComponentName),
                        from_wide((*info).bstrCaption),
                    );
                    c.FreeComponentInfo(info);
                    got
                };
                captions.push((component, caption));
            }
        }
        // SAFETY: a live object; frees what GetWriterMetadata gathered.
        check("FreeWriterMetadata", unsafe { b.FreeWriterMetadata() })?;
        let instance = found.ok_or_else(|| {
            Self::refused(
                step,
                format!("no writer {writer} among the {count} writers GatherWriterMetadata found"),
            )
        })?;
        self.instances.insert(writer, instance);
        let mut out = Vec::new();
        for vm in vms {
            let tail = format!("\\{vm}");
            let component = captions
                .iter()
                .find(|(_, caption)| caption == vm || caption.ends_with(&tail))
                .map(|(c, _)| c.clone())
                .ok_or_else(|| {
                    Self::refused(
                        step,
                        format!(
                            "the writer's metadata has no component captioned '{vm}' ({} components)",
                            captions.len()
                        ),
                    )
                })?;
            self.components.insert(vm.clone(), component.clone());
            out.push((vm.clone(), component));
        }
        Ok(VssAnswer::Components(out))
    }

    fn writer_status(&self, step: &VssStep) -> Result<Vec<WriterStatusReading>, VssRequesterError> {
        let method = "GetWriterStatus";
        let b = self.backup(step)?;
        let mut count = 0;
        // SAFETY: a live object; an out-pointer to a local.
        check("GetWriterStatusCount", unsafe {
            b.GetWriterStatusCount(&mut count)
        })?;
        let mut out = Vec::new();
        for i in 0..count {
            let (mut instance, mut writer) = (GUID_NULL, GUID_NULL);
            let mut name: BSTR = ptr::null_mut();
            let mut state: VSS_WRITER_STATE = 0;
            let mut failure: HRESULT = 0;
            // SAFETY: a live object; out-pointers to locals; the name BSTR is ours.
            let hr = unsafe {
                b.GetWriterStatus(
                    i,
                    &mut instance,
                    &mut writer,
                    &mut name,
                    &mut state,
                    &mut failure,
                )
            };
            // SAFETY: `name` was given to us by the call (or is null).
            let name = unsafe { take_bstr(name) };
            check(method, hr)?;
            out.push(WriterStatusReading {
                instance_id: from_guid(&instance),
                writer_id: from_guid(&writer),
                reading: WriterReading {
                    name,
                    state,
                    failure: failure as u32,
                },
            });
        }
        // SAFETY: a live object; frees what GatherWriterStatus gathered.
        check("FreeWriterStatus", unsafe { b.FreeWriterStatus() })?;
        Ok(out)
    }

    /// The plan's "the Hyper-V writer must be VSS_WS_STABLE" (I5): its failure is the
    /// model's, through `writer_status`.
    fn require_stable(
        step: &VssStep,
        id: &str,
        writers: &[WriterStatusReading],
    ) -> Result<(), VssRequesterError> {
        let want =
            Guid::parse(id).ok_or_else(|| Self::refused(step, format!("{id} is no GUID")))?;
        let w = writers
            .iter()
            .find(|w| w.writer_id == want)
            .ok_or_else(|| {
                Self::refused(
                    step,
                    format!("writer {id} is not among the {} writers", writers.len()),
                )
            })?;
        let state = w.reading.state()?;
        if state == WriterState::Stable && w.reading.failure == 0 {
            return Ok(());
        }
        // The writer's actor is the caller's to name; only the failure is used here.
        let status = w
            .reading
            .status(crate::sched::ActorId::new(0), FailureClass::Host)?;
        Err(VssRequesterError::Failed(status.failure.unwrap_or_else(
            || {
                Fail::new(
                    Hresult::VssEUnexpectedWriterError,
                    FailureClass::Host,
                    format!("{}: {}, not VSS_WS_STABLE", w.reading.name, state.name()),
                )
            },
        )))
    }
}

impl Drop for VssRequester {
    fn drop(&mut self) {
        if self.in_set {
            let _ = self.abort_backup();
        }
        // `backup` is released next, then the apartment left (field order).
    }
}

#[cfg(test)]
mod tests {
    use super::super::vss_call::{call_code, VssStep};
    use super::{VssAnswer, VssRequester};
    use winapi::um::vsserror as e;

    /// A session opened, its writers gathered, and released, on this machine. Ignored:
    /// it needs a host's VSS service and an administrator; built all the same, so the
    /// test binary links CreateVssBackupComponents from vssapi.
    #[test]
    #[ignore = "opens a VSS session: run on a Hyper-V host, as administrator"]
    fn a_session_opens_gathers_and_releases_on_this_host() {
        let mut r = VssRequester::new().expect("COM on this thread");
        let steps: [(&str, &[(&str, &str)]); 5] = [
            ("InitializeForBackup", &[("bstrXML", "NULL")]),
            ("SetContext", &[("lContext", "VSS_CTX_BACKUP")]),
            (
                "SetBackupState",
                &[
                    ("bSelectComponents", "TRUE"),
                    ("bBackupBootableSystemState", "FALSE"),
                    ("backupType", "VSS_BT_COPY"),
                    ("bPartialFileSupport", "FALSE"),
                ],
            ),
            ("GatherWriterMetadata", &[]),
            ("Release", &[("deletes", "snapshot set 1")]),
        ];
        for (method, args) in steps {
            let step = VssStep::parse(method, args.iter().copied()).expect("a plan step");
            let answer = r.execute(&step).unwrap_or_else(|e| panic!("{step}: {e}"));
            assert_eq!(answer, VssAnswer::Done, "{step}");
        }
    }

    /// The model's VSS_E_* values are vsserror.h's, as winapi declares them.
    #[test]
    fn the_models_values_are_the_sdks() {
        for (value, name) in [
            (e::VSS_E_BAD_STATE, "VSS_E_BAD_STATE"),
            (e::VSS_E_UNEXPECTED, "VSS_E_UNEXPECTED"),
            (e::VSS_E_PROVIDER_VETO, "VSS_E_PROVIDER_VETO"),
            (e::VSS_E_OBJECT_NOT_FOUND, "VSS_E_OBJECT_NOT_FOUND"),
            (e::VSS_E_VOLUME_NOT_SUPPORTED, "VSS_E_VOLUME_NOT_SUPPORTED"),
            (
                e::VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER,
                "VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER",
            ),
            (
                e::VSS_E_UNEXPECTED_PROVIDER_ERROR,
                "VSS_E_UNEXPECTED_PROVIDER_ERROR",
            ),
            (
                e::VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED,
                "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED",
            ),
            (e::VSS_E_FLUSH_WRITES_TIMEOUT, "VSS_E_FLUSH_WRITES_TIMEOUT"),
            (e::VSS_E_HOLD_WRITES_TIMEOUT, "VSS_E_HOLD_WRITES_TIMEOUT"),
            (
                e::VSS_E_UNEXPECTED_WRITER_ERROR,
                "VSS_E_UNEXPECTED_WRITER_ERROR",
            ),
            (
                e::VSS_E_SNAPSHOT_SET_IN_PROGRESS,
                "VSS_E_SNAPSHOT_SET_IN_PROGRESS",
            ),
            (
                e::VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED,
                "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED",
            ),
            (
                e::VSS_E_WRITER_INFRASTRUCTURE,
                "VSS_E_WRITER_INFRASTRUCTURE",
            ),
            (
                e::VSS_E_WRITER_NOT_RESPONDING,
                "VSS_E_WRITER_NOT_RESPONDING",
            ),
            (e::VSS_E_INSUFFICIENT_STORAGE, "VSS_E_INSUFFICIENT_STORAGE"),
            (
                e::VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT,
                "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT",
            ),
            (
                e::VSS_E_WRITERERROR_OUTOFRESOURCES,
                "VSS_E_WRITERERROR_OUTOFRESOURCES",
            ),
            (e::VSS_E_WRITERERROR_TIMEOUT, "VSS_E_WRITERERROR_TIMEOUT"),
            (
                e::VSS_E_WRITERERROR_RETRYABLE,
                "VSS_E_WRITERERROR_RETRYABLE",
            ),
            (
                e::VSS_E_WRITERERROR_NONRETRYABLE,
                "VSS_E_WRITERERROR_NONRETRYABLE",
            ),
            (e::VSS_E_AUTORECOVERY_FAILED, "VSS_E_AUTORECOVERY_FAILED"),
            (e::VSS_E_FSS_TIMEOUT, "VSS_E_FSS_TIMEOUT"),
        ] {
            assert_eq!(
                call_code(value as u32).map(|h| h.as_str()),
                Some(name),
                "0x{value:08X}"
            );
        }
    }
}
