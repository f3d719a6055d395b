package shim

import (
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// reaper collects every child of the shim, which is a child subreaper: the
// runtime commands it starts and the container's init, which the runtime
// leaves behind and the kernel reparents to the shim. Nothing else in the
// process may wait for children (os/exec's Wait would race with it), so
// processes are started through start and their status received from the
// returned channel.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]chan unix.WaitStatus
	// unclaimed keeps the statuses of children nobody waits for yet, until
	// stopKeeping: the init may exit before the shim has read its pid.
	unclaimed map[int]unix.WaitStatus
	keep      bool
	// holds counts the execs starting: while one does, statuses are kept
	// again, since an exec'd process may exit before its pid is read.
	holds int
	// claimed are the pids given to claim; reaped those of them whose
	// status was delivered (see reapedLocked).
	claimed, reaped map[int]bool
	sig             chan os.Signal
	done            chan struct{}
}

func newReaper() *reaper {
	r := &reaper{
		waiters:   map[int]chan unix.WaitStatus{},
		unclaimed: map[int]unix.WaitStatus{},
		claimed:   map[int]bool{},
		reaped:    map[int]bool{},
		keep:      true,
		sig:       make(chan os.Signal, 1),
		done:      make(chan struct{}),
	}
	signal.Notify(r.sig, unix.SIGCHLD)
	// Children that exited before (a monitor resumed from the idle
	// monitor has some) sent their SIGCHLD to no one.
	r.reap()
	go r.loop()
	return r
}

func (r *reaper) loop() {
	for {
		select {
		case <-r.sig:
			r.reap()
		case <-r.done:
			return
		}
	}
}

func (r *reaper) stop() {
	signal.Stop(r.sig)
	close(r.done)
}

// reap waits for every child that has exited.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- ws
			if r.claimed[pid] {
				r.reaped[pid] = true
			}
		} else if r.keep || r.holds > 0 {
			r.unclaimed[pid] = ws
		}
	}
}

// start starts a process with files as its fds 0, 1, 2…, in dir; the
// caller receives its status on the channel. (syscall.ForkExec rather than
// os.StartProcess, which would link os's FileInfo and with it time's
// formatting code into the shim; see wire.go. Fd makes files blocking for
// the child, as os.StartProcess does.)
func (r *reaper) start(argv []string, dir string, files []*os.File) (int, <-chan unix.WaitStatus, error) {
	fds := make([]uintptr, len(files))
	for i, f := range files {
		fds[i] = f.Fd()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Dir: dir, Env: syscall.Environ(), Files: fds})
	if err != nil {
		return 0, nil, &os.PathError{Op: "fork/exec", Path: argv[0], Err: err}
	}
	ch := make(chan unix.WaitStatus, 1)
	r.waiters[pid] = ch
	return pid, ch, nil
}

// kill sends sig to child pid if it has not been reaped yet (so never to
// another process that got its pid since).
func (r *reaper) kill(pid int, sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.waiters[pid]; ok {
		syscall.Kill(pid, sig)
	}
}

// claim returns the channel on which the status of child pid (one the shim
// did not start itself) will arrive, or has arrived already.
func (r *reaper) claim(pid int) <-chan unix.WaitStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan unix.WaitStatus, 1)
	r.claimed[pid] = true
	if ws, ok := r.unclaimed[pid]; ok {
		delete(r.unclaimed, pid)
		ch <- ws
		r.reaped[pid] = true
	} else {
		r.waiters[pid] = ch
	}
	return ch
}

// stopKeeping drops the unclaimed statuses and keeps no more: once the
// init is claimed, other orphans are of no interest.
func (r *reaper) stopKeeping() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keep = false
	clear(r.unclaimed)
}

// hold keeps the statuses of unclaimed children until the matching
// release: an exec's process is reparented to the shim when the runtime's
// exec --detach returns, and may exit before the shim has read its pid.
func (r *reaper) hold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holds++
}

// release ends a hold; with none left (and the init claimed), the kept
// statuses are dropped.
func (r *reaper) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holds--
	if r.holds == 0 && !r.keep {
		clear(r.unclaimed)
	}
}

// reapedLocked reports whether the status of pid, a claimed child, has
// been delivered (whether or not its receiver has acted on it yet). The
// caller holds r.mu.
func (r *reaper) reapedLocked(pid int) bool { return r.reaped[pid] }
