//! Records the git commit the `kiln` binary was built from, for `kiln
//! --version`. Outside a git checkout (a source tarball, `cargo install`
//! from the registry) or without `git` the hash is "unknown"; this script
//! never fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs git in this crate's folder; `None` on any failure.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let hash = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=KILN_GIT_HASH={hash}");
    println!("cargo:rerun-if-changed=build.rs");
    // Rebuild when HEAD moves: the HEAD file of this worktree, the branch
    // it points to and the packed refs (only files that exist, or cargo
    // would rerun this script on every build).
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let abs = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            manifest.join(p)
        }
    };
    let mut watch = Vec::new();
    if let Some(dir) = git(&["rev-parse", "--git-dir"]).map(abs) {
        watch.push(dir.join("HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]).map(abs) {
        watch.push(common.join("packed-refs"));
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(common.join(branch));
        }
    }
    for p in watch.into_iter().filter(|p| p.is_file()) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}
