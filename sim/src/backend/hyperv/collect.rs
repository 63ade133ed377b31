//! The inventory collection script (`hvsim host collect`): a self-contained Windows
//! PowerShell 5.1 script that runs the preflight's read-only queries ([`super::preflight`])
//! for a scenario's hosts, cluster, volumes, VMs and file servers, and writes one JSON
//! document in [`HostInventory`]'s schema to stdout, for [`super::compare`].
//!
//! The script is data and a fixed body: every name the scenario gives is written once, in
//! a PowerShell single-quoted literal with `'` doubled, into the data section at its top;
//! the body (a constant, the same for every scenario) only reads those variables. No name
//! is ever part of a command line, a WQL filter or a wildcard: a VM named
//! `a'; Remove-Item C:\ -Recurse; '` is a string the script compares, nothing more.
//! PowerShell also ends a single-quoted string at U+2018–U+201B, so a name holding one of
//! them (or a control character) is refused with its field named, not escaped.
//!
//! What is missing on the host (a VM, a volume, a share, a host that does not answer) is
//! left out of the lists, with a note on stderr, so `compare` reports it; the script never
//! fills in the scenario's value. Values are converted to what the inventory reader takes:
//! sizes as byte counts, Windows Server releases from the build number, configuration
//! versions as `major.minor`, VM states and checkpoint types by their names. A value the
//! script cannot map is written as found, and the reader refuses it with its field named.
//!
//! It has not been run on a real Hyper-V host yet.

use std::fmt::Write as _;

use crate::scenario::Scenario;

use super::places::is_path;

/// A scenario name the script cannot hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CollectError {
    #[error(
        "{field}: {name:?} holds U+{code:04X}, {what}; the collection script cannot quote it \
         (rename it in the scenario)"
    )]
    Unquotable {
        /// Where the name is in the scenario (`vms[0].name`).
        field: String,
        name: String,
        code: u32,
        what: &'static str,
    },
}

/// Why `c` cannot be in a single-quoted PowerShell literal, if it cannot.
fn unquotable(c: char) -> Option<&'static str> {
    match c {
        // PowerShell's tokenizer takes these as single quotes: one would end the literal.
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => {
            Some("a quotation mark PowerShell ends a single-quoted string with")
        }
        '\0' => Some("NUL, which ends the script text early"),
        '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
            Some("a line break, which would let the name leave its line of the script")
        }
        c if c.is_control() => Some("a control character"),
        _ => None,
    }
}

/// `text` as a PowerShell single-quoted literal (`'` doubled), or the refusal naming
/// `field`.
pub fn literal(field: &str, text: &str) -> Result<String, CollectError> {
    if let Some((c, what)) = text.chars().find_map(|c| unquotable(c).map(|w| (c, w))) {
        return Err(CollectError::Unquotable {
            field: field.to_string(),
            name: text.to_string(),
            code: u32::from(c),
            what,
        });
    }
    Ok(format!("'{}'", text.replace('\'', "''")))
}

fn opt_literal(field: &str, text: Option<&str>) -> Result<String, CollectError> {
    text.map_or(Ok("$null".to_string()), |t| literal(field, t))
}

fn bool_literal(b: bool) -> &'static str {
    if b {
        "$true"
    } else {
        "$false"
    }
}

/// The collection script of `s`.
pub fn collection_script(s: &Scenario) -> Result<String, CollectError> {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# Host inventory collection script made by hvsim {} (hvsim host collect) for the",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        w,
        "# scenario named in $scenarioName below. Windows PowerShell 5.1, on a Hyper-V host."
    );
    let _ = writeln!(
        w,
        "# READ-ONLY: its only commands on hosts are Get-* queries; it changes nothing on any"
    );
    let _ = writeln!(
        w,
        "# host, cluster, VM or file server (only this PowerShell session's type data, below)."
    );
    let _ = writeln!(
        w,
        "# It writes one JSON document to stdout: what it found, for"
    );
    let _ = writeln!(
        w,
        "# `hvsim host plan FILE --inventory HOST.json` to compare with the scenario. What it"
    );
    let _ = writeln!(
        w,
        "# did not find is left out (a note on stderr says why), never filled in."
    );
    let _ = writeln!(
        w,
        "# Run: powershell.exe -NoProfile -ExecutionPolicy Bypass -File THIS.ps1 > HOST.json"
    );
    let _ = writeln!(
        w,
        "# The plan's other two preflight queries (the guests' writers through PowerShell"
    );
    let _ = writeln!(
        w,
        "# Direct, the snapshot service) are not here: the inventory has no place for them."
    );
    let _ = writeln!(
        w,
        "# Every name below is data in a single-quoted literal; the body only compares them."
    );
    let _ = writeln!(w);
    let _ = writeln!(w, "$scenarioName = {}", literal("name", &s.name)?);

    // Hosts: Win32_OperatingSystem on each (R9's versions, F3's 2016 and later).
    let _ = writeln!(w, "$wantHosts = @(");
    for (i, h) in s.hosts.iter().enumerate() {
        let _ = writeln!(w, "    {}", literal(&format!("hosts[{i}].name"), &h.name)?);
    }
    let _ = writeln!(w, ")");

    // The cluster is asked through its first node, as the plan does (F3, R10).
    match &s.cluster {
        Some(c) => {
            let _ = writeln!(
                w,
                "$wantCluster = @{{ Name = {}; AskAt = {} }}",
                literal("cluster.name", &c.name)?,
                opt_literal("cluster.nodes[0]", c.nodes.first().map(String::as_str))?
            );
        }
        None => {
            let _ = writeln!(w, "$wantCluster = $null");
        }
    }

    // Volumes of hosts and CSVs (R8, R10). Path: the name when it is a path; otherwise
    // the body finds the volume holding the scenario's disks on it.
    let _ = writeln!(w, "$wantVolumes = @(");
    for (i, v) in s.volumes.iter().enumerate() {
        if v.file_server.is_some() {
            continue; // A file server's volume is found through its share (below).
        }
        let name = literal(&format!("volumes[{i}].name"), &v.name)?;
        let path = if is_path(&v.name) {
            name.clone()
        } else {
            "$null".to_string()
        };
        let _ = writeln!(
            w,
            "    @{{ Name = {name}; Host = {}; Csv = {}; Path = {path} }}",
            opt_literal(&format!("volumes[{i}].host"), v.host.as_deref())?,
            bool_literal(v.csv)
        );
    }
    let _ = writeln!(w, ")");

    // VMs on their hosts, with the disks the scenario gives them (F3, R1, R2, R7).
    let _ = writeln!(w, "$wantVms = @(");
    for (i, vm) in s.vms.iter().enumerate() {
        let _ = writeln!(
            w,
            "    @{{ Name = {}; Host = {}; Disks = @(",
            literal(&format!("vms[{i}].name"), &vm.name)?,
            literal(&format!("vms[{i}].host"), &vm.host)?
        );
        for (j, d) in vm.disks.iter().enumerate() {
            let at = format!("vms[{i}].disks[{j}]");
            let _ = writeln!(
                w,
                "        @{{ File = {}; Volume = {} }}",
                literal(&format!("{at}.file"), &d.file)?,
                opt_literal(&format!("{at}.volume"), d.volume.as_deref())?
            );
        }
        let _ = writeln!(w, "    ) }}");
    }
    let _ = writeln!(w, ")");

    // SMB 3.0 file servers, their shares and the volumes holding them (F4, R10).
    let _ = writeln!(w, "$wantFileServers = @(");
    for (i, fs) in s.file_servers.iter().enumerate() {
        let _ = writeln!(
            w,
            "    @{{ Name = {}; Shares = @(",
            literal(&format!("file_servers[{i}].name"), &fs.name)?
        );
        for (j, sh) in fs.shares.iter().enumerate() {
            let at = format!("file_servers[{i}].shares[{j}]");
            let _ = writeln!(
                w,
                "        @{{ Name = {}; Volume = {} }}",
                literal(&format!("{at}.name"), &sh.name)?,
                literal(&format!("{at}.volume"), &sh.volume)?
            );
        }
        let _ = writeln!(w, "    ) }}");
    }
    let _ = writeln!(w, ")");
    let _ = writeln!(w);
    out.push_str(BODY);
    Ok(out)
}

/// The script's fixed part: it reads only the `$want*` variables above it. Kept free of
/// double-quoted strings, here-strings and block comments, so a reader (and the tests'
/// lexer) sees every literal at a glance.
const BODY: &str = r##"$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# Windows PowerShell 5.1 adds a Count to arrays it wraps, and ConvertTo-Json then writes
# {"value": [...], "Count": n} instead of the list. This changes this session only;
# a session without that type data has nothing to remove.
try { Remove-TypeData -TypeName System.Array } catch { }
# An error nobody caught ends the script with exit code 1 and the error on stderr, never
# with half a document on stdout.
trap {
    [Console]::Error.WriteLine('hvsim collect: ' + $_.InvocationInfo.PositionMessage + ' ' + $_.Exception.Message)
    exit 1
}

# Notes go to stderr so that stdout holds the JSON document alone.
function Note([string]$text) { [Console]::Error.WriteLine('hvsim collect: ' + $text) }

# This computer is asked directly; any other host over the network.
function IsRemote([string]$name) {
    -not (($name -ieq $env:COMPUTERNAME) -or ($name -ieq 'localhost'))
}
function OnHost([string]$name) { if (IsRemote $name) { @{ ComputerName = $name } } else { @{} } }
function CimOn([string]$name) { if (IsRemote $name) { @{ CimSession = $name } } else { @{} } }

# Windows Server release by Win32_OperatingSystem.BuildNumber (the inventory's names).
$releaseByBuild = @{
    '7600' = '2008 R2'; '7601' = '2008 R2'; '9200' = '2012'; '9600' = '2012 R2'
    '14393' = '2016'; '17763' = '2019'; '20348' = '2022'; '26100' = '2025'
}
# Get-Cluster's ClusterFunctionalLevel (its whole part) by release.
$releaseByLevel = @{
    '6' = '2008 R2'; '7' = '2012'; '8' = '2012 R2'; '9' = '2016'; '10' = '2019'; '11' = '2022'; '12' = '2025'
}
# Get-VM's State as the inventory names it; a VM between states is written as found.
$stateNames = @{ 'Running' = 'running'; 'Off' = 'off'; 'Saved' = 'saved'; 'Paused' = 'paused' }
# The backup integration service's name by release (R2); an English host's names.
$backupServiceNames = @('Backup (volume shadow copy)', 'Backup (volume checkpoint)', 'Backup (volume snapshot)')

function Release($build, $productType, $caption) {
    # A client Windows (ProductType 1) shares build numbers with servers: not a release.
    if (($productType -ne 1) -and $releaseByBuild.ContainsKey([string]$build)) {
        return $releaseByBuild[[string]$build]
    }
    return ([string]$caption + ' build ' + [string]$build)
}

function SamePath([string]$a, [string]$b) { $a.TrimEnd('\') -ieq $b.TrimEnd('\') }
function UnderPath([string]$path, [string]$folder) {
    $f = $folder.TrimEnd('\') + '\'
    $path.StartsWith($f, [StringComparison]::OrdinalIgnoreCase)
}

# Hosts: Get-CimInstance Win32_OperatingSystem. A host that does not answer is left out.
$outHosts = New-Object System.Collections.ArrayList
$vmsOn = @{}
foreach ($name in $wantHosts) {
    $at = OnHost $name
    try {
        $os = Get-CimInstance -ClassName Win32_OperatingSystem @at
        [void]$outHosts.Add([ordered]@{
            name = [string]$os.CSName
            version = Release $os.BuildNumber $os.ProductType $os.Caption
        })
    } catch {
        Note ('host ' + $name + ': Win32_OperatingSystem: ' + $_.Exception.Message)
        continue
    }
    try {
        # All VMs, compared by name here: Get-VM -Name would read a name as a wildcard.
        $vmsOn[$name] = @(Get-VM @at)
    } catch {
        Note ('host ' + $name + ': Get-VM: ' + $_.Exception.Message)
        $vmsOn[$name] = @()
    }
}

# VMs: Get-VM, Get-VMIntegrationService, Get-VMScsiController, Get-VMHardDiskDrive | Get-VHD.
# A VM is looked for on its scenario host first, then on the scenario's other hosts, so
# one that moved is reported where it is.
$vmDisks = @{}
$foundVms = New-Object System.Collections.ArrayList
foreach ($w in $wantVms) {
    $found = @()
    $order = @($w.Host) + @($wantHosts | Where-Object { $_ -ne $w.Host })
    foreach ($h in $order) {
        if ($vmsOn.ContainsKey($h)) {
            $found = @($vmsOn[$h] | Where-Object { $_.Name -eq $w.Name })
            if ($found.Count -gt 0) { break }
        }
    }
    if ($found.Count -eq 0) { Note ('VM ' + $w.Name + ': not found'); continue }
    if ($found.Count -gt 1) { Note ('VM ' + $w.Name + ': ' + $found.Count + ' VMs have this name; left out'); continue }
    $vm = $found[0]
    $at = OnHost ([string]$vm.ComputerName)
    try {
        $services = @(Get-VMIntegrationService -VM $vm)
        $scsi = @(Get-VMScsiController -VM $vm)
        $disks = New-Object System.Collections.ArrayList
        foreach ($drive in @(Get-VMHardDiskDrive -VM $vm)) {
            # A pass-through disk (R13) has no file.
            if (-not $drive.Path) { continue }
            $vhd = Get-VHD -Path $drive.Path @at
            # With a checkpoint the drive is on an AVHDX: the scenario names the base disk.
            while ($vhd.ParentPath) { $vhd = Get-VHD -Path $vhd.ParentPath @at }
            [void]$disks.Add(@{ Path = [string]$vhd.Path; Size = [uint64]$vhd.Size })
        }
    } catch {
        Note ('VM ' + $w.Name + ': ' + $_.Exception.Message)
        continue
    }
    $backup = @($services | Where-Object { $backupServiceNames -contains $_.Name })
    if ($backup.Count -eq 0) { Note ('VM ' + $w.Name + ': no integration service named ' + ($backupServiceNames -join ' or ')) }
    $statuses = @($services | Where-Object { $_.PrimaryStatusDescription -eq 'OK' })
    $icVersion = $vm.IntegrationServicesVersion
    $icRelease = $null
    if ($icVersion -and $icVersion.Major -gt 0) {
        if ($releaseByBuild.ContainsKey([string]$icVersion.Build)) {
            $icRelease = $releaseByBuild[[string]$icVersion.Build]
        } else {
            Note ('VM ' + $w.Name + ': integration services ' + $icVersion + ' are of no known release')
        }
    }
    # Get-VM has a Version (the configuration version) from 2012 R2 on.
    $config = [string]$vm.Version
    if (-not $config) { Note ('VM ' + $w.Name + ': Get-VM gives no configuration version'); $config = 'unknown' }
    $state = [string]$vm.State
    if ($stateNames.ContainsKey($state)) { $state = $stateNames[$state] }
    $checkpoint = $null
    if ($vm.CheckpointType) { $checkpoint = [string]$vm.CheckpointType }
    $vmDisks[$w.Name] = $disks
    [void]$foundVms.Add([ordered]@{
        want = $w
        out = [ordered]@{
            name = [string]$vm.Name
            host = [string]$vm.ComputerName
            generation = [int]$vm.Generation
            config_version = $config
            state = $state
            checkpoint_type = $checkpoint
            integration_services = (($null -ne $icRelease) -or ($statuses.Count -gt 0))
            integration_services_version = $icRelease
            backup_enabled = (($backup.Count -gt 0) -and [bool]$backup[0].Enabled)
            scsi_controller = ($scsi.Count -gt 0)
            disks = @()
        }
    })
}

# Volumes: Get-Volume -FilePath on a host; Get-ClusterSharedVolume for a CSV. A volume
# named by a path is looked up there; any other by the disks the scenario puts on it.
$outVolumes = New-Object System.Collections.ArrayList
$volumePaths = New-Object System.Collections.ArrayList
foreach ($w in $wantVolumes) {
    $path = $w.Path
    if (-not $path) {
        foreach ($v in $wantVms) {
            foreach ($d in $v.Disks) {
                if ((-not $path) -and ($d.Volume -eq $w.Name) -and $vmDisks.ContainsKey($v.Name)) {
                    $on = @($vmDisks[$v.Name] | Where-Object { (Split-Path -Leaf $_.Path) -eq $d.File })
                    if ($on.Count -gt 0) { $path = $on[0].Path }
                }
            }
        }
    }
    if (-not $path) { Note ('volume ' + $w.Name + ': no path, and none of its disks found'); continue }
    $csv = $null
    if ($w.Csv -and $wantCluster) {
        try {
            $csv = @(Get-ClusterSharedVolume -Cluster $wantCluster.AskAt | ForEach-Object {
                $_.SharedVolumeInfo | Where-Object { (SamePath $_.FriendlyVolumeName $path) -or (UnderPath $path $_.FriendlyVolumeName) }
            }) | Select-Object -First 1
        } catch {
            Note ('volume ' + $w.Name + ': Get-ClusterSharedVolume: ' + $_.Exception.Message)
        }
    }
    if ($csv) {
        [void]$outVolumes.Add([ordered]@{
            name = $w.Name; path = [string]$csv.FriendlyVolumeName; host = $null; csv = $true
            capacity = [uint64]$csv.Partition.Size; free = [uint64]$csv.Partition.FreeSpace
        })
        [void]$volumePaths.Add(@{ Name = $w.Name; Path = [string]$csv.FriendlyVolumeName })
        continue
    }
    # Not a CSV (or none by that path): the volume holding the path, on its host.
    $asker = $w.Host
    if (-not $asker -and $wantCluster) { $asker = $wantCluster.AskAt }
    $cim = @{}
    if ($asker) { $cim = CimOn $asker }
    try {
        $v = Get-Volume -FilePath $path @cim
    } catch {
        Note ('volume ' + $w.Name + ': Get-Volume: ' + $_.Exception.Message)
        continue
    }
    $root = [string]$v.Path
    if ($v.DriveLetter) { $root = [string]$v.DriveLetter + ':\' }
    if ($w.Path) { $root = $w.Path }
    [void]$outVolumes.Add([ordered]@{
        name = $w.Name; path = $root; host = $asker; csv = $false
        capacity = [uint64]$v.Size; free = [uint64]$v.SizeRemaining
    })
    [void]$volumePaths.Add(@{ Name = $w.Name; Path = $root })
}

# Cluster: Get-Cluster, Get-ClusterNode, asked at the scenario's first node.
$outCluster = $null
if ($wantCluster) {
    try {
        $c = Get-Cluster -Name $wantCluster.AskAt
        $nodes = @(Get-ClusterNode -Cluster $wantCluster.AskAt | ForEach-Object { [string]$_.Name })
        $level = [string][int][math]::Floor([double]$c.ClusterFunctionalLevel)
        $release = 'level ' + $level
        if ($releaseByLevel.ContainsKey($level)) { $release = $releaseByLevel[$level] }
        $outCluster = [ordered]@{ name = [string]$c.Name; functional_level = $release; nodes = $nodes }
    } catch {
        Note ('cluster ' + $wantCluster.Name + ': ' + $_.Exception.Message)
    }
}

# File servers: Get-SmbShare -CimSession, Get-Volume of each share's path, Get-Service
# fssagent (the File Server VSS Agent Service, R10).
$outFileServers = New-Object System.Collections.ArrayList
foreach ($w in $wantFileServers) {
    try {
        $shares = @(Get-SmbShare -CimSession $w.Name)
    } catch {
        Note ('file server ' + $w.Name + ': Get-SmbShare: ' + $_.Exception.Message)
        continue
    }
    foreach ($sh in $w.Shares) {
        $share = @($shares | Where-Object { $_.Name -eq $sh.Name })
        if ($share.Count -eq 0) { continue }
        $unc = '\\' + $w.Name + '\' + $sh.Name
        [void]$volumePaths.Add(@{ Name = $sh.Volume; Path = $unc })
        if (@($outVolumes | Where-Object { $_.name -eq $sh.Volume }).Count -gt 0) { continue }
        try {
            $v = Get-Volume -FilePath $share[0].Path -CimSession $w.Name
            [void]$outVolumes.Add([ordered]@{
                name = $sh.Volume; path = [string]$share[0].Path; host = $null; csv = $false
                capacity = [uint64]$v.Size; free = [uint64]$v.SizeRemaining
            })
        } catch {
            Note ('file server ' + $w.Name + ': Get-Volume of share ' + $sh.Name + ': ' + $_.Exception.Message)
        }
    }
    $agent = $false
    try {
        $svc = Get-Service -ComputerName $w.Name -Name fssagent
        $agent = ([string]$svc.Status -eq 'Running')
    } catch {
        Note ('file server ' + $w.Name + ': no File Server VSS Agent Service: ' + $_.Exception.Message)
    }
    [void]$outFileServers.Add([ordered]@{
        name = $w.Name; shares = @($shares | ForEach-Object { [string]$_.Name }); vss_agent = $agent
    })
}

# Each disk under the scenario name of the volume or share holding it (the longest path
# that contains it); a disk on none is placed by its folder, which compare reports.
$outVms = New-Object System.Collections.ArrayList
foreach ($f in $foundVms) {
    $list = New-Object System.Collections.ArrayList
    foreach ($d in $vmDisks[$f.want.Name]) {
        $best = $null
        foreach ($p in $volumePaths) {
            if ((UnderPath $d.Path $p.Path) -and ((-not $best) -or ($p.Path.Length -gt $best.Path.Length))) { $best = $p }
        }
        $disk = [ordered]@{ file = (Split-Path -Leaf $d.Path); volume = $null; share = $null; size = $d.Size }
        if ($best -and $best.Path.StartsWith('\\')) {
            $disk.share = $best.Path
        } elseif ($best) {
            $disk.volume = $best.Name
        } elseif ($d.Path.StartsWith('\\')) {
            $disk.share = (Split-Path -Parent $d.Path)
        } else {
            $disk.volume = (Split-Path -Parent $d.Path)
        }
        [void]$list.Add($disk)
    }
    $f.out.disks = @($list)
    [void]$outVms.Add($f.out)
}

$inventory = [ordered]@{
    hosts = @($outHosts)
    cluster = $outCluster
    volumes = @($outVolumes)
    vms = @($outVms)
    file_servers = @($outFileServers)
}
$json = ConvertTo-Json -InputObject $inventory -Depth 8
# Every character past ASCII as \uXXXX: stdout's code page cannot garble a name then.
$json = [regex]::Replace($json, '[^\u0000-\u007F]', { param($m) '\u{0:x4}' -f [int][char]$m.Value })
# Through the pipeline, so that `> HOST.json` in a PowerShell session catches it too.
Write-Output $json
exit 0
"##;

#[cfg(test)]
mod tests;
