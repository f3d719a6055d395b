// Package testutil holds shared test helpers for skiff's tests: busybox
// bundles built from the host's static busybox, building the commands under
// cmd/ once per test binary, a driver for runc-compatible runtime command
// lines (runc, crun, skiff-runtime), and checks that a test left no mounts,
// state directories, cgroups or processes behind.
//
// It is imported only by _test.go files and by test-only packages; non-test
// code never imports it. Code that non-test programs need too (the rootfs
// builder used by bench/) lives in bench/bundle, and the helpers here wrap it.
package testutil
