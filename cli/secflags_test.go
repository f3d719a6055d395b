package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/proto"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/errdefs"
)

// TestSecurityFlagsToConfig parses run's resource and security flags into
// the request's ContainerConfig.
func TestSecurityFlagsToConfig(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(dir, "profile.json")
	if err := os.WriteFile(profile, []byte("{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": []\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notJSON := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(notJSON, []byte("defaultAction: allow"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		want    *skiffv1.ContainerConfig // only the fields this file sets
		wantErr string
	}{
		{name: "none", args: nil, want: &skiffv1.ContainerConfig{}},
		{
			name: "resources",
			args: []string{"-m", "64m", "--memory-swap", "128m", "--memory-reservation", "32m", "--cpus", "0.5", "-c", "512",
				"--cpuset-cpus", "0", "--cpuset-mems", "0", "--pids-limit", "20"},
			want: &skiffv1.ContainerConfig{Resources: &skiffv1.Resources{Memory: 64 << 20, MemorySwap: 128 << 20, MemoryReservation: 32 << 20,
				NanoCpus: 5e8, CpuShares: 512, CpusetCpus: "0", CpusetMems: "0", PidsLimit: 20}},
		},
		{
			name: "cfs period and quota, unlimited swap",
			args: []string{"--memory", "1g", "--memory-swap", "-1", "--cpu-period", "50000", "--cpu-quota", "25000"},
			want: &skiffv1.ContainerConfig{Resources: &skiffv1.Resources{Memory: 1 << 30, MemorySwap: -1, CpuPeriod: 50000, CpuQuota: 25000}},
		},
		{
			// checked against each other by the daemon, as docker's are
			name: "conflicts are the daemon's",
			args: []string{"--memory", "1k", "--cpus", "1", "--cpu-quota", "50000"},
			want: &skiffv1.ContainerConfig{Resources: &skiffv1.Resources{Memory: 1 << 10, NanoCpus: 1e9, CpuQuota: 50000}},
		},
		{
			name: "security",
			args: []string{"--privileged", "--cap-add", "NET_ADMIN", "--cap-add", "sys_time", "--cap-drop", "ALL",
				"--security-opt", "no-new-privileges", "--security-opt", "seccomp=unconfined", "--security-opt", "label=disable",
				"--security-opt", "apparmor:unconfined", "--group-add", "audio", "--group-add", "1234", "--oom-score-adj", "-500"},
			want: &skiffv1.ContainerConfig{Privileged: true, CapAdd: []string{"NET_ADMIN", "sys_time"}, CapDrop: []string{"ALL"},
				SecurityOpt: []string{"no-new-privileges", "seccomp=unconfined", "label=disable", "apparmor:unconfined"},
				GroupAdd:    []string{"audio", "1234"}, OomScoreAdj: -500},
		},
		{
			name: "seccomp profile is sent as compact JSON",
			args: []string{"--security-opt", "seccomp=" + profile, "--security-opt", "seccomp:builtin"},
			want: &skiffv1.ContainerConfig{SecurityOpt: []string{`seccomp={"defaultAction":"SCMP_ACT_ERRNO","syscalls":[]}`, "seccomp:builtin"}},
		},
		{
			name: "devices",
			args: []string{"--device", "/dev/fuse", "--device", "/dev/kmsg:/dev/k", "--device", "/dev/null:r", "--device", "/dev/zero:/dev/z//x/..:rw"},
			want: &skiffv1.ContainerConfig{Devices: []string{"/dev/fuse:/dev/fuse:rwm", "/dev/kmsg:/dev/k:rwm", "/dev/null:/dev/null:r", "/dev/zero:/dev/z:rw"}},
		},
		{
			name: "shm, sysctls, ulimits",
			args: []string{"--shm-size", "128m", "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.sem=250 32000 32 128",
				"--sysctl", "fs.mqueue.msg_max=20", "--ulimit", "nofile=1024:2048", "--ulimit", "core=-1", "--ulimit", "nproc=10", "--ulimit", "nofile=512:4096"},
			want: &skiffv1.ContainerConfig{ShmSize: 128 << 20,
				Sysctls: map[string]string{"net.ipv4.ip_forward": "1", "kernel.sem": "250 32000 32 128", "fs.mqueue.msg_max": "20"},
				Ulimits: []*skiffv1.Ulimit{{Name: "nofile", Soft: 512, Hard: 4096}, {Name: "core", Soft: -1, Hard: -1}, {Name: "nproc", Soft: 10, Hard: 10}}},
		},
		{name: "bad memory", args: []string{"-m", "lots"}, wantErr: `invalid argument "lots" for "-m, --memory" flag`},
		{name: "bad swap", args: []string{"--memory-swap", "-2"}, wantErr: `invalid argument "-2" for "--memory-swap" flag`},
		{name: "bad reservation", args: []string{"--memory-reservation", "x"}, wantErr: `for "--memory-reservation" flag`},
		{name: "bad cpus", args: []string{"--cpus", "two"}, wantErr: "failed to parse two as a rational number"},
		{name: "negative cpus", args: []string{"--cpus", "-1"}, wantErr: `for "--cpus" flag`},
		{name: "bad shm", args: []string{"--shm-size", "big"}, wantErr: `invalid argument "big" for "--shm-size" flag`},
		{name: "missing seccomp profile", args: []string{"--security-opt", "seccomp=" + filepath.Join(dir, "missing.json")}, wantErr: "opening seccomp profile (" + filepath.Join(dir, "missing.json") + ") failed"},
		{name: "seccomp profile not JSON", args: []string{"--security-opt", "seccomp=" + notJSON}, wantErr: "compacting json for seccomp profile"},
		{name: "bad security-opt", args: []string{"--security-opt", "nonsense"}, wantErr: `invalid --security-opt: "nonsense"`},
		{name: "device without host path", args: []string{"--device", ":/dev/x"}, wantErr: "bad format for path"},
		{name: "device relative container path", args: []string{"--device", "/dev/fuse:fuse"}, wantErr: "fuse is not an absolute path"},
		{name: "device bad mode", args: []string{"--device", "/dev/fuse:/dev/fuse:rwx"}, wantErr: "bad mode specified: rwx"},
		{name: "device too many parts", args: []string{"--device", "/a:/b:r:w"}, wantErr: "invalid device specification"},
		{name: "sysctl not namespaced", args: []string{"--sysctl", "kernel.foo=1"}, wantErr: `sysctl 'kernel.foo=1' is not allowed`},
		{name: "sysctl without value", args: []string{"--sysctl", "net.ipv4.ip_forward"}, wantErr: "is not allowed"},
		{name: "ulimit without value", args: []string{"--ulimit", "nofile"}, wantErr: "invalid ulimit argument: nofile"},
		{name: "ulimit unknown", args: []string{"--ulimit", "files=1"}, wantErr: "invalid ulimit type: files"},
		{name: "ulimit soft above hard", args: []string{"--ulimit", "nofile=10:5"}, wantErr: "soft limit must be less than or equal to hard limit: 10 > 5"},
		{name: "ulimit too many", args: []string{"--ulimit", "nofile=1:2:3"}, wantErr: "too many limit value arguments"},
		{name: "ulimit not a number", args: []string{"--ulimit", "nofile=many"}, wantErr: `invalid ulimit value "many"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o containerFlags
			fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
			addContainerFlags(fs, &o, true)
			if err := fs.Parse(append(tc.args, "busybox")); err != nil {
				t.Fatal(err)
			}
			c, err := o.toConfig("busybox", nil, fs.Changed, func(string) (string, bool) { return "", false })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want %q (invalid argument)", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := &skiffv1.ContainerConfig{
				Resources: c.GetResources(), Privileged: c.GetPrivileged(), CapAdd: c.GetCapAdd(), CapDrop: c.GetCapDrop(),
				SecurityOpt: c.GetSecurityOpt(), Devices: c.GetDevices(), ShmSize: c.GetShmSize(), Sysctls: c.GetSysctls(),
				GroupAdd: c.GetGroupAdd(), Ulimits: c.GetUlimits(), OomScoreAdj: c.GetOomScoreAdj(),
			}
			if !proto.Equal(got, tc.want) {
				t.Fatalf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

// TestInspectSecurity: inspect shows the settings under docker's
// HostConfig names.
func TestInspectSecurity(t *testing.T) {
	c := &skiffv1.Container{Id: "c1", Name: "box", Config: &skiffv1.ContainerConfig{
		Resources:  &skiffv1.Resources{Memory: 64 << 20, MemorySwap: 128 << 20, NanoCpus: 5e8, CpuShares: 512, CpusetCpus: "0", PidsLimit: 20},
		Privileged: true, CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"MKNOD"}, SecurityOpt: []string{"no-new-privileges"},
		Devices: []string{"/dev/kmsg:/dev/k:r"}, ShmSize: 128 << 20, Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
		GroupAdd: []string{"audio"}, Ulimits: []*skiffv1.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}}, OomScoreAdj: 100,
	}}
	data, err := json.Marshal(toContainerInspect(c))
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ HostConfig map[string]any }
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"Memory": float64(64 << 20), "MemorySwap": float64(128 << 20), "NanoCpus": float64(5e8), "CpuShares": float64(512),
		"CpusetCpus": "0", "PidsLimit": float64(20), "Privileged": true, "CapAdd": []any{"NET_ADMIN"}, "CapDrop": []any{"MKNOD"},
		"SecurityOpt": []any{"no-new-privileges"}, "ShmSize": float64(128 << 20), "Sysctls": map[string]any{"net.ipv4.ip_forward": "1"},
		"GroupAdd": []any{"audio"}, "OomScoreAdj": float64(100),
		"Devices": []any{map[string]any{"PathOnHost": "/dev/kmsg", "PathInContainer": "/dev/k", "CgroupPermissions": "r"}},
		"Ulimits": []any{map[string]any{"Name": "nofile", "Soft": float64(1024), "Hard": float64(2048)}},
		// the fields that were there before stay
		"AutoRemove": false, "ReadonlyRootfs": false,
	}
	for k, v := range want {
		if !reflect.DeepEqual(got.HostConfig[k], v) {
			t.Errorf("HostConfig.%s = %#v, want %#v", k, got.HostConfig[k], v)
		}
	}

	// Unset: docker's zero values, PidsLimit null, Devices empty.
	data, _ = json.Marshal(toContainerInspect(&skiffv1.Container{Id: "c2", Config: &skiffv1.ContainerConfig{}}))
	got.HostConfig = nil
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.HostConfig["PidsLimit"] != nil || got.HostConfig["Memory"] != float64(0) || !reflect.DeepEqual(got.HostConfig["Devices"], []any{}) {
		t.Errorf("unset HostConfig %v", got.HostConfig)
	}
}
