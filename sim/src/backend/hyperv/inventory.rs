//! What the preflight queries found on a host, as a JSON file (`hvsim host plan
//! --inventory HOST.json`), and reading it: a malformed file is an error naming the file,
//! line, column and field.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::scenario::{Bytes, CheckpointSetting, ConfigVersion, HyperVVersion, VmState};

/// Everything the preflight saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostInventory {
    pub hosts: Vec<InventoryHost>,
    #[serde(default)]
    pub cluster: Option<InventoryCluster>,
    #[serde(default)]
    pub volumes: Vec<InventoryVolume>,
    #[serde(default)]
    pub vms: Vec<InventoryVm>,
    #[serde(default)]
    pub file_servers: Vec<InventoryFileServer>,
}

/// `Get-CimInstance Win32_OperatingSystem`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryHost {
    pub name: String,
    pub version: HyperVVersion,
}

/// `Get-Cluster`, `Get-ClusterNode`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryCluster {
    pub name: String,
    pub functional_level: HyperVVersion,
    pub nodes: Vec<String>,
}

/// `Get-Volume`, `Get-ClusterSharedVolume`: a volume under the scenario's name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryVolume {
    pub name: String,
    /// Its path on the host (`D:\`, `C:\ClusterStorage\Volume1`).
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub csv: bool,
    pub capacity: Bytes,
    pub free: Bytes,
}

/// `Get-VM`, `Get-VMIntegrationService`, `Get-VMScsiController`, `Get-VHD`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryVm {
    pub name: String,
    pub host: String,
    pub generation: u8,
    pub config_version: ConfigVersion,
    #[serde(default = "running")]
    pub state: VmState,
    #[serde(default)]
    pub checkpoint_type: Option<CheckpointSetting>,
    /// Integration services installed in the guest (the services report a status).
    #[serde(default = "yes")]
    pub integration_services: bool,
    /// Release of the guest's integration services, when the host reports it.
    #[serde(default)]
    pub integration_services_version: Option<HyperVVersion>,
    /// The backup (volume shadow copy) integration service is enabled.
    #[serde(default = "yes")]
    pub backup_enabled: bool,
    #[serde(default)]
    pub scsi_controller: bool,
    #[serde(default)]
    pub disks: Vec<InventoryDisk>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryDisk {
    /// The file name (`web01.vhdx`).
    pub file: String,
    /// The scenario name of the volume holding it, or the share (`\\fs1\vms`).
    #[serde(default)]
    pub volume: Option<String>,
    #[serde(default)]
    pub share: Option<String>,
    pub size: Bytes,
}

/// `Get-SmbShare -CimSession`, `Get-Service fssagent`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryFileServer {
    pub name: String,
    pub shares: Vec<String>,
    /// The File Server VSS Agent Service runs (R10).
    #[serde(default)]
    pub vss_agent: bool,
}

fn yes() -> bool {
    true
}
fn running() -> VmState {
    VmState::Running
}

/// A host inventory file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{file}: {error}")]
    Read { file: String, error: std::io::Error },
    /// `file:line:column: field.path: problem`, as scenario errors print.
    #[error("{file}:{line}:{column}: {path}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        path: String,
        message: String,
    },
}

impl HostInventory {
    pub fn load(path: &Path) -> Result<HostInventory, InventoryError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| InventoryError::Read {
            file: file.clone(),
            error,
        })?;
        let text = HostInventory::text(&bytes).map_err(|why| InventoryError::Read {
            file: file.clone(),
            error: std::io::Error::new(std::io::ErrorKind::InvalidData, why),
        })?;
        HostInventory::parse(&file, &text)
    }

    /// A file's text: UTF-8, or what Windows PowerShell 5.1's `>` writes (UTF-16LE with
    /// its byte order mark), so the collection script's output can be saved either way.
    pub fn text(bytes: &[u8]) -> Result<String, String> {
        if let Some(units) = bytes.strip_prefix(&[0xFF, 0xFE]) {
            if units.len() % 2 != 0 {
                return Err("UTF-16LE text of an odd number of bytes".into());
            }
            let units: Vec<u16> = units
                .chunks(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]))
                .collect();
            return String::from_utf16(&units).map_err(|e| format!("not UTF-16LE text: {e}"));
        }
        let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
        String::from_utf8(bytes.to_vec()).map_err(|e| {
            format!(
                "not UTF-8 text (byte {} is not UTF-8), nor UTF-16LE with its byte order mark",
                e.utf8_error().valid_up_to()
            )
        })
    }

    pub fn parse(file: &str, text: &str) -> Result<HostInventory, InventoryError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // serde_json appends " at line L column C": the location is printed first.
            let message = inner.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m)
                .to_string();
            InventoryError::Parse {
                file: file.to_string(),
                line: inner.line(),
                column: inner.column(),
                path: if path == "." { "(top)".into() } else { path },
                message,
            }
        })
    }
}
