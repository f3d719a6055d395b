package test

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// TestConcurrentCreateSameID races several creates of one id: exactly one
// must win, the others fail with exit code 1, and nothing may be left of
// the losers. Only the runtime under test runs it: runc 1.1.5 loses this
// race (two creates can both exit 0, and the loser's init and cgroups leak).
func TestConcurrentCreateSameID(t *testing.T) {
	t.Parallel()
	forRuntimes(t, runtimeBins()[1:], func(t *testing.T, rt *testutil.Runtime) {
		bundle, _ := testutil.BusyboxBundle(t, "sleep", "600")
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle)
		ctx := testContext(t, 60*time.Second)
		const n = 4
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				codes[i] = rt.Exec(ctx, testutil.Stdio{}, "create", "--bundle", bundle, id).ExitCode
			}(i)
		}
		wg.Wait()
		sort.Ints(codes)
		if codes[0] != 0 || codes[1] != 1 || codes[n-1] != 1 {
			t.Errorf("exit codes of %d concurrent creates of one id: %v; want one 0 and the rest 1", n, codes)
		}
		st, err := rt.State(ctx, id)
		if err != nil || st.Status != "created" || !alive(st.Pid) {
			t.Errorf("the winner: %+v, %v", st, err)
		}
		if err := rt.Delete(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	})
}

// TestConcurrentContainers runs several containers at once in one root and
// checks that list sees them all and that they all go away.
func TestConcurrentContainers(t *testing.T) {
	t.Parallel()
	forEachRuntime(t, func(t *testing.T, rt *testutil.Runtime) {
		bundle, _ := testutil.BusyboxBundle(t, "sleep", "600")
		ctx := testContext(t, 90*time.Second)
		const n = 5
		ids := make([]string, n)
		for i := range ids {
			ids[i] = testutil.ContainerID(t)
			guard(t, rt, ids[i], bundle)
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				errs[i] = rt.Exec(ctx, testutil.Stdio{}, "run", "-d", "--bundle", bundle, ids[i]).Error()
			}(i)
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		list, err := rt.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]string{}
		for _, st := range list {
			seen[st.ID] = st.Status
		}
		for _, id := range ids {
			if seen[id] != "running" {
				t.Errorf("list: %s is %q, want running (list: %v)", id, seen[id], seen)
			}
		}
		for i := range ids {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				errs[i] = rt.Delete(ctx, ids[i], true)
			}(i)
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if list, err := rt.List(ctx); err != nil || len(list) != 0 {
			t.Errorf("list after deleting all: %+v, %v", list, err)
		}
	})
}
