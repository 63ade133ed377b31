//! The wire format between the Hyper-V host, the `hv_snapshot` kernel driver and
//! `hv_vss_daemon` (R5; vss.md §4.4): `enum hv_vss_op` and the packed `struct hv_vss_msg`.
//!
//! Layout of the 12-byte packed message (little endian, as on x86/arm64 guests):
//!
//! | offset | size | first union member            | second union member |
//! |--------|------|-------------------------------|---------------------|
//! | 0      | 8    | header: u8 operation + 7 reserved | i32 error       |
//! | 8      | 4    | u32 check-feature flags        | u32 dm-info flags   |
//!
//! Because `error` overlays the header, a message carries either an operation (host →
//! kernel → daemon) or an error code (daemon → kernel), never both: [`HvVssMsg`] is the
//! first view, [`HvVssReply`] the second. The kernel's answer to the host puts the result in
//! the IC message header (`icmsg_hdr.status`), not in this struct; see `driver::Effect`.

use thiserror::Error;

/// Success.
pub const HV_S_OK: u32 = 0;
/// Generic failure (E_FAIL).
pub const HV_E_FAIL: u32 = 0x8000_4005;
/// Flags of the HOT_BACKUP answer: the guest's shadow needs no auto-recovery.
pub const VSS_HBU_NO_AUTO_RECOVERY: u32 = 0x5;
/// `_IOWR('X', 119, int)`: freeze a file system.
pub const FIFREEZE: u32 = 0xC004_5877;
/// `_IOWR('X', 120, int)`: thaw a file system.
pub const FITHAW: u32 = 0xC004_5878;
/// Size of the packed `struct hv_vss_msg`.
pub const HV_VSS_MSG_LEN: usize = 12;
/// VSS integration-component version the driver negotiates with the host (5.0).
pub const VSS_VERSION: u32 = 5 << 16;

/// `enum hv_vss_op`. `VSS_OP_COUNT` (8) is a bound, not an operation, and is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum HvVssOp {
    Create = 0,
    Delete = 1,
    HotBackup = 2,
    GetDmInfo = 3,
    BuComplete = 4,
    Freeze = 5,
    Thaw = 6,
    AutoRecover = 7,
    /// Legacy registration (netlink era): the kernel does not answer it.
    Register = 128,
    /// Registration with handshake: the kernel answers with a u32.
    Register1 = 129,
}

impl HvVssOp {
    pub const ALL: [HvVssOp; 10] = [
        HvVssOp::Create,
        HvVssOp::Delete,
        HvVssOp::HotBackup,
        HvVssOp::GetDmInfo,
        HvVssOp::BuComplete,
        HvVssOp::Freeze,
        HvVssOp::Thaw,
        HvVssOp::AutoRecover,
        HvVssOp::Register,
        HvVssOp::Register1,
    ];

    /// The C name, e.g. "VSS_OP_FREEZE".
    pub fn name(self) -> &'static str {
        match self {
            HvVssOp::Create => "VSS_OP_CREATE",
            HvVssOp::Delete => "VSS_OP_DELETE",
            HvVssOp::HotBackup => "VSS_OP_HOT_BACKUP",
            HvVssOp::GetDmInfo => "VSS_OP_GET_DM_INFO",
            HvVssOp::BuComplete => "VSS_OP_BU_COMPLETE",
            HvVssOp::Freeze => "VSS_OP_FREEZE",
            HvVssOp::Thaw => "VSS_OP_THAW",
            HvVssOp::AutoRecover => "VSS_OP_AUTO_RECOVER",
            HvVssOp::Register => "VSS_OP_REGISTER",
            HvVssOp::Register1 => "VSS_OP_REGISTER1",
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Result<Self, MsgError> {
        HvVssOp::ALL
            .into_iter()
            .find(|op| op.code() == code)
            .ok_or(MsgError::UnknownOp(code))
    }
}

/// Why bytes are not an `hv_vss_msg`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MsgError {
    #[error("hv_vss_msg must be {expected} bytes, got {got}")]
    WrongLength { expected: usize, got: usize },
    #[error("unknown hv_vss_op {0}")]
    UnknownOp(u8),
}

fn check_len(bytes: &[u8]) -> Result<(), MsgError> {
    if bytes.len() == HV_VSS_MSG_LEN {
        Ok(())
    } else {
        Err(MsgError::WrongLength {
            expected: HV_VSS_MSG_LEN,
            got: bytes.len(),
        })
    }
}

fn flags_at_8(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]])
}

/// The operation view of `struct hv_vss_msg`: host requests and kernel → daemon requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HvVssMsg {
    pub op: HvVssOp,
    /// `vss_cf.flags` / `dm_info.flags` (same bytes).
    pub flags: u32,
}

impl HvVssMsg {
    pub fn new(op: HvVssOp) -> Self {
        HvVssMsg { op, flags: 0 }
    }

    /// Packed bytes: operation at 0, seven zero reserved bytes, flags (LE) at 8.
    pub fn encode(&self) -> [u8; HV_VSS_MSG_LEN] {
        let mut b = [0u8; HV_VSS_MSG_LEN];
        b[0] = self.op.code();
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b
    }

    /// Reserved bytes are ignored, as the kernel and daemon do.
    pub fn decode(bytes: &[u8]) -> Result<Self, MsgError> {
        check_len(bytes)?;
        Ok(HvVssMsg {
            op: HvVssOp::from_code(bytes[0])?,
            flags: flags_at_8(bytes),
        })
    }
}

/// The error view of `struct hv_vss_msg`: the daemon's answer to a forwarded request
/// (`error` overwrites the operation byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HvVssReply {
    pub error: u32,
    pub flags: u32,
}

impl HvVssReply {
    pub fn encode(&self) -> [u8; HV_VSS_MSG_LEN] {
        let mut b = [0u8; HV_VSS_MSG_LEN];
        b[0..4].copy_from_slice(&self.error.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, MsgError> {
        check_len(bytes)?;
        Ok(HvVssReply {
            error: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            flags: flags_at_8(bytes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_codes_and_names_are_the_kernel_ones() {
        let expected: [(HvVssOp, u8, &str); 10] = [
            (HvVssOp::Create, 0, "VSS_OP_CREATE"),
            (HvVssOp::Delete, 1, "VSS_OP_DELETE"),
            (HvVssOp::HotBackup, 2, "VSS_OP_HOT_BACKUP"),
            (HvVssOp::GetDmInfo, 3, "VSS_OP_GET_DM_INFO"),
            (HvVssOp::BuComplete, 4, "VSS_OP_BU_COMPLETE"),
            (HvVssOp::Freeze, 5, "VSS_OP_FREEZE"),
            (HvVssOp::Thaw, 6, "VSS_OP_THAW"),
            (HvVssOp::AutoRecover, 7, "VSS_OP_AUTO_RECOVER"),
            (HvVssOp::Register, 128, "VSS_OP_REGISTER"),
            (HvVssOp::Register1, 129, "VSS_OP_REGISTER1"),
        ];
        for (op, code, name) in expected {
            assert_eq!(op.code(), code);
            assert_eq!(op.name(), name);
            assert_eq!(HvVssOp::from_code(code), Ok(op));
        }
        assert_eq!(HV_E_FAIL, 2_147_500_037);
        assert_eq!(FIFREEZE & 0xff, 119);
        assert_eq!(FITHAW & 0xff, 120);
    }

    #[test]
    fn exact_byte_layout() {
        let m = HvVssMsg {
            op: HvVssOp::HotBackup,
            flags: VSS_HBU_NO_AUTO_RECOVERY,
        };
        assert_eq!(m.encode(), [2, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0]);
        let m = HvVssMsg {
            op: HvVssOp::Register1,
            flags: 0x0102_0304,
        };
        assert_eq!(m.encode(), [129, 0, 0, 0, 0, 0, 0, 0, 4, 3, 2, 1]);
        assert_eq!(m.encode().len(), HV_VSS_MSG_LEN);
        // The error overlays the header: HV_E_FAIL little endian at offset 0.
        let r = HvVssReply {
            error: HV_E_FAIL,
            flags: 0,
        };
        assert_eq!(r.encode(), [0x05, 0x40, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn round_trip_every_op_and_reply() {
        for op in HvVssOp::ALL {
            for flags in [0, 5, u32::MAX] {
                let m = HvVssMsg { op, flags };
                assert_eq!(HvVssMsg::decode(&m.encode()), Ok(m));
            }
        }
        for error in [HV_S_OK, HV_E_FAIL, 1] {
            let r = HvVssReply { error, flags: 7 };
            assert_eq!(HvVssReply::decode(&r.encode()), Ok(r));
        }
    }

    #[test]
    fn reserved_bytes_are_ignored() {
        let mut b = HvVssMsg::new(HvVssOp::Freeze).encode();
        b[1..8].copy_from_slice(&[0xff; 7]);
        assert_eq!(HvVssMsg::decode(&b), Ok(HvVssMsg::new(HvVssOp::Freeze)));
    }

    #[test]
    fn garbage_gives_typed_errors() {
        assert_eq!(
            HvVssMsg::decode(&[]),
            Err(MsgError::WrongLength {
                expected: 12,
                got: 0
            })
        );
        assert_eq!(
            HvVssMsg::decode(&[5; 13]),
            Err(MsgError::WrongLength {
                expected: 12,
                got: 13
            })
        );
        assert_eq!(
            HvVssReply::decode(&[0; 4]),
            Err(MsgError::WrongLength {
                expected: 12,
                got: 4
            })
        );
        let mut b = [0u8; 12];
        for code in [8u8, 9, 127, 130, 255] {
            b[0] = code;
            assert_eq!(HvVssMsg::decode(&b), Err(MsgError::UnknownOp(code)));
        }
        // Every single-byte header decodes or fails with a typed error, never panics.
        for code in 0..=255u8 {
            b[0] = code;
            let known = HvVssOp::ALL.iter().any(|op| op.code() == code);
            assert_eq!(HvVssMsg::decode(&b).is_ok(), known);
        }
    }
}
