#!/bin/sh
# zinit-debian.sh: the offline profile's build recipe for the real zinit
# (sources.conf: BUILD script:config/profiles/offline/zinit-debian.sh).
#
# It builds zinit v0.2.5-v0.2.14 without internet, from the Rust crates Debian
# packages (librust-*-dev, sources under /usr/share/cargo/registry) with
# Debian's own cargo and rustc, as a static (static-pie) x86-64 binary. The
# source is adapted to what Debian has (the patch below):
#   - git-version is not packaged: the version string comes from
#     `git describe` of the checkout, passed in as ZINIT_VERSION;
#   - command-group is not packaged: its one use gives each service a
#     session (so a process group) of its own, which setsid in a pre_exec
#     hook does too;
#   - nix 0.26 instead of 0.22 (no source change needed);
#   - no Cargo.lock (its versions are crates.io's).
# The checkout is never modified: the adapted copy lives in $BUILD_DIR/src,
# where only files whose content changed are rewritten, and cargo keeps its
# target directory in $BUILD_DIR/target, so a rerun with nothing changed
# compiles nothing (the first build takes 3-6 minutes on 2 cores).
#
# Environment (set by components_build): SRC, the checkout; OUT, where the
# binary goes; VERSION, the sources.conf VERSION; BUILD_DIR, kept between
# builds; JOBS, parallel jobs.
set -eu

: "${SRC:?}" "${OUT:?}" "${BUILD_DIR:?}"
registry=/usr/share/cargo/registry
cargo=/usr/bin/cargo
rustc=/usr/bin/rustc
target=x86_64-unknown-linux-gnu
# Debian's packages of the crates zinit v0.2.14 needs (clap 2 is librust-clap-2-dev).
packages="librust-anyhow-dev librust-tokio-dev librust-tokio-stream-dev librust-shlex-dev librust-nix-dev
librust-serde-dev librust-serde-derive-dev librust-serde-yaml-dev librust-serde-json-dev librust-fern-dev
librust-log-dev librust-thiserror-dev librust-clap-2-dev"

die() {
	echo "zinit-debian.sh: $*" >&2
	exit 1
}

# Debian's toolchain, not a rustup one that may come first in PATH: the
# packaged crates are tested with it.
for tool in "$cargo" "$rustc"; do
	[ -x "$tool" ] || die "$tool not found: apt-get install cargo"
done
command -v patch >/dev/null || die "patch not found: apt-get install patch"
missing=
for crate in anyhow tokio tokio-stream shlex nix serde serde_derive serde_yaml serde_json fern log thiserror clap; do
	found=
	for d in "$registry/$crate"-[0-9]*; do
		[ -d "$d" ] && found=1
	done
	[ -n "$found" ] || missing="$missing $crate"
done
[ -z "$missing" ] || die "crates missing from $registry:$missing; apt-get install $(echo $packages)"

version=$(git -C "$SRC" describe --tags --always --dirty=-modified 2>/dev/null) || version=${VERSION:-unknown}

# sync_tree FROM TO: make TO hold FROM's files, rewriting only those whose
# content differs (cargo decides what to rebuild by modification times).
# Cargo.lock, which cargo writes into TO, is kept.
sync_tree() {
	mkdir -p "$2"
	(cd "$1" && find . -type f) | while IFS= read -r f; do
		if ! cmp -s "$1/$f" "$2/$f"; then
			mkdir -p "$(dirname "$2/$f")"
			cp "$1/$f" "$2/$f"
		fi
	done
	(cd "$2" && find . -type f ! -name Cargo.lock) | while IFS= read -r f; do
		[ -e "$1/$f" ] || rm -f "$2/$f"
	done
}

staging=$BUILD_DIR/src.new
rm -rf "$staging"
mkdir -p "$staging"
(cd "$SRC" && tar --exclude=./.git --exclude=./target -cf - .) | (cd "$staging" && tar -xf -)
rm -f "$staging/Cargo.lock"
# patch, not git apply: inside another git work tree (work/ of this project)
# git apply would skip every file as outside its directory.
(cd "$staging" && patch -s -p1 --forward --no-backup-if-mismatch) <<'EOF' || die "the patch does not apply to zinit $version (it was made for v0.2.14)"
diff --git a/Cargo.toml b/Cargo.toml
--- a/Cargo.toml
+++ b/Cargo.toml
@@ -10,7 +10,7 @@ anyhow = "1.0"
 tokio = { version = "1.14.0", features = ["full"] }
 tokio-stream = { version = "0.1.8", features = ["sync"] }
 shlex ="1.1"
-nix = "0.22.1"
+nix = "0.26"
 serde = { version = "1.0", features = ["derive"] }
 serde_yaml = "0.8"
 serde_json = "1.0"
@@ -18,5 +18,3 @@ fern = "0.6"
 log = "0.4"
 thiserror = "1.0"
 clap = "2.33"
-git-version = "0.3.5"
-command-group = "1.0.8"
diff --git a/src/main.rs b/src/main.rs
--- a/src/main.rs
+++ b/src/main.rs
@@ -6,13 +6,13 @@ extern crate log;
 extern crate tokio;
 use anyhow::Result;
 use clap::{App, Arg, SubCommand};
-use git_version::git_version;
 
 mod app;
 mod manager;
 mod zinit;
 
-const GIT_VERSION: &str = git_version!(args = ["--tags", "--always", "--dirty=-modified"]);
+// What git-version would give (`git describe`), passed in by the build.
+const GIT_VERSION: &str = env!("ZINIT_VERSION");
 
 #[tokio::main]
 async fn main() -> Result<()> {
diff --git a/src/manager/mod.rs b/src/manager/mod.rs
--- a/src/manager/mod.rs
+++ b/src/manager/mod.rs
@@ -1,13 +1,13 @@
 use std::collections::HashMap;
 
 use anyhow::{Context, Result};
-use command_group::CommandGroup;
 use nix::sys::signal;
 use nix::sys::wait::{self, WaitStatus};
 use nix::unistd::Pid;
 use std::fs::File as StdFile;
 use std::os::unix::io::FromRawFd;
 use std::os::unix::io::IntoRawFd;
+use std::os::unix::process::CommandExt;
 use std::process::Command;
 use std::process::Stdio;
 use std::sync::Arc;
@@ -173,10 +173,16 @@ impl ProcessManager {
 
         let mut table = self.table.lock().await;
 
-        let mut child = child
-            .group_spawn()
-            .context("failed to spawn command")?
-            .into_inner();
+        // A session (so a process group) of its own, as command-group's
+        // group_spawn gives it: signals go to the whole group with killpg.
+        let mut child = unsafe {
+            child.pre_exec(|| {
+                nix::unistd::setsid()?;
+                Ok(())
+            })
+        }
+        .spawn()
+        .context("failed to spawn command")?;
 
         if let Log::Ring(prefix) = log {
             let _ = self
EOF
sync_tree "$staging" "$BUILD_DIR/src"
rm -rf "$staging"

# Cargo's source replacement: every crates.io dependency comes from Debian's
# registry directory. A CARGO_HOME of its own keeps ~/.cargo out of it.
mkdir -p "$BUILD_DIR/cargo-home"
cat >"$BUILD_DIR/cargo-home/config.toml" <<EOF
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "$registry"
EOF

echo "building zinit $version with $($rustc --version)"
# crt-static with an explicit --target links the binary statically while
# build scripts and proc macros stay ordinary host programs.
CARGO_HOME=$BUILD_DIR/cargo-home CARGO_TARGET_DIR=$BUILD_DIR/target RUSTC=$rustc \
	RUSTFLAGS="-C target-feature=+crt-static" ZINIT_VERSION=$version \
	"$cargo" build --offline --release --target "$target" ${JOBS:+--jobs "$JOBS"} \
	--manifest-path "$BUILD_DIR/src/Cargo.toml"
cp "$BUILD_DIR/target/$target/release/zinit" "$OUT"
