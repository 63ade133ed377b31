//! What every command writing a generated file with `-o` must do: write exactly what it
//! prints, into a new file only; an existing file is refused (exit 3, unchanged) unless
//! --force; and its own input never, even with --force.

use std::path::Path;
use std::process::Output;

/// Runs `args` (a command that prints its output) with `-o out`, then over an existing
/// file, with --force, and over `input` itself, through `hvsim`.
pub fn assert_new_unless_forced_never_the_input(
    hvsim: &dyn Fn(&[&str]) -> Output,
    args: &[&str],
    input: &Path,
    out: &Path,
) {
    let (input_s, out_s) = (input.to_str().unwrap(), out.to_str().unwrap());
    let with = |extra: &[&str]| hvsim(&[args, extra].concat());
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let o = with(&["-o", out_s]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "the output goes to the file only");
    let written = std::fs::read(out).unwrap();
    assert_eq!(
        written,
        hvsim(args).stdout,
        "the file holds what stdout gets"
    );

    std::fs::write(out, "# someone's own file\n").unwrap();
    let o = with(&["-o", out_s]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("already exists and is not replaced") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(out).unwrap(),
        "# someone's own file\n"
    );

    let o = with(&["-o", out_s, "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(out).unwrap(), written);

    let before = std::fs::read(input).unwrap();
    let o = with(&["-o", input_s, "--force"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("never writes over its own input"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(input).unwrap(), before);
}

/// A copy of the library's scenario `name` in `dir` (a test may then write beside it).
pub fn scenario_copy(dir: &Path, name: &str) -> std::path::PathBuf {
    let copy = dir.join(name);
    let library = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    std::fs::copy(library, &copy).unwrap();
    copy
}
