package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// writeFile writes one value to a cgroup control file. The file must exist:
// cgroupfs creates its files itself, so a missing one means the controller or
// the feature is not there.
func writeFile(dir, name, val string) error {
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat(dir); serr != nil {
				return fmt.Errorf("write %q to %s: cgroup directory %s does not exist (was the container's cgroup removed?): %w", val, p, dir, errdefs.ErrNotFound)
			}
			return fmt.Errorf("write %q to %s: the kernel offers no such file here (controller not enabled or feature not built in): %w", val, p, errdefs.ErrNotImplemented)
		}
		return fmt.Errorf("write %q to %s: %w", val, p, err)
	}
	_, err = f.WriteString(val)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ERANGE) {
			return fmt.Errorf("write %q to %s: the kernel rejected the value (%v); check the value against the controller's range: %w", val, p, err, errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("write %q to %s: %w", val, p, err)
	}
	return nil
}

// readFile reads a cgroup file, trimmed of surrounding space.
func readFile(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// readUint reads a file holding one unsigned number; "max" reads as
// MaxUint64 and a negative number (v1's "-1") as 0.
func readUint(dir, name string) (uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return 0, err
	}
	return parseUint(s, filepath.Join(dir, name))
}

func parseUint(s, where string) (uint64, error) {
	if s == "max" {
		return math.MaxUint64, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		// Negative values (v1 uses -1 for "unlimited") saturate.
		if iv, ierr := strconv.ParseInt(s, 10, 64); ierr == nil && iv < 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("parse %q in %s: not an unsigned number", s, where)
	}
	return v, nil
}

// readKeyValues parses a "key value" per line file (memory.stat, cpu.stat).
func readKeyValues(dir, name string) (map[string]uint64, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		n, err := parseUint(strings.TrimSpace(v), filepath.Join(dir, name))
		if err != nil {
			continue
		}
		out[k] = n
	}
	return out, sc.Err()
}

// readPidsFile reads cgroup.procs.
func readPidsFile(dir string) ([]int, error) {
	s, err := readFile(dir, "cgroup.procs")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, l := range strings.Fields(s) {
		p, err := strconv.Atoi(l)
		if err != nil {
			return nil, fmt.Errorf("parse %s/cgroup.procs: bad pid %q", dir, l)
		}
		out = append(out, p)
	}
	return out, nil
}

// allPids walks dir and its children and collects cgroup.procs of each.
func allPids(dir string) ([]int, error) {
	var out []int
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && p != dir {
				return nil // a child cgroup went away while we walked
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		pids, err := readPidsFile(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && p != dir {
				return nil
			}
			return err
		}
		out = append(out, pids...)
		return nil
	})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("list pids of cgroup %s: it does not exist: %w", dir, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("list pids of cgroup %s: %w", dir, err)
	}
	return out, nil
}

// writePid moves pid into the cgroup dir. A process that is being created
// may briefly fail with EINVAL/EBUSY-like errors; runc retries a few times.
func writePid(dir string, pid int) error {
	var err error
	for i := 0; i < 5; i++ {
		err = writeFile(dir, "cgroup.procs", strconv.Itoa(pid))
		if err == nil || !errors.Is(err, unix.EINVAL) {
			break
		}
		time.Sleep(30 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("move pid %d into cgroup %s: %w", pid, dir, err)
	}
	return nil
}

// destroyBudget is how long Destroy keeps retrying rmdir on EBUSY, for all
// of a container's directories together.
const destroyBudget = 2 * time.Second

// removeTree removes dir and every cgroup directory below it, deepest first.
// cgroupfs directories are removed with rmdir alone, which fails with EBUSY
// while processes are still leaving; it retries until deadline. A directory
// that is already gone is fine.
func removeTree(h host, dir string, deadline time.Time) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeTree(h, filepath.Join(dir, e.Name()), deadline); err != nil {
				return err
			}
		}
	}
	delay := 10 * time.Millisecond
	for {
		err = h.rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().Add(delay).After(deadline) {
			break
		}
		time.Sleep(delay)
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("remove cgroup %s: still busy (processes left in it?); kill them and retry: %w", dir, errdefs.ErrFailedPrecondition)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}

func errNotFoundf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrNotFound)...)
}
