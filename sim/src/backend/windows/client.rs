//! The calls themselves, through the `wmi` crate (COM's IWbemServices), on the host's
//! `root\virtualization\v2`. Each answer goes through the decoders of this module's
//! siblings, so what a real host says is judged by the same code the tests exercise.
//!
//! A `WMIConnection` belongs to the thread that made it (COM apartments): a caller
//! talking to many hosts at once gives each its own thread (see `hosts`).

use wmi::{IWbemClassWrapper, Variant, WMIConnection, WMIError};

use super::concrete_job::JobReading;
use super::method_result::MethodResult;
use super::rct::DiskChanges;
use super::snapshot_settings::{recovery_snapshot_type, SnapshotSettings};
use crate::protocol::Fail;

/// Hyper-V's WMI namespace on 2012 and later (2008 R2 had `root\virtualization`).
pub const NAMESPACE: &str = r"ROOT\virtualization\v2";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("WMI on {host}: {call}: {source}{}", hint(source))]
    Wmi {
        host: String,
        call: String,
        source: WMIError,
    },
    #[error("WMI on {host}: {call}: {what}")]
    Answer {
        host: String,
        call: String,
        what: String,
    },
    /// The method or its job failed: the model's failure (F3.3, FF39).
    #[error("{}: {}", .0.code, .0.detail)]
    Failed(Fail),
    #[error("{host}: its thread ended without an answer: {why}")]
    Thread { host: String, why: String },
}

/// A failed call's HRESULT by name, with what to check (` (WBEM_E_…: …)`), when known.
fn hint(e: &WMIError) -> String {
    match e {
        WMIError::HResultError { hres } => super::wbem::explain(*hres)
            .map(|(name, what)| format!(" ({name}: {what})"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// A VM as `Msvm_ComputerSystem` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualMachine {
    /// `ElementName`: the name Hyper-V Manager shows.
    pub name: String,
    /// `Name`: the VM's GUID.
    pub id: String,
    /// `EnabledState` (2 running, 3 off, 32769 saved, …).
    pub enabled_state: u16,
    /// The WMI path methods take as `AffectedSystem`.
    pub path: String,
}

/// What a method that may run as a job gave back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    /// ReturnValue 0: done; the out parameter named by the call (a snapshot's path).
    Done(Option<String>),
    /// ReturnValue 4096: poll this `Msvm_ConcreteJob` path.
    Job(String),
}

/// One host's Hyper-V WMI.
pub struct HyperVHost {
    host: String,
    con: WMIConnection,
}

impl HyperVHost {
    /// This machine's (`host` None) or a remote host's namespace; a remote one with the
    /// caller's own credentials unless `user`/`password` are given.
    pub fn connect(
        host: Option<&str>,
        user: Option<&str>,
        password: Option<&str>,
    ) -> Result<HyperVHost, ClientError> {
        let name = host.unwrap_or("localhost").to_string();
        let con = match host {
            None => WMIConnection::with_namespace_path(NAMESPACE),
            Some(h) => {
                WMIConnection::with_credentials_and_namespace(h, NAMESPACE, user, password, None)
            }
        }
        .map_err(|source| ClientError::Wmi {
            host: name.clone(),
            call: format!("connect to {NAMESPACE}"),
            source,
        })?;
        Ok(HyperVHost { host: name, con })
    }

    pub fn name(&self) -> &str {
        &self.host
    }

    fn wmi(&self, call: &str) -> impl FnOnce(WMIError) -> ClientError + '_ {
        let call = call.to_string();
        move |source| ClientError::Wmi {
            host: self.host.clone(),
            call,
            source,
        }
    }

    fn answer(&self, call: &str, what: String) -> ClientError {
        ClientError::Answer {
            host: self.host.clone(),
            call: call.to_string(),
            what,
        }
    }

    /// The virtual machines (`Caption = 'Virtual Machine'`: the host itself is an
    /// Msvm_ComputerSystem too).
    pub fn virtual_machines(&self) -> Result<Vec<VirtualMachine>, ClientError> {
        let call = "SELECT * FROM Msvm_ComputerSystem";
        let query = "SELECT * FROM Msvm_ComputerSystem WHERE Caption = 'Virtual Machine'";
        let mut vms = Vec::new();
        for row in self.con.exec_query(query).map_err(self.wmi(call))? {
            let row = row.map_err(self.wmi(call))?;
            vms.push(VirtualMachine {
                name: self.text(&row, call, "ElementName")?,
                id: self.text(&row, call, "Name")?,
                enabled_state: self.number(&row, call, "EnabledState")? as u16,
                path: row.path().map_err(self.wmi(call))?,
            });
        }
        Ok(vms)
    }

    /// The path of the one instance of a service class.
    fn service(&self, class: &str) -> Result<String, ClientError> {
        let call = format!("SELECT * FROM {class}");
        let mut rows = self.con.exec_query(&call).map_err(self.wmi(&call))?;
        match rows.next() {
            Some(row) => row.and_then(|r| r.path()).map_err(self.wmi(&call)),
            None => Err(self.answer(&call, "no instance".into())),
        }
    }

    fn call(
        &self,
        class: &str,
        method: &str,
        args: &[(&str, Variant)],
    ) -> Result<IWbemClassWrapper, ClientError> {
        let service = self.service(class)?;
        let wmi = self.wmi(method);
        let params = self
            .con
            .get_object(class)
            .and_then(|c| c.get_method(method))
            .map_err(self.wmi(method))?
            .ok_or_else(|| self.answer(method, format!("{class} has no method {method}")))?
            .spawn_instance()
            .map_err(self.wmi(method))?;
        for (name, value) in args {
            params
                .put_property(name, value.clone())
                .map_err(self.wmi(method))?;
        }
        self.con
            .exec_method(&service, method, Some(&params))
            .map_err(wmi)?
            .ok_or_else(|| self.answer(method, "no out parameters".into()))
    }

    /// Decodes ReturnValue: 0 gives the out parameter `out` (if any), 4096 the job's
    /// path, an error the model's failure.
    fn started(
        &self,
        method: &str,
        out: &IWbemClassWrapper,
        result: Option<&str>,
    ) -> Result<Started, ClientError> {
        let code = self.number(out, method, "ReturnValue")? as u32;
        match MethodResult::decode(code) {
            MethodResult::Completed => Ok(Started::Done(match result {
                Some(name) => Some(self.text(out, method, name)?),
                None => None,
            })),
            MethodResult::JobStarted => Ok(Started::Job(self.text(out, method, "Job")?)),
            MethodResult::Failed(e) => Err(ClientError::Failed(e.fail(method, None))),
        }
    }

    /// F3.3: `CreateSnapshot` of a recovery checkpoint (SnapshotType 32768).
    pub fn create_recovery_snapshot(
        &self,
        vm: &VirtualMachine,
        settings: &SnapshotSettings,
    ) -> Result<Started, ClientError> {
        let method = "CreateSnapshot";
        let out = self.call(
            "Msvm_VirtualSystemSnapshotService",
            method,
            &[
                ("AffectedSystem", Variant::String(vm.path.clone())),
                (
                    "SnapshotSettings",
                    Variant::String(settings.embedded_instance()),
                ),
                ("SnapshotType", Variant::UI2(recovery_snapshot_type())),
            ],
        )?;
        self.started(method, &out, Some("ResultingSnapshot"))
    }

    /// F3.4: the checkpoint merged back (`DestroySnapshot`) or kept as a reference point
    /// for the next RCT query (`ConvertToReferencePoint`).
    pub fn release_snapshot(
        &self,
        snapshot: &str,
        keep_reference: bool,
    ) -> Result<Started, ClientError> {
        let method = if keep_reference {
            "ConvertToReferencePoint"
        } else {
            "DestroySnapshot"
        };
        let out = self.call(
            "Msvm_VirtualSystemSnapshotService",
            method,
            &[("AffectedSnapshot", Variant::String(snapshot.to_string()))],
        )?;
        self.started(
            method,
            &out,
            keep_reference.then_some("ResultingReferencePoint"),
        )
    }

    /// One poll of a job.
    pub fn job(&self, path: &str, what: &str) -> Result<JobReading, ClientError> {
        let call = "Msvm_ConcreteJob";
        let job = self.con.get_object(path).map_err(self.wmi(call))?;
        let optional = |name: &str| -> Result<Option<Variant>, ClientError> {
            match job.get_property(name).map_err(self.wmi(call))? {
                Variant::Null | Variant::Empty => Ok(None),
                v => Ok(Some(v)),
            }
        };
        Ok(JobReading {
            job: self.text(&job, call, "InstanceID")?,
            what: what.to_string(),
            job_state: self.number(&job, call, "JobState")? as u16,
            error_code: optional("ErrorCode")?
                .and_then(|v| unsigned(&v))
                .map(|c| c as u16),
            error_description: optional("ErrorDescription")?.and_then(|v| match v {
                Variant::String(s) => Some(s),
                _ => None,
            }),
        })
    }

    /// RCT: one `GetVirtualDiskChanges` answer for `[offset, offset + length)` since
    /// `limit_id`. uint64 in parameters travel as decimal strings, as WMI's scripting
    /// interface documents for CIM uint64.
    pub fn virtual_disk_changes(
        &self,
        path: &str,
        limit_id: &str,
        offset: u64,
        length: u64,
    ) -> Result<DiskChanges, ClientError> {
        let method = "GetVirtualDiskChanges";
        let out = self.call(
            "Msvm_ImageManagementService",
            method,
            &[
                ("Path", Variant::String(path.to_string())),
                ("LimitId", Variant::String(limit_id.to_string())),
                ("ByteOffset", Variant::String(offset.to_string())),
                ("ByteLength", Variant::String(length.to_string())),
            ],
        )?;
        match self.started(method, &out, None)? {
            Started::Done(_) => {}
            Started::Job(job) => {
                return Err(self.answer(
                    method,
                    format!("answered with job {job}; its ranges are not read by this client"),
                ))
            }
        }
        Ok(DiskChanges {
            byte_offset: offset,
            byte_length: length,
            processed_byte_length: self.number(&out, method, "ProcessedByteLength")?,
            changed_byte_offsets: self.numbers(&out, method, "ChangedByteOffsets")?,
            changed_byte_lengths: self.numbers(&out, method, "ChangedByteLengths")?,
        })
    }

    fn text(&self, row: &IWbemClassWrapper, call: &str, name: &str) -> Result<String, ClientError> {
        match row.get_property(name).map_err(self.wmi(call))? {
            Variant::String(s) => Ok(s),
            other => Err(self.answer(call, format!("{name} is {other:?}, not a string"))),
        }
    }

    fn number(&self, row: &IWbemClassWrapper, call: &str, name: &str) -> Result<u64, ClientError> {
        let v = row.get_property(name).map_err(self.wmi(call))?;
        unsigned(&v).ok_or_else(|| self.answer(call, format!("{name} is {v:?}, not a number")))
    }

    fn numbers(
        &self,
        row: &IWbemClassWrapper,
        call: &str,
        name: &str,
    ) -> Result<Vec<u64>, ClientError> {
        match row.get_property(name).map_err(self.wmi(call))? {
            Variant::Null | Variant::Empty => Ok(Vec::new()),
            Variant::Array(items) => items
                .iter()
                .map(|v| {
                    unsigned(v).ok_or_else(|| self.answer(call, format!("{name} holds {v:?}")))
                })
                .collect(),
            other => Err(self.answer(call, format!("{name} is {other:?}, not an array"))),
        }
    }
}

/// A CIM unsigned value, whichever width (uint64 may come as a decimal string).
fn unsigned(v: &Variant) -> Option<u64> {
    match v {
        Variant::UI1(n) => Some(u64::from(*n)),
        Variant::UI2(n) => Some(u64::from(*n)),
        Variant::UI4(n) => Some(u64::from(*n)),
        Variant::UI8(n) => Some(*n),
        Variant::I4(n) => u64::try_from(*n).ok(),
        Variant::I8(n) => u64::try_from(*n).ok(),
        Variant::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Many hosts at once: each host's calls run on a blocking thread of its own (a COM
/// connection never leaves its thread), gathered by tokio.
pub mod hosts {
    use super::{ClientError, HyperVHost, VirtualMachine};

    /// The VMs of every host, in the order the hosts were given.
    pub async fn list_virtual_machines(
        hosts: Vec<Option<String>>,
    ) -> Vec<(String, Result<Vec<VirtualMachine>, ClientError>)> {
        let tasks: Vec<_> = hosts
            .into_iter()
            .map(|host| {
                tokio::task::spawn_blocking(move || {
                    let name = host.clone().unwrap_or_else(|| "localhost".into());
                    let vms = HyperVHost::connect(host.as_deref(), None, None)
                        .and_then(|h| h.virtual_machines());
                    (name, vms)
                })
            })
            .collect();
        let mut out = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            out.push(task.await.unwrap_or_else(|e| {
                let host = format!("host #{i}");
                let why = e.to_string();
                (host.clone(), Err(ClientError::Thread { host, why }))
            }));
        }
        out
    }
}
