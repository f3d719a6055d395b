package containers

import (
	"reflect"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
)

func TestShouldRestart(t *testing.T) {
	p := func(name string, max int) metadata.RestartPolicy {
		return metadata.RestartPolicy{Name: name, MaxRetries: max}
	}
	cases := []struct {
		policy       metadata.RestartPolicy
		code, count  int
		manual       bool
		exit, atBoot bool
	}{
		{policy: p("", 0), code: 1},
		{policy: p("no", 0), code: 1},
		{policy: p("always", 0), code: 0, exit: true, atBoot: true},
		{policy: p("always", 0), code: 0, manual: true, atBoot: true},
		{policy: p("unless-stopped", 0), code: 0, exit: true, atBoot: true},
		{policy: p("unless-stopped", 0), code: 1, manual: true},
		{policy: p("on-failure", 0), code: 0},
		{policy: p("on-failure", 0), code: 1, count: 100, exit: true, atBoot: true},
		{policy: p("on-failure", 3), code: 1, count: 2, exit: true, atBoot: true},
		{policy: p("on-failure", 3), code: 1, count: 3},
		{policy: p("on-failure", 3), code: 137, manual: true},
	}
	for _, tc := range cases {
		if got := shouldRestart(tc.policy, tc.code, tc.count, tc.manual); got != tc.exit {
			t.Errorf("shouldRestart(%+v, code %d, count %d, manual %v) = %v, want %v", tc.policy, tc.code, tc.count, tc.manual, got, tc.exit)
		}
		if got := shouldRestartAtStart(tc.policy, tc.code, tc.count, tc.manual); got != tc.atBoot {
			t.Errorf("shouldRestartAtStart(%+v, code %d, count %d, manual %v) = %v, want %v", tc.policy, tc.code, tc.count, tc.manual, got, tc.atBoot)
		}
	}
}

func TestRestartBackoff(t *testing.T) {
	c := &ctr{}
	steps := []struct {
		ran  time.Duration
		want time.Duration
	}{
		{0, 100 * time.Millisecond}, {time.Second, 200 * time.Millisecond}, {0, 400 * time.Millisecond},
		{9 * time.Second, 800 * time.Millisecond}, {10 * time.Second, 100 * time.Millisecond}, {0, 200 * time.Millisecond},
	}
	for i, s := range steps {
		if got := c.nextRestartDelay(s.ran); got != s.want {
			t.Errorf("step %d: ran %v: delay %v, want %v", i, s.ran, got, s.want)
		}
	}
	for range 20 {
		c.nextRestartDelay(0)
	}
	if got := c.nextRestartDelay(0); got != time.Minute {
		t.Errorf("delay after many fast crashes = %v, want the 1m cap", got)
	}
	c.resetRestartDelay()
	if got := c.nextRestartDelay(0); got != 100*time.Millisecond {
		t.Errorf("delay after a reset = %v", got)
	}
}

func TestValidatePolicy(t *testing.T) {
	cases := []struct {
		p    RestartPolicy
		rm   bool
		fail bool
	}{
		{p: RestartPolicy{Name: "always"}},
		{p: RestartPolicy{Name: "on-failure", MaxRetries: 3}},
		{p: RestartPolicy{Name: "always", MaxRetries: 3}, fail: true},
		{p: RestartPolicy{Name: "sometimes"}, fail: true},
		{p: RestartPolicy{Name: "on-failure", MaxRetries: -1}, fail: true},
		{p: RestartPolicy{Name: "always"}, rm: true, fail: true},
		{p: RestartPolicy{Name: "no"}, rm: true},
	}
	for _, tc := range cases {
		err := validatePolicy("update", tc.p, tc.rm)
		if (err != nil) != tc.fail || err != nil && !errdefs.IsInvalidArgument(err) {
			t.Errorf("validatePolicy(%+v, rm %v) = %v, want failure %v (invalid argument)", tc.p, tc.rm, err, tc.fail)
		}
	}
}

func TestProcessStateErrors(t *testing.T) {
	cases := []struct {
		op, status string
		ok         bool
		msg        string
	}{
		{opExec, StatusRunning, true, ""},
		{opExec, StatusExited, false, "container c1 is not running"},
		{opExec, StatusCreated, false, "container c1 is not running"},
		{opExec, StatusPaused, false, "container c1 is paused, unpause the container before exec"},
		{opPause, StatusRunning, true, ""},
		{opPause, StatusPaused, false, "container c1 is already paused"},
		{opPause, StatusExited, false, "container c1 is not running"},
		{opUnpause, StatusPaused, true, ""},
		{opUnpause, StatusRunning, false, "container c1 is not paused"},
		{opStart, StatusRestarting, true, ""},
		{opRemove, StatusRestarting, false, "cannot remove container c1: it is restarting; stop it first, or remove it with force"},
	}
	for _, tc := range cases {
		err := check("c1", tc.op, tc.status)
		if (err == nil) != tc.ok || err != nil && (err.Error() != tc.msg || !errdefs.IsFailedPrecondition(err)) {
			t.Errorf("%s when %s: %v, want allowed %v, message %q", tc.op, tc.status, err, tc.ok, tc.msg)
		}
	}
}

func TestParsePS(t *testing.T) {
	out := "UID   PID  PPID  C STIME TTY          TIME CMD\n" +
		"root     1     0  0 10:00 ?        00:00:01 /sbin/init splash\n" +
		"root  4242     1  0 10:01 ?        00:00:00 sleep 300\n" +
		"root  4243  4242  0 10:01 pts/0    00:00:00 sh -c echo 'a  b'\n"
	titles, rows, err := parsePS([]byte(out), []int{4242, 4243, 9999})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}; !reflect.DeepEqual(titles, want) {
		t.Errorf("titles %q", titles)
	}
	want := [][]string{
		{"root", "4242", "1", "0", "10:01", "?", "00:00:00", "sleep 300"},
		{"root", "4243", "4242", "0", "10:01", "pts/0", "00:00:00", "sh -c echo 'a b'"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows %q, want %q", rows, want)
	}
	if _, _, err := parsePS([]byte("USER COMMAND\nroot x\n"), nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ps output without PID: %v", err)
	}
}

func TestSetEnv(t *testing.T) {
	cases := []struct {
		env     []string
		e       string
		replace bool
		want    []string
	}{
		{[]string{"A=1", "B=2"}, "B=3", true, []string{"A=1", "B=3"}},
		{[]string{"A=1", "B=2"}, "B=3", false, []string{"A=1", "B=2"}},
		{[]string{"A=1"}, "C=4", true, []string{"A=1", "C=4"}},
		{[]string{"A=1", "B=2"}, "A", true, []string{"B=2"}},
		{[]string{"A=1"}, "Z", true, []string{"A=1"}},
	}
	for _, tc := range cases {
		if got := setEnv(append([]string(nil), tc.env...), tc.e, tc.replace); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("setEnv(%q, %q, %v) = %q, want %q", tc.env, tc.e, tc.replace, got, tc.want)
		}
	}
}

func TestResources(t *testing.T) {
	bad := []Resources{
		{Memory: 1 << 20}, {Memory: 64 << 20, MemorySwap: 32 << 20}, {NanoCPUs: 5e8, CPUQuota: 50000},
		{CPUShares: 1}, {CPUPeriod: 10}, {PidsLimit: -2}, {NanoCPUs: 1e6},
	}
	for _, r := range bad {
		if err := validateResources(r); !errdefs.IsInvalidArgument(err) {
			t.Errorf("validateResources(%+v) = %v, want invalid argument", r, err)
		}
	}
	var res specs.LinuxResources
	flags := applyResources(&res, Resources{Memory: 64 << 20, NanoCPUs: 5e8, PidsLimit: 100})
	if got := strings.Join(flags, " "); got != "--memory 67108864 --cpu-period 100000 --cpu-quota 50000 --pids-limit 100" {
		t.Errorf("update flags: %s", got)
	}
	if *res.Memory.Limit != 64<<20 || *res.CPU.Quota != 50000 || *res.CPU.Period != 100000 || *res.Pids.Limit != 100 {
		t.Errorf("spec resources: %+v %+v %+v", res.Memory, res.CPU, res.Pids)
	}
}
