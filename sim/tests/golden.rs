//! Golden flows: the story `hvsim run` tells for F1, F2, F3 (on-host and off-host) and
//! F4, with the seed's steps in the seed's order and the seed's actors. Reviewing one of
//! these snapshots against SPEC.md is enough to see the flow is right.

mod library;

fn story(name: &str) -> String {
    let out = library::told(name);
    format!("{}\n{}\n", out.story.join("\n"), out.report)
}

#[test]
fn f1_online_backup_with_auto_recovery() {
    insta::assert_snapshot!(story("f1-online-2012-autorecovery"));
}

#[test]
fn f2_backup_and_auto_recovery_checkpoints() {
    insta::assert_snapshot!(story("f2-online-backup-checkpoint"));
}

#[test]
fn f3_production_checkpoint_on_host() {
    insta::assert_snapshot!(story("f3-production-checkpoint-onhost"));
}

#[test]
fn f3_production_checkpoints_off_host_group() {
    insta::assert_snapshot!(story("f3-production-checkpoint-offhost-group"));
}

#[test]
fn f4_smb3_share_over_fsrvp() {
    insta::assert_snapshot!(story("f4-smb3-share-backup"));
}
