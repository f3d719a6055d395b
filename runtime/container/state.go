package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/internal/ljson"
)

const (
	stateFile = "state.json"
	fifoFile  = "exec.fifo"
)

// record is what the runtime keeps about a container in <root>/<id>/state.json.
type record struct {
	OCIVersion    string            `json:"ociVersion"`
	ID            string            `json:"id"`
	Bundle        string            `json:"bundle"`
	Rootfs        string            `json:"rootfs"`
	Pid           int               `json:"pid"`
	InitStartTime uint64            `json:"initStartTime"`
	Created       time.Time         `json:"created"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	CgroupRoot    string            `json:"cgroupRoot,omitempty"`
	CgroupPaths   map[string]string `json:"cgroupPaths,omitempty"`
	// NewPidNS: the container has its own pid namespace, so killing its
	// init kills every process in it.
	NewPidNS bool `json:"newPidNs"`
	// SharedRootfsMount is the ID of the bind mount of Rootfs that the
	// root of a container without a mount namespace of its own is built
	// on, in the runtime's namespace; delete detaches it (hostmount.go).
	SharedRootfsMount uint64      `json:"sharedRootfsMount,omitempty"`
	Spec              *specs.Spec `json:"config"`
}

// State is the state of a container as `state` and `list` print it: the OCI
// state plus runc's rootfs, created and owner, so runc's clients parse it.
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      Status            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`
}

func (r *Runtime) dir(id string) string { return filepath.Join(r.Root, id) }

func (r *Runtime) writeRecord(rec *record) error {
	b, err := ljson.Marshal(rec)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.dir(rec.ID), stateFile), b, 0o600)
}

// writeFileAtomic writes via a temp file and rename, so readers see the old
// or the new content, never a part.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// load reads a container's record. A directory without a record is a
// container still being created (or one whose create crashed).
func (r *Runtime) load(id string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(r.dir(id), stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, derr := os.Stat(r.dir(id)); derr == nil {
				return nil, errCreating
			}
			return nil, fmt.Errorf("container %q does not exist in %s (its containers: list --root %s): %w", id, r.Root, r.Root, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("read state of container %q: %w", id, err)
	}
	var rec record
	if err := ljson.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("state of container %q is corrupt (%s): %w; delete it with delete --force", id, err, errdefs.ErrFailedPrecondition)
	}
	return &rec, nil
}

var errCreating = errors.New("container is being created")

// status works out where the container is in its lifecycle from the kernel,
// not from what was written down: the init may have died since.
func (r *Runtime) status(rec *record) Status {
	if !initAlive(rec.Pid, rec.InitStartTime) {
		return Stopped
	}
	if _, err := os.Lstat(filepath.Join(r.dir(rec.ID), fifoFile)); err == nil {
		return Created
	}
	if frozen(rec) {
		return Paused
	}
	return Running
}

func (r *Runtime) toState(rec *record) *State {
	st := &State{
		OCIVersion:  rec.OCIVersion,
		ID:          rec.ID,
		Pid:         rec.Pid,
		Status:      r.status(rec),
		Bundle:      rec.Bundle,
		Rootfs:      rec.Rootfs,
		Created:     rec.Created,
		Annotations: rec.Annotations,
	}
	if st.Status == Stopped {
		st.Pid = 0
	}
	return st
}

// owner names the user owning the container's state directory.
func (r *Runtime) owner(id string) string {
	fi, err := os.Stat(r.dir(id))
	if err != nil {
		return ""
	}
	uid := fi.Sys().(*syscall.Stat_t).Uid
	if name := userName(uid); name != "" {
		return name
	}
	return "#" + strconv.Itoa(int(uid))
}

// userName looks uid up in /etc/passwd, as runc does (and as os/user's pure
// Go lookup would): no NSS, which a static binary cannot load.
func userName(uid uint32) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return ""
	}
	want := strconv.FormatUint(uint64(uid), 10)
	for line := range strings.SplitSeq(string(b), "\n") {
		// name:password:uid:gid:gecos:home:shell
		f := strings.SplitN(line, ":", 4)
		if len(f) >= 3 && f[2] == want && f[0] != "" && !strings.HasPrefix(f[0], "#") {
			return f[0]
		}
	}
	return ""
}

// procStartTime reads field 22 of /proc/<pid>/stat (start time in clock
// ticks since boot) and the process state letter: together with the pid
// they name a process, whatever pids get reused.
func procStartTime(pid int) (uint64, byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+2:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat: %w", pid, err)
	}
	return st, f[0][0], nil
}

// initAlive reports whether the process pid started at start still runs
// (a zombie counts as dead). start 0 matches any process with that pid.
func initAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, state, err := procStartTime(pid)
	if err != nil {
		return false
	}
	return (start == 0 || st == start) && state != 'Z' && state != 'X'
}

// waitGone polls until the process is dead or reaped, or the timeout passes.
func waitGone(pid int, start uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for d := 100 * time.Microsecond; ; d = min(d*2, 20*time.Millisecond) {
		if !initAlive(pid, start) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(d)
	}
}

// signalInit sends sig to the container's init, checking first that the pid
// still names it.
func signalInit(rec *record, sig unix.Signal) error {
	if !initAlive(rec.Pid, rec.InitStartTime) {
		return fmt.Errorf("container %q is not running: %w", rec.ID, errdefs.ErrFailedPrecondition)
	}
	if err := unix.Kill(rec.Pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("send %s to container %q (pid %d): %w", unix.SignalName(sig), rec.ID, rec.Pid, err)
	}
	return nil
}
