package spec

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// MaxIDLength is the longest container id ValidateID accepts: the id names a
// directory under the runtime's state root, and a file name is at most 255
// bytes on Linux.
const MaxIDLength = 255

// ValidateID checks a container id: 1 to 255 characters, each an ASCII
// letter, digit, '_', '+', '-' or '.', and not "." or "..". This is runc's
// rule ^[\w+\-.]+$ except that runc's pattern, written [\w+-\.], is a range
// from '+' to '.' that also lets commas through; skiff refuses commas, since
// ids end up in mount option strings where a comma is a separator.
// An invalid id is ErrInvalidArgument naming it.
func ValidateID(id string) error {
	const what = "letters, digits, '_', '+', '-' and '.'"
	switch {
	case id == "":
		return fmt.Errorf("container id must not be empty: %w", errdefs.ErrInvalidArgument)
	case len(id) > MaxIDLength:
		return fmt.Errorf("container id %.20q... is %d bytes long; the limit is %d: %w", id, len(id), MaxIDLength, errdefs.ErrInvalidArgument)
	case id == "." || id == "..":
		return fmt.Errorf("container id %q is not allowed (it is a path component, not a name): %w", id, errdefs.ErrInvalidArgument)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '+' || c == '-' || c == '.' {
			continue
		}
		return fmt.Errorf("container id %q has the invalid character %q at byte %d; use only %s: %w",
			id, rune(c), i, what, errdefs.ErrInvalidArgument)
	}
	return nil
}

// rlimits maps the OCI names of resource limits to setrlimit(2)'s numbers.
// Never mutated.
var rlimits = map[string]int{
	"RLIMIT_AS":         unix.RLIMIT_AS,
	"RLIMIT_CORE":       unix.RLIMIT_CORE,
	"RLIMIT_CPU":        unix.RLIMIT_CPU,
	"RLIMIT_DATA":       unix.RLIMIT_DATA,
	"RLIMIT_FSIZE":      unix.RLIMIT_FSIZE,
	"RLIMIT_LOCKS":      unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK":    unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE":   unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE":       unix.RLIMIT_NICE,
	"RLIMIT_NOFILE":     unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC":      unix.RLIMIT_NPROC,
	"RLIMIT_RSS":        unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO":     unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME":     unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK":      unix.RLIMIT_STACK,
}

// Rlimit maps a process.rlimits type ("RLIMIT_NOFILE", ...) to the resource
// number setrlimit(2) takes. An unknown name is ErrInvalidArgument.
func Rlimit(name string) (int, error) {
	if n, ok := rlimits[name]; ok {
		return n, nil
	}
	return -1, fmt.Errorf("unknown rlimit type %q (use an RLIMIT_* name from setrlimit(2), e.g. RLIMIT_NOFILE): %w", name, errdefs.ErrInvalidArgument)
}
