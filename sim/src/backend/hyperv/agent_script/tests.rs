//! The agent scripts against library scenarios and hostile names: every scenario value is
//! one single-quoted literal (the PowerShell lexer shared with the collection script's
//! tests), the agent's arguments survive Windows' command-line quoting, a Linux guest is
//! refused naming its VM, a VM name that is not a plain file name is refused, and each
//! part runs its own commands only.

use std::path::Path;

use super::*;
use crate::backend::hyperv::ps_lex::{cmdlets, lex};

fn library(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const AGENT: &str = r"C:\tools\hvsim-agent.exe";

/// `CommandLineToArgvW`'s split (the rules Rust's standard library follows on Windows
/// for the arguments after the program name).
fn split_command_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let mut arg = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if !quoted && (c == ' ' || c == '\t') {
                break;
            }
            chars.next();
            match c {
                '\\' => {
                    let mut n = 1;
                    while chars.peek() == Some(&'\\') {
                        chars.next();
                        n += 1;
                    }
                    if chars.peek() == Some(&'"') {
                        arg.extend(std::iter::repeat_n('\\', n / 2));
                        if n % 2 == 1 {
                            arg.push('"');
                            chars.next();
                        }
                    } else {
                        arg.extend(std::iter::repeat_n('\\', n));
                    }
                }
                '"' => {
                    if quoted && chars.peek() == Some(&'"') {
                        arg.push('"');
                        chars.next();
                    } else {
                        quoted = !quoted;
                    }
                }
                c => arg.push(c),
            }
        }
        out.push(arg);
    }
}

#[test]
fn command_lines_split_back_into_the_arguments() {
    let cases: Vec<Vec<String>> = vec![
        vec![r"D:\hvsim-agent\workload.bin".into(), "--log".into()],
        vec![r"C:\my data\hvsim-agent\workload.bin".into(), "".into()],
        vec![
            r#"a"b"#.into(),
            r"c\".into(),
            r#"e\\"f"#.into(),
            r"tab	here\\".into(),
        ],
    ];
    for args in cases {
        let line = command_line(&args);
        assert_eq!(split_command_line(&line), args, "{line}");
    }
    assert_eq!(
        command_line(&[r"D:\x".into(), "--create".into()]),
        r"D:\x --create"
    );
}

/// F2 (one VM, transactions on `D:`): what the agent is told, value by value.
#[test]
fn the_agent_is_told_the_workload_of_the_scenario() {
    let s = library("f2-online-backup-checkpoint");
    let runs = agent_runs(&s).unwrap();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    let vm = &s.vms[r.index];
    assert_eq!(r.vm, vm.name);
    assert_eq!(r.folder, r"D:\hvsim-agent");
    let d = vm.disks[0]
        .volumes
        .iter()
        .find(|g| g.mount == "D:")
        .unwrap();
    let size: u64 = (d.free.0 / 4).min(1 << 30);
    let rate = 40 + 5; // transactions and metadata writes
    let want: Vec<String> = [
        r"D:\hvsim-agent\workload.bin",
        "--log",
        r"D:\hvsim-agent\agent.jsonl",
        "--size",
        &size.to_string(),
        "--writes",
        &(rate * 3600).to_string(),
        "--rate",
        &rate.to_string(),
        "--seed",
        &mix(mix(s.seed) ^ r.index as u64).to_string(),
        "--create",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(r.args, want);
    // Each VM's seed differs; the scenario's fixes them.
    assert_ne!(agent_seed(s.seed, 0), agent_seed(s.seed, 1));
    assert_ne!(agent_seed(1, 0), agent_seed(2, 0));
}

/// F3 off-host: two VMs on two hosts; no `volume` given, so the first guest volume.
#[test]
fn two_vms_of_an_f3_group_each_get_their_own_agent() {
    let s = library("f3-production-checkpoint-offhost-group");
    let runs = agent_runs(&s).unwrap();
    assert_eq!(runs.len(), 2);
    assert_ne!(runs[0].host, runs[1].host);
    for r in &runs {
        assert_eq!(r.folder, r"C:\hvsim-agent");
        assert!(r.args.iter().any(|a| a == "--create"));
    }
    assert_ne!(runs[0].args, runs[1].args, "the seeds differ");
}

#[test]
fn hostile_vm_and_volume_names_stay_inside_their_literals() {
    const VM: &str = "a'; Remove-Item -Recurse x; '$(Stop-Computer)";
    const HOST: &str = "h'; Stop-Computer -Force; '";
    const MOUNT: &str = r"D:\x'; Remove-Item E:\; '";
    const AGENT_PATH: &str = r"C:\t'; Remove-Item F:\; '\hvsim-agent.exe";
    let mut s = library("f2-online-backup-checkpoint");
    s.name = "scenario'; Remove-Item H:\\; '".into();
    s.hosts[0].name = HOST.into();
    s.vms[0].host = HOST.into();
    s.vms[0].name = VM.into();
    s.job.vms = vec![VM.into()];
    for d in &mut s.vms[0].disks {
        for g in &mut d.volumes {
            if g.mount == "D:" {
                g.mount = MOUNT.into();
            }
        }
    }
    s.vms[0].workload.transactions.as_mut().unwrap().volume = Some(MOUNT.into());
    // A VM name with a quote is still a plain Windows file name: no refusal there.
    for part in Part::ALL {
        let script = agent_script(&s, AGENT_PATH, part).unwrap();
        let lexed = lex(&script);
        let mut names = vec![s.name.clone(), VM.to_string(), HOST.to_string()];
        match part {
            Part::Start => {
                names.push(AGENT_PATH.into());
                names.push(format!(r"{MOUNT}\hvsim-agent\agent.jsonl"));
            }
            Part::Stop => names.push(format!(r"{MOUNT}\hvsim-agent\agent.pid")),
            Part::Collect => {
                names.push(format!(r"{MOUNT}\hvsim-agent\agent.jsonl"));
                names.push(format!("{VM}.agent.jsonl"));
            }
        }
        for name in &names {
            assert!(
                lexed.literals.iter().any(|l| l == name),
                "{part:?}: {name:?} is not one literal's value: {:?}",
                lexed.literals
            );
        }
        // (The stop part removes its own PID file: Remove-Item itself is in its body.)
        for payload in ["-Recurse", "Stop-Computer", r"E:\", r"F:\", r"H:\", "$("] {
            assert!(
                !lexed.code.contains(payload) && !lexed.comments.contains(payload),
                "{part:?}: {payload:?} outside a literal:\n{}",
                lexed.code
            );
        }
    }
    // The start part's argument line holds the mount, and splits back into the args.
    let runs = agent_runs(&s).unwrap();
    let script = agent_script(&s, AGENT_PATH, Part::Start).unwrap();
    let line = command_line(&runs[0].args);
    assert!(lex(&script).literals.contains(&line));
    assert_eq!(split_command_line(&line), runs[0].args);
}

#[test]
fn a_linux_guest_is_refused_naming_its_vm() {
    let mut s = library("f3-production-checkpoint-offhost-group");
    s.vms[1].guest.os = GuestOs::Linux;
    let name = s.vms[1].name.clone();
    let e = agent_script(&s, AGENT, Part::Start).unwrap_err();
    assert_eq!(
        e,
        AgentScriptError::Linux {
            index: 1,
            vm: name.clone()
        }
    );
    let text = e.to_string();
    assert!(
        text.contains(&name) && text.contains("SSH is not implemented"),
        "{text}"
    );
}

#[test]
fn names_that_cannot_be_file_names_or_literals_are_refused() {
    let mut s = library("f2-online-backup-checkpoint");
    s.vms[0].name = r"..\..\Windows\evil".into();
    s.job.vms = vec![s.vms[0].name.clone()];
    let e = agent_script(&s, AGENT, Part::Collect).unwrap_err();
    assert!(
        matches!(e, AgentScriptError::NotFileName { index: 0, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("path separator"), "{e}");

    let mut s = library("f2-online-backup-checkpoint");
    s.vms[0].name = "sql\u{2019}01".into();
    s.job.vms = vec![s.vms[0].name.clone()];
    let e = agent_script(&s, AGENT, Part::Stop).unwrap_err().to_string();
    assert!(
        e.starts_with("vms[0].name: ") && e.contains("U+2019"),
        "{e}"
    );

    let s = library("f2-online-backup-checkpoint");
    let e = agent_script(&s, "C:\\a\u{2018}.exe", Part::Start)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--agent: "), "{e}");
    // The agent's path is only in the start part.
    assert!(agent_script(&s, "C:\\a\u{2018}.exe", Part::Stop).is_ok());

    let mut s = library("f2-online-backup-checkpoint");
    s.vms[0].workload.transactions.as_mut().unwrap().volume = Some("/srv".into());
    for d in &mut s.vms[0].disks {
        for g in &mut d.volumes {
            if g.mount == "D:" {
                g.mount = "/srv".into();
            }
        }
    }
    let e = agent_script(&s, AGENT, Part::Start).unwrap_err();
    assert!(matches!(e, AgentScriptError::NotWindowsMount { .. }), "{e}");
}

#[test]
fn a_job_without_workload_has_no_script() {
    let mut s = library("f2-online-backup-checkpoint");
    s.vms[0].workload = Default::default();
    assert_eq!(
        agent_script(&s, AGENT, Part::Start),
        Err(AgentScriptError::NoWorkload)
    );
}

/// Each part runs its own commands: only `start` copies and starts, only `stop` stops,
/// only `collect` opens a session and copies back; none enables or changes the VM, and
/// no password is in any of them.
#[test]
fn each_part_runs_only_its_commands() {
    let s = library("f3-production-checkpoint-offhost-group");
    let shared = [
        "Get-Command",
        "Where-Object",
        "Get-Credential",
        "Get-VM",
        "Invoke-Command",
    ];
    for part in Part::ALL {
        let lexed = lex(&agent_script(&s, AGENT, part).unwrap());
        let own: &[&str] = match part {
            Part::Start => &[
                "Get-VMIntegrationService",
                "Copy-VMFile",
                "Test-Path",
                "Start-Process",
                "Set-Content",
                "Start-Sleep",
            ],
            Part::Stop => &[
                "Test-Path",
                "Get-Content",
                "Get-Process",
                "Stop-Process",
                "Remove-Item",
            ],
            Part::Collect => &[
                "Test-Path",
                "Resolve-Path",
                "Join-Path",
                "Split-Path",
                "New-PSSession",
                "Copy-Item",
                "Remove-PSSession",
            ],
        };
        for c in cmdlets(&lexed.code) {
            assert!(
                shared.contains(&c.as_str()) || own.contains(&c.as_str()),
                "{part:?} runs {c}"
            );
        }
        for c in own {
            assert!(
                cmdlets(&lexed.code).contains(*c),
                "{part:?} does not run {c}"
            );
        }
        let code = lexed.code.to_lowercase();
        for word in [
            "enable-vm",
            "set-vm",
            "password",
            "convertto-securestring",
            "iex",
            "invoke-expression",
            "scriptblock]::create",
        ] {
            assert!(!code.contains(word), "{part:?}: {word}");
        }
        if part != Part::Start {
            assert!(!code.contains("$agentonhost"));
        }
    }
}
