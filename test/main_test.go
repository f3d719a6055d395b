// Package test holds skiff's end-to-end tests. They run the built binaries
// the way users and other programs do, through their command lines.
//
// The runtime tests run the same OCI bundle through runc, the oracle, and
// through skiff-runtime, and compare what the container sees and what the
// command line reports. By default TestMain builds ./cmd/skiff-runtime; the
// flag -skiff-runtime=PATH or the environment variable SKIFF_RUNTIME=PATH
// selects another binary instead (e.g. SKIFF_RUNTIME=$(command -v runc) to
// develop the tests themselves, or crun to compare a third runtime). runc
// must be on PATH. The tests need root, like the rest of the suite.
package test

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/skiff-containers/skiff/internal/testutil"
)

var skiffRuntimeFlag = flag.String("skiff-runtime", "", "runtime binary to test against runc instead of building ./cmd/skiff-runtime (also $SKIFF_RUNTIME)")

var (
	// runcBin is the oracle runtime, found on PATH.
	runcBin string
	// skiffBin is the runtime under test.
	skiffBin string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "test: the end-to-end tests need root")
		return 1
	}
	runcBin, err = exec.LookPath("runc")
	if err != nil {
		fmt.Fprintf(os.Stderr, "test: runc, the oracle runtime, is required on PATH: %v\n", err)
		return 1
	}
	skiffBin = *skiffRuntimeFlag
	if skiffBin == "" {
		skiffBin = os.Getenv("SKIFF_RUNTIME")
	}
	if skiffBin == "" {
		skiffBin, err = testutil.BuildBinary("./cmd/skiff-runtime")
		if err != nil {
			fmt.Fprintf(os.Stderr, "test: %v\n", err)
			return 1
		}
		defer testutil.RemoveBuilds()
	} else if skiffBin, err = exec.LookPath(skiffBin); err != nil {
		fmt.Fprintf(os.Stderr, "test: runtime under test: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "test: oracle %s, runtime under test %s\n", runcBin, skiffBin)
	return m.Run()
}
