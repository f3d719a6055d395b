// Package shim is skiff-shim, the per-container monitor (the role of
// containerd-shim-runc-v2 and conmon): the engine spawns one per container;
// it creates the container through an OCI runtime's command line (runc's,
// so skiff-runtime, runc or crun), owns the container's stdio, writes its
// output to a log in the CRI format, serves attach and control requests on
// a unix socket, records the exit status, and outlives the engine. The
// engine's side is package shim/client; the wire format is package
// shim/proto.
//
// # Spawning
//
//	skiff-shim --id ID --bundle DIR --state DIR --log FILE
//	           [--runtime BIN] [--runtime-root DIR] [--runtime-arg ARG]...
//	           [--tty] [--stdin] [--debug] [--park-after DURATION]
//
// --runtime defaults to skiff-runtime (a name is looked up on PATH);
// --runtime-root is the runtime's --root; each --runtime-arg is one more
// global flag of the runtime, before the command. Paths are absolute; the
// socket path <state>/shim.sock must fit a unix address (107 bytes).
//
// The process the engine runs is a launcher: it makes the state directory
// (0700), re-executes itself as the monitor in a new session (setsid),
// with stdin /dev/null and stdout and stderr appended to <state>/shim.log,
// relays the monitor's one readiness line to its own stdout and exits (0
// for ready, 1 otherwise). The monitor is therefore not the engine's child
// and not in its session or process group: killing the engine, its group
// or its session leaves it running. The line is
//
//	ready <shim-pid> <container-init-pid>
//	error <class> <message>
//
// where class is one of proto's error classes (invalid-argument,
// not-found, already-exists, failed-precondition, not-implemented,
// internal). "ready" means: the runtime's create succeeded, the stdio is
// wired, the control socket listens. On "error" nothing is left behind but
// the state directory and its logs.
//
// The monitor is a child subreaper (PR_SET_CHILD_SUBREAPER): the
// container's init, which the runtime's create leaves behind, is reparented
// to it, so it reaps it and gets its exit status. It reaps every child
// itself (no os/exec Wait), through one SIGCHLD loop.
//
// # Stdio and the log
//
// Without --tty the container gets pipes for stdout and stderr (and for
// stdin with --stdin, else /dev/null); they are also the runtime's create's
// stdio, as with containerd's shim. With --tty the shim listens on a
// console socket in a private temporary directory, passes it as the
// runtime's --console-socket, and receives the pty master over SCM_RIGHTS;
// config.json must then have process.terminal true. The master carries
// both output (logged as stdout) and input.
//
// Output is appended to --log in the CRI log format, one entry per line,
// written with one write(2) each as soon as the line is complete:
//
//	<RFC3339Nano, UTC> <stdout|stderr> <P|F> <line>
//
// The "\n" (and a "\r" before it) is dropped; a line longer than 16 KiB is
// split into P (partial) entries of 16 KiB and a final F entry; an
// unterminated last line is written as F when the stream ends. The same
// bytes go, unchanged, to every attached client; a client that falls 64
// chunks behind is dropped rather than slowing the container down.
//
// # Control socket
//
// <state>/shim.sock (0600) takes one JSON request per connection and answers
// one JSON response (package proto): state, start, kill {signal, all},
// wait (blocks until the exit is recorded), attach {stdin,
// closeStdinOnEOF} (then frames both ways), close-stdin, resize {width,
// height}, delete {force}, shutdown {force}, pause, resume, and exec
// {execId, process, terminal, stdin, resize}. Errors carry an errdefs
// class.
//
// pause and resume run the runtime's pause and resume; state then says
// "paused" (kept by the shim, which outlives the engine). A SIGKILL to a
// paused container resumes it, so that it dies.
//
// exec runs the runtime's exec --process <process> --pid-file … --detach
// [--tty --console-socket …] with pipes of its own (or receives the
// process's pty master), removes the process file, answers {pid} once the
// process runs, then relays that process's stdio on the connection as
// attach frames and ends with an exit frame. The process is the shim's
// (the subreaper reaps it): it survives the engine, and a client that
// goes away leaves it running (its output is then dropped). Unlike attach,
// a slow client is not dropped: the process waits. Exec output is not
// written to the container log.
//
// # Exit
//
// When the init exits, the shim waits for the output to end (at most two
// seconds, for processes outside a pid namespace of the container's own
// that keep the stdio open), then writes <state>/exit atomically (temporary
// file, fsync, rename, fsync of the directory) as JSON
// {"code":N,"signal":S,"exitedAt":T} (code is 128+signal when a signal
// killed it; signal is omitted otherwise), then answers the waiters and
// ends the attach streams with an exit frame. It keeps serving until:
//
//   - delete: the runtime's delete (with --force unless the container is
//     stopped; a running container needs force), then the shim removes its
//     socket and init.pid and exits. The exit file, the container log,
//     shim.log and runtime.log stay: the state directory is the engine's
//     to remove.
//   - shutdown: the shim exits without touching the container (which must
//     have exited, unless force).
//
// # Engine restarts, and a shim that dies
//
// After a restart the engine reconnects to each shim by its socket
// (client.Connect); a shim keeps running, logging and recording the exit
// whether or not anyone is connected. If the socket is missing or refuses
// connections, the shim is gone: the engine reads <state>/exit; if there is
// none, the shim died before the container (SIGKILL, OOM). The container
// then lives on, reparented to the shim's own nearest subreaper (init): its
// output pipes have no reader, so its writes fail with EPIPE (a pid
// namespace's init ignores SIGPIPE; other processes die of it), nothing
// more is logged, and no exit will be recorded. The engine must then ask
// the runtime (state ID), and kill and delete the container through the
// runtime itself; its exit code is unknown.
//
// # Parking
//
// When the shim has served no request for --park-after (default 5s, 0
// never), and no request is in progress (a wait blocked for the exit does
// not count), no client is attached and no exec'd process runs, it parks:
// it execs skiff-shim-idle (package shim/idle), found beside its own
// binary, in its own place. The process, its pid, its children (it stays
// their subreaper), the control socket, the container's stdio and log, and
// the blocked waits carry over; the rest of the state (status, exit,
// unfinished log lines) is handed over as a wire.Parked. The idle monitor
// logs the output, reaps the init, records the exit (draining the output
// as above) and answers the waits, and serves state and wait requests
// itself. Any other request (or one not encoded exactly as shim/client
// encodes state and wait) makes it exec skiff-shim again with the state in
// _SKIFF_SHIM_PARKED (in the environment both ways: unfinished log lines
// are container output, and only root may read another process's
// environment): the shim resumes and serves the request, then parks
// again once idle. A client sees no difference but the time of the
// resume (~10 ms). Without skiff-shim-idle beside it, the shim never
// parks. The shim opens both binaries when it starts, and each program
// execs the other through /proc/self/fd: a shim runs the code it started
// with until it exits, whatever is installed over it meanwhile (as
// containerd's shims do), and the state's encoding never meets another
// version's. While the exit is being recorded, a request for the monitor waits
// until it is; the exit is never lost across an exec: the reaper's lock is
// held from the last check to the execve.
//
// # Memory
//
// A shim idles for its container's lifetime, one per container, so its
// resident memory is kept small: parked, it is skiff-shim-idle, which links
// only the Go runtime and package syscall (about 1.9 MiB resident against
// conmon's 2.0, see BENCHMARKS.md). The monitor itself is kept small too. The kernel maps a binary's page cache in
// whole large folios, so nearly all of a small binary is resident in
// every process that runs it: the binary's size is most of a shim's RSS.
// The monitor therefore links no more than the Go runtime, os, time's
// clock and timers, os/signal and a little of x/sys/unix: no fmt,
// encoding/json, reflection-driven code, log/slog, flag, os/exec or net.
// It speaks proto's wire format with its own small encoder and decoder
// (wire.go, tested against encoding/json and proto), formats its shim log
// like log/slog's text handler (log.go), and formats times itself. It also
// avoids the few os and time calls (os.Stat, os.StartProcess,
// time.After…) whose types would pull time's formatting and time zone
// code in.
//
// It runs with one P from its first instruction (the launcher adds
// GOMAXPROCS=1 to its environment unless the engine set GOMAXPROCS, and
// the monitor removes it again before running the runtime), GC percent 25
// and a 16 MiB soft memory limit. It does not force a GC after setup: the
// heap stays below the first GC's goal, and an idle Go process that has
// never collected is not collected every two minutes either, so an idle
// container's shim maps no GC state at all. It keeps one 8 KiB read
// buffer per output stream and a goroutine per stream and per client
// connection, nothing per byte.
package shim
