// Package testutil holds helpers shared by the project's tests.
package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where every tool a
// test needs has been installed by .ci/run and a missing one is a failure.
func InCI() bool {
	v := os.Getenv("CI")
	return v == "true" || v == "1"
}

// RequireTool returns the path of the named executable. When it is missing the
// test is skipped on a developer machine and fails under CI, so CI can never
// pass by skipping the real-peer tests.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	Missing(t, "tool %s not found in PATH", name)
	return ""
}

// RequireFile is RequireTool for a file that a package installs (a kernel
// image, a source tarball, a module tree).
func RequireFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, "%s: %v", path, err)
	}
}

// Missing skips the test outside CI and fails it under CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true and a test prerequisite is missing: "+format, args...)
	}
	t.Skipf("prerequisite missing (set up by .ci/run): "+format, args...)
}

// Slow skips a slow test (QEMU boot, kernel build, S3 server) under
// `go test -short`. CI never passes -short.
func Slow(t testing.TB) {
	t.Helper()
	if testing.Short() {
		if InCI() {
			t.Fatal("CI=true: slow tests must run; do not pass -short")
		}
		t.Skip("slow test skipped with -short")
	}
}
