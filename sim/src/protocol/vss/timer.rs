//! The windows VSS watches (reference §1.4): one typed timer each.

/// The freeze→thaw window of a writer that sets none (reference §1.4: 60 s default).
pub const FREEZE_WINDOW_US: u64 = 60_000_000;
/// The flush-and-hold window of volsnap (reference §1.4: 10 s).
pub const FLUSH_AND_HOLD_US: u64 = 10_000_000;
/// How long VSS waits for a writer event other than Freeze/Thaw.
pub const EVENT_TIMEOUT_US: u64 = 600_000_000;

/// A timer of the VSS service. At most one of each runs at a time: setting one again
/// replaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VssTimer {
    /// The writers' freeze→thaw window: from the first OnFreeze to the end of OnThaw.
    FreezeWindow,
    /// IOCTL_VOLSNAP_FLUSH_AND_HOLD_WRITES: from the hold to the release.
    FlushAndHold,
    /// The writers' answer to an event other than OnFreeze/OnThaw.
    WriterResponse,
}

impl VssTimer {
    /// The trace's event name when the timer fires.
    pub fn name(self) -> &'static str {
        match self {
            VssTimer::FreezeWindow => "FreezeWindowExpired",
            VssTimer::FlushAndHold => "FlushAndHoldExpired",
            VssTimer::WriterResponse => "WriterNotResponding",
        }
    }
}
