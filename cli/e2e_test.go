package cli

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPullPlainProgress(t *testing.T) {
	d := newFakeDaemon()
	d.registry[normalizeRef("busybox")] = fakeImage("busybox")
	sock := d.serve(t)

	r := runCLI(t, sock, "", nil, "pull", "busybox")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	want := `Using default tag: latest
latest: Pulling from library/busybox
111111111111: Pulling fs layer
111111111111: Downloading 1.2MB/3.4MB
111111111111: Verifying Checksum
111111111111: Download complete
111111111111: Extracting
111111111111: Pull complete
Digest: sha256:` + strings.Repeat("d", 64) + `
Status: Downloaded newer image for busybox:latest
docker.io/library/busybox:latest
`
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	if len(d.pulls) != 1 || d.pulls[0].GetRef() != "busybox" || d.pulls[0].GetAuth() != nil {
		t.Errorf("pull requests: %v", d.pulls)
	}

	r = runCLI(t, sock, "", nil, "pull", "-q", "busybox")
	if r.code != 0 || r.stdout != "docker.io/library/busybox:latest\n" {
		t.Errorf("pull -q: %+v", r)
	}
}

func TestPullSendsDockerConfigAuth(t *testing.T) {
	d := newFakeDaemon()
	d.registry[normalizeRef("busybox")] = fakeImage("busybox")
	d.registry[normalizeRef("registry.example.com:5000/app:v1")] = fakeImage("registry.example.com:5000/app:v1")
	sock := d.serve(t)
	cfgDir := t.TempDir()
	env := map[string]string{"DOCKER_CONFIG": cfgDir}

	r := runCLI(t, sock, "s3cret\n", env, "login", "-u", "alice", "--password-stdin")
	if r.code != 0 || !strings.Contains(r.stdout, "Login Succeeded") {
		t.Fatalf("login: %+v", r)
	}
	r = runCLI(t, sock, "", env, "login", "-u", "bob", "-p", "pw", "registry.example.com:5000")
	if r.code != 0 {
		t.Fatalf("login 2: %+v", r)
	}
	r = runCLI(t, sock, "", env, "login", "-u", "mallory", "-p", "guess", "other.example.com")
	if r.code != 1 || !strings.Contains(r.stderr, "incorrect username or password") {
		t.Errorf("login with a wrong password: want exit 1 and the registry's refusal: %+v", r)
	}
	b, err := os.ReadFile(filepath.Join(cfgDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "other.example.com") {
		t.Errorf("refused credentials were stored: %s", b)
	}
	var cfg struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Auths["https://index.docker.io/v1/"].Auth; got != base64.StdEncoding.EncodeToString([]byte("alice:s3cret")) {
		t.Errorf("docker hub auth = %q (%s)", got, b)
	}
	if _, ok := cfg.Auths["registry.example.com:5000"]; !ok {
		t.Errorf("no entry for registry.example.com:5000: %s", b)
	}

	if r := runCLI(t, sock, "", env, "pull", "-q", "busybox"); r.code != 0 {
		t.Fatalf("pull: %+v", r)
	}
	if r := runCLI(t, sock, "", env, "pull", "-q", "registry.example.com:5000/app:v1"); r.code != 0 {
		t.Fatalf("pull: %+v", r)
	}
	if a := d.pulls[0].GetAuth(); a.GetUsername() != "alice" || a.GetPassword() != "s3cret" {
		t.Errorf("docker hub pull auth = %v", a)
	}
	if a := d.pulls[1].GetAuth(); a.GetUsername() != "bob" || a.GetPassword() != "pw" {
		t.Errorf("private registry pull auth = %v", a)
	}

	r = runCLI(t, sock, "", env, "logout")
	if r.code != 0 || r.stdout != "Removing login credentials for https://index.docker.io/v1/\n" {
		t.Errorf("logout: %+v", r)
	}
	if r := runCLI(t, sock, "", env, "pull", "-q", "busybox"); r.code != 0 || d.pulls[2].GetAuth() != nil {
		t.Errorf("pull after logout: %+v auth %v", r, d.pulls[2].GetAuth())
	}
}

func TestRunForeground(t *testing.T) {
	d := newFakeDaemon()
	d.images[normalizeRef("busybox")] = fakeImage("busybox")
	sock := d.serve(t)

	r := runCLI(t, sock, "", nil, "run", "--name", "web", "busybox", "out:hello", "err:oops", "out:bye", "exit:3")
	if r.code != 3 {
		t.Fatalf("exit %d, want 3 (stderr %q)", r.code, r.stderr)
	}
	if r.stdout != "hello\nbye\n" || r.stderr != "oops\n" {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	cfg := d.creates[0]
	if cfg.GetName() != "web" || cfg.GetImage() != "busybox" || cfg.GetTty() || cfg.GetOpenStdin() || cfg.GetStopTimeout() != -1 {
		t.Errorf("create config: %v", cfg)
	}
}

func TestRunInteractiveStdin(t *testing.T) {
	d := newFakeDaemon()
	d.images[normalizeRef("busybox")] = fakeImage("busybox")
	sock := d.serve(t)

	r := runCLI(t, sock, "line one\nline two\n", nil, "run", "-i", "--rm", "busybox", "cat", "exit:0")
	if r.code != 0 {
		t.Fatalf("exit %d (stderr %q)", r.code, r.stderr)
	}
	if r.stdout != "line one\nline two\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	if !d.creates[0].GetAutoRemove() || !d.creates[0].GetOpenStdin() {
		t.Errorf("config: %v", d.creates[0])
	}
	// --rm: the CLI waited for the removal.
	if r := runCLI(t, sock, "", nil, "ps", "-a", "-q"); r.stdout != "" {
		t.Errorf("ps -a after run --rm: %q", r.stdout)
	}
}

func TestRunDetached(t *testing.T) {
	d := newFakeDaemon()
	d.images[normalizeRef("busybox")] = fakeImage("busybox")
	sock := d.serve(t)

	r := runCLI(t, sock, "", nil, "run", "-d", "busybox", "sleep")
	if r.code != 0 {
		t.Fatalf("exit %d (stderr %q)", r.code, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	if len(id) != 64 {
		t.Fatalf("run -d printed %q, want a full id", r.stdout)
	}
	r = runCLI(t, sock, "", nil, "ps")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "CONTAINER ID") || !strings.HasPrefix(lines[1], id[:12]+" ") ||
		!strings.Contains(lines[1], "Up ") || !strings.Contains(lines[1], "fake_1") {
		t.Errorf("ps:\n%s", r.stdout)
	}
	r = runCLI(t, sock, "", nil, "ps", "--format", "{{.Names}} {{.State}}")
	if r.stdout != "fake_1 running\n" {
		t.Errorf("ps --format: %q", r.stdout)
	}
	r = runCLI(t, sock, "", nil, "kill", "-s", "term", id[:6])
	if r.code != 0 || r.stdout != id[:6]+"\n" || d.kills[0] != "SIGTERM" {
		t.Errorf("kill: %+v kills %v", r, d.kills)
	}
	r = runCLI(t, sock, "", nil, "wait", "fake_1")
	if r.code != 0 || r.stdout != "137\n" {
		t.Errorf("wait: %+v", r)
	}
	r = runCLI(t, sock, "", nil, "logs", "fake_1")
	if r.code != 0 {
		t.Errorf("logs: %+v", r)
	}
	r = runCLI(t, sock, "", nil, "inspect", "fake_1")
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 1 {
		t.Fatalf("inspect: %v\n%s", err, r.stdout)
	}
	if got[0]["Name"] != "/fake_1" || got[0]["State"].(map[string]any)["ExitCode"].(float64) != 137 {
		t.Errorf("inspect: %s", r.stdout)
	}
	r = runCLI(t, sock, "", nil, "inspect", "-f", "{{.State.Status}} {{.Name}} {{.HostConfig.NetworkMode}}", "fake_1")
	if r.stdout != "exited /fake_1 none\n" {
		t.Errorf("inspect -f: %+v", r)
	}
	r = runCLI(t, sock, "", nil, "inspect", "nothing")
	if r.code != 1 || r.stdout != "[]\n" || !strings.Contains(r.stderr, "No such object: nothing") {
		t.Errorf("inspect missing: %+v", r)
	}
	r = runCLI(t, sock, "", nil, "rm", "fake_1", "nothing")
	if r.code != 1 || r.stdout != "fake_1\n" || !strings.Contains(r.stderr, "Error response from daemon: No such container: nothing") {
		t.Errorf("rm: %+v", r)
	}
}

func TestRunPullsMissingImage(t *testing.T) {
	d := newFakeDaemon()
	d.registry[normalizeRef("busybox")] = fakeImage("busybox")
	sock := d.serve(t)

	r := runCLI(t, sock, "", nil, "run", "busybox", "out:hi")
	if r.code != 0 {
		t.Fatalf("exit %d (stderr %q)", r.code, r.stderr)
	}
	if r.stdout != "hi\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	for _, want := range []string{
		"Unable to find image 'busybox:latest' locally\n",
		"latest: Pulling from library/busybox\n",
		"Status: Downloaded newer image for busybox:latest\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "Using default tag") {
		t.Errorf("run's pull says 'Using default tag':\n%s", r.stderr)
	}
	if len(d.creates) != 2 {
		t.Errorf("%d creates, want 2 (before and after the pull)", len(d.creates))
	}

	// --pull never: no pull, exit 125.
	r = runCLI(t, sock, "", nil, "run", "--pull", "never", "alpine")
	if r.code != 125 || len(d.pulls) != 1 || !strings.HasPrefix(r.stderr, "skiff: Error response from daemon: ") || !strings.Contains(r.stderr, "See 'skiff run --help'.") {
		t.Errorf("run --pull never: %+v", r)
	}
	// An image nobody has: the pull fails, exit 125.
	r = runCLI(t, sock, "", nil, "run", "alpine")
	if r.code != 125 || !strings.Contains(r.stderr, "repository does not exist") {
		t.Errorf("run alpine: %+v", r)
	}
}

func TestRunExitCodes(t *testing.T) {
	d := newFakeDaemon()
	d.images[normalizeRef("busybox")] = fakeImage("busybox")
	sock := d.serve(t)

	r := runCLI(t, sock, "", nil, "run", "busybox", "notfound")
	if r.code != 127 {
		t.Errorf("exit %d, want 127 (stderr %q)", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, `executable file not found in $PATH`) {
		t.Errorf("stderr %q", r.stderr)
	}
	r = runCLI(t, sock, "", nil, "run", "-d", "busybox", "notfound")
	if r.code != 127 {
		t.Errorf("run -d: exit %d, want 127", r.code)
	}
	r = runCLI(t, sock, "", nil, "run", "--restart", "sometimes", "busybox")
	if r.code != 125 || !strings.Contains(r.stderr, "invalid restart policy") {
		t.Errorf("bad restart: %+v", r)
	}
	r = runCLI(t, sock, "", nil, "run", "--bogus", "busybox")
	if r.code != 125 || !strings.Contains(r.stderr, "unknown flag: --bogus") {
		t.Errorf("bad flag: %+v", r)
	}
	r = runCLI(t, sock, "", nil, "ps", "--bogus")
	if r.code != 125 {
		t.Errorf("ps bad flag: %+v", r)
	}
	r = runCLI(t, sock, "", nil, "start", "nothing")
	if r.code != 125 {
		t.Errorf("start missing: %+v", r)
	}
	r = runCLI(t, sock, "", nil, "wait", "nothing")
	if r.code != 1 || !strings.Contains(r.stderr, "No such container") {
		t.Errorf("wait missing: %+v", r)
	}
}

func TestDaemonDown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "missing.sock")
	want := "cannot connect to skiffd at " + sock + ": is skiffd running? (start it with: skiffd)"
	r := runCLI(t, sock, "", nil, "ps")
	if r.code != 1 || r.stderr != want+"\n" {
		t.Errorf("ps: %+v", r)
	}
	r = runCLI(t, sock, "", nil, "run", "busybox")
	if r.code != 125 || !strings.HasPrefix(r.stderr, "skiff: "+want) {
		t.Errorf("run: %+v", r)
	}
	// A socket file nobody serves (a stale socket of a dead daemon).
	d := newFakeDaemon()
	live := d.serve(t)
	_ = live
	stale := filepath.Join(t.TempDir(), "stale.sock")
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, stale, "", nil, "images")
	if r.code != 1 || !strings.Contains(r.stderr, "is skiffd running?") {
		t.Errorf("stale socket: %+v", r)
	}
	// Env SKIFF_SOCKET is honoured when --socket is not given.
	var env = map[string]string{"SKIFF_SOCKET": sock}
	var out, errb strings.Builder
	code := Run(t.Context(), &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}, []string{"ps"})
	if code != 1 || !strings.Contains(errb.String(), sock) {
		t.Errorf("SKIFF_SOCKET: %d %q", code, errb.String())
	}
}

func TestImagesRmiInspectNamespace(t *testing.T) {
	d := newFakeDaemon()
	d.images[normalizeRef("busybox")] = fakeImage("busybox")
	sock := d.serve(t)

	r := runCLI(t, sock, "", nil, "-n", "test", "images")
	want := "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n" +
		"busybox      latest    aaaaaaaaaaaa   2 hours ago   4.26MB\n"
	if r.stdout != want {
		t.Errorf("images:\n%q\nwant\n%q", r.stdout, want)
	}
	if d.namespace[len(d.namespace)-1] != "test" {
		t.Errorf("namespace %v", d.namespace)
	}
	r = runCLI(t, sock, "", nil, "image", "inspect", "busybox")
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 1 {
		t.Fatalf("image inspect: %v %s", err, r.stdout)
	}
	if got[0]["RepoTags"].([]any)[0] != "busybox:latest" || got[0]["Config"].(map[string]any)["Cmd"].([]any)[0] != "sh" {
		t.Errorf("image inspect: %s", r.stdout)
	}
	r = runCLI(t, sock, "", nil, "rmi", "busybox")
	wantRmi := "Untagged: busybox:latest\nUntagged: busybox:latest@sha256:" + strings.Repeat("d", 64) + "\nDeleted: sha256:" + strings.Repeat("a", 64) + "\n"
	if r.code != 0 || r.stdout != wantRmi {
		t.Errorf("rmi: %+v", r)
	}
}

func TestVersion(t *testing.T) {
	d := newFakeDaemon()
	sock := d.serve(t)
	r := runCLI(t, sock, "", nil, "version")
	if r.code != 0 || !strings.Contains(r.stdout, "Server:") || !strings.Contains(r.stdout, "9.9.9") {
		t.Errorf("version: %+v", r)
	}
	r = runCLI(t, sock, "", nil, "version", "--format", "{{.Server.Version}}")
	if r.stdout != "9.9.9\n" {
		t.Errorf("version --format: %+v", r)
	}
}
