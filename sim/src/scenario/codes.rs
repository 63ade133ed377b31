//! Result codes a scenario may expect: VSS, MS-FSRVP, hv_vss_daemon and Win32 HRESULTs,
//! by their SDK names, with their values.

use super::names::named_enum;

named_enum! {
    /// An HRESULT by name (`code = "VSS_E_WRITERERROR_RETRYABLE"`).
    pub enum Hresult ("result code") {
        VssEBadState = "VSS_E_BAD_STATE",
        VssEUnexpected = "VSS_E_UNEXPECTED",
        VssEProviderVeto = "VSS_E_PROVIDER_VETO",
        VssEObjectNotFound = "VSS_E_OBJECT_NOT_FOUND",
        VssEVolumeNotSupported = "VSS_E_VOLUME_NOT_SUPPORTED",
        VssEVolumeNotSupportedByProvider = "VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER",
        VssEUnexpectedProviderError = "VSS_E_UNEXPECTED_PROVIDER_ERROR",
        VssEMaximumNumberOfVolumesReached = "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED",
        VssEFlushWritesTimeout = "VSS_E_FLUSH_WRITES_TIMEOUT",
        VssEHoldWritesTimeout = "VSS_E_HOLD_WRITES_TIMEOUT",
        VssEUnexpectedWriterError = "VSS_E_UNEXPECTED_WRITER_ERROR",
        VssESnapshotSetInProgress = "VSS_E_SNAPSHOT_SET_IN_PROGRESS",
        VssEMaximumNumberOfSnapshotsReached = "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED",
        VssEWriterInfrastructure = "VSS_E_WRITER_INFRASTRUCTURE",
        VssEWriterNotResponding = "VSS_E_WRITER_NOT_RESPONDING",
        VssEInsufficientStorage = "VSS_E_INSUFFICIENT_STORAGE",
        VssEWritererrorInconsistentSnapshot = "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT",
        VssEWritererrorOutOfResources = "VSS_E_WRITERERROR_OUTOFRESOURCES",
        VssEWritererrorTimeout = "VSS_E_WRITERERROR_TIMEOUT",
        VssEWritererrorRetryable = "VSS_E_WRITERERROR_RETRYABLE",
        VssEWritererrorNonretryable = "VSS_E_WRITERERROR_NONRETRYABLE",
        VssEAutorecoveryFailed = "VSS_E_AUTORECOVERY_FAILED",
        VssEFssTimeout = "VSS_E_FSS_TIMEOUT",
        FssagentETimeout = "FSSAGENT_E_TIMEOUT",
        FsrvpEWaitTimeout = "FSRVP_E_WAIT_TIMEOUT",
        HvEFail = "HV_E_FAIL",
        EAccessDenied = "E_ACCESSDENIED",
        ErrorFileNotFound = "ERROR_FILE_NOT_FOUND",
        ErrorFileExists = "ERROR_FILE_EXISTS",
        ErrorDiskFull = "ERROR_DISK_FULL",
        /// "The specified network name is no longer available": the connection to the
        /// backup server dropped during data transfer (F5.T communication).
        ErrorNetnameDeleted = "ERROR_NETNAME_DELETED",
        /// A Hyper-V WMI job's ErrorCode as a requester reports it (not an HRESULT):
        /// 32768 failed, 32770 not supported, 32775 invalid state (field failure 39).
        WmiFailed = "WMI_FAILED",
        WmiNotSupported = "WMI_NOT_SUPPORTED",
        WmiInvalidState = "WMI_INVALID_STATE",
        /// A merge blocked by Hyper-V Replica's own AVHDX (field failures 24, 41).
        ErrorFileSystemLimitation = "ERROR_FILE_SYSTEM_LIMITATION",
    }
}

impl Hresult {
    /// The 32-bit value (Win32 errors as HRESULT_FROM_WIN32).
    pub fn value(self) -> u32 {
        use Hresult::*;
        match self {
            VssEBadState => 0x8004_2301,
            VssEUnexpected => 0x8004_2302,
            VssEProviderVeto => 0x8004_2306,
            VssEObjectNotFound => 0x8004_2308,
            VssEVolumeNotSupported => 0x8004_230C,
            VssEVolumeNotSupportedByProvider => 0x8004_230E,
            VssEUnexpectedProviderError => 0x8004_230F,
            VssEMaximumNumberOfVolumesReached => 0x8004_2312,
            VssEFlushWritesTimeout => 0x8004_2313,
            VssEHoldWritesTimeout => 0x8004_2314,
            VssEUnexpectedWriterError => 0x8004_2315,
            VssESnapshotSetInProgress => 0x8004_2316,
            VssEMaximumNumberOfSnapshotsReached => 0x8004_2317,
            VssEWriterInfrastructure => 0x8004_2318,
            VssEWriterNotResponding => 0x8004_2319,
            VssEInsufficientStorage => 0x8004_231F,
            VssEWritererrorInconsistentSnapshot => 0x8004_23F0,
            VssEWritererrorOutOfResources => 0x8004_23F1,
            VssEWritererrorTimeout => 0x8004_23F2,
            VssEWritererrorRetryable => 0x8004_23F3,
            VssEWritererrorNonretryable => 0x8004_23F4,
            VssEAutorecoveryFailed => 0x8004_23FB,
            VssEFssTimeout => 0x8004_2417,
            FssagentETimeout => 0x8004_2500,
            FsrvpEWaitTimeout => 0x0000_0102,
            HvEFail => 0x8000_4005,
            EAccessDenied => 0x8007_0005,
            ErrorFileNotFound => 0x8007_0002,
            ErrorFileExists => 0x8007_0050,
            ErrorDiskFull => 0x8007_0070,
            ErrorNetnameDeleted => 0x8007_0040,
            WmiFailed => 32768,
            WmiNotSupported => 32770,
            WmiInvalidState => 32775,
            ErrorFileSystemLimitation => 0x8007_0299,
        }
    }
}
