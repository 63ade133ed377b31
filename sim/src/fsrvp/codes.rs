//! MS-FSRVP constants: result codes, the protocol version, contexts and attributes
//! (values from vss.md §5).

/// Call out of sequence.
pub const FSRVP_E_BAD_STATE: u32 = 0x8004_2301;
/// A shadow copy set not yet Recovered exists.
pub const FSRVP_E_SHADOW_COPY_SET_IN_PROGRESS: u32 = 0x8004_2316;
/// The share cannot be shadow-copied by this server.
pub const FSRVP_E_NOT_SUPPORTED: u32 = 0x8004_230C;
/// The operation did not complete within the caller's timeout.
pub const FSRVP_E_WAIT_TIMEOUT: u32 = 0x0000_0102;
/// Waiting for the operation failed.
pub const FSRVP_E_WAIT_FAILED: u32 = 0xFFFF_FFFF;
/// The share (its volume) is already in the set.
pub const FSRVP_E_OBJECT_ALREADY_EXISTS: u32 = 0x8004_230D;
/// No such shadow copy or share mapping.
pub const FSRVP_E_OBJECT_NOT_FOUND: u32 = 0x8004_2308;
/// SetContext with a value that is not a context.
pub const FSRVP_E_UNSUPPORTED_CONTEXT: u32 = 0x8004_231B;
/// Unknown shadow copy set id.
pub const FSRVP_E_SHADOWCOPYSET_ID_MISMATCH: u32 = 0x8004_2501;
/// The agent did not answer in time.
pub const FSSAGENT_E_TIMEOUT: u32 = 0x8004_2500;
/// The caller is neither an Administrator nor a Backup Operator.
pub const E_ACCESSDENIED: u32 = 0x8007_0005;
/// A malformed argument (share path, mapping level).
pub const E_INVALIDARG: u32 = 0x8007_0057;
/// What the FssProvider reports to VSS when a file server times out.
pub const VSS_E_FSS_TIMEOUT: u32 = 0x8004_2417;
/// What Windows Server 2012 returns for GetShareMapping before Expose (vss.md §5); this
/// model returns FSRVP_E_BAD_STATE as the protocol says.
pub const WIN2012_GET_SHARE_MAPPING_EARLY: u32 = 0x8004_2311;

/// The only protocol version.
pub const FSRVP_RPC_VERSION_1: u32 = 1;

pub const FSRVP_CTX_BACKUP: u32 = 0x0;
pub const FSRVP_CTX_APP_ROLLBACK: u32 = 0x9;
pub const FSRVP_CTX_FILE_SHARE_BACKUP: u32 = 0x10;
pub const FSRVP_CTX_NAS_ROLLBACK: u32 = 0x19;

pub const ATTR_PERSISTENT: u32 = 0x1;
pub const ATTR_NO_AUTO_RECOVERY: u32 = 0x2;
pub const ATTR_NO_AUTO_RELEASE: u32 = 0x8;
pub const ATTR_NO_WRITERS: u32 = 0x10;
pub const ATTR_FILE_SHARE: u32 = 0x0400_0000;
/// Writable between Expose and RecoveryComplete.
pub const ATTR_AUTO_RECOVERY: u32 = 0x0040_0000;

/// Operation numbers (opnum) of the FileServerVssAgent interface.
pub mod opnum {
    pub const GET_SUPPORTED_VERSION: u32 = 0;
    pub const SET_CONTEXT: u32 = 1;
    pub const START_SHADOW_COPY_SET: u32 = 2;
    pub const ADD_TO_SHADOW_COPY_SET: u32 = 3;
    pub const COMMIT_SHADOW_COPY_SET: u32 = 4;
    pub const EXPOSE_SHADOW_COPY_SET: u32 = 5;
    pub const RECOVERY_COMPLETE_SHADOW_COPY_SET: u32 = 6;
    pub const ABORT_SHADOW_COPY_SET: u32 = 7;
    pub const IS_PATH_SUPPORTED: u32 = 8;
    pub const IS_PATH_SHADOW_COPIED: u32 = 9;
    pub const GET_SHARE_MAPPING: u32 = 10;
    pub const DELETE_SHARE_MAPPING: u32 = 11;
    pub const PREPARE_SHADOW_COPY_SET: u32 = 12;
}

/// Whether `context` is a context SetContext accepts: one of the four base contexts,
/// optionally with ATTR_AUTO_RECOVERY. (NO_AUTO_RECOVERY | AUTO_RECOVERY is never one:
/// no base context carries NO_AUTO_RECOVERY.)
pub fn is_valid_context(context: u32) -> bool {
    if context & ATTR_NO_AUTO_RECOVERY != 0 && context & ATTR_AUTO_RECOVERY != 0 {
        return false;
    }
    matches!(
        context & !ATTR_AUTO_RECOVERY,
        FSRVP_CTX_BACKUP
            | FSRVP_CTX_APP_ROLLBACK
            | FSRVP_CTX_FILE_SHARE_BACKUP
            | FSRVP_CTX_NAS_ROLLBACK
    )
}

/// An MS-FSRVP failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FsrvpError {
    #[error("FSRVP_E_BAD_STATE (0x80042301): call out of sequence")]
    BadState,
    #[error("FSRVP_E_SHADOW_COPY_SET_IN_PROGRESS (0x80042316): another set is in progress")]
    ShadowCopySetInProgress,
    #[error("FSRVP_E_NOT_SUPPORTED (0x8004230C): share not supported")]
    NotSupported,
    #[error("FSRVP_E_WAIT_TIMEOUT (0x00000102): operation did not complete in time")]
    WaitTimeout,
    #[error("FSRVP_E_WAIT_FAILED (0xFFFFFFFF): waiting for the operation failed")]
    WaitFailed,
    #[error("FSRVP_E_OBJECT_ALREADY_EXISTS (0x8004230D): already in the set")]
    ObjectAlreadyExists,
    #[error("FSRVP_E_OBJECT_NOT_FOUND (0x80042308): no such shadow copy or mapping")]
    ObjectNotFound,
    #[error("FSRVP_E_UNSUPPORTED_CONTEXT (0x8004231B): not a context")]
    UnsupportedContext,
    #[error("FSRVP_E_SHADOWCOPYSET_ID_MISMATCH (0x80042501): unknown shadow copy set")]
    ShadowCopySetIdMismatch,
    #[error("FSSAGENT_E_TIMEOUT (0x80042500): the agent did not answer in time")]
    AgentTimeout,
    #[error("E_ACCESSDENIED (0x80070005): caller is not a backup operator")]
    AccessDenied,
    #[error("E_INVALIDARG (0x80070057): invalid argument")]
    InvalidArg,
}

impl FsrvpError {
    /// Every variant, in declaration order.
    pub const ALL: [FsrvpError; 12] = [
        FsrvpError::BadState,
        FsrvpError::ShadowCopySetInProgress,
        FsrvpError::NotSupported,
        FsrvpError::WaitTimeout,
        FsrvpError::WaitFailed,
        FsrvpError::ObjectAlreadyExists,
        FsrvpError::ObjectNotFound,
        FsrvpError::UnsupportedContext,
        FsrvpError::ShadowCopySetIdMismatch,
        FsrvpError::AgentTimeout,
        FsrvpError::AccessDenied,
        FsrvpError::InvalidArg,
    ];

    /// The 32-bit result code.
    pub fn code(self) -> u32 {
        match self {
            FsrvpError::BadState => FSRVP_E_BAD_STATE,
            FsrvpError::ShadowCopySetInProgress => FSRVP_E_SHADOW_COPY_SET_IN_PROGRESS,
            FsrvpError::NotSupported => FSRVP_E_NOT_SUPPORTED,
            FsrvpError::WaitTimeout => FSRVP_E_WAIT_TIMEOUT,
            FsrvpError::WaitFailed => FSRVP_E_WAIT_FAILED,
            FsrvpError::ObjectAlreadyExists => FSRVP_E_OBJECT_ALREADY_EXISTS,
            FsrvpError::ObjectNotFound => FSRVP_E_OBJECT_NOT_FOUND,
            FsrvpError::UnsupportedContext => FSRVP_E_UNSUPPORTED_CONTEXT,
            FsrvpError::ShadowCopySetIdMismatch => FSRVP_E_SHADOWCOPYSET_ID_MISMATCH,
            FsrvpError::AgentTimeout => FSSAGENT_E_TIMEOUT,
            FsrvpError::AccessDenied => E_ACCESSDENIED,
            FsrvpError::InvalidArg => E_INVALIDARG,
        }
    }

    /// The SDK name.
    pub fn name(self) -> &'static str {
        match self {
            FsrvpError::BadState => "FSRVP_E_BAD_STATE",
            FsrvpError::ShadowCopySetInProgress => "FSRVP_E_SHADOW_COPY_SET_IN_PROGRESS",
            FsrvpError::NotSupported => "FSRVP_E_NOT_SUPPORTED",
            FsrvpError::WaitTimeout => "FSRVP_E_WAIT_TIMEOUT",
            FsrvpError::WaitFailed => "FSRVP_E_WAIT_FAILED",
            FsrvpError::ObjectAlreadyExists => "FSRVP_E_OBJECT_ALREADY_EXISTS",
            FsrvpError::ObjectNotFound => "FSRVP_E_OBJECT_NOT_FOUND",
            FsrvpError::UnsupportedContext => "FSRVP_E_UNSUPPORTED_CONTEXT",
            FsrvpError::ShadowCopySetIdMismatch => "FSRVP_E_SHADOWCOPYSET_ID_MISMATCH",
            FsrvpError::AgentTimeout => "FSSAGENT_E_TIMEOUT",
            FsrvpError::AccessDenied => "E_ACCESSDENIED",
            FsrvpError::InvalidArg => "E_INVALIDARG",
        }
    }

    /// What the FssProvider reports to VSS for this failure: the timeouts become
    /// VSS_E_FSS_TIMEOUT, anything else passes through.
    pub fn provider_hresult(self) -> u32 {
        match self {
            FsrvpError::WaitTimeout | FsrvpError::AgentTimeout => VSS_E_FSS_TIMEOUT,
            e => e.code(),
        }
    }
}
