//! `FileServerVss`: what the file server's own VSS leaves on its volumes (F4.5, F4.6): the
//! shadow copy of the volume holding a share, exposed as a share it names. The VSS
//! sequence that produces it (the server's writer and provider, which Prepare, Commit and
//! Expose wait for) is the actor `actors::FileServerVss`.

use hvsim_engine::volume::{SnapshotId, SnapshotOptions, Volume, VolumeError};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What the file server's VSS does at ExposeShadowCopySet (MS-FSRVP 3.1.4.6): exposes the
/// shadow copy `id` of `volume` as a share named `<ShareName>@{<ShadowCopyId>}` (the name
/// the server gives it, cloned from the base share) and answers that name.
pub fn expose_shadow_copy(
    volume: &Volume,
    id: SnapshotId,
    share: &str,
    shadow_copy_id: Uuid,
) -> Result<String, VolumeError> {
    let name = exposed_name(share, shadow_copy_id);
    volume.expose_snapshot(id, &name)?;
    Ok(name)
}

/// The shares of one file server and the volumes that hold them.
#[derive(Debug, Clone)]
pub struct FileServerVss {
    /// Share name (as configured) -> volume; looked up case-insensitively.
    shares: BTreeMap<String, Volume>,
}

impl FileServerVss {
    pub fn new(shares: Vec<(String, Volume)>) -> Self {
        FileServerVss {
            shares: shares.into_iter().collect(),
        }
    }

    /// The configured spelling of a share name and its volume (SMB share names are
    /// case-insensitive).
    pub fn share(&self, name: &str) -> Option<(&str, &Volume)> {
        self.shares
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(n, v)| (n.as_str(), v))
    }

    /// Share names in order.
    pub fn share_names(&self) -> Vec<String> {
        self.shares.keys().cloned().collect()
    }

    /// Takes a shadow copy of the volume; an auto-recover (writable) one when the
    /// context carries ATTR_AUTO_RECOVERY (F4.6).
    pub fn create_shadow_copy(&self, volume: &Volume, auto_recovery: bool) -> SnapshotId {
        volume
            .create_snapshot(SnapshotOptions {
                writable: auto_recovery,
                ..Default::default()
            })
            .id()
    }

    /// Exposes the shadow copy as a share and answers its name ([`expose_shadow_copy`]).
    pub fn expose(
        &self,
        volume: &Volume,
        id: SnapshotId,
        share: &str,
        shadow_copy_id: Uuid,
    ) -> Result<String, VolumeError> {
        expose_shadow_copy(volume, id, share, shadow_copy_id)
    }

    /// Ends the auto-recovery window (RecoveryCompleteShadowCopySet): read-only for good.
    pub fn end_auto_recovery(&self, volume: &Volume, id: SnapshotId) -> Result<(), VolumeError> {
        volume.snapshot(id)?.make_read_only()
    }

    /// Deletes the shadow copy with its exposures.
    pub fn delete(&self, volume: &Volume, id: SnapshotId) -> Result<(), VolumeError> {
        volume.delete_snapshot(id)
    }
}

/// A GUID in the Windows spelling (upper-case, no braces).
pub fn guid(id: Uuid) -> String {
    id.hyphenated().to_string().to_uppercase()
}

/// The exposed shadow copy share: `<ShareName>@{<ShadowCopyId GUID upper-case>}`.
pub fn exposed_name(share: &str, shadow_copy_id: Uuid) -> String {
    format!("{share}@{{{}}}", guid(shadow_copy_id))
}
