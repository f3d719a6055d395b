// Package engine holds the end-to-end tests of skiffd and the skiff CLI:
// each test starts its own skiffd on temporary directories and drives it
// through the built `skiff` binary, as a user would, against a real
// distribution registry (Debian docker-registry) on a free loopback port
// seeded with images built from the host's static busybox. They need root.
package engine

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// bins are the built binaries, all in one directory so that skiffd finds
// skiff-shim and skiff-runtime next to itself.
var bins struct {
	skiffd, skiff, shim, runtime string
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "test/engine: the end-to-end tests need root")
		return 1
	}
	for _, need := range []string{"runc"} {
		if _, err := exec.LookPath(need); err != nil {
			fmt.Fprintf(os.Stderr, "test/engine: %s is required on PATH (hack/deps.sh installs it): %v\n", need, err)
			return 1
		}
	}
	defer testutil.RemoveBuilds()
	for _, b := range []struct {
		dst *string
		pkg string
	}{
		{&bins.skiffd, "./cmd/skiffd"}, {&bins.skiff, "./cmd/skiff"},
		{&bins.shim, "./cmd/skiff-shim"}, {&bins.runtime, "./cmd/skiff-runtime"},
	} {
		p, err := testutil.BuildBinary(b.pkg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "test/engine: %v\n", err)
			return 1
		}
		*b.dst = p
	}
	return m.Run()
}
