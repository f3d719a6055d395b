package testutil

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/bench/bundle"
)

// AppUID and AppGID are the ids of the user and group "app" in the busybox
// rootfs.
const (
	AppUID = bundle.AppUID
	AppGID = bundle.AppGID
)

// BusyboxRootfs populates dir with a root filesystem made from the host's
// static busybox (see bench/bundle.BusyboxRootfs). It fails the test if that
// is not possible.
func BusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	if err := bundle.BusyboxRootfs(dir); err != nil {
		t.Fatal(err)
	}
}

// DefaultSpec returns runc spec's default configuration with terminal false
// and the given args.
func DefaultSpec(args ...string) *specs.Spec { return bundle.DefaultSpec(args...) }

// BusyboxBundle creates a bundle in a new temporary directory (removed when
// the test ends): a busybox rootfs in bundle/rootfs and a config.json equal
// to `runc spec`'s default with terminal false and process.args = args. The
// returned spec is what was written; change it and call WriteSpec to rewrite.
func BusyboxBundle(t testing.TB, args ...string) (string, *specs.Spec) {
	t.Helper()
	dir := t.TempDir()
	// Container processes (the user "app", uid-mapped roots) must be able to
	// reach the rootfs; t.TempDir's parent directories are 0700.
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spec, err := bundle.Create(dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return dir, spec
}

// WriteSpec rewrites bundle/config.json from spec.
func WriteSpec(t testing.TB, bundleDir string, spec *specs.Spec) {
	t.Helper()
	if err := bundle.WriteSpec(bundleDir, spec); err != nil {
		t.Fatal(err)
	}
}

// WriteRawSpec writes data verbatim as bundle/config.json, for tests of
// malformed configurations.
func WriteRawSpec(t testing.TB, bundleDir string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(bundleDir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// SpecJSON returns spec encoded as a generic JSON object, so that a test can
// put values of the wrong type into it before WriteRawSpec.
func SpecJSON(t testing.TB, spec *specs.Spec) map[string]any {
	t.Helper()
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
