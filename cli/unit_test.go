package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/errdefs/errgrpc"
)

func TestHumanSize(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0B"}, {999, "999B"}, {1000, "1kB"}, {4_261_376, "4.26MB"}, {1_234_567_890, "1.23GB"}, {77_800_000, "77.8MB"},
	} {
		if got := humanSize(tc.in); got != tc.want {
			t.Errorf("humanSize(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := bytesSize(2 * 1024 * 1024 * 1024); got != "2GiB" {
		t.Errorf("bytesSize = %q", got)
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{500 * time.Millisecond, "Less than a second"},
		{time.Second, "1 second"},
		{5 * time.Second, "5 seconds"},
		{61 * time.Second, "About a minute"},
		{3 * time.Minute, "3 minutes"},
		{time.Hour, "About an hour"},
		{2 * time.Hour, "2 hours"},
		{47 * time.Hour, "47 hours"},
		{3 * 24 * time.Hour, "3 days"},
		{3 * 7 * 24 * time.Hour, "3 weeks"},
		{90 * 24 * time.Hour, "3 months"},
		{3 * 365 * 24 * time.Hour, "3 years"},
	} {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestRefs(t *testing.T) {
	for _, tc := range []struct{ in, norm, familiar, registry string }{
		{"busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io"},
		{"docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "docker.io"},
		{"x/y", "docker.io/x/y:latest", "x/y:latest", "docker.io"},
		{"index.docker.io/x/y:1", "docker.io/x/y:1", "x/y:1", "docker.io"},
		{"localhost:5000/app", "localhost:5000/app:latest", "localhost:5000/app:latest", "localhost:5000"},
		{"localhost/app", "localhost/app:latest", "localhost/app:latest", "localhost"},
		{"ghcr.io/o/r@sha256:abc", "ghcr.io/o/r@sha256:abc", "ghcr.io/o/r@sha256:abc", "ghcr.io"},
	} {
		if got := normalizeRef(tc.in); got != tc.norm {
			t.Errorf("normalizeRef(%q) = %q, want %q", tc.in, got, tc.norm)
		}
		if got := familiarWithTag(tc.in); got != tc.familiar {
			t.Errorf("familiarWithTag(%q) = %q, want %q", tc.in, got, tc.familiar)
		}
		if got := registryOf(tc.in); got != tc.registry {
			t.Errorf("registryOf(%q) = %q, want %q", tc.in, got, tc.registry)
		}
	}
	if got := familiarRef("docker.io/library/busybox"); got != "busybox" {
		t.Errorf("familiarRef = %q", got)
	}
	if got := authKey("docker.io"); got != "https://index.docker.io/v1/" {
		t.Errorf("authKey(docker.io) = %q", got)
	}
	if got := authKey("https://registry.example.com/v2/"); got != "registry.example.com" {
		t.Errorf("authKey = %q", got)
	}
}

func lookupMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestContainerFlagsToConfig(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	os.WriteFile(envFile, []byte("\ufeff# comment\n\n  A=1\nB=\"quoted value\"\nFROM_HOST\nUNSET_IN_HOST\nC=x=y\n"), 0o644)
	host := lookupMap(map[string]string{"FROM_HOST": "h", "E2": "e2val"})

	for _, tc := range []struct {
		name    string
		args    []string
		check   func(t *testing.T, c *skiffv1.ContainerConfig)
		wantErr string
	}{
		{
			name: "env-file then -e, bare names from the host",
			args: []string{"--env-file", envFile, "-e", "A=2", "-e", "E2", "-e", "NOPE", "busybox", "sh", "-c", "echo"},
			check: func(t *testing.T, c *skiffv1.ContainerConfig) {
				want := []string{"A=1", "B=quoted value", "FROM_HOST=h", "C=x=y", "A=2", "E2=e2val"}
				if !reflect.DeepEqual(c.GetEnv(), want) {
					t.Errorf("env = %q, want %q", c.GetEnv(), want)
				}
				if !reflect.DeepEqual(c.GetCmd(), []string{"sh", "-c", "echo"}) || c.GetImage() != "busybox" {
					t.Errorf("image %q cmd %q", c.GetImage(), c.GetCmd())
				}
			},
		},
		{
			name: "entrypoint unset",
			args: []string{"busybox"},
			check: func(t *testing.T, c *skiffv1.ContainerConfig) {
				if c.GetEntrypointSet() || c.GetEntrypoint() != nil || c.GetStopTimeout() != -1 || c.GetRestartPolicy().GetName() != "no" {
					t.Errorf("config %v", c)
				}
			},
		},
		{
			name: "entrypoint empty clears",
			args: []string{"--entrypoint", "", "busybox"},
			check: func(t *testing.T, c *skiffv1.ContainerConfig) {
				if !c.GetEntrypointSet() || len(c.GetEntrypoint()) != 0 {
					t.Errorf("entrypoint %v set %v", c.GetEntrypoint(), c.GetEntrypointSet())
				}
			},
		},
		{
			name: "entrypoint is one program",
			args: []string{"--entrypoint", "/bin/sh -x", "busybox"},
			check: func(t *testing.T, c *skiffv1.ContainerConfig) {
				if !c.GetEntrypointSet() || !reflect.DeepEqual(c.GetEntrypoint(), []string{"/bin/sh -x"}) {
					t.Errorf("entrypoint %v", c.GetEntrypoint())
				}
			},
		},
		{
			name: "flags after the image belong to the command",
			args: []string{"-it", "--rm", "-u", "1000:1000", "-w", "/tmp", "-h", "box", "--read-only", "--network", "host", "--runtime", "runc",
				"-l", "a=b", "-l", "c", "--stop-signal", "term", "--stop-timeout", "0", "--restart", "on-failure:3", "busybox", "ls", "-l"},
			wantErr: "conflicting options",
		},
		{
			name: "many flags",
			args: []string{"-it", "-u", "1000:1000", "-w", "/tmp", "-h", "box", "--read-only", "--network", "host", "--runtime", "runc",
				"-l", "a=b", "-l", "c", "--stop-signal", "term", "--stop-timeout", "0", "--restart", "on-failure:3", "busybox", "ls", "-l"},
			check: func(t *testing.T, c *skiffv1.ContainerConfig) {
				if !c.GetTty() || !c.GetOpenStdin() || c.GetUser() != "1000:1000" || c.GetWorkingDir() != "/tmp" || c.GetHostname() != "box" ||
					!c.GetReadOnly() || c.GetNetworkMode() != "host" || c.GetRuntime() != "runc" || c.GetStopSignal() != "SIGTERM" ||
					c.GetStopTimeout() != 0 || c.GetRestartPolicy().GetName() != "on-failure" || c.GetRestartPolicy().GetMaxRetries() != 3 {
					t.Errorf("config %v", c)
				}
				if !reflect.DeepEqual(c.GetLabels(), map[string]string{"a": "b", "c": ""}) {
					t.Errorf("labels %v", c.GetLabels())
				}
				if !reflect.DeepEqual(c.GetCmd(), []string{"ls", "-l"}) {
					t.Errorf("cmd %v", c.GetCmd())
				}
			},
		},
		{name: "bad network", args: []string{"--network", "container:", "busybox"}, wantErr: `invalid network mode "container:"`},
		{name: "bad publish", args: []string{"-p", "80/icmp", "busybox"}, wantErr: "invalid proto: icmp"},
		{name: "bad add-host", args: []string{"--add-host", "nocolon", "busybox"}, wantErr: "bad format for add-host"},
		{name: "bad signal", args: []string{"--stop-signal", "NOPE", "busybox"}, wantErr: "invalid signal: NOPE"},
		{name: "bad pull", args: []string{"--pull", "sometimes", "busybox"}, wantErr: "invalid pull option"},
		{name: "bad env", args: []string{"-e", "=x", "busybox"}, wantErr: "invalid environment variable: =x"},
		{name: "missing env file", args: []string{"--env-file", filepath.Join(dir, "none"), "busybox"}, wantErr: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o containerFlags
			fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
			addContainerFlags(fs, &o, true)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			args := fs.Args()
			c, err := o.toConfig(args[0], args[1:], fs.Changed, host)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want %q (invalid argument)", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestParseRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		in      string
		name    string
		max     int32
		wantErr string
	}{
		{"", "", 0, ""},
		{"no", "no", 0, ""},
		{"always", "always", 0, ""},
		{"unless-stopped", "unless-stopped", 0, ""},
		{"on-failure", "on-failure", 0, ""},
		{"on-failure:3", "on-failure", 3, ""},
		{"on-failure:x", "", 0, "must be an integer"},
		{"on-failure:-1", "", 0, "cannot be negative"},
		{"always:2", "", 0, "cannot be used with restart policy 'always'"},
		{"sometimes", "", 0, "unknown policy 'sometimes'"},
	} {
		p, err := parseRestartPolicy(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || p.GetName() != tc.name || p.GetMaxRetries() != tc.max {
			t.Errorf("%q: %v %v", tc.in, p, err)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]string{"KILL": "SIGKILL", "sigterm": "SIGTERM", "SIGHUP": "SIGHUP", "9": "9", "usr1": "SIGUSR1"} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("parseSignal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "NOPE", "SIG"} {
		if _, err := parseSignal(in); err == nil {
			t.Errorf("parseSignal(%q) accepted", in)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"10m":                  now.Add(-10 * time.Minute),
		"1700000000":           time.Unix(1700000000, 0),
		"1700000000.5":         time.Unix(1700000000, 500_000_000),
		"2013-01-02T13:23:37Z": time.Date(2013, 1, 2, 13, 23, 37, 0, time.UTC),
		"0":                    time.Unix(0, 0), // the epoch, as docker's, not "now"
	} {
		got, err := parseTimestamp(in, now)
		if err != nil || got != want.UnixNano() {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", in, time.Unix(0, got), err, want)
		}
	}
	if _, err := parseTimestamp("yesterday", now); err == nil {
		t.Error("parseTimestamp(yesterday) accepted")
	}
}

func testContainers(now time.Time) []*skiffv1.Container {
	return []*skiffv1.Container{
		{
			Id: strings.Repeat("a", 64), Name: "web", Image: "docker.io/library/nginx:latest",
			Config: &skiffv1.ContainerConfig{Image: "nginx", Labels: map[string]string{"app": "web"}},
			Status: "running", Created: now.Add(-time.Hour).UnixNano(), Started: now.Add(-5 * time.Second).UnixNano(),
			Path: "/docker-entrypoint.sh", Args: []string{"nginx", "-g", "daemon off;"},
		},
		{
			Id: strings.Repeat("b", 64), Name: "job", Image: "docker.io/library/busybox:latest",
			Config: &skiffv1.ContainerConfig{Image: "busybox"},
			Status: "exited", ExitCode: 3, Created: now.Add(-2 * time.Hour).UnixNano(),
			Started: now.Add(-2 * time.Hour).UnixNano(), Finished: now.Add(-3 * time.Minute).UnixNano(),
			Path: "sh", Args: []string{"-c", "exit 3"},
		},
		{
			Id: strings.Repeat("c", 64), Name: "new", Image: "docker.io/library/busybox:latest",
			Config: &skiffv1.ContainerConfig{Image: "busybox"},
			Status: "created", Created: now.Add(-30 * time.Second).UnixNano(), Path: "sh",
		},
	}
}

func TestWriteContainers(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		o    psOptions
		want string
	}{
		{
			name: "table",
			want: `CONTAINER ID   IMAGE     COMMAND                  CREATED          STATUS                     PORTS     NAMES
cccccccccccc   busybox   "sh"                     30 seconds ago   Created                              new
aaaaaaaaaaaa   nginx     "/docker-entrypoint.…"   About an hour ago   Up 5 seconds                         web
bbbbbbbbbbbb   busybox   "sh -c 'exit 3'"         2 hours ago      Exited (3) 3 minutes ago             job
`,
		},
		{name: "quiet", o: psOptions{quiet: true}, want: "cccccccccccc\naaaaaaaaaaaa\nbbbbbbbbbbbb\n"},
		{name: "quiet no-trunc last", o: psOptions{quiet: true, noTrunc: true, last: 1}, want: strings.Repeat("c", 64) + "\n"},
		{name: "template", o: psOptions{format: "{{.ID}} {{.Names}} {{.Image}} {{.State}} {{.Status}}"}, want: "cccccccccccc new busybox created Created\n" +
			"aaaaaaaaaaaa web nginx running Up 5 seconds\nbbbbbbbbbbbb job busybox exited Exited (3) 3 minutes ago\n"},
		{name: "table template", o: psOptions{format: `table {{.Names}}\t{{.Command}}`, filters: []string{"status=exited"}}, want: "NAMES     COMMAND\njob       \"sh -c 'exit 3'\"\n"},
		{name: "label filter and Label", o: psOptions{format: `{{.Names}} {{.Label "app"}} {{.Labels}}`, filters: []string{"label=app=web"}}, want: "web web app=web\n"},
		{name: "json", o: psOptions{format: "json", filters: []string{"name=new"}}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeContainers(&b, testContainers(now), now, tc.o); err != nil {
				t.Fatal(err)
			}
			if tc.o.format == "json" {
				if !strings.Contains(b.String(), `"Names":"new"`) || !strings.Contains(b.String(), `"Status":"Created"`) || strings.Count(b.String(), "\n") != 1 {
					t.Errorf("json: %s", b.String())
				}
				return
			}
			if tc.name == "table" {
				// tabwriter aligns to the widest cell; compare cells.
				if norm(b.String()) != norm(tc.want) {
					t.Errorf("got:\n%s\nwant:\n%s", b.String(), tc.want)
				}
				return
			}
			if b.String() != tc.want {
				t.Errorf("got:\n%q\nwant:\n%q", b.String(), tc.want)
			}
		})
	}
}

// norm collapses runs of spaces so that table tests compare cells.
func norm(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		lines = append(lines, strings.Join(strings.FieldsFunc(l, func(r rune) bool { return r == ' ' }), " "))
	}
	return strings.Join(lines, "\n")
}

func TestWriteImages(t *testing.T) {
	now := time.Now()
	imgs := func() []*skiffv1.Image {
		return []*skiffv1.Image{
			{Name: "docker.io/library/busybox:latest", Id: "sha256:" + strings.Repeat("a", 64), Digest: "sha256:" + strings.Repeat("d", 64),
				UnpackedSize: 4_261_376, Created: now.Add(-2 * time.Hour).UnixNano()},
			{Name: "docker.io/library/busybox:1.36", Id: "sha256:" + strings.Repeat("a", 64), Digest: "sha256:" + strings.Repeat("d", 64),
				UnpackedSize: 4_261_376, Created: now.Add(-2 * time.Hour).UnixNano()},
			{Name: "ghcr.io/o/app:v1", Id: "sha256:" + strings.Repeat("e", 64), Size: 77_800_000, Created: now.Add(-3 * 24 * time.Hour).UnixNano()},
		}
	}
	var b bytes.Buffer
	writeImages(&b, imgs(), now, imagesOptions{})
	want := `REPOSITORY    TAG       IMAGE ID       CREATED       SIZE
busybox       1.36      aaaaaaaaaaaa   2 hours ago   4.26MB
busybox       latest    aaaaaaaaaaaa   2 hours ago   4.26MB
ghcr.io/o/app v1        eeeeeeeeeeee   3 days ago    77.8MB
`
	if norm(b.String()) != norm(want) {
		t.Errorf("images:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	writeImages(&b, imgs(), now, imagesOptions{digests: true})
	if !strings.HasPrefix(norm(b.String()), "REPOSITORY TAG DIGEST IMAGE ID CREATED SIZE\nbusybox 1.36 sha256:dddd") {
		t.Errorf("images --digests:\n%s", b.String())
	}
	b.Reset()
	writeImages(&b, imgs(), now, imagesOptions{quiet: true})
	if b.String() != "aaaaaaaaaaaa\neeeeeeeeeeee\n" {
		t.Errorf("images -q: %q", b.String())
	}
	b.Reset()
	writeImages(&b, imgs(), now, imagesOptions{quiet: true, noTrunc: true})
	if !strings.HasPrefix(b.String(), "sha256:aaaa") {
		t.Errorf("images -q --no-trunc: %q", b.String())
	}
	b.Reset()
	writeImages(&b, imgs(), now, imagesOptions{format: "{{.Repository}}:{{.Tag}} {{.Size}}"})
	if b.String() != "busybox:1.36 4.26MB\nbusybox:latest 4.26MB\nghcr.io/o/app:v1 77.8MB\n" {
		t.Errorf("images --format: %q", b.String())
	}
	b.Reset()
	if err := writeImages(&b, imgs(), now, imagesOptions{format: "{{.Nope"}); err == nil {
		t.Error("bad template accepted")
	}
}

func TestContainerStatus(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		c    *skiffv1.Container
		want string
	}{
		{&skiffv1.Container{Status: "created"}, "Created"},
		{&skiffv1.Container{Status: "running", Started: now.Add(-200 * time.Millisecond).UnixNano()}, "Up Less than a second"},
		{&skiffv1.Container{Status: "paused", Started: now.Add(-10 * time.Second).UnixNano()}, "Up 10 seconds (Paused)"},
		{&skiffv1.Container{Status: "exited", ExitCode: 0, Finished: now.Add(-3 * time.Minute).UnixNano()}, "Exited (0) 3 minutes ago"},
		{&skiffv1.Container{Status: "exited", ExitCode: 137}, "Exited (137)"},
		{&skiffv1.Container{Status: "restarting", ExitCode: 1, Finished: now.Add(-2 * time.Second).UnixNano()}, "Restarting (1) 2 seconds ago"},
		{&skiffv1.Container{Status: "dead"}, "Dead"},
	} {
		if got := containerStatus(tc.c, now); got != tc.want {
			t.Errorf("status %v = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestReportExitCodes(t *testing.T) {
	daemon := func(err error) error { return (&app{}).fromDaemon(errgrpc.ToGRPC(err)) }
	for _, tc := range []struct {
		name       string
		engineExit bool
		err        error
		code       int
		stderr     string
	}{
		{"ok", false, nil, 0, ""},
		{"daemon error", false, daemon(fmt.Errorf("No such container: x: %w", errdefs.ErrNotFound)), 1, "Error response from daemon: No such container: x: not found\n"},
		{"daemon error in run", true, daemon(fmt.Errorf("boom: %w", errdefs.ErrFailedPrecondition)), 125, "skiff: Error response from daemon: boom: failed precondition.\nSee 'skiff run --help'.\n"},
		{"127 in run", true, daemon(errdefs.WithExitCode(errors.New("exec: \"nope\": not found"), 127)), 127, "skiff: Error response from daemon: exec: \"nope\": not found.\nSee 'skiff run --help'.\n"},
		{"126 anywhere", false, daemon(errdefs.WithExitCode(errors.New("permission denied"), 126)), 126, "Error response from daemon: permission denied\n"},
		{"container code", true, &statusError{code: 3}, 3, ""},
		{"client error", false, errors.New("bad"), 1, "Error: bad\n"},
		{"connect", false, &connectError{socket: "/s"}, 1, "cannot connect to skiffd at /s: is skiffd running? (start it with: skiffd)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errb bytes.Buffer
			a := &app{env: &Env{Stderr: &errb}, engineExit: tc.engineExit, cmdPath: "run"}
			if code := a.report(tc.err); code != tc.code {
				t.Errorf("code %d, want %d", code, tc.code)
			}
			if errb.String() != tc.stderr {
				t.Errorf("stderr %q, want %q", errb.String(), tc.stderr)
			}
		})
	}
}

func TestDockerConfigLookup(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{
		"auths": {
			"https://index.docker.io/v1/": {"auth": "dTpw"},
			"https://registry.example.com/v1/": {"auth": "YTpi"},
			"tok.example.com": {"identitytoken": "tok"}
		},
		"psFormat": "table {{.ID}}"
	}`), 0o600)
	env := &Env{LookupEnv: lookupMap(map[string]string{"DOCKER_CONFIG": dir})}
	c, err := loadDockerConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	for reg, want := range map[string]string{"docker.io": "u:p", "registry.example.com": "a:b", "tok.example.com": ":", "other.io": ""} {
		auth, err := c.lookup(reg)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if auth != nil {
			got = auth.GetUsername() + ":" + auth.GetPassword()
		}
		if got != want {
			t.Errorf("lookup(%s) = %q, want %q", reg, got, want)
		}
	}
	// Saving keeps keys skiff does not know.
	if err := c.save(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if !strings.Contains(string(b), `"psFormat"`) {
		t.Errorf("save dropped psFormat: %s", b)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "config.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}
