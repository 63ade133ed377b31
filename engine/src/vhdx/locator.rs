//! Parent locator (MS-VHDX 2.6.2.6): key/value entries naming a differencing disk's
//! parent, and their resolution to a file, confined to directories the caller allows.

use super::layout::*;
use super::VhdxError;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use uuid::Uuid;

pub const KEY_PARENT_LINKAGE: &str = "parent_linkage";
pub const KEY_PARENT_LINKAGE2: &str = "parent_linkage2";
pub const KEY_RELATIVE_PATH: &str = "relative_path";
pub const KEY_VOLUME_PATH: &str = "volume_path";
pub const KEY_ABSOLUTE_WIN32_PATH: &str = "absolute_win32_path";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentLocator {
    pub locator_type: Uuid,
    /// Key/value pairs in on-disk order.
    pub entries: Vec<(String, String)>,
}

fn utf16(b: &[u8]) -> Result<String, String> {
    if !b.len().is_multiple_of(2) {
        return Err("odd UTF-16 length".into());
    }
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| "invalid UTF-16".to_string())
}

impl ParentLocator {
    pub fn new(entries: Vec<(String, String)>) -> Self {
        ParentLocator {
            locator_type: LOCATOR_TYPE_VHDX,
            entries,
        }
    }

    pub fn parse(b: &[u8]) -> Result<ParentLocator, String> {
        if b.len() < 20 {
            return Err(format!(
                "{} bytes, shorter than its 20-byte header",
                b.len()
            ));
        }
        let locator_type = guid_from_le(b);
        if locator_type != LOCATOR_TYPE_VHDX {
            return Err(format!(
                "locator type {locator_type} is not the VHDX locator type"
            ));
        }
        let count = u16_at(b, 18) as usize;
        if 20 + 12 * count > b.len() {
            return Err(format!("{count} entries do not fit in {} bytes", b.len()));
        }
        let mut entries: Vec<(String, String)> = Vec::with_capacity(count);
        for i in 0..count {
            let e = &b[20 + 12 * i..32 + 12 * i];
            let (ko, vo) = (u32_at(e, 0) as usize, u32_at(e, 4) as usize);
            let (kl, vl) = (u16_at(e, 8) as usize, u16_at(e, 10) as usize);
            if kl == 0 || vl == 0 {
                return Err(format!("entry {i} has an empty key or value"));
            }
            let slice = |o: usize, l: usize| {
                o.checked_add(l)
                    .filter(|&end| end <= b.len())
                    .map(|end| &b[o..end])
                    .ok_or_else(|| format!("entry {i} points past the end of the locator"))
            };
            let key = utf16(slice(ko, kl)?)?;
            let value = utf16(slice(vo, vl)?)?;
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(format!("key {key:?} appears twice"));
            }
            entries.push((key, value));
        }
        Ok(ParentLocator {
            locator_type,
            entries,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = vec![0u8; 20 + 12 * self.entries.len()];
        put_guid(&mut head, 0, &self.locator_type);
        put_u16(&mut head, 18, self.entries.len() as u16);
        let mut strings = Vec::new();
        for (i, (k, v)) in self.entries.iter().enumerate() {
            let e = 20 + 12 * i;
            let mut put = |s: &str| {
                let off = head.len() + strings.len();
                for u in s.encode_utf16() {
                    strings.extend_from_slice(&u.to_le_bytes());
                }
                (off as u32, (s.encode_utf16().count() * 2) as u16)
            };
            let (ko, kl) = put(k);
            let (vo, vl) = put(v);
            put_u32(&mut head, e, ko);
            put_u32(&mut head, e + 4, vo);
            put_u16(&mut head, e + 8, kl);
            put_u16(&mut head, e + 10, vl);
        }
        head.extend_from_slice(&strings);
        head
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The parent identities this child accepts (parent_linkage, parent_linkage2).
    pub fn linkages(&self) -> Vec<Uuid> {
        [KEY_PARENT_LINKAGE, KEY_PARENT_LINKAGE2]
            .iter()
            .filter_map(|k| self.get(k))
            .filter_map(|v| Uuid::try_parse(v.trim_matches(|c| c == '{' || c == '}')).ok())
            .collect()
    }
}

/// Turns a Windows path fragment (`.\a\b`, `..\x`) into relative path components,
/// refusing anything rooted.
fn windows_relative(p: &str) -> Option<PathBuf> {
    if p.starts_with('\\') || p.starts_with('/') || p.as_bytes().get(1) == Some(&b':') {
        return None;
    }
    let mut out = PathBuf::new();
    for part in p.split(['\\', '/']) {
        match part {
            "" | "." => {}
            ".." => out.push(".."),
            name => out.push(name),
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Where to look for parents, and where a parent may lie.
#[derive(Debug, Clone, Default)]
pub struct ParentResolver {
    /// Directories a parent may lie in. Empty: only the child's own directory.
    pub allowed_dirs: Vec<PathBuf>,
    /// `\\?\Volume{GUID}\` prefixes (lowercase GUID, no braces) mapped to local directories.
    pub volumes: BTreeMap<String, PathBuf>,
    /// Drive letters (uppercase) mapped to local directories, for absolute_win32_path.
    pub drives: BTreeMap<char, PathBuf>,
}

impl ParentResolver {
    /// The parent's file, tried in the order relative_path, volume_path,
    /// absolute_win32_path; a candidate outside the allowed directories is never opened.
    pub fn resolve(&self, child: &Path, loc: &ParentLocator) -> Result<PathBuf, VhdxError> {
        let child_dir = child
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut allowed: Vec<PathBuf> = if self.allowed_dirs.is_empty() {
            vec![child_dir.to_path_buf()]
        } else {
            self.allowed_dirs.clone()
        };
        allowed = allowed
            .iter()
            .filter_map(|d| d.canonicalize().ok())
            .collect();
        let mut tried = Vec::new();
        let mut refused = None;
        for (key, candidate) in self.candidates(child_dir, loc) {
            tried.push(format!("{key} -> {}", candidate.display()));
            let Ok(real) = candidate.canonicalize() else {
                continue;
            };
            if !real.is_file() {
                continue;
            }
            if allowed.iter().any(|d| real.starts_with(d)) {
                return Ok(real);
            }
            refused.get_or_insert(real);
        }
        if let Some(path) = refused {
            return Err(VhdxError::ParentNotAllowed {
                path,
                allowed: allowed.iter().map(|d| d.display().to_string()).collect(),
            });
        }
        if tried.is_empty() {
            tried.push("the locator has no usable path".into());
        }
        Err(VhdxError::ParentNotFound { tried })
    }

    fn candidates(&self, child_dir: &Path, loc: &ParentLocator) -> Vec<(&'static str, PathBuf)> {
        let mut out = Vec::new();
        if let Some(rel) = loc.get(KEY_RELATIVE_PATH).and_then(windows_relative) {
            out.push((KEY_RELATIVE_PATH, child_dir.join(rel)));
        }
        if let Some(v) = loc.get(KEY_VOLUME_PATH) {
            let lower = v.to_ascii_lowercase();
            if let Some(rest) = lower.strip_prefix("\\\\?\\volume{") {
                if let Some((guid, tail)) = rest.split_once("}\\") {
                    if let (Some(dir), Some(tail)) = (
                        self.volumes.get(guid),
                        windows_relative(&v[v.len() - tail.len()..]),
                    ) {
                        out.push((KEY_VOLUME_PATH, dir.join(tail)));
                    }
                }
            }
        }
        if let Some(a) = loc.get(KEY_ABSOLUTE_WIN32_PATH) {
            let a = a.strip_prefix("\\\\?\\").unwrap_or(a);
            let bytes = a.as_bytes();
            if bytes.len() > 3 && bytes[1] == b':' && bytes[2] == b'\\' {
                let letter = (bytes[0] as char).to_ascii_uppercase();
                if let (Some(dir), Some(tail)) =
                    (self.drives.get(&letter), windows_relative(&a[3..]))
                {
                    out.push((KEY_ABSOLUTE_WIN32_PATH, dir.join(tail)));
                }
            }
        }
        out
    }
}

/// The relative_path value for a parent seen from its child (`.\name`, `..\dir\name`), as
/// Hyper-V writes it; `None` when no relative path exists.
pub fn relative_path_value(child: &Path, parent: &Path) -> Option<String> {
    let cd = child.parent()?.canonicalize().ok()?;
    let pp = parent.canonicalize().ok()?;
    let c: Vec<Component> = cd.components().collect();
    let p: Vec<Component> = pp.components().collect();
    let common = c.iter().zip(&p).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = Vec::new();
    if common == c.len() {
        parts.push(".".into());
    }
    parts.extend(std::iter::repeat_n("..".to_string(), c.len() - common));
    parts.extend(
        p[common..]
            .iter()
            .map(|x| x.as_os_str().to_string_lossy().into_owned()),
    );
    Some(parts.join("\\"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_hyper_v_keys() {
        let loc = ParentLocator::new(vec![
            (
                KEY_PARENT_LINKAGE.into(),
                "{0c9a4a3e-8c35-4a0f-9d0b-0a3f2b1c4d5e}".into(),
            ),
            (
                KEY_PARENT_LINKAGE2.into(),
                "{00000000-0000-0000-0000-000000000000}".into(),
            ),
            (KEY_RELATIVE_PATH.into(), ".\\base.vhdx".into()),
            (KEY_ABSOLUTE_WIN32_PATH.into(), "C:\\VMs\\base.vhdx".into()),
        ]);
        let parsed = ParentLocator::parse(&loc.to_bytes()).unwrap();
        assert_eq!(parsed, loc);
        assert_eq!(parsed.linkages().len(), 2);
        assert_eq!(parsed.get(KEY_RELATIVE_PATH), Some(".\\base.vhdx"));
    }

    #[test]
    fn windows_relative_forms() {
        assert_eq!(windows_relative(".\\a.vhdx"), Some(PathBuf::from("a.vhdx")));
        assert_eq!(
            windows_relative("..\\d\\a.vhdx"),
            Some(PathBuf::from("../d/a.vhdx"))
        );
        assert_eq!(windows_relative("C:\\a.vhdx"), None);
        assert_eq!(windows_relative("\\\\srv\\share\\a"), None);
    }

    #[test]
    fn truncated_locator_is_an_error() {
        let loc = ParentLocator::new(vec![(KEY_RELATIVE_PATH.into(), ".\\b.vhdx".into())]);
        let b = loc.to_bytes();
        assert!(ParentLocator::parse(&b[..b.len() - 2]).is_err());
        assert!(ParentLocator::parse(&b[..10]).is_err());
    }
}
