package containers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/engine/metadata"
	"github.com/skiff-containers/skiff/errdefs"
)

// Resources are docker's resource flags of run and update; a zero field
// is unset (update leaves it as it is). They are recorded with the
// container's CreateConfig.
type Resources struct {
	Memory            int64  `json:"memory,omitempty"`            // bytes
	MemorySwap        int64  `json:"memorySwap,omitempty"`        // bytes, memory plus swap; -1 unlimited
	MemoryReservation int64  `json:"memoryReservation,omitempty"` // bytes, soft limit
	NanoCPUs          int64  `json:"nanoCpus,omitempty"`          // --cpus × 1e9
	CPUShares         int64  `json:"cpuShares,omitempty"`
	CPUPeriod         int64  `json:"cpuPeriod,omitempty"` // microseconds
	CPUQuota          int64  `json:"cpuQuota,omitempty"`  // microseconds
	CpusetCpus        string `json:"cpusetCpus,omitempty"`
	CpusetMems        string `json:"cpusetMems,omitempty"`
	PidsLimit         int64  `json:"pidsLimit,omitempty"` // -1 unlimited
}

// IsZero reports whether r sets nothing.
func (r Resources) IsZero() bool { return r == Resources{} }

// UpdateOptions are what Update changes; nil fields are left as they are.
type UpdateOptions struct {
	Resources     *Resources
	RestartPolicy *RestartPolicy
}

// minMemory is docker's smallest memory limit.
const minMemory = 6 << 20

// validateResources checks r as docker's update does.
func validateResources(r Resources) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf(format+": %w", append(a, errdefs.ErrInvalidArgument)...)
	}
	switch {
	case r.Memory < 0:
		return bad("memory limit %d: must not be negative", r.Memory)
	case r.Memory > 0 && r.Memory < minMemory:
		return bad("minimum memory limit allowed is 6MB")
	case r.MemorySwap > 0 && r.Memory > 0 && r.MemorySwap < r.Memory:
		return bad("minimum memoryswap limit should be larger than memory limit, see usage")
	case r.MemorySwap < -1:
		return bad("memory swap limit %d: must be -1 (unlimited) or positive", r.MemorySwap)
	case r.MemoryReservation < 0:
		return bad("memory reservation %d: must not be negative", r.MemoryReservation)
	case r.MemoryReservation > 0 && r.MemoryReservation < minMemory:
		return bad("minimum memory reservation allowed is 6MB")
	case r.Memory > 0 && r.MemoryReservation > 0 && r.Memory < r.MemoryReservation:
		return bad("minimum memory limit can not be less than memory reservation limit, see usage")
	case r.NanoCPUs < 0:
		return bad("--cpus: must not be negative")
	case r.NanoCPUs > 0 && (r.CPUPeriod > 0 || r.CPUQuota > 0):
		return bad("conflicting options: Nano CPUs and CPU Period/Quota cannot both be set")
	case r.NanoCPUs > int64(runtime.NumCPU())*1e9 || r.NanoCPUs > 0 && r.NanoCPUs < 1e7:
		return bad("range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", runtime.NumCPU(), runtime.NumCPU())
	case r.CPUShares < 0 || r.CPUShares > 0 && r.CPUShares < 2:
		return bad("CPU shares %d: must be at least 2", r.CPUShares)
	case r.CPUPeriod != 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000):
		return bad("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	case r.CPUQuota != 0 && r.CPUQuota < 1000:
		return bad("CPU cfs quota can not be less than 1ms (i.e. 1000)")
	case r.PidsLimit < -1:
		return bad("pids limit %d: must be -1 (unlimited) or positive", r.PidsLimit)
	}
	return nil
}

// applyResources lays r over res (linux.resources) and returns the
// runtime update flags for what r sets.
func applyResources(res *specs.LinuxResources, r Resources) []string {
	var flags []string
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	mem := func() *specs.LinuxMemory {
		if res.Memory == nil {
			res.Memory = &specs.LinuxMemory{}
		}
		return res.Memory
	}
	cpu := func() *specs.LinuxCPU {
		if res.CPU == nil {
			res.CPU = &specs.LinuxCPU{}
		}
		return res.CPU
	}
	if r.Memory > 0 {
		mem().Limit = i64(r.Memory)
		flags = append(flags, "--memory", strconv.FormatInt(r.Memory, 10))
	}
	if r.MemorySwap != 0 {
		mem().Swap = i64(r.MemorySwap)
		flags = append(flags, "--memory-swap", strconv.FormatInt(r.MemorySwap, 10))
	}
	if r.MemoryReservation > 0 {
		mem().Reservation = i64(r.MemoryReservation)
		flags = append(flags, "--memory-reservation", strconv.FormatInt(r.MemoryReservation, 10))
	}
	if r.CPUShares > 0 {
		cpu().Shares = u64(uint64(r.CPUShares))
		flags = append(flags, "--cpu-share", strconv.FormatInt(r.CPUShares, 10))
	}
	period, quota := r.CPUPeriod, r.CPUQuota
	if r.NanoCPUs > 0 {
		period, quota = 100000, r.NanoCPUs*100000/1e9
	}
	if period > 0 {
		cpu().Period = u64(uint64(period))
		flags = append(flags, "--cpu-period", strconv.FormatInt(period, 10))
	}
	if quota != 0 {
		cpu().Quota = i64(quota)
		flags = append(flags, "--cpu-quota", strconv.FormatInt(quota, 10))
	}
	if r.CpusetCpus != "" {
		cpu().Cpus = r.CpusetCpus
		flags = append(flags, "--cpuset-cpus", r.CpusetCpus)
	}
	if r.CpusetMems != "" {
		cpu().Mems = r.CpusetMems
		flags = append(flags, "--cpuset-mems", r.CpusetMems)
	}
	if r.PidsLimit != 0 {
		res.Pids = &specs.LinuxPids{Limit: i64(r.PidsLimit)}
		flags = append(flags, "--pids-limit", strconv.FormatInt(r.PidsLimit, 10))
	}
	return flags
}

// checkUpdate refuses, as docker's update does, what conflicts with what
// the container has (cur, its spec's resources; had, its recorded flags):
// a memory limit above its memory+swap limit without a new one, and --cpus
// against a CFS period or quota (or the reverse).
func checkUpdate(cur *specs.LinuxResources, had, r Resources) error {
	conflict := func(msg string) error { return fmt.Errorf("%s: %w", msg, errdefs.ErrFailedPrecondition) }
	switch {
	case r.NanoCPUs > 0 && had.CPUPeriod > 0:
		return conflict("conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
	case r.NanoCPUs > 0 && had.CPUQuota > 0:
		return conflict("conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
	case r.CPUPeriod > 0 && had.NanoCPUs > 0:
		return conflict("conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
	case r.CPUQuota > 0 && had.NanoCPUs > 0:
		return conflict("conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
	}
	if r.Memory > 0 && r.MemorySwap == 0 && cur.Memory != nil && cur.Memory.Swap != nil && *cur.Memory.Swap > 0 && r.Memory > *cur.Memory.Swap {
		return conflict(fmt.Sprintf("memory limit should be smaller than already set memoryswap limit (%d), update the memoryswap at the same time", *cur.Memory.Swap))
	}
	return nil
}

// mergeResources lays what r sets over the recorded dst; --cpus replaces
// a period and quota and the reverse, as in the spec.
func mergeResources(dst *Resources, r Resources) {
	set := func(d *int64, v int64) {
		if v != 0 {
			*d = v
		}
	}
	set(&dst.Memory, r.Memory)
	set(&dst.MemorySwap, r.MemorySwap)
	set(&dst.MemoryReservation, r.MemoryReservation)
	set(&dst.NanoCPUs, r.NanoCPUs)
	set(&dst.CPUShares, r.CPUShares)
	set(&dst.CPUPeriod, r.CPUPeriod)
	set(&dst.CPUQuota, r.CPUQuota)
	set(&dst.PidsLimit, r.PidsLimit)
	if r.CpusetCpus != "" {
		dst.CpusetCpus = r.CpusetCpus
	}
	if r.CpusetMems != "" {
		dst.CpusetMems = r.CpusetMems
	}
}

// Update changes a container's resources (applied at once, through the
// runtime's update, to a running container, and kept in its spec for its
// next start) and its restart policy.
func (s *Service) Update(ctx context.Context, ns, idOrName string, o UpdateOptions) (Container, error) {
	what := "update container " + idOrName
	if o.Resources != nil {
		if err := validateResources(*o.Resources); err != nil {
			return Container{}, fmt.Errorf("%s: %w", what, err)
		}
	}
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return Container{}, err
	}
	defer c.op.Unlock()
	cc := decodeConfig(rec)
	if o.RestartPolicy != nil {
		if cc.AutoRemove && o.RestartPolicy.Name != "" && o.RestartPolicy.Name != policyNo {
			return Container{}, fmt.Errorf("%s: restart policy cannot be updated because AutoRemove is enabled for the container: %w", what, errdefs.ErrInvalidArgument)
		}
		if err := validatePolicy(what, *o.RestartPolicy, false); err != nil {
			return Container{}, err
		}
	}
	if status(rec) == StatusRemoving || status(rec) == StatusDead {
		return Container{}, &StateError{ID: idOrName, Op: "update", Status: status(rec)}
	}
	next := rec
	fields := []string{}
	if o.Resources != nil && !o.Resources.IsZero() {
		var spec specs.Spec
		if err := json.Unmarshal(rec.Spec, &spec); err != nil {
			return Container{}, fmt.Errorf("%s: its runtime spec: %w", what, err)
		}
		if spec.Linux == nil {
			spec.Linux = &specs.Linux{}
		}
		if spec.Linux.Resources == nil {
			spec.Linux.Resources = &specs.LinuxResources{}
		}
		if err := checkUpdate(spec.Linux.Resources, cc.Resources, *o.Resources); err != nil {
			return Container{}, fmt.Errorf("%s: %w", what, err)
		}
		flags := applyResources(spec.Linux.Resources, *o.Resources)
		mergeResources(&cc.Resources, *o.Resources)
		if next.Config, err = json.Marshal(cc); err != nil {
			return Container{}, fmt.Errorf("%s: encode its config: %w", what, err)
		}
		if next.Spec, err = json.Marshal(&spec); err != nil {
			return Container{}, fmt.Errorf("%s: encode its runtime spec: %w", what, err)
		}
		fields = append(fields, "spec", "config")
		if s.view(ns, rec).Running() {
			rt := s.runtimeOf(ns, rec)
			if _, err := rt.run(ctx, append(append([]string{"update"}, flags...), rec.ID)...); err != nil {
				return Container{}, fmt.Errorf("%s: the runtime's update failed: %w", what, err)
			}
		}
		path := filepath.Join(s.bundleDir(ns, rec.ID), configJSON)
		if _, err := os.Stat(path); err == nil {
			if err := writeFileAtomic(path, next.Spec); err != nil {
				return Container{}, fmt.Errorf("%s: rewrite its bundle: %w", what, err)
			}
		}
	}
	if o.RestartPolicy != nil {
		next.RestartPolicy = metadata.RestartPolicy(*o.RestartPolicy)
		cc.RestartPolicy = *o.RestartPolicy
		if next.Config, err = json.Marshal(cc); err != nil {
			return Container{}, fmt.Errorf("%s: encode its config: %w", what, err)
		}
		fields = append(fields, "restartpolicy")
		if !slices.Contains(fields, "config") {
			fields = append(fields, "config")
		}
	}
	if len(fields) == 0 {
		return s.view(ns, rec), nil
	}
	out, err := s.cfg.DB.UpdateContainer(ns, next, fields...)
	if err != nil {
		return Container{}, fmt.Errorf("%s: %w", what, err)
	}
	s.log.Info("container updated", "namespace", ns, "id", rec.ID, "fields", strings.Join(fields, ","))
	return s.view(ns, out), nil
}

// Rename gives the container another name, unique in its namespace.
func (s *Service) Rename(ctx context.Context, ns, idOrName, newName string) (Container, error) {
	if err := validName(newName); err != nil {
		return Container{}, fmt.Errorf("rename container %s: %w", idOrName, err)
	}
	newName = strings.TrimPrefix(newName, "/")
	c, rec, err := s.lock(ns, idOrName)
	if err != nil {
		return Container{}, err
	}
	defer c.op.Unlock()
	if rec.Name == newName {
		return Container{}, fmt.Errorf("rename container %s: renaming a container with the same name as its current name: %w", idOrName, errdefs.ErrInvalidArgument)
	}
	if status(rec) == StatusRemoving {
		return Container{}, &StateError{ID: idOrName, Op: "rename", Status: status(rec)}
	}
	cc := decodeConfig(rec)
	cc.Name = newName
	next := rec
	next.Name = newName
	if next.Config, err = json.Marshal(cc); err != nil {
		return Container{}, fmt.Errorf("rename container %s: encode its config: %w", idOrName, err)
	}
	out, err := s.cfg.DB.UpdateContainer(ns, next, "name", "config")
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			if other, gerr := s.cfg.DB.GetContainerByName(ns, newName); gerr == nil {
				return Container{}, fmt.Errorf("rename container %s: %w", idOrName, nameInUse(newName, other.ID))
			}
		}
		return Container{}, fmt.Errorf("rename container %s: %w", idOrName, err)
	}
	s.log.Info("container renamed", "namespace", ns, "id", rec.ID, "from", rec.Name, "to", newName)
	s.publish(ns, rec.ID, evRename, out, map[string]string{"oldName": rec.Name})
	return s.view(ns, out), nil
}
