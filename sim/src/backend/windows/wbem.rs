//! A failed WMI call's HRESULT, said the way an administrator acts on it: the name
//! Microsoft's WMI error constants give it and what usually causes it on a Hyper-V host.
//! Plain data: tested on every platform; the client adds it to its errors (Windows).

/// `(HRESULT, name, what to look at)` for the failures a backend meets first.
const KNOWN: &[(u32, &str, &str)] = &[
    (
        0x8004_100E,
        "WBEM_E_INVALID_NAMESPACE",
        "this machine has no root\\virtualization\\v2: is the Hyper-V role installed (and is this a Hyper-V host)?",
    ),
    (
        0x8004_1003,
        "WBEM_E_ACCESS_DENIED",
        "run as an administrator of the host (or a member of Hyper-V Administrators)",
    ),
    (
        0x8007_0005,
        "E_ACCESSDENIED",
        "run as an administrator of the host, or give --credential an account that is one",
    ),
    (
        0x8004_1010,
        "WBEM_E_INVALID_CLASS",
        "the host's Hyper-V WMI provider lacks the class: an older Hyper-V (2008 R2 has only root\\virtualization)?",
    ),
    (
        0x8007_06BA,
        "RPC_S_SERVER_UNAVAILABLE",
        "the host does not answer: check its name, that it is on, and that the firewall lets WMI (DCOM) through",
    ),
];

/// The constant's name and a hint for `hres` (as WMI returns it, a signed HRESULT).
pub fn explain(hres: i32) -> Option<(&'static str, &'static str)> {
    let code = hres as u32;
    KNOWN
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|&(_, name, hint)| (name, hint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_failures_are_named_with_what_to_check() {
        // As the wmi crate hands them over: negative i32s.
        let (name, hint) = explain(0x8004_100Eu32 as i32).expect("known");
        assert_eq!(name, "WBEM_E_INVALID_NAMESPACE");
        assert!(hint.contains("Hyper-V role"), "{hint}");
        assert_eq!(
            explain(0x8004_1003u32 as i32).map(|e| e.0),
            Some("WBEM_E_ACCESS_DENIED")
        );
        assert_eq!(explain(0), None, "S_OK is no failure");
        assert_eq!(explain(0x8004_1001u32 as i32), None, "an unlisted code");
        let mut codes: Vec<u32> = KNOWN.iter().map(|k| k.0).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), KNOWN.len(), "each code once");
    }
}
