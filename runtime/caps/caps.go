// Package caps owns translating an OCI process.capabilities block into the
// Linux capability sets of the calling thread: it parses the capability
// names, drops the bounding set with prctl(PR_CAPBSET_DROP), sets the
// effective, permitted and inheritable sets with capset(2) (version 3, 64
// bits) and raises the ambient set with prctl(PR_CAP_AMBIENT).
//
// It must not switch users, touch mounts or namespaces, or exec anything;
// the only file it reads is /proc/sys/kernel/cap_last_cap.
//
// Capabilities belong to a thread, not to a process. DropBounding and Apply
// act on the calling OS thread only, so the caller must hold it with
// runtime.LockOSThread from before DropBounding until the exec of the
// container's process, and must never unlock it (let the thread die with the
// process image instead), or the Go scheduler may run other goroutines on a
// thread with unexpected privileges.
package caps

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// names maps a capability number to its name; the index is the number the
// kernel uses (include/uapi/linux/capability.h). Never mutated.
var names = [...]string{
	"CAP_CHOWN",              // 0
	"CAP_DAC_OVERRIDE",       // 1
	"CAP_DAC_READ_SEARCH",    // 2
	"CAP_FOWNER",             // 3
	"CAP_FSETID",             // 4
	"CAP_KILL",               // 5
	"CAP_SETGID",             // 6
	"CAP_SETUID",             // 7
	"CAP_SETPCAP",            // 8
	"CAP_LINUX_IMMUTABLE",    // 9
	"CAP_NET_BIND_SERVICE",   // 10
	"CAP_NET_BROADCAST",      // 11
	"CAP_NET_ADMIN",          // 12
	"CAP_NET_RAW",            // 13
	"CAP_IPC_LOCK",           // 14
	"CAP_IPC_OWNER",          // 15
	"CAP_SYS_MODULE",         // 16
	"CAP_SYS_RAWIO",          // 17
	"CAP_SYS_CHROOT",         // 18
	"CAP_SYS_PTRACE",         // 19
	"CAP_SYS_PACCT",          // 20
	"CAP_SYS_ADMIN",          // 21
	"CAP_SYS_BOOT",           // 22
	"CAP_SYS_NICE",           // 23
	"CAP_SYS_RESOURCE",       // 24
	"CAP_SYS_TIME",           // 25
	"CAP_SYS_TTY_CONFIG",     // 26
	"CAP_MKNOD",              // 27
	"CAP_LEASE",              // 28
	"CAP_AUDIT_WRITE",        // 29
	"CAP_AUDIT_CONTROL",      // 30
	"CAP_SETFCAP",            // 31
	"CAP_MAC_OVERRIDE",       // 32
	"CAP_MAC_ADMIN",          // 33
	"CAP_SYSLOG",             // 34
	"CAP_WAKE_ALARM",         // 35
	"CAP_BLOCK_SUSPEND",      // 36
	"CAP_AUDIT_READ",         // 37
	"CAP_PERFMON",            // 38
	"CAP_BPF",                // 39
	"CAP_CHECKPOINT_RESTORE", // 40
}

// Set holds the five capability sets as bit masks: bit n set means
// capability number n (see Names) is in the set.
type Set struct {
	Bounding    uint64
	Effective   uint64
	Permitted   uint64
	Inheritable uint64
	Ambient     uint64
}

// Names lists the capability names this build knows, in numeric order:
// Names()[n] is the name of capability number n.
func Names() []string {
	out := make([]string, len(names))
	copy(out, names[:])
	return out
}

// Parse returns the number of the capability called name, which must be
// spelled as in the OCI runtime spec and in runc: upper case with the CAP_
// prefix ("CAP_NET_ADMIN"). An unknown name is ErrInvalidArgument.
func Parse(name string) (int, error) {
	for i, n := range names {
		if n == name {
			return i, nil
		}
	}
	hint := "capability names are upper case with the CAP_ prefix, e.g. CAP_NET_ADMIN"
	up := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(up, "CAP_") {
		up = "CAP_" + up
	}
	for _, n := range names {
		if n == up {
			hint = "did you mean " + n + "?"
		}
	}
	return -1, fmt.Errorf("unknown capability %q (%s): %w", name, hint, errdefs.ErrInvalidArgument)
}

// FromSpec parses the five capability sets of process.capabilities. A nil c
// gives the empty Set: the process runs with no capabilities at all, which is
// what runc does when the block is missing.
//
// An unknown name is ErrInvalidArgument naming the set and the name. A name
// this package knows but the running kernel does not (a number above
// /proc/sys/kernel/cap_last_cap) is left out without an error, as runc does.
// An effective capability that is not also permitted is ErrInvalidArgument,
// since capset(2) would refuse it.
func FromSpec(c *specs.LinuxCapabilities) (*Set, error) {
	last, err := lastCap()
	if err != nil {
		return nil, err
	}
	return fromSpec(c, last)
}

func fromSpec(c *specs.LinuxCapabilities, last int) (*Set, error) {
	s := &Set{}
	if c == nil {
		return s, nil
	}
	sets := []struct {
		field string
		names []string
		dst   *uint64
	}{
		{"bounding", c.Bounding, &s.Bounding},
		{"effective", c.Effective, &s.Effective},
		{"permitted", c.Permitted, &s.Permitted},
		{"inheritable", c.Inheritable, &s.Inheritable},
		{"ambient", c.Ambient, &s.Ambient},
	}
	for _, set := range sets {
		for _, name := range set.names {
			n, err := Parse(name)
			if err != nil {
				return nil, fmt.Errorf("process.capabilities.%s: %w", set.field, err)
			}
			if n > last {
				continue // known to us, not to this kernel: ignored as runc does
			}
			*set.dst |= 1 << uint(n)
		}
	}
	if extra := s.Effective &^ s.Permitted; extra != 0 {
		return nil, fmt.Errorf("process.capabilities.effective: %s not in process.capabilities.permitted (a thread can only make permitted capabilities effective; add them to permitted or remove them from effective): %w",
			strings.Join(maskNames(extra), ", "), errdefs.ErrInvalidArgument)
	}
	return s, nil
}

// maskNames lists the names of the capabilities in mask, in numeric order.
func maskNames(mask uint64) []string {
	var out []string
	for mask != 0 {
		n := bits.TrailingZeros64(mask)
		mask &^= 1 << uint(n)
		out = append(out, capName(n))
	}
	return out
}

func capName(n int) string {
	if n >= 0 && n < len(names) {
		return names[n]
	}
	return "capability " + strconv.Itoa(n)
}

// lastCap returns the highest capability number the running kernel knows.
func lastCap() (int, error) {
	const file = "/proc/sys/kernel/cap_last_cap"
	b, err := os.ReadFile(file)
	if err == nil {
		n, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if perr != nil || n < 0 || n > 63 {
			return 0, fmt.Errorf("read %s: unexpected content %q", file, b)
		}
		return n, nil
	}
	// /proc may not be mounted (early in a container's init); ask the
	// kernel instead: PR_CAPBSET_READ fails with EINVAL past the last cap.
	n := -1
	for n < 63 {
		if _, perr := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(n+1), 0, 0, 0); perr != nil {
			break
		}
		n++
	}
	if n < 0 {
		return 0, fmt.Errorf("find the kernel's last capability: %s unreadable (%v) and PR_CAPBSET_READ failed", file, err)
	}
	return n, nil
}

// DropBounding removes from the calling thread's bounding set every
// capability the kernel knows that is not in s.Bounding
// (prctl PR_CAPBSET_DROP). Capabilities already absent are skipped, so
// calling it twice is harmless. Dropping needs CAP_SETPCAP in the effective
// set: call it before the uid switch. The caller must be on a locked OS
// thread (see the package documentation).
func (s *Set) DropBounding() error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	for n := 0; n <= last; n++ {
		if s.Bounding&(1<<uint(n)) != 0 {
			continue
		}
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(n), 0, 0, 0)
		if err != nil {
			return fmt.Errorf("read %s from the bounding set: %w", capName(n), err)
		}
		if in == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(n), 0, 0, 0); err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("drop %s from the bounding set: %w (the calling thread needs CAP_SETPCAP; drop the bounding set before switching user)", capName(n), err)
			}
			return fmt.Errorf("drop %s from the bounding set: %w", capName(n), err)
		}
	}
	return nil
}

// Apply sets the calling thread's effective, permitted and inheritable sets
// to s's with capset(2) (version 3, all 64 bits), then clears the ambient set
// and raises each capability of s.Ambient (prctl PR_CAP_AMBIENT_RAISE).
//
// The kernel only lets a capability be ambient when it is both permitted and
// inheritable; ambient capabilities missing from either are skipped without
// an error, which is what runc does (its default spec lists ambient
// capabilities but no inheritable ones, and they end up not ambient).
//
// Call it after the uid/gid switch (with PR_SET_KEEPCAPS set around the
// switch so the permitted set survives it), on a locked OS thread.
func (s *Set) Apply() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3} // Pid 0: the calling thread
	var data [2]unix.CapUserData
	data[0].Effective, data[1].Effective = uint32(s.Effective), uint32(s.Effective>>32)
	data[0].Permitted, data[1].Permitted = uint32(s.Permitted), uint32(s.Permitted>>32)
	data[0].Inheritable, data[1].Inheritable = uint32(s.Inheritable), uint32(s.Inheritable>>32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		if errors.Is(err, unix.EPERM) {
			if why := s.whyNotPermitted(); why != "" {
				return fmt.Errorf("set capabilities: %w: %s", err, why)
			}
		}
		return fmt.Errorf("set capabilities (effective %s, permitted %s, inheritable %s): %w",
			list(s.Effective), list(s.Permitted), list(s.Inheritable), err)
	}

	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear the ambient capability set: %w", err)
	}
	raise := s.Ambient & s.Permitted & s.Inheritable
	for raise != 0 {
		n := bits.TrailingZeros64(raise)
		raise &^= 1 << uint(n)
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(n), 0, 0); err != nil {
			return fmt.Errorf("raise ambient capability %s: %w", capName(n), err)
		}
	}
	return nil
}

// whyNotPermitted explains, for an EPERM from capset, which capabilities of
// s the calling thread may not take, following the kernel's rules: the new
// permitted set must be within the old one, and the new inheritable set
// within the old inheritable set plus the bounding set (and plus the old
// permitted set unless CAP_SETPCAP is effective). "" if it cannot tell.
func (s *Set) whyNotPermitted() string {
	return s.WhyNotPermittedAfter(^uint64(0))
}

// WhyNotPermittedAfter is whyNotPermitted for a process that has the calling
// thread's capabilities but had its bounding set cut to bounding before
// capset (runtime/cloneinit's clone, whose own sets the caller cannot read
// once it has failed and exited).
func (s *Set) WhyNotPermittedAfter(bounding uint64) string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var cur [2]unix.CapUserData
	if err := unix.Capget(&hdr, &cur[0]); err != nil {
		return ""
	}
	perm := uint64(cur[0].Permitted) | uint64(cur[1].Permitted)<<32
	inh := uint64(cur[0].Inheritable) | uint64(cur[1].Inheritable)<<32
	eff := uint64(cur[0].Effective) | uint64(cur[1].Effective)<<32
	var bnd uint64
	for n := 0; n < 64; n++ {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(n), 0, 0, 0)
		if err != nil {
			break
		}
		if in == 1 {
			bnd |= 1 << uint(n)
		}
	}
	return s.explain(perm, inh, eff, bnd&bounding)
}

func (s *Set) explain(perm, inh, eff, bnd uint64) string {
	var why []string
	if bad := s.Permitted &^ perm; bad != 0 {
		why = append(why, fmt.Sprintf("permitted %s not held by the calling thread (the caller itself lacks them, or they were dropped earlier)", list(bad)))
	}
	allowedInh := inh | bnd
	if eff&(1<<unix.CAP_SETPCAP) == 0 {
		allowedInh &= inh | perm
	}
	if bad := s.Inheritable &^ allowedInh; bad != 0 {
		why = append(why, fmt.Sprintf("inheritable %s not in the bounding set (add them to process.capabilities.bounding or remove them from inheritable)", list(bad)))
	}
	return strings.Join(why, "; ")
}

// list renders a mask for error messages.
func list(mask uint64) string {
	if mask == 0 {
		return "[]"
	}
	return "[" + strings.Join(maskNames(mask), " ") + "]"
}
