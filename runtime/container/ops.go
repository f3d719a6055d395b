package container

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/cgroups"
)

func (r *Runtime) cgroup(rec *record) (cgroups.Manager, error) {
	if len(rec.CgroupPaths) == 0 {
		return nil, fmt.Errorf("container %q has no cgroup: %w", rec.ID, errdefs.ErrFailedPrecondition)
	}
	return cgroups.Load(rec.CgroupRoot, rec.CgroupPaths)
}

// Pause freezes every process of a running container.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	rec, err := r.mustLoad(id)
	if err != nil {
		return err
	}
	if err := CheckTransition(id, r.status(rec), OpPause); err != nil {
		return err
	}
	mgr, err := r.cgroup(rec)
	if err != nil {
		return err
	}
	if err := mgr.Freeze(); err != nil {
		return fmt.Errorf("pause container %q: %w", id, err)
	}
	return nil
}

// Resume thaws a paused container.
func (r *Runtime) Resume(ctx context.Context, id string) error {
	rec, err := r.mustLoad(id)
	if err != nil {
		return err
	}
	if err := CheckTransition(id, r.status(rec), OpResume); err != nil {
		return err
	}
	mgr, err := r.cgroup(rec)
	if err != nil {
		return err
	}
	if err := mgr.Thaw(); err != nil {
		return fmt.Errorf("resume container %q: %w", id, err)
	}
	return nil
}

// Pids lists the host pids of every process of the container.
func (r *Runtime) Pids(ctx context.Context, id string) ([]int, error) {
	rec, err := r.mustLoad(id)
	if err != nil {
		return nil, err
	}
	if r.status(rec) == Stopped {
		return nil, fmt.Errorf("container %q is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	mgr, err := r.cgroup(rec)
	if err != nil {
		return nil, err
	}
	return mgr.Pids()
}

// Update changes the resources of a created, running or paused container
// and records them in its state.
func (r *Runtime) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	rec, err := r.mustLoad(id)
	if err != nil {
		return err
	}
	if st := r.status(rec); st == Stopped {
		return fmt.Errorf("cannot update container %q: it is stopped: %w", id, errdefs.ErrFailedPrecondition)
	}
	mgr, err := r.cgroup(rec)
	if err != nil {
		return err
	}
	// Validate the values before writing any of them.
	if _, err := cgroups.New(cgroups.Config{Root: rec.CgroupRoot, Path: "", ID: id, Resources: res}); err != nil {
		return err
	}
	if err := mgr.Set(res); err != nil {
		return fmt.Errorf("update container %q: %w", id, err)
	}
	if rec.Spec.Linux == nil {
		rec.Spec.Linux = &specs.Linux{}
	}
	rec.Spec.Linux.Resources = mergeResources(rec.Spec.Linux.Resources, res)
	return r.writeRecord(rec)
}

// mergeResources overlays the set fields of upd on old.
func mergeResources(old, upd *specs.LinuxResources) *specs.LinuxResources {
	if old == nil {
		c := *upd
		return &c
	}
	m := *old
	if upd.Memory != nil {
		mm := specs.LinuxMemory{}
		if m.Memory != nil {
			mm = *m.Memory
		}
		u := upd.Memory
		setIf(&mm.Limit, u.Limit)
		setIf(&mm.Reservation, u.Reservation)
		setIf(&mm.Swap, u.Swap)
		setIf(&mm.Kernel, u.Kernel)
		setIf(&mm.KernelTCP, u.KernelTCP)
		if u.Swappiness != nil {
			mm.Swappiness = u.Swappiness
		}
		if u.DisableOOMKiller != nil {
			mm.DisableOOMKiller = u.DisableOOMKiller
		}
		m.Memory = &mm
	}
	if upd.CPU != nil {
		c := specs.LinuxCPU{}
		if m.CPU != nil {
			c = *m.CPU
		}
		u := upd.CPU
		if u.Shares != nil {
			c.Shares = u.Shares
		}
		setIf(&c.Quota, u.Quota)
		if u.Period != nil {
			c.Period = u.Period
		}
		setIf(&c.RealtimeRuntime, u.RealtimeRuntime)
		if u.RealtimePeriod != nil {
			c.RealtimePeriod = u.RealtimePeriod
		}
		if u.Cpus != "" {
			c.Cpus = u.Cpus
		}
		if u.Mems != "" {
			c.Mems = u.Mems
		}
		if u.Idle != nil {
			c.Idle = u.Idle
		}
		m.CPU = &c
	}
	if upd.Pids != nil {
		m.Pids = upd.Pids
	}
	if upd.BlockIO != nil {
		m.BlockIO = upd.BlockIO
	}
	if len(upd.HugepageLimits) > 0 {
		m.HugepageLimits = upd.HugepageLimits
	}
	if len(upd.Unified) > 0 {
		m.Unified = upd.Unified
	}
	return &m
}

func setIf(dst **int64, v *int64) {
	if v != nil {
		*dst = v
	}
}

// Stats reads the container's cgroup counters.
func (r *Runtime) Stats(ctx context.Context, id string) (*cgroups.Stats, error) {
	rec, err := r.mustLoad(id)
	if err != nil {
		return nil, err
	}
	if r.status(rec) == Stopped {
		return nil, fmt.Errorf("container %q is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	mgr, err := r.cgroup(rec)
	if err != nil {
		return nil, err
	}
	return mgr.Stats()
}

// Running reports whether the container's init is still alive.
func (r *Runtime) Running(id string) bool {
	rec, err := r.load(id)
	return err == nil && r.status(rec) != Stopped
}

// OOMNotifier returns a channel that receives a value each time the kernel's
// OOM killer acts in the container's memory cgroup (cgroup v1: an eventfd on
// memory.oom_control), and a close function. It fails on hosts without the
// v1 memory controller.
func (r *Runtime) OOMNotifier(ctx context.Context, id string) (<-chan struct{}, func(), error) {
	rec, err := r.mustLoad(id)
	if err != nil {
		return nil, nil, err
	}
	dir, ok := rec.CgroupPaths["memory"]
	if !ok {
		return nil, nil, fmt.Errorf("container %q: OOM notification needs the cgroup v1 memory controller: %w", id, errdefs.ErrNotImplemented)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("OOM notification for container %q: eventfd: %w", id, err)
	}
	ctl, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		unix.Close(efd)
		return nil, nil, fmt.Errorf("OOM notification for container %q: %w", id, err)
	}
	reg := strconv.Itoa(efd) + " " + strconv.Itoa(int(ctl.Fd()))
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(reg), 0); err != nil {
		ctl.Close()
		unix.Close(efd)
		return nil, nil, fmt.Errorf("OOM notification for container %q: register: %w", id, err)
	}
	ch := make(chan struct{}, 1)
	ef := os.NewFile(uintptr(efd), "oom-eventfd")
	go func() {
		defer close(ch)
		var buf [8]byte
		for {
			if _, err := ef.Read(buf[:]); err != nil {
				return
			}
			if binary.LittleEndian.Uint64(buf[:]) == 0 {
				continue
			}
			// The eventfd also fires when the cgroup is removed.
			if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, func() { ef.Close(); ctl.Close() }, nil
}
