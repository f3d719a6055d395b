package server

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine"
	"golang.org/x/sys/unix"
)

// APIVersion is the version of skiff.v1 this server speaks.
const APIVersion = "1.0"

type system struct {
	skiffv1.UnimplementedSystemServer
	eng     *engine.Engine
	version string
}

// NewSystem returns the System service of eng; version is skiffd's.
func NewSystem(eng *engine.Engine, version string) skiffv1.SystemServer {
	return &system{eng: eng, version: version}
}

func (s *system) Version(ctx context.Context, _ *skiffv1.VersionRequest) (*skiffv1.VersionResponse, error) {
	return &skiffv1.VersionResponse{
		Version: s.version, ApiVersion: APIVersion, GoVersion: runtime.Version(),
		Os: runtime.GOOS, Arch: runtime.GOARCH, Kernel: kernelRelease(),
	}, nil
}

func (s *system) Info(ctx context.Context, _ *skiffv1.InfoRequest) (*skiffv1.InfoResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	cfg := s.eng.Config()
	resp := &skiffv1.InfoResponse{
		Root: cfg.Root, State: cfg.State, Snapshotter: s.eng.Snapshotter.Driver(),
		DefaultRuntime: cfg.Runtime, Runtimes: knownRuntimes(cfg.Runtime),
		CgroupVersion: cgroupVersion(), Kernel: kernelRelease(), Os: runtime.GOOS, Arch: runtime.GOARCH,
		Cpus: int32(runtime.NumCPU()), Memory: totalMemory(), Namespace: ns, Version: s.version,
		ServerPid: strconv.Itoa(os.Getpid()),
	}
	resp.Name, _ = os.Hostname()
	ctrs, err := s.eng.Containers.List(ctx, ns, true)
	if err != nil {
		return nil, err
	}
	for _, c := range ctrs {
		resp.Containers++
		switch c.Status {
		case "running", "restarting":
			resp.Running++
		case "paused":
			resp.Paused++
		default:
			resp.Stopped++
		}
	}
	imgs, err := s.eng.Images.List(ctx, ns)
	if err != nil {
		return nil, err
	}
	resp.Images = int32(len(imgs))
	return resp, nil
}

// knownRuntimes lists the default runtime and the peers found on PATH.
func knownRuntimes(def string) []string {
	out := []string{def}
	for _, r := range []string{"skiff-runtime", "runc", "crun"} {
		if r == def {
			continue
		}
		if _, err := lookPath(r); err == nil {
			out = append(out, r)
		}
	}
	return out
}

func lookPath(name string) (string, error) {
	for _, dir := range strings.Split(os.Getenv("PATH"), ":") {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func totalMemory() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// cgroupVersion says "2" on a unified host, "1" otherwise (also hybrid).
func cgroupVersion() string {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "2"
	}
	return "1"
}

// DiskUsage reports what the engine measures: the images' sizes; the
// counts of containers and volumes (their sizes are not measured yet).
func (s *system) DiskUsage(ctx context.Context, _ *skiffv1.DiskUsageRequest) (*skiffv1.DiskUsageResponse, error) {
	ns, err := Namespace(ctx)
	if err != nil {
		return nil, err
	}
	du, err := s.eng.Images.DiskUsage(ctx, ns)
	if err != nil {
		return nil, err
	}
	resp := &skiffv1.DiskUsageResponse{}
	resp.Kinds = append(resp.Kinds, &skiffv1.DiskUsageResponse_Kind{
		Type: "Images", Total: int64(du.Total), Active: int64(du.Active), Size: du.Size, Reclaimable: du.Reclaimable,
	})
	ctrs, err := s.eng.Containers.List(ctx, ns, true)
	if err != nil {
		return nil, err
	}
	ck := &skiffv1.DiskUsageResponse_Kind{Type: "Containers", Total: int64(len(ctrs))}
	for _, c := range ctrs {
		if c.Status == "running" || c.Status == "paused" || c.Status == "restarting" {
			ck.Active++
		}
	}
	resp.Kinds = append(resp.Kinds, ck)
	vk := &skiffv1.DiskUsageResponse_Kind{Type: "Local Volumes"}
	if s.eng.Volumes != nil {
		vols, err := s.eng.Volumes.List(ctx, ns)
		if err != nil {
			return nil, err
		}
		for _, v := range vols {
			vk.Total++
			if len(v.UsedBy) > 0 {
				vk.Active++
			}
		}
	}
	resp.Kinds = append(resp.Kinds, vk, &skiffv1.DiskUsageResponse_Kind{Type: "Build Cache"})
	return resp, nil
}
