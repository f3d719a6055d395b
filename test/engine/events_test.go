package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// eventsCLI is `skiff events` running in the background.
type eventsCLI struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	stderr bytes.Buffer
	exited chan struct{}
	code   int
}

// lockedWriter serialises the process's writes with the test's reads.
type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// startEvents starts `skiff events args...` and waits until it is
// subscribed: it creates volume probe until the stream names it (the
// stream must let volume create events through), then removes it.
func (d *daemon) startEvents(probe string, args ...string) *eventsCLI {
	d.t.Helper()
	e := &eventsCLI{t: d.t, exited: make(chan struct{})}
	e.cmd = exec.Command(bins.skiff, append([]string{"--socket", d.socket, "events"}, args...)...)
	e.cmd.Stdout = lockedWriter{&e.mu, &e.out}
	e.cmd.Stderr = lockedWriter{&e.mu, &e.stderr}
	if err := e.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	go func() {
		err := e.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			e.code = ee.ExitCode()
		}
		close(e.exited)
	}()
	d.t.Cleanup(func() {
		e.cmd.Process.Signal(syscall.SIGKILL)
		<-e.exited
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		d.must("volume", "create", probe)
		seen := false
		for wait := time.Now().Add(time.Second); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
			if seen = strings.Contains(e.output(), probe); seen {
				break
			}
		}
		d.must("volume", "rm", probe)
		if seen {
			return e
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("skiff events %v did not show the volume %s within 20s; output:\n%s", args, probe, e.output())
		}
	}
}

func (e *eventsCLI) output() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.out.String()
}

// wait waits for the command to end by itself and returns its exit code.
func (e *eventsCLI) wait(timeout time.Duration) int {
	e.t.Helper()
	select {
	case <-e.exited:
		return e.code
	case <-time.After(timeout):
		e.t.Fatalf("skiff events did not end within %s; output:\n%s", timeout, e.output())
		return -1
	}
}

// event is docker's JSON event message (--format '{{json .}}').
type event struct {
	Status, ID, From string `json:",omitempty"`
	Type, Action     string
	Actor            struct {
		ID         string
		Attributes map[string]string
	}
	Scope    string `json:"scope"`
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
}

func parseEvents(t *testing.T, out string) []event {
	t.Helper()
	var evs []event
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("event line %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// want is an expected event: its type, action, and attributes (a value
// "*" only needs the attribute present).
type want struct {
	typ, action string
	id          string // "" for any
	attrs       map[string]string
}

func (w want) String() string { return fmt.Sprintf("%s %s %s %v", w.typ, w.action, w.id, w.attrs) }

func (w want) matches(e event) bool {
	if e.Type != w.typ || e.Action != w.action || w.id != "" && e.Actor.ID != w.id {
		return false
	}
	for k, v := range w.attrs {
		got, ok := e.Actor.Attributes[k]
		if !ok || v != "*" && got != v {
			return false
		}
	}
	return true
}

// checkInOrder checks that wants appear in evs in this order (other
// events may come between).
func checkInOrder(t *testing.T, what string, evs []event, wants []want) {
	t.Helper()
	i := 0
	for _, e := range evs {
		if i < len(wants) && wants[i].matches(e) {
			i++
		}
	}
	if i < len(wants) {
		var b strings.Builder
		for _, e := range evs {
			fmt.Fprintf(&b, "  %s %s %s %v\n", e.Type, e.Action, e.Actor.ID, e.Actor.Attributes)
		}
		t.Fatalf("%s: expected event %d (%s) not found in order; events:\n%s", what, i, wants[i], b.String())
	}
}

// unixArg is t as `--since` takes Unix seconds with nanoseconds.
func unixArg(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }

// TestEvents: `skiff events` streams container, image, network and volume
// events live in order with docker's attributes; --since replays them,
// --until ends the stream, --filter filters, the namespace partitions;
// bad input exits 1.
func TestEvents(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	bb := reg.Busybox
	begin := time.Now()
	live := d.startEvents("probe1", "--format", "{{json .}}")

	d.must("pull", "-q", bb)
	d.must("tag", bb, "evtest:1")
	d.must("rmi", "evtest:1")
	if r := d.run("run", "--name", "three", bb, "sh", "-c", "exit 3"); r.Code != 3 {
		t.Fatalf("run exiting 3: %s", r)
	}
	id := strings.TrimSpace(d.must("inspect", "--format", "{{.Id}}", "three"))
	d.must("rm", "three")
	d.must("network", "create", "evnet")
	d.must("network", "rm", "evnet")
	d.must("volume", "create", "evvol")
	d.must("volume", "rm", "evvol")
	d.must("rmi", bb)
	end := time.Now()

	ctr := func(action string, attrs map[string]string) want {
		a := map[string]string{"name": "three", "image": bb}
		for k, v := range attrs {
			a[k] = v
		}
		return want{"container", action, id, a}
	}
	wants := []want{
		{"image", "pull", bb, map[string]string{"name": bb}},
		{"image", "tag", "", map[string]string{"name": "evtest:1"}},
		{"image", "untag", "", map[string]string{"name": "evtest:1"}},
		ctr("create", nil),
		{"network", "connect", "", map[string]string{"container": id, "type": "bridge", "name": "*"}},
		ctr("start", nil),
		ctr("die", map[string]string{"exitCode": "3", "execDuration": "*"}),
		{"network", "disconnect", "", map[string]string{"container": id}},
		ctr("destroy", nil),
		{"network", "create", "", map[string]string{"name": "evnet", "type": "bridge"}},
		{"network", "destroy", "", map[string]string{"name": "evnet"}},
		{"volume", "create", "evvol", map[string]string{"driver": "local"}},
		{"volume", "destroy", "evvol", map[string]string{"driver": "local"}},
		{"image", "untag", "", map[string]string{"name": bb}},
		{"image", "delete", "", nil},
	}
	waitFor(t, "the last event on the live stream", 20*time.Second, func() bool {
		return strings.Contains(live.output(), `"Action":"delete"`)
	})
	evs := parseEvents(t, live.output())
	checkInOrder(t, "live", evs, wants)
	var die event
	for _, e := range evs {
		if e.Action == "die" {
			die = e
		}
		if e.Type == "container" && (e.Status != e.Action || e.ID != e.Actor.ID || e.From != bb) || e.Scope != "local" ||
			e.TimeNano == 0 || e.Time != e.TimeNano/int64(time.Second) {
			t.Errorf("docker's fields of %+v", e)
		}
	}
	if die.TimeNano < begin.UnixNano() || die.TimeNano > end.UnixNano() {
		t.Errorf("die at %d, not between %d and %d", die.TimeNano, begin.UnixNano(), end.UnixNano())
	}
	if live.running() {
		live.cmd.Process.Signal(syscall.SIGTERM)
	}

	// --since replays what happened before; an --until in the past ends
	// the command once the replay is done.
	rangeArgs := []string{"--since", unixArg(begin), "--until", end.UTC().Format(time.RFC3339Nano)}
	replay := d.must(append([]string{"system", "events", "--format", "json"}, rangeArgs...)...)
	checkInOrder(t, "replay", parseEvents(t, replay), wants)

	// The default format is docker's line.
	lines := d.must(append([]string{"events", "--filter", "event=die"}, rangeArgs...)...)
	dieLine := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) container die ` + id +
		` \((.*, )?execDuration=\d+, exitCode=3, image=` + regexp.QuoteMeta(bb) + `, (.*, )?name=three(, .*)?\)\n$`)
	if !dieLine.MatchString(lines) {
		t.Errorf("events --filter event=die:\n%q\nwant one line matching %s", lines, dieLine)
	}

	// --filter type=image: only the image events, all of them.
	imgs := parseEvents(t, d.must("events", "--since", "10m", "--until", unixArg(end), "--filter", "type=image", "--format", "{{json .}}"))
	if len(imgs) != 5 {
		t.Errorf("events --filter type=image: %d events, want pull, tag, untag, untag, delete: %+v", len(imgs), imgs)
	}
	checkInOrder(t, "type=image", imgs, []want{wants[0], wants[1], wants[2], wants[13], wants[14]})
	// Templates see docker's field names.
	tpl := d.must(append([]string{"events", "--filter", "type=volume", "--filter", "volume=evvol", "--format",
		"{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}} {{.Status}}"}, rangeArgs...)...)
	if tpl != "volume create evvol local \nvolume destroy evvol local \n" {
		t.Errorf("events --format template:\n%q", tpl)
	}
	// Another namespace sees the networks' create and destroy only.
	other := parseEvents(t, d.must(append([]string{"-n", "other", "events", "--format", "json"}, rangeArgs...)...))
	if len(other) != 2 || other[0].Action != "create" || other[1].Action != "destroy" || other[0].Type != "network" {
		t.Errorf("events of namespace other: %+v, want the network's create and destroy", other)
	}

	// A future --until ends a live stream when it comes.
	until := time.Now().Add(8 * time.Second)
	timed := d.startEvents("probe2", "--until", unixArg(until), "--filter", "type=volume")
	d.must("volume", "create", "late")
	if code := timed.wait(30 * time.Second); code != 0 {
		t.Errorf("events --until: exit %d; stderr: %s", code, timed.stderrText())
	}
	if now := time.Now(); now.Before(until) {
		t.Errorf("events --until ended %s early", until.Sub(now))
	}
	if out := timed.output(); !strings.Contains(out, " volume create late (driver=local)\n") {
		t.Errorf("events --until missed the live event:\n%s", out)
	}
	d.must("volume", "rm", "late")

	// Bad input: exit 1 with a clear message.
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"events", "--since", "nonsense"}, `invalid value "nonsense" for --since`},
		{[]string{"events", "--until", "tomorrow"}, `invalid value "tomorrow" for --until`},
		{[]string{"events", "--filter", "bogus=x"}, "invalid filter 'bogus'"},
		{[]string{"events", "--filter", "type=plugin"}, "invalid filter 'type=plugin'"},
		{[]string{"events", "--since", unixArg(end), "--until", unixArg(begin)}, "is after until"},
		{[]string{"events", "--format", "{{.Nope"}, "template parsing error"},
	} {
		if r := d.run(tc.args...); r.Code != 1 || !strings.Contains(r.Stderr, tc.msg) {
			t.Errorf("want exit 1 saying %q: %s", tc.msg, r)
		}
	}
}

func (e *eventsCLI) running() bool {
	select {
	case <-e.exited:
		return false
	default:
		return true
	}
}

// TestEventsContainerLifecycle: the events of a container's whole life,
// with docker's actions and attributes, read back with --since/--until;
// the event filter matches exec events by prefix, the label filter by the
// container's labels.
func TestEventsContainerLifecycle(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	bb := reg.Busybox
	d.must("pull", "-q", bb)
	begin := time.Now()
	id := strings.TrimSpace(d.must("run", "-d", "--name", "ex", "--label", "team=a", bb, "sleep", "1000"))
	if r := d.run("exec", "ex", "sh", "-c", "exit 4"); r.Code != 4 {
		t.Fatalf("exec exiting 4: %s", r)
	}
	d.must("exec", "-d", "ex", "sh", "-c", "exit 5") // nobody waits: exec_die all the same
	waitFor(t, "the detached exec's exec_die", 10*time.Second, func() bool {
		out := d.must("events", "--since", unixArg(begin), "--until", unixArg(time.Now()), "--filter", "event=exec_die", "--format", "{{.Actor.Attributes.exitCode}}")
		return strings.Contains(out, "5\n")
	})
	d.must("pause", "ex")
	d.must("unpause", "ex")
	d.must("rename", "ex", "ex2")
	d.must("restart", "-t", "1", "ex2")
	d.must("kill", "ex2")
	d.must("wait", "ex2")
	d.must("rm", "ex2")
	rangeArgs := []string{"--since", unixArg(begin), "--until", unixArg(time.Now())}

	evs := parseEvents(t, d.must(append([]string{"events", "--format", "json", "--filter", "container=" + id[:12]}, rangeArgs...)...))
	named := func(action, name string, attrs ...string) want {
		a := map[string]string{"name": name, "image": bb, "team": "a"}
		for i := 0; i+1 < len(attrs); i += 2 {
			a[attrs[i]] = attrs[i+1]
		}
		return want{"container", action, id, a}
	}
	checkInOrder(t, "lifecycle", evs, []want{
		named("create", "ex"),
		named("start", "ex"),
		named("exec_create: sh -c exit 4", "ex", "execID", "*"),
		named("exec_start: sh -c exit 4", "ex", "execID", "*"),
		named("exec_die", "ex", "execID", "*", "exitCode", "4"),
		named("pause", "ex"),
		named("unpause", "ex"),
		named("rename", "ex2", "oldName", "ex"),
		named("kill", "ex2", "signal", "15"),
		named("kill", "ex2", "signal", "9"), // stop's escalation after -t 1
		named("die", "ex2", "exitCode", "137"),
		named("stop", "ex2"),
		named("start", "ex2"),
		named("restart", "ex2"),
		named("kill", "ex2", "signal", "9"),
		named("die", "ex2", "exitCode", "137"),
		named("destroy", "ex2"),
	})
	for _, e := range evs {
		if e.Type != "container" || e.Actor.ID != id {
			t.Errorf("--filter container=%s let through %+v", id[:12], e)
		}
	}
	execs := d.must(append([]string{"events", "--filter", "event=exec_create", "--format", "{{.Action}}"}, rangeArgs...)...)
	if execs != "exec_create: sh -c exit 4\nexec_create: sh -c exit 5\n" {
		t.Errorf("events --filter event=exec_create: %q", execs)
	}
	if n := len(parseEvents(t, d.must(append([]string{"events", "--filter", "label=team=a", "--format", "json"}, rangeArgs...)...))); n != len(evs) {
		t.Errorf("events --filter label=team=a: %d events, want the container's %d", n, len(evs))
	}
	if out := d.must(append([]string{"events", "--filter", "label=team=b"}, rangeArgs...)...); out != "" {
		t.Errorf("events --filter label=team=b:\n%s", out)
	}

	// A stopping skiffd ends the streams at once, with an error.
	live := d.startEvents("probe")
	stopping := time.Now()
	d.stop()
	if took := time.Since(stopping); took > 4*time.Second {
		t.Errorf("skiffd took %s to stop with an event stream open", took)
	}
	if code := live.wait(10 * time.Second); code != 1 || !strings.Contains(live.stderrText(), "skiffd is stopping") {
		t.Errorf("events when skiffd stops: exit %d, stderr %q; want 1 saying skiffd is stopping", code, live.stderrText())
	}
}

func (e *eventsCLI) stderrText() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stderr.String()
}
