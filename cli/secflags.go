package cli

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

// resourceFlags are docker's resource flags, shared by run/create and
// update.
type resourceFlags struct {
	memory, memorySwap, memoryReservation, cpus, cpusetCpus, cpusetMems string
	cpuShares, cpuPeriod, cpuQuota, pidsLimit                           int64
}

func addResourceFlags(f *pflag.FlagSet, o *resourceFlags) {
	f.StringVarP(&o.memory, "memory", "m", "", "Memory limit")
	f.StringVar(&o.memorySwap, "memory-swap", "", "Swap limit equal to memory plus swap: -1 to enable unlimited swap")
	f.StringVar(&o.memoryReservation, "memory-reservation", "", "Memory soft limit")
	f.StringVar(&o.cpus, "cpus", "", "Number of CPUs")
	f.Int64VarP(&o.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	f.Int64Var(&o.cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	f.Int64Var(&o.cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	f.StringVar(&o.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	f.StringVar(&o.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	f.Int64Var(&o.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
}

// toResources parses the resource flags the user set; nil if none. The
// numbers are checked against each other by the daemon, as docker's are.
func (o *resourceFlags) toResources(changed func(string) bool) (*skiffv1.Resources, error) {
	r := &skiffv1.Resources{}
	set := false
	size := func(flag, v string, dst *int64) error {
		if !changed(flag) {
			return nil
		}
		set = true
		if flag == "memory-swap" && v == "-1" {
			*dst = -1
			return nil
		}
		n, err := ramInBytes(v)
		if err != nil {
			name := "--" + flag
			if flag == "memory" {
				name = "-m, --memory"
			}
			return invalid("invalid argument %q for \"%s\" flag: %v", v, name, err)
		}
		*dst = n
		return nil
	}
	if err := size("memory", o.memory, &r.Memory); err != nil {
		return nil, err
	}
	if err := size("memory-swap", o.memorySwap, &r.MemorySwap); err != nil {
		return nil, err
	}
	if err := size("memory-reservation", o.memoryReservation, &r.MemoryReservation); err != nil {
		return nil, err
	}
	if changed("cpus") {
		f, err := strconv.ParseFloat(o.cpus, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, invalid("invalid argument %q for \"--cpus\" flag: failed to parse %s as a rational number", o.cpus, o.cpus)
		}
		r.NanoCpus, set = int64(f*1e9), true
	}
	for _, f := range []struct {
		flag     string
		src, dst *int64
	}{
		{"cpu-shares", &o.cpuShares, &r.CpuShares},
		{"cpu-period", &o.cpuPeriod, &r.CpuPeriod},
		{"cpu-quota", &o.cpuQuota, &r.CpuQuota},
		{"pids-limit", &o.pidsLimit, &r.PidsLimit},
	} {
		if changed(f.flag) {
			*f.dst, set = *f.src, true
		}
	}
	if changed("cpuset-cpus") {
		r.CpusetCpus, set = o.cpusetCpus, true
	}
	if changed("cpuset-mems") {
		r.CpusetMems, set = o.cpusetMems, true
	}
	if !set {
		return nil, nil
	}
	return r, nil
}

// securityFlags are run's and create's resource and security flags.
type securityFlags struct {
	res         resourceFlags
	privileged  bool
	capAdd      []string
	capDrop     []string
	securityOpt []string
	devices     []string
	sysctls     []string
	groupAdd    []string
	ulimits     []string
	shmSize     string
	oomScoreAdj int
}

func addSecurityFlags(f *pflag.FlagSet, o *securityFlags) {
	addResourceFlags(f, &o.res)
	f.BoolVar(&o.privileged, "privileged", false, "Give extended privileges to this container")
	f.StringArrayVar(&o.capAdd, "cap-add", nil, "Add Linux capabilities")
	f.StringArrayVar(&o.capDrop, "cap-drop", nil, "Drop Linux capabilities")
	f.StringArrayVar(&o.securityOpt, "security-opt", nil, "Security Options (seccomp=unconfined|PROFILE.json, no-new-privileges[:true|false], label=…, apparmor=…)")
	f.StringArrayVar(&o.devices, "device", nil, "Add a host device to the container (/dev/x[:/dev/y[:rwm]])")
	f.StringArrayVar(&o.sysctls, "sysctl", nil, "Sysctl options (namespaced only: net.*, fs.mqueue.*, kernel.shm*, kernel.msg*, kernel.sem)")
	f.StringArrayVar(&o.groupAdd, "group-add", nil, "Add additional groups to join")
	f.StringArrayVar(&o.ulimits, "ulimit", nil, "Ulimit options (name=soft[:hard])")
	f.StringVar(&o.shmSize, "shm-size", "", "Size of /dev/shm")
	f.IntVar(&o.oomScoreAdj, "oom-score-adj", 0, "Tune host's OOM preferences (-1000 to 1000)")
}

// apply puts the flags into c, reading seccomp profile files.
func (o *securityFlags) apply(c *skiffv1.ContainerConfig, changed func(string) bool) error {
	res, err := o.res.toResources(changed)
	if err != nil {
		return err
	}
	c.Resources = res
	c.Privileged = o.privileged
	c.CapAdd, c.CapDrop, c.GroupAdd = o.capAdd, o.capDrop, o.groupAdd
	c.OomScoreAdj = int32(o.oomScoreAdj)
	if changed("shm-size") {
		n, err := ramInBytes(o.shmSize)
		if err != nil {
			return invalid("invalid argument %q for \"--shm-size\" flag: %v", o.shmSize, err)
		}
		c.ShmSize = n
	}
	if c.SecurityOpt, err = parseSecurityOpts(o.securityOpt, os.ReadFile); err != nil {
		return err
	}
	for _, d := range o.devices {
		dev, err := parseDevice(d)
		if err != nil {
			return err
		}
		c.Devices = append(c.Devices, dev)
	}
	if c.Sysctls, err = parseSysctls(o.sysctls); err != nil {
		return err
	}
	c.Ulimits, err = parseUlimits(o.ulimits)
	return err
}

// parseSecurityOpts is docker's CLI parseSecurityOpts: it checks the
// key=value (or legacy key:value) form, and replaces seccomp=FILE by the
// file's compacted JSON (unconfined and builtin stay names).
func parseSecurityOpts(opts []string, readFile func(string) ([]byte, error)) ([]string, error) {
	var out []string
	for _, opt := range opts {
		opt = strings.TrimSpace(opt)
		if opt == "no-new-privileges" {
			out = append(out, opt)
			continue
		}
		k, v, ok := strings.Cut(opt, "=")
		if !ok {
			if k, v, ok = strings.Cut(opt, ":"); !ok {
				return nil, invalid("invalid --security-opt: %q", opt)
			}
		}
		if k == "seccomp" && v != "unconfined" && v != "builtin" {
			data, err := readFile(v)
			if err != nil {
				return nil, invalid("opening seccomp profile (%s) failed: %v", v, err)
			}
			var b bytes.Buffer
			if err := json.Compact(&b, data); err != nil {
				return nil, invalid("compacting json for seccomp profile (%s) failed: %v", v, err)
			}
			opt = "seccomp=" + b.String()
		}
		out = append(out, opt)
	}
	return out, nil
}

// validDeviceMode is docker's: a non-empty combination of r, w and m.
func validDeviceMode(mode string) bool {
	if mode == "" {
		return false
	}
	seen := map[rune]bool{}
	for _, c := range mode {
		if !strings.ContainsRune("rwm", c) || seen[c] {
			return false
		}
		seen[c] = true
	}
	return true
}

// parseDevice parses docker's --device HOST[:CONTAINER][:PERMISSIONS]
// and returns "HOST:CONTAINER:PERMISSIONS" (the container path defaults
// to the host's, the permissions to rwm).
func parseDevice(spec string) (string, error) {
	if strings.Count(spec, ":") > 2 {
		return "", invalid("invalid device specification: %s", spec)
	}
	parts := strings.Split(spec, ":")
	src, dst, perms := parts[0], "", "rwm"
	switch len(parts) {
	case 3:
		if !validDeviceMode(parts[2]) {
			return "", invalid("invalid device specification: %s: bad mode specified: %s", spec, parts[2])
		}
		dst, perms = parts[1], parts[2]
	case 2:
		if validDeviceMode(parts[1]) {
			perms = parts[1]
		} else {
			dst = parts[1]
		}
	}
	if src == "" {
		return "", invalid("invalid device specification: %s: bad format for path: %s", spec, spec)
	}
	if dst == "" {
		dst = src
	}
	if !path.IsAbs(dst) {
		return "", invalid("invalid device specification: %s: %s is not an absolute path", spec, dst)
	}
	return src + ":" + path.Clean(dst) + ":" + perms, nil
}

// parseSysctls is docker's --sysctl KEY=VALUE with opts.ValidateSysctl:
// only namespaced sysctls (the ipc namespace's kernel keys, fs.mqueue.*,
// net.*).
func parseSysctls(vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, invalid("invalid argument %q for \"--sysctl\" flag: sysctl '%s' is not allowed: want KEY=VALUE", v, v)
		}
		switch {
		case slices.Contains([]string{"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
			"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}, k):
		case strings.HasPrefix(k, "net."), strings.HasPrefix(k, "fs.mqueue."):
		default:
			return nil, invalid("invalid argument %q for \"--sysctl\" flag: sysctl '%s' is not allowed: only namespaced sysctls (net.*, fs.mqueue.*, kernel.msg*, kernel.sem, kernel.shm*) can be set in a container", v, v)
		}
		out[k] = val
	}
	return out, nil
}

// ulimitNames are docker's --ulimit names (go-units).
func ulimitNames() []string {
	return []string{"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
		"nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}
}

// parseUlimits is docker's --ulimit NAME=SOFT[:HARD] (go-units
// ParseUlimit); a later value for a name replaces an earlier one.
func parseUlimits(vals []string) ([]*skiffv1.Ulimit, error) {
	var out []*skiffv1.Ulimit
	for _, v := range vals {
		bad := func(format string, a ...any) error {
			return invalid("invalid argument %q for \"--ulimit\" flag: "+format, append([]any{v}, a...)...)
		}
		name, limits, ok := strings.Cut(v, "=")
		if !ok {
			return nil, bad("invalid ulimit argument: %s", v)
		}
		if !slices.Contains(ulimitNames(), name) {
			return nil, bad("invalid ulimit type: %s", name)
		}
		parts := strings.Split(limits, ":")
		if len(parts) > 2 {
			return nil, bad("too many limit value arguments - %s, can only have up to two, `soft[:hard]`", limits)
		}
		soft, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			return nil, bad("invalid ulimit value %q: not a number", parts[0])
		}
		hard := soft
		if len(parts) == 2 {
			if hard, err = strconv.ParseInt(parts[1], 10, 64); err != nil {
				return nil, bad("invalid ulimit value %q: not a number", parts[1])
			}
			if soft > hard {
				return nil, bad("ulimit soft limit must be less than or equal to hard limit: %d > %d", soft, hard)
			}
		}
		u := &skiffv1.Ulimit{Name: name, Soft: soft, Hard: hard}
		if i := slices.IndexFunc(out, func(x *skiffv1.Ulimit) bool { return x.GetName() == name }); i >= 0 {
			out[i] = u
		} else {
			out = append(out, u)
		}
	}
	return out, nil
}

// inspectSecurity are the resource and security fields of docker's
// inspect HostConfig (embedded in inspectHostConfig, so flattened).
type inspectSecurity struct {
	Privileged        bool              `json:"Privileged"`
	CapAdd            []string          `json:"CapAdd"`
	CapDrop           []string          `json:"CapDrop"`
	SecurityOpt       []string          `json:"SecurityOpt"`
	GroupAdd          []string          `json:"GroupAdd"`
	ShmSize           int64             `json:"ShmSize"`
	Sysctls           map[string]string `json:"Sysctls,omitempty"`
	OomScoreAdj       int32             `json:"OomScoreAdj"`
	Memory            int64             `json:"Memory"`
	MemorySwap        int64             `json:"MemorySwap"`
	MemoryReservation int64             `json:"MemoryReservation"`
	NanoCpus          int64             `json:"NanoCpus"`
	CpuShares         int64             `json:"CpuShares"`
	CpuPeriod         int64             `json:"CpuPeriod"`
	CpuQuota          int64             `json:"CpuQuota"`
	CpusetCpus        string            `json:"CpusetCpus"`
	CpusetMems        string            `json:"CpusetMems"`
	PidsLimit         *int64            `json:"PidsLimit"`
	Devices           []inspectDevice   `json:"Devices"`
	Ulimits           []inspectUlimit   `json:"Ulimits"`
}

type inspectDevice struct {
	PathOnHost        string `json:"PathOnHost"`
	PathInContainer   string `json:"PathInContainer"`
	CgroupPermissions string `json:"CgroupPermissions"`
}

type inspectUlimit struct {
	Name string `json:"Name"`
	Hard int64  `json:"Hard"`
	Soft int64  `json:"Soft"`
}

// toInspectSecurity is docker's view of cfg's resource and security
// settings.
func toInspectSecurity(cfg *skiffv1.ContainerConfig) inspectSecurity {
	r := cfg.GetResources()
	out := inspectSecurity{
		Privileged:        cfg.GetPrivileged(),
		CapAdd:            cfg.GetCapAdd(),
		CapDrop:           cfg.GetCapDrop(),
		SecurityOpt:       cfg.GetSecurityOpt(),
		GroupAdd:          cfg.GetGroupAdd(),
		ShmSize:           cfg.GetShmSize(),
		Sysctls:           cfg.GetSysctls(),
		OomScoreAdj:       cfg.GetOomScoreAdj(),
		Memory:            r.GetMemory(),
		MemorySwap:        r.GetMemorySwap(),
		MemoryReservation: r.GetMemoryReservation(),
		NanoCpus:          r.GetNanoCpus(),
		CpuShares:         r.GetCpuShares(),
		CpuPeriod:         r.GetCpuPeriod(),
		CpuQuota:          r.GetCpuQuota(),
		CpusetCpus:        r.GetCpusetCpus(),
		CpusetMems:        r.GetCpusetMems(),
		Devices:           []inspectDevice{},
	}
	if p := r.GetPidsLimit(); p != 0 {
		out.PidsLimit = &p
	}
	for _, d := range cfg.GetDevices() {
		host, rest, _ := strings.Cut(d, ":")
		ctr, perms, _ := strings.Cut(rest, ":")
		out.Devices = append(out.Devices, inspectDevice{PathOnHost: host, PathInContainer: ctr, CgroupPermissions: perms})
	}
	for _, u := range cfg.GetUlimits() {
		out.Ulimits = append(out.Ulimits, inspectUlimit{Name: u.GetName(), Hard: u.GetHard(), Soft: u.GetSoft()})
	}
	return out
}
