//! MS-FSRVP, VSS for SMB file shares (F4, vss.md §5): the FssProvider's side of the
//! sequence (`client`), the File Share Shadow Copy Agent on the file server (`agent`) and
//! the file server's own VSS (`file_server_vss`). Sans-IO state machines: no threads, no
//! clock; the caller passes virtual time in microseconds.

pub mod agent;
pub mod client;
pub mod codes;
pub mod file_server_vss;

#[cfg(test)]
mod tests;

pub use agent::{
    FsrvpCall, FsrvpReply, FssAgent, LocalShadowCopy, NotAWaitingOperation, SetState,
    ShareMapping1, UNRESPONSIVE_OPS,
};
pub use client::{ClientStatus, FssClient};
pub use codes::FsrvpError;
pub use file_server_vss::{expose_shadow_copy, exposed_name, FileServerVss};
