//! The collection script against library scenarios and hostile names: every scenario name
//! is one single-quoted literal (proved with a small PowerShell lexer below), names
//! PowerShell would read as quotes are refused with their field, the script only reads,
//! it runs the plan's preflight queries, and it writes the inventory's field names.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::backend::hyperv::ps_lex::{cmdlets, lex};
use crate::backend::hyperv::{
    preflight, Action, HostInventory, InventoryCluster, InventoryDisk, InventoryFileServer,
    InventoryHost, InventoryVm, InventoryVolume, Places,
};
use crate::scenario::{Bytes, CheckpointSetting, ConfigVersion, HyperVVersion, VmState};

fn library(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn a_literal_doubles_its_quotes() {
    assert_eq!(literal("f", "it's").unwrap(), "'it''s'");
    assert_eq!(literal("f", "''").unwrap(), "''''''");
    assert_eq!(literal("f", "Ünïcödé 数据").unwrap(), "'Ünïcödé 数据'");
    assert_eq!(literal("f", "$(x) `n \"").unwrap(), "'$(x) `n \"'");
}

/// R9's scenario hosts, a cluster with a CSV (R10), and an SMB 3.0 file server (F4) all
/// named to break out of a literal: each name is exactly one literal's value, and no
/// payload reaches the code.
#[test]
fn every_name_of_a_hostile_scenario_is_inside_one_literal() {
    const VM: &str = r"a'; Remove-Item C:\ -Recurse; '";
    const HOST: &str = "h'; Stop-Computer -Force; '";
    const CLUSTER: &str = "c' + (Remove-Item D:\\x) + '";
    const VOLUME: &str = "v''; Remove-Item E:\\ ; ''";
    const DISK: &str = "d'$(Remove-Item F:\\)'.vhdx";
    const SERVER: &str = "fs'; Remove-Item \\\\fs1\\vms; '";
    const SHARE: &str = "s'); Remove-Item G:\\; ('";
    let mut s = library("f3-production-checkpoint-offhost-group");
    let f4 = library("f4-smb3-share-backup");
    s.file_servers = f4.file_servers.clone();
    s.name = "scenario'; Remove-Item H:\\; '".into();
    s.hosts[0].name = HOST.into();
    s.vms[0].host = HOST.into();
    s.vms[0].name = VM.into();
    s.vms[0].disks[0].file = DISK.into();
    s.vms[1].disks[0].volume = Some(VOLUME.into());
    s.volumes[0].name = VOLUME.into();
    let c = s.cluster.as_mut().unwrap();
    c.name = CLUSTER.into();
    c.nodes[0] = HOST.into();
    s.file_servers[0].name = SERVER.into();
    s.file_servers[0].shares[0].name = SHARE.into();
    let names = [
        s.name.as_str(),
        VM,
        HOST,
        CLUSTER,
        VOLUME,
        DISK,
        SERVER,
        SHARE,
    ];

    let script = collection_script(&s).unwrap();
    assert!(
        script.contains(r"'a''; Remove-Item C:\ -Recurse; '''"),
        "the VM's literal, quotes doubled:\n{script}"
    );
    let lexed = lex(&script);
    for name in names {
        assert!(
            lexed.literals.iter().any(|l| l == name),
            "{name:?} is not one literal's value: {:?}",
            lexed.literals
        );
    }
    for payload in ["Remove-Item", "Stop-Computer", "$(", "\\fs1"] {
        assert!(
            !lexed.code.contains(payload) && !lexed.comments.contains(payload),
            "{payload:?} outside a literal:\n{}",
            lexed.code
        );
    }
}

#[test]
fn names_powershell_reads_as_quotes_are_refused_with_their_field() {
    for q in ['\u{2018}', '\u{2019}', '\u{201A}', '\u{201B}'] {
        let mut s = library("f1-online-2012-autorecovery");
        s.vms[0].name = format!("sql{q}; Remove-Item C:\\; {q}");
        let e = collection_script(&s).unwrap_err();
        let CollectError::Unquotable { field, code, .. } = &e;
        assert_eq!(field, "vms[0].name");
        assert_eq!(*code, u32::from(q));
        let text = e.to_string();
        assert!(
            text.starts_with("vms[0].name: ") && text.contains(&format!("U+{:04X}", u32::from(q))),
            "{text}"
        );
    }
    let mut s = library("f3-production-checkpoint-offhost-group");
    s.hosts[1].name = "node2\nRemove-Item C:\\".into();
    s.vms[1].host = s.hosts[1].name.clone();
    let e = collection_script(&s).unwrap_err().to_string();
    assert!(
        e.starts_with("hosts[1].name: ") && e.contains("line break"),
        "{e}"
    );

    let mut s = library("f3-production-checkpoint-offhost-group");
    s.vms[1].disks[0].file = "app02\0.vhdx".into();
    let e = collection_script(&s).unwrap_err().to_string();
    assert!(
        e.starts_with("vms[1].disks[0].file: ") && e.contains("NUL"),
        "{e}"
    );

    let mut s = library("f4-smb3-share-backup");
    s.file_servers[0].shares[0].name = "vms\u{2019}".into();
    let e = collection_script(&s).unwrap_err().to_string();
    assert!(e.starts_with("file_servers[0].shares[0].name: "), "{e}");
}

const SCENARIOS: [&str; 4] = [
    "f1-online-2012-autorecovery",
    "f3-production-checkpoint-offhost-group",
    "f4-smb3-share-backup",
    "r2-backup-service-disabled",
];

/// The script is read-only: every command it runs is a query (`Get-*`) or one of the
/// few that only work on the script's own values. Anything else (`Set-`, `Remove-Item`,
/// `Invoke-Expression`, ...) fails this test.
#[test]
fn the_script_only_reads() {
    let own = [
        "ConvertTo-Json",
        "Where-Object",
        "ForEach-Object",
        "Select-Object",
        "Split-Path",
        "New-Object",
        "Write-Output",
        // This session's type data only (see the script's comment).
        "Remove-TypeData",
    ];
    for name in SCENARIOS {
        let lexed = lex(&collection_script(&library(name)).unwrap());
        for c in cmdlets(&lexed.code) {
            assert!(
                c.starts_with("Get-") || own.contains(&c.as_str()),
                "{name}: the script runs {c}"
            );
        }
        // Nothing that would read a value as code or as a query.
        let code = lexed.code.to_lowercase();
        for word in [
            "invoke-",
            "iex",
            "start-process",
            "-filter",
            "-query",
            "scriptblock",
            "expandstring",
            "add-type",
            "&",
        ] {
            assert!(!code.contains(word), "{name}: {word}");
        }
    }
}

/// The queries are the plan's: every cmdlet of a scenario's preflight (but the guests'
/// writers through PowerShell Direct, whose answers the inventory has no place for) is in
/// its script, and the script's body asks nothing the preflights of a cluster, a CSV and
/// a file server do not list.
#[test]
fn the_script_runs_the_preflight_queries_of_the_plan() {
    let not_inventory = ["Invoke-Command"];
    let mut all_planned = BTreeSet::new();
    for name in SCENARIOS {
        let s = library(name);
        let mut planned = BTreeSet::new();
        for step in preflight::preflight(&s, &Places::default()) {
            let Action::Preflight { query, .. } = &step.action else {
                panic!("{name}: a preflight step that is not a query");
            };
            planned.extend(cmdlets(query));
        }
        let script = lex(&collection_script(&s).unwrap());
        let run = cmdlets(&script.code);
        for c in planned.iter().filter(|c| c.starts_with("Get-")) {
            assert!(
                run.contains(c),
                "{name}: the plan's {c} is not in the script"
            );
        }
        for c in &not_inventory {
            assert!(planned.contains(*c) && !run.contains(*c), "{name}: {c}");
        }
        all_planned.extend(planned);
    }
    for c in cmdlets(&lex(BODY).code)
        .iter()
        .filter(|c| c.starts_with("Get-"))
    {
        assert!(all_planned.contains(c), "{c} is not a preflight query");
    }
}

/// Every field the inventory reader takes, out of an inventory with all of them.
fn inventory_fields() -> BTreeSet<String> {
    let inv = HostInventory {
        hosts: vec![InventoryHost {
            name: "hv1".into(),
            version: HyperVVersion::V2019,
        }],
        cluster: Some(InventoryCluster {
            name: "c".into(),
            functional_level: HyperVVersion::V2019,
            nodes: vec![],
        }),
        volumes: vec![InventoryVolume {
            name: "v".into(),
            path: Some("D:\\".into()),
            host: Some("hv1".into()),
            csv: false,
            capacity: Bytes(1),
            free: Bytes(1),
        }],
        vms: vec![InventoryVm {
            name: "vm".into(),
            host: "hv1".into(),
            generation: 2,
            config_version: ConfigVersion { major: 9, minor: 0 },
            state: VmState::Running,
            checkpoint_type: Some(CheckpointSetting::Production),
            integration_services: true,
            integration_services_version: Some(HyperVVersion::V2019),
            backup_enabled: true,
            scsi_controller: true,
            disks: vec![InventoryDisk {
                file: "d.vhdx".into(),
                volume: Some("v".into()),
                share: None,
                size: Bytes(1),
            }],
        }],
        file_servers: vec![InventoryFileServer {
            name: "fs".into(),
            shares: vec![],
            vss_agent: true,
        }],
    };
    fn keys(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    out.insert(k.clone());
                    keys(x, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    keys(&serde_json::to_value(&inv).unwrap(), &mut out);
    out
}

/// The keys the script's hashtables write (`name = ...` in lower case, the inventory's
/// spelling) are exactly the inventory's fields, but the two of its own VM list:
/// a misspelt key would be refused by the reader (it denies unknown fields).
#[test]
fn the_script_writes_the_inventory_fields() {
    let lexed = lex(BODY);
    let mut written = BTreeSet::new();
    for line in lexed.code.lines() {
        for part in line.split([';', '{']) {
            let part = part.trim_start();
            if let Some((key, _)) = part.split_once(" = ") {
                if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    written.insert(key.to_string());
                }
            }
        }
    }
    let mut want = inventory_fields();
    want.extend(["want".to_string(), "out".to_string()]);
    assert_eq!(written, want);
}

/// The values of one of the body's tables (`$name = @{ 'key' = 'value'; ... }`).
fn table_values(name: &str) -> Vec<String> {
    let start = BODY
        .find(&format!("${name} = @"))
        .unwrap_or_else(|| panic!("no ${name}"));
    let rest = &BODY[start..];
    let list = rest.starts_with(&format!("${name} = @("));
    let text = &rest[..rest.find(if list { ")\n" } else { "}\n" }).unwrap()];
    let literals = lex(text).literals;
    if !list {
        literals.into_iter().skip(1).step_by(2).collect()
    } else {
        literals
    }
}

/// The values the script writes, in the form it writes them, are what the reader takes:
/// releases and states by the tables' names, sizes as byte counts.
#[test]
fn the_tables_values_are_what_the_reader_takes() {
    for table in ["releaseByBuild", "releaseByLevel"] {
        let values = table_values(table);
        assert!(values.len() >= 7, "{table}: {values:?}");
        for r in &values {
            r.parse::<HyperVVersion>()
                .unwrap_or_else(|e| panic!("{table}: {r}: {e}"));
        }
        // Every release the scenarios know is in the table.
        for v in HyperVVersion::ALL {
            assert!(values.iter().any(|r| r == v.as_str()), "{table}: {v}");
        }
    }
    let states = table_values("stateNames");
    assert_eq!(states.len(), VmState::ALL.len());
    for st in &states {
        st.parse::<VmState>().unwrap();
    }
    // R2: the backup integration service under each release's name.
    let names = table_values("backupServiceNames");
    for v in HyperVVersion::ALL {
        assert!(names.iter().any(|n| n == v.backup_service_label()), "{v}");
    }
    // A document as the script writes it (ConvertTo-Json: plain numbers, null).
    let json = r#"{"hosts":[{"name":"HV1","version":"2012 R2"}],"cluster":null,
        "volumes":[{"name":"hv1-D","path":"D:\\","host":"hv1","csv":false,
                    "capacity":1099511627776,"free":429496729600}],
        "vms":[{"name":"sql01","host":"HV1","generation":1,"config_version":"5.0",
                "state":"running","checkpoint_type":null,"integration_services":true,
                "integration_services_version":"2012 R2","backup_enabled":true,
                "scsi_controller":true,"disks":[{"file":"sql01.vhdx","volume":"hv1-D",
                "share":null,"size":107374182400}]}],"file_servers":[]}"#;
    let inv = HostInventory::parse("collected.json", json).unwrap();
    assert_eq!(inv.vms[0].disks[0].size, Bytes(100 << 30));
    assert_eq!(inv.volumes[0].capacity, Bytes(1 << 40));
}
