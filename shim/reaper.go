package shim

import (
	"os"
	"os/signal"
	"sync"

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
	sig       chan os.Signal
	done      chan struct{}
}

func newReaper() *reaper {
	r := &reaper{
		waiters:   map[int]chan unix.WaitStatus{},
		unclaimed: map[int]unix.WaitStatus{},
		keep:      true,
		sig:       make(chan os.Signal, 1),
		done:      make(chan struct{}),
	}
	signal.Notify(r.sig, unix.SIGCHLD)
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
		} else if r.keep {
			r.unclaimed[pid] = ws
		}
	}
}

// start starts a process whose status the caller receives on the channel.
func (r *reaper) start(argv []string, attr *os.ProcAttr) (*os.Process, <-chan unix.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := os.StartProcess(argv[0], argv, attr)
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan unix.WaitStatus, 1)
	r.waiters[p.Pid] = ch
	return p, ch, nil
}

// claim returns the channel on which the status of child pid (one the shim
// did not start itself) will arrive, or has arrived already.
func (r *reaper) claim(pid int) <-chan unix.WaitStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan unix.WaitStatus, 1)
	if ws, ok := r.unclaimed[pid]; ok {
		delete(r.unclaimed, pid)
		ch <- ws
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
