package runtimebench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// SpawnEnv, set to "1" in the environment, turns a program that calls
// SpawnerMain first thing into the spawner: it runs its arguments as a
// command, and prints "WALL_NS MAXRSS_KIB EXIT_CODE" on stdout.
//
// Why: a child's ru_maxrss can never be lower than the resident size of the
// process that forked it (the child starts as a copy, and exec records the
// old image's high-water mark), so runtimes spawned by the benchmark itself,
// which is several MiB, would all report its size. The spawner is the small
// static program bench/cmd/rtspawn; its own size is the floor of the peak
// RSS column (the report states it).
const SpawnEnv = "RUNTIMEBENCH_SPAWN"

// SpawnerMain returns at once unless SpawnEnv is "1"; then it runs
// os.Args[1:] with stdin and stdout on /dev/null and stderr inherited, and
// exits after printing the measurement.
func SpawnerMain() {
	if os.Getenv(SpawnEnv) != "1" {
		return
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "spawner: no command")
		os.Exit(2)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spawner:", err)
		os.Exit(2)
	}
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "spawner:", err)
		os.Exit(2)
	}
	env := make([]string, 0, len(os.Environ()))
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, SpawnEnv+"=") {
			env = append(env, e)
		}
	}
	attr := &syscall.ProcAttr{Env: env, Files: []uintptr{devnull.Fd(), devnull.Fd(), os.Stderr.Fd()}}
	start := time.Now()
	pid, err := syscall.ForkExec(path, os.Args[1:], attr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spawner:", err)
		os.Exit(2)
	}
	var ws syscall.WaitStatus
	var ru syscall.Rusage
	for {
		_, err = syscall.Wait4(pid, &ws, 0, &ru)
		if err != syscall.EINTR {
			break
		}
	}
	wall := time.Since(start)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spawner: wait4:", err)
		os.Exit(2)
	}
	code := ws.ExitStatus()
	if ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	fmt.Printf("%d %d %d\n", wall.Nanoseconds(), ru.Maxrss, code)
	os.Exit(0)
}

// spawn runs argv through the spawner at self and returns its measurement.
func spawn(ctx context.Context, self string, argv []string) (Sample, error) {
	cmd := exec.CommandContext(ctx, self, argv...)
	cmd.Env = append(os.Environ(), SpawnEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Sample{}, fmt.Errorf("spawner %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	var wallNS, rss int64
	var code int
	if _, err := fmt.Sscanf(stdout.String(), "%d %d %d", &wallNS, &rss, &code); err != nil {
		return Sample{}, fmt.Errorf("spawner %s: bad output %q", strings.Join(argv, " "), stdout.String())
	}
	s := Sample{Wall: time.Duration(wallNS), MaxRSS: rss}
	if code != 0 {
		return s, fmt.Errorf("%s: exit status %d: %s", strings.Join(argv, " "), code, strings.TrimSpace(stderr.String()))
	}
	return s, nil
}
