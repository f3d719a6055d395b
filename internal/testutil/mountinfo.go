package testutil

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// MountInfo is one line of /proc/PID/mountinfo (see proc(5)).
type MountInfo struct {
	ID, Parent   int
	MajMin       string // "major:minor" of the filesystem
	Root         string // path inside the filesystem that is mounted
	MountPoint   string
	Options      string   // per-mount options: rw/ro, nosuid, nodev, noexec, ...
	Optional     []string // shared:N, master:N, ...
	FSType       string
	Source       string
	SuperOptions string
}

// ParseMountInfo parses the contents of a mountinfo file.
func ParseMountInfo(r io.Reader) ([]MountInfo, error) {
	var out []MountInfo
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 10 || sep < 0 || len(f) < sep+3 {
			return nil, fmt.Errorf("malformed mountinfo line %q", line)
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("malformed mountinfo line %q", line)
		}
		m := MountInfo{
			ID:         id,
			Parent:     parent,
			MajMin:     f[2],
			Root:       unescapeMount(f[3]),
			MountPoint: unescapeMount(f[4]),
			Options:    f[5],
			Optional:   f[6:sep],
			FSType:     f[sep+1],
			Source:     unescapeMount(f[sep+2]),
		}
		if len(f) > sep+3 {
			m.SuperOptions = f[sep+3]
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// unescapeMount undoes the octal escapes (\040 for space, ...) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ReadMountInfo parses /proc/<pid>/mountinfo ("self" for the caller).
func ReadMountInfo(pid string) ([]MountInfo, error) {
	f, err := os.Open(filepath.Join("/proc", pid, "mountinfo"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseMountInfo(f)
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// resolve makes dir absolute and resolves symlinks as far as it exists.
func resolve(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return filepath.Clean(dir)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	return abs
}

// MountsUnder returns the mount points in the caller's mount namespace that
// are dir itself or below it, deepest first (the order to unmount them in).
func MountsUnder(dir string) []string {
	mounts, err := ReadMountInfo("self")
	if err != nil {
		return []string{"read /proc/self/mountinfo: " + err.Error()}
	}
	return mountsUnder(mounts, resolve(dir))
}

func mountsUnder(mounts []MountInfo, dir string) []string {
	var out []string
	for _, m := range mounts {
		if within(m.MountPoint, dir) {
			out = append(out, m.MountPoint)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// fsLocation is where a host directory lives in terms of mountinfo fields:
// the filesystem (major:minor) and the path inside it. A mount in any mount
// namespace whose MajMin matches and whose Root is within Path mounts
// something from inside the directory.
type fsLocation struct {
	MajMin string
	Path   string
}

func locate(mounts []MountInfo, dir string) (fsLocation, bool) {
	best := -1
	for i, m := range mounts {
		if within(dir, m.MountPoint) && (best < 0 || len(m.MountPoint) >= len(mounts[best].MountPoint)) {
			best = i
		}
	}
	if best < 0 {
		return fsLocation{}, false
	}
	m := mounts[best]
	rest := strings.TrimPrefix(dir, m.MountPoint)
	return fsLocation{MajMin: m.MajMin, Path: filepath.Join(m.Root, rest)}, true
}
