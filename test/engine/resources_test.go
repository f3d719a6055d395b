package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// procStatus returns the value of a /proc/<pid>/status field of the test
// process ("CapBnd").
func procStatus(t *testing.T, field string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return ""
}

// TestResourceFlags runs containers with docker's resource and security
// flags and checks each from inside: cgroup limits, rlimits,
// capabilities, seccomp, no_new_privs, devices, /dev/shm, sysctls,
// groups, the OOM score.
func TestResourceFlags(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	d.must("pull", "-q", reg.Busybox)

	profile := filepath.Join(t.TempDir(), "no-mkdir.json")
	if err := os.WriteFile(profile, []byte(`{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// docker's default effective set, 0xa80425fb; +NET_ADMIN (12), -CHOWN (0)
	const tweaked = "00000000a80435fa"

	cases := []struct {
		name   string
		flags  []string
		script string
		want   string
	}{
		{name: "memory", flags: []string{"-m", "64m"},
			script: "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
			want:   "67108864\n134217728\n"}, // docker: memory+swap twice the memory by default
		{name: "memory swap and reservation", flags: []string{"--memory", "64m", "--memory-swap", "100m", "--memory-reservation", "32m"},
			script: "cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes /sys/fs/cgroup/memory/memory.soft_limit_in_bytes",
			want:   "104857600\n33554432\n"},
		{name: "cpus", flags: []string{"--cpus", "0.5"},
			script: "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us", want: "50000\n100000\n"},
		{name: "cfs period and quota", flags: []string{"--cpu-period", "50000", "--cpu-quota", "25000"},
			script: "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us", want: "25000\n50000\n"},
		{name: "cpu shares", flags: []string{"-c", "512"}, script: "cat /sys/fs/cgroup/cpu/cpu.shares", want: "512\n"},
		{name: "cpuset", flags: []string{"--cpuset-cpus", "0", "--cpuset-mems", "0"},
			script: "cat /sys/fs/cgroup/cpuset/cpuset.cpus /sys/fs/cgroup/cpuset/cpuset.mems", want: "0\n0\n"},
		{name: "pids limit", flags: []string{"--pids-limit", "20"}, script: "cat /sys/fs/cgroup/pids/pids.max", want: "20\n"},
		{name: "ulimit", flags: []string{"--ulimit", "nofile=1024:2048"}, script: "ulimit -n; ulimit -Hn", want: "1024\n2048\n"},
		{name: "cap-add and cap-drop", flags: []string{"--cap-add", "net_admin", "--cap-drop", "CHOWN"},
			script: "grep CapEff /proc/self/status", want: "CapEff:\t" + tweaked + "\n"},
		{name: "default seccomp and no_new_privs", script: "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status", want: "NoNewPrivs:\t0\nSeccomp:\t2\n"},
		{name: "seccomp unconfined", flags: []string{"--security-opt", "seccomp=unconfined"},
			script: "grep '^Seccomp:' /proc/self/status", want: "Seccomp:\t0\n"},
		{name: "seccomp profile", flags: []string{"--security-opt", "seccomp=" + profile},
			script: "grep '^Seccomp:' /proc/self/status; mkdir /tmp/x 2>&1 || echo refused; ls /tmp", want: "Seccomp:\t2\nmkdir: can't create directory '/tmp/x': Operation not permitted\nrefused\n"},
		{name: "no-new-privileges", flags: []string{"--security-opt", "no-new-privileges"},
			script: "grep '^NoNewPrivs:' /proc/self/status", want: "NoNewPrivs:\t1\n"},
		{name: "no-new-privileges false", flags: []string{"--security-opt", "no-new-privileges:false", "--security-opt", "label=disable", "--security-opt", "apparmor=unconfined"},
			script: "grep '^NoNewPrivs:' /proc/self/status", want: "NoNewPrivs:\t0\n"},
		{name: "privileged", flags: []string{"--privileged"},
			// every capability skiffd's bounding set has, no seccomp, and mount works
			script: "grep -E '^(CapEff|Seccomp):' /proc/self/status; mkdir /tmp/m && mount -t tmpfs none /tmp/m && echo mounted",
			want:   "CapEff:\t" + procStatus(t, "CapBnd") + "\nSeccomp:\t0\nmounted\n"},
		{name: "no mount without --privileged",
			script: "mkdir /tmp/m && mount -t tmpfs none /tmp/m 2>/dev/null || echo refused", want: "refused\n"},
		{name: "device", flags: []string{"--device", "/dev/loop7:/dev/xloop:rw"},
			script: "ls -l /dev/xloop | cut -c1; stat -c '%t %T' /dev/xloop; dd if=/dev/xloop of=/dev/null count=1 2>/dev/null && echo read",
			want:   "b\n7 7\nread\n"},
		{name: "no device without --device", // the device cgroup refuses a node made by hand
			script: "mknod /tmp/l b 7 7 && dd if=/tmp/l of=/dev/null count=1 2>&1 | grep -o 'Operation not permitted'",
			want:   "Operation not permitted\n"},
		{name: "shm size", flags: []string{"--shm-size", "128m"}, script: "df -k /dev/shm | awk 'NR==2 {print $2}'", want: "131072\n"},
		{name: "default shm size", script: "df -k /dev/shm | awk 'NR==2 {print $2}'", want: "65536\n"},
		{name: "sysctl", flags: []string{"--network", "none", "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=1073741824"},
			script: "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax", want: "1\n1073741824\n"},
		{name: "group-add", flags: []string{"--group-add", "nogroup", "--group-add", "1234"}, script: "id -G", want: "0 1234 65534\n"}, // the kernel sorts them
		{name: "oom-score-adj", flags: []string{"--oom-score-adj", "500"}, script: "cat /proc/self/oom_score_adj", want: "500\n"},
		{name: "the same spec through runc", flags: []string{"--runtime", "runc", "-m", "64m", "--pids-limit", "20", "--ulimit", "nofile=1024:2048",
			"--device", "/dev/loop7:/dev/xloop", "--group-add", "nogroup", "--security-opt", "seccomp=" + profile, "--security-opt", "no-new-privileges"},
			script: "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; ulimit -n; id -G; " +
				"dd if=/dev/xloop of=/dev/null count=1 2>/dev/null && echo read; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; mkdir /tmp/x 2>/dev/null || echo refused",
			want: "67108864\n20\n1024\n0 65534\nread\nNoNewPrivs:\t1\nSeccomp:\t2\nrefused\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"run", "--rm"}, tc.flags...), reg.Busybox, "sh", "-c", tc.script)
			if r := d.run(args...); r.Code != 0 || r.Stdout != tc.want {
				t.Errorf("%s\nwant stdout %q", r, tc.want)
			}
		})
	}
	if ps := d.must("ps", "-aq"); ps != "" {
		t.Errorf("containers left by run --rm: %q", ps)
	}
}

// hostConfig is what the tests read of inspect's HostConfig.
type hostConfig struct {
	Memory, MemorySwap, NanoCpus, CpuShares, ShmSize int64
	CpusetCpus                                       string
	PidsLimit                                        *int64
	Ulimits                                          []struct {
		Name       string
		Soft, Hard int64
	}
	CapAdd, CapDrop, SecurityOpt, GroupAdd []string
	Privileged                             bool
	Devices                                []struct{ PathOnHost, PathInContainer, CgroupPermissions string }
	Sysctls                                map[string]string
}

func (d *daemon) hostConfig(name string) hostConfig {
	d.t.Helper()
	var hc hostConfig
	if err := json.Unmarshal([]byte(d.must("inspect", "--format", "{{json .HostConfig}}", name)), &hc); err != nil {
		d.t.Fatalf("inspect %s: %v", name, err)
	}
	return hc
}

// TestResourceFlagsInspectAndUpdate: the flags are recorded and shown by
// inspect under docker's HostConfig names; update changes a container
// created with --memory, in its cgroup and in inspect, and refuses a
// memory limit above its memory+swap limit as docker does.
func TestResourceFlagsInspectAndUpdate(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	d.must("pull", "-q", reg.Busybox)
	d.must("create", "--name", "rec", "-m", "64m", "--cpus", "0.5", "-c", "512", "--cpuset-cpus", "0", "--pids-limit", "30",
		"--ulimit", "nofile=1024:2048", "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD", "--privileged",
		"--security-opt", "no-new-privileges", "--device", "/dev/loop7:/dev/xloop:r", "--shm-size", "32m",
		"--sysctl", "net.ipv4.ip_forward=1", "--group-add", "nogroup", reg.Busybox)
	hc := d.hostConfig("rec")
	pids := int64(30)
	want := hostConfig{Memory: 64 << 20, MemorySwap: 128 << 20, NanoCpus: 5e8, CpuShares: 512, ShmSize: 32 << 20, CpusetCpus: "0", PidsLimit: &pids,
		CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"MKNOD"}, SecurityOpt: []string{"no-new-privileges"}, GroupAdd: []string{"nogroup"},
		Privileged: true, Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}}
	want.Ulimits = append(want.Ulimits, struct {
		Name       string
		Soft, Hard int64
	}{"nofile", 1024, 2048})
	want.Devices = append(want.Devices, struct{ PathOnHost, PathInContainer, CgroupPermissions string }{"/dev/loop7", "/dev/xloop", "r"})
	if !reflect.DeepEqual(hc, want) {
		t.Errorf("HostConfig %+v\nwant %+v", hc, want)
	}
	if hc := d.hostConfig(d.must("create", reg.Busybox)[:12]); hc.ShmSize != 64<<20 || hc.Memory != 0 || hc.PidsLimit != nil || hc.Privileged {
		t.Errorf("defaults: HostConfig %+v, want docker's 64 MiB /dev/shm and no limits", hc)
	}

	d.must("run", "-d", "--name", "upd", "-m", "64m", reg.Busybox, "sleep", "300")
	id := d.inspect("upd").ID
	cg := func(file string) string {
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory/skiff/default", id, file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	d.must("update", "--memory", "100m", "upd")
	if got := cg("memory.limit_in_bytes"); got != strconv.Itoa(100<<20) {
		t.Errorf("memory.limit_in_bytes after update: %s", got)
	}
	if hc := d.hostConfig("upd"); hc.Memory != 100<<20 || hc.MemorySwap != 128<<20 {
		t.Errorf("inspect after update: Memory %d MemorySwap %d, want %d and %d", hc.Memory, hc.MemorySwap, 100<<20, 128<<20)
	}
	if r := d.run("update", "--memory", "200m", "upd"); r.Code != 1 || !strings.Contains(r.Stderr, "memory limit should be smaller than already set memoryswap limit") {
		t.Errorf("update above the memory+swap limit: %s\nwant exit 1 and docker's conflict", r)
	}
	d.must("update", "--memory", "200m", "--memory-swap", "400m", "upd")
	if got, sw := cg("memory.limit_in_bytes"), cg("memory.memsw.limit_in_bytes"); got != strconv.Itoa(200<<20) || sw != strconv.Itoa(400<<20) {
		t.Errorf("after update with swap: limit %s memsw %s", got, sw)
	}
	// It starts again with what the update set.
	d.must("stop", "-t", "0", "upd")
	d.must("start", "upd")
	if got := cg("memory.limit_in_bytes"); got != strconv.Itoa(200<<20) {
		t.Errorf("memory.limit_in_bytes after restart: %s", got)
	}
}

// TestResourceFlagsRefused: bad values exit 125 with docker's message
// and leave no container.
func TestResourceFlagsRefused(t *testing.T) {
	reg := startRegistry(t)
	d := startDaemon(t)
	d.must("pull", "-q", reg.Busybox)
	missing := filepath.Join(t.TempDir(), "missing.json")
	cases := []struct {
		verb  string
		flags []string
		msg   string
	}{
		{"run", []string{"--memory", "1k"}, "inimum memory limit allowed is 6MB"},
		{"create", []string{"-m", "64m", "--memory-swap", "32m"}, "inimum memoryswap limit should be larger than memory limit"},
		{"run", []string{"--memory-swap", "64m"}, "ou should always set the Memory limit when using Memoryswap limit"},
		{"run", []string{"--memory", "64m", "--memory-reservation", "128m"}, "emory limit can not be less than memory reservation limit"},
		{"run", []string{"--cpus", "1", "--cpu-quota", "50000"}, "Nano CPUs and CPU Period/Quota cannot both be set"},
		{"run", []string{"--cpuset-cpus", "0-4096"}, "equested CPUs are not available"},
		{"run", []string{"--device", "/dev/nonexistent"}, `error gathering device information while adding custom device "/dev/nonexistent"`},
		{"create", []string{"--device", "/dev/null:null"}, "null is not an absolute path"},
		{"run", []string{"--sysctl", "kernel.foo=1"}, "sysctl 'kernel.foo=1' is not allowed"},
		{"run", []string{"--network", "host", "--sysctl", "net.ipv4.ip_forward=1"}, `sysctl "net.ipv4.ip_forward" not allowed in host network namespace`},
		{"run", []string{"--security-opt", "seccomp=" + missing}, "opening seccomp profile (" + missing + ") failed"},
		{"run", []string{"--security-opt", "bogus=1"}, `invalid --security-opt "bogus=1"`},
		{"create", []string{"--cap-add", "FLY"}, `--cap-add "FLY": unknown capability`},
		{"run", []string{"--ulimit", "nofile=10:5"}, "ulimit soft limit must be less than or equal to hard limit: 10 > 5"},
		{"run", []string{"--group-add", "nosuchgroup"}, "unable to find group nosuchgroup"},
		{"run", []string{"--oom-score-adj", "2000"}, "range for oom score adj is [-1000, 1000]"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.flags, " "), func(t *testing.T) {
			args := append(append([]string{tc.verb}, tc.flags...), reg.Busybox, "true")
			r := d.run(args...)
			if r.Code != 125 || !strings.Contains(r.Stderr, tc.msg) || r.Stdout != "" {
				t.Errorf("%s\nwant exit 125 and %q", r, tc.msg)
			}
			if ps := d.must("ps", "-aq"); ps != "" {
				t.Errorf("a container was left behind: %q", ps)
				d.must(append([]string{"rm", "-f"}, strings.Fields(ps)...)...)
			}
		})
	}
}
