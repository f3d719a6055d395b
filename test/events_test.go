package test

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/internal/testutil"
)

// keyPaths lists the paths of all object keys in a decoded JSON value
// ("data.memory.usage.max"), descending into objects and the first element
// of arrays.
func keyPaths(prefix string, v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			*out = append(*out, p)
			keyPaths(p, e, out)
		}
	case []any:
		if len(x) > 0 {
			keyPaths(prefix+"[]", x[0], out)
		}
	}
}

// TestEventsStats compares the shape of `events --stats` (one JSON object
// of cgroup statistics) between the runtimes.
func TestEventsStats(t *testing.T) {
	t.Parallel()
	var shapes [2][]string
	oracle, subject := newRuntimes(t)
	bundle, _ := testutil.BusyboxBundle(t, "sleep", "600")
	for i, rt := range []*testutil.Runtime{oracle, subject} {
		id := testutil.ContainerID(t)
		guard(t, rt, id, bundle)
		ctx := testContext(t, 60*time.Second)
		if _, stderr, code := rt.Run(ctx, "run", "-d", "--bundle", bundle, id); code != 0 {
			t.Fatalf("%s run -d: exit %d: %s", rt, code, stderr)
		}
		var ev struct {
			Type string         `json:"type"`
			ID   string         `json:"id"`
			Data map[string]any `json:"data"`
		}
		var out string
		// Right after `run -d`, helper processes of the runtime that are
		// exiting may still be charged to the cgroup (seen with runc):
		// sample until the container's single process is all that is
		// left, for at most two seconds.
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			var stderr string
			var code int
			out, stderr, code = rt.Run(ctx, "events", "--stats", id)
			if code != 0 {
				t.Fatalf("%s events --stats: exit %d: %s", rt, code, stderr)
			}
			if err := json.Unmarshal([]byte(out), &ev); err != nil {
				t.Fatalf("%s events --stats: %q: %v", rt, out, err)
			}
			pids, _ := ev.Data["pids"].(map[string]any)
			if cur, _ := pids["current"].(float64); cur == 1 || time.Now().After(deadline) {
				break
			}
		}
		if ev.Type != "stats" || ev.ID != id {
			t.Errorf("%s events --stats: type %q id %q", rt, ev.Type, ev.ID)
		}
		pids, _ := ev.Data["pids"].(map[string]any)
		if cur, _ := pids["current"].(float64); cur != 1 {
			t.Errorf("%s events --stats: pids.current = %v, want 1", rt, pids["current"])
		}
		var raw map[string]any
		json.Unmarshal([]byte(out), &raw)
		keyPaths("", raw, &shapes[i])
		sort.Strings(shapes[i])
		if err := rt.Delete(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(shapes[0], "\n") != strings.Join(shapes[1], "\n") {
		t.Errorf("events --stats JSON differs in shape:\n%s", lineDiff(strings.Join(shapes[0], "\n"), strings.Join(shapes[1], "\n")))
	}
}
