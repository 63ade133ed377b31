//! Running a PowerShell script on this machine: `powershell.exe -NoProfile -NonInteractive
//! -ExecutionPolicy Bypass -EncodedCommand <base64 of UTF-16LE>`, its stdout, stderr and
//! exit code, and the collection script's stdout read as a [`HostInventory`].
//!
//! Windows limits a command line to 32767 UTF-16 units, and the collection script encoded
//! is longer, so the encoded command is a short fixed loader that reads the script from
//! stdin (as base64 of its UTF-8, so no console code page touches a name) and runs it.
//!
//! The encoding and the reading of the output are plain code, tested everywhere; only
//! [`run`] starts a process, and only in a Windows build. Not yet run on a real host.

use crate::backend::hyperv::{HostInventory, InventoryError};

/// The program's name (Windows PowerShell 5.1).
pub const POWERSHELL: &str = "powershell.exe";

/// Lines of stderr a failure quotes.
const STDERR_LINES: usize = 8;

/// How long the collection script may take: a remote host that does not answer fails
/// its query within minutes, so a script still running after this is stopped.
pub const LIMIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The loader `-EncodedCommand` carries: stdin is the script, base64 of its UTF-8.
/// `$input` is stdin under `-EncodedCommand`; the script's own `exit` ends the process.
pub const LOADER: &str = "$ErrorActionPreference = 'Stop'\n\
$b64 = ($input | Out-String).Trim()\n\
$text = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($b64))\n\
& ([scriptblock]::Create($text))\n";

#[derive(Debug, thiserror::Error)]
pub enum PowerShellError {
    #[error(
        "{POWERSHELL} was not found ({source}): hvsim runs its read-only inventory queries \
         through Windows PowerShell, which Windows keeps in \
         %SystemRoot%\\System32\\WindowsPowerShell\\v1.0 (looked for there, then on PATH)"
    )]
    NotFound { source: std::io::Error },
    #[error("{POWERSHELL} could not be started: {source}")]
    Start { source: std::io::Error },
    #[error("{POWERSHELL} was still running after {minutes} minutes and was stopped{}", stderr_or_nothing(.stderr))]
    TimedOut { minutes: u64, stderr: String },
    #[error("{POWERSHELL} exited with {}{}", exit_text(*.code), stderr_text(.stderr))]
    Failed { code: Option<i32>, stderr: String },
    /// Exit code 0 and nothing on stdout: no script ran (a stand-in powershell.exe).
    #[error(
        "{POWERSHELL} exited with exit code 0 but wrote nothing on stdout{}: it ran no \
         script; hvsim needs Windows PowerShell 5.1, which a stand-in powershell.exe \
         (a stub that runs nothing) is not",
        stderr_or_nothing(.stderr)
    )]
    Empty { stderr: String },
    #[error("the collection script's output is not a host inventory: {0}")]
    NotInventory(InventoryError),
}

fn stderr_or_nothing(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!(" (stderr{})", stderr_text(stderr))
    }
}

fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(|| "no exit code".into(), |c| format!("exit code {c}"))
}

/// `: <first lines of stderr>`, or nothing when it is empty.
fn stderr_text(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return " and nothing on stderr".into();
    }
    let mut text = lines[..lines.len().min(STDERR_LINES)].join("\n  ");
    if lines.len() > STDERR_LINES {
        text.push_str(&format!("\n  ({} more lines)", lines.len() - STDERR_LINES));
    }
    format!(":\n  {text}")
}

/// What a finished `powershell.exe` gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Base64 (RFC 4648, with padding) of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What `-EncodedCommand` takes: base64 of the command's UTF-16LE.
pub fn encode_command(command: &str) -> String {
    let bytes: Vec<u8> = command
        .encode_utf16()
        .flat_map(|unit| unit.to_le_bytes())
        .collect();
    base64(&bytes)
}

/// The arguments of `powershell.exe` for the loader.
pub fn arguments() -> Vec<String> {
    [
        "-NoProfile",
        "-NonInteractive",
        "-ExecutionPolicy",
        "Bypass",
        "-EncodedCommand",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([encode_command(LOADER)])
    .collect()
}

/// What the loader reads on stdin for `script`.
pub fn stdin_for(script: &str) -> String {
    base64(script.as_bytes()) + "\n"
}

/// The collection script's output as a host inventory: exit code 0 and stdout one
/// inventory document. `origin` names the output in a parse error (line, column, field).
pub fn inventory_of(out: &ScriptOutput, origin: &str) -> Result<HostInventory, PowerShellError> {
    if out.code != Some(0) {
        return Err(PowerShellError::Failed {
            code: out.code,
            stderr: out.stderr.clone(),
        });
    }
    if out.stdout.trim().is_empty() {
        return Err(PowerShellError::Empty {
            stderr: out.stderr.clone(),
        });
    }
    HostInventory::parse(origin, &out.stdout).map_err(PowerShellError::NotInventory)
}

/// Windows PowerShell where Windows keeps it, not whichever powershell.exe comes first
/// on PATH; PATH only when it is not there.
#[cfg(windows)]
fn program() -> std::path::PathBuf {
    std::env::var_os("SystemRoot")
        .map(|root| {
            std::path::Path::new(&root)
                .join(r"System32\WindowsPowerShell\v1.0")
                .join(POWERSHELL)
        })
        .filter(|p| p.is_file())
        .unwrap_or_else(|| POWERSHELL.into())
}

/// Runs `script` through `powershell.exe` and waits for it.
#[cfg(windows)]
pub fn run(script: &str) -> Result<ScriptOutput, PowerShellError> {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let mut child = Command::new(program())
        .args(arguments())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => PowerShellError::NotFound { source },
            _ => PowerShellError::Start { source },
        })?;
    // Written and read from other threads: a script that writes much before reading all
    // of stdin would otherwise wait on a full pipe while this one waits on it.
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = stdin_for(script);
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    // A host that never answers must not hold the run forever: stopped at the limit.
    let start = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < LIMIT => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(PowerShellError::TimedOut {
                    minutes: LIMIT.as_secs() / 60,
                    stderr: String::from_utf8_lossy(&stderr.join().unwrap_or_default())
                        .into_owned(),
                });
            }
            Err(source) => return Err(PowerShellError::Start { source }),
        }
    };
    // A loader that ended before reading stdin broke the pipe: its exit code says why.
    let _ = writer.join();
    Ok(ScriptOutput {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned(),
    })
}

/// All of a child's pipe, read on its own thread.
#[cfg(windows)]
fn read_all<R: std::io::Read + Send + 'static>(
    pipe: Option<R>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        bytes
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Base64 decoding, the test's own, to read the encoding back.
    fn unbase64(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("{c} is not base64"),
        };
        assert_eq!(text.len() % 4, 0, "{text}");
        let mut out = Vec::new();
        for quad in text.as_bytes().chunks(4) {
            let pad = quad.iter().filter(|&&c| c == b'=').count();
            let n = quad
                .iter()
                .map(|&c| if c == b'=' { 0 } else { u32::from(value(c)) })
                .fold(0u32, |n, v| (n << 6) | v);
            out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
        }
        out
    }

    #[test]
    fn base64_is_rfc_4648() {
        // RFC 4648 §10's test vectors.
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
            assert_eq!(unbase64(coded), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unbase64(&base64(&all)), all);
    }

    /// -EncodedCommand's text is UTF-16LE: names past ASCII and past the BMP come back.
    #[test]
    fn an_encoded_command_decodes_back_to_the_text() {
        // Microsoft's own example: `dir "c:\program files" ` (about_PowerShell_exe).
        assert_eq!(
            encode_command("dir \"c:\\program files\" "),
            "ZABpAHIAIAAiAGMAOgBcAHAAcgBvAGcAcgBhAG0AIABmAGkAbABlAHMAIgAgAA=="
        );
        for text in [
            LOADER,
            "Get-VM -Name 'Ünïcödé-ВМ-数据'",
            "'a''; Remove-Item C:\\ -Recurse; '''",
            "emoji 🦀 past the BMP",
        ] {
            let bytes = unbase64(&encode_command(text));
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|p| u16::from_le_bytes([p[0], p[1]]))
                .collect();
            assert_eq!(String::from_utf16(&units).unwrap(), text);
        }
        let script = "$n = 'Ünïcödé 数据'\n";
        let stdin = stdin_for(script);
        assert!(stdin.is_ascii(), "no code page can change it");
        assert_eq!(unbase64(stdin.trim_end()), script.as_bytes());
    }

    /// The command line stays far below Windows' 32767 UTF-16 units whatever the script.
    #[test]
    fn the_command_line_is_short() {
        let args = arguments();
        assert_eq!(
            args[..4],
            [
                "-NoProfile",
                "-NonInteractive",
                "-ExecutionPolicy",
                "Bypass"
            ]
        );
        assert_eq!(args[4], "-EncodedCommand");
        let length: usize = args.iter().map(|a| a.len() + 1).sum::<usize>() + POWERSHELL.len();
        assert!(length < 1000, "{length}");
    }

    fn output(code: Option<i32>, stdout: &str, stderr: &str) -> ScriptOutput {
        ScriptOutput {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn a_failed_script_quotes_the_first_lines_of_stderr() {
        let stderr: String = (1..=12).map(|n| format!("line {n}\r\n")).collect();
        let e = inventory_of(&output(Some(1), "", &stderr), "hv1").unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, PowerShellError::Failed { code: Some(1), .. }));
        assert!(
            text.starts_with("powershell.exe exited with exit code 1:\n  line 1\n  line 2"),
            "{text}"
        );
        assert!(
            text.contains("line 8\n  (4 more lines)") && !text.contains("line 9"),
            "{text}"
        );
        let e = PowerShellError::TimedOut {
            minutes: 15,
            stderr: "hvsim collect: host hv2: Win32_OperatingSystem: WinRM cannot complete\n"
                .into(),
        };
        assert_eq!(
            e.to_string(),
            "powershell.exe was still running after 15 minutes and was stopped (stderr:\n  \
             hvsim collect: host hv2: Win32_OperatingSystem: WinRM cannot complete)"
        );
        let e = inventory_of(&output(Some(0), "\r\n", ""), "hv1").unwrap_err();
        assert!(matches!(e, PowerShellError::Empty { .. }));
        assert!(
            e.to_string()
                .contains("wrote nothing on stdout: it ran no script"),
            "{e}"
        );
        let e = inventory_of(&output(None, "{}", ""), "hv1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "powershell.exe exited with no exit code and nothing on stderr"
        );
    }

    #[test]
    fn output_that_is_not_an_inventory_names_line_column_and_field() {
        let e = inventory_of(
            &output(Some(0), "{\n  \"hosts\": [\n    { \"name\": \"hv1\", \"version\": \"Microsoft Windows 11 Pro build 22631\" }\n  ]\n}\n", ""),
            "collection script on hv1",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, PowerShellError::NotInventory(_)));
        assert!(
            text.contains("collection script on hv1:3:") && text.contains("hosts[0].version"),
            "{text}"
        );
        assert!(text.contains("unknown Hyper-V version"), "{text}");
        let e = inventory_of(&output(Some(0), "WARNING: something\n{}", ""), "x").unwrap_err();
        assert!(e.to_string().contains("x:1:1:"), "{e}");
        let inv = inventory_of(
            &output(
                Some(0),
                "{\"hosts\":[{\"name\":\"hv1\",\"version\":\"2019\"}]}\r\n",
                "note\n",
            ),
            "x",
        )
        .unwrap();
        assert_eq!(inv.hosts[0].name, "hv1");
    }
}
