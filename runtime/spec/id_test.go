package spec

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestValidateID(t *testing.T) {
	tests := []struct {
		id  string
		ok  bool
		sub string
	}{
		{"web", true, ""},
		{"a", true, ""},
		{"My_Container-1.2+3", true, ""},
		{"...", true, ""},
		{".hidden", true, ""},
		{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true, ""},
		{strings.Repeat("x", 255), true, ""},
		{strings.Repeat("x", 256), false, "is 256 bytes long; the limit is 255"},
		{"", false, "must not be empty"},
		{".", false, "is not allowed"},
		{"..", false, "is not allowed"},
		{"a/b", false, `invalid character '/' at byte 1`},
		{"a b", false, `invalid character ' '`},
		{"a,b", false, `invalid character ','`},
		{"é", false, "invalid character"},
		{"a\x00", false, "invalid character"},
		{"a:b", false, "invalid character ':'"},
	}
	for _, tt := range tests {
		err := ValidateID(tt.id)
		if tt.ok {
			if err != nil {
				t.Errorf("ValidateID(%q) = %v, want nil", tt.id, err)
			}
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(fmtErr(err), tt.sub) {
			t.Errorf("ValidateID(%q) = %v; want ErrInvalidArgument containing %q", tt.id, err, tt.sub)
		}
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestRlimit(t *testing.T) {
	tests := []struct {
		name string
		want int
		ok   bool
	}{
		{"RLIMIT_AS", unix.RLIMIT_AS, true},
		{"RLIMIT_CORE", unix.RLIMIT_CORE, true},
		{"RLIMIT_CPU", unix.RLIMIT_CPU, true},
		{"RLIMIT_DATA", unix.RLIMIT_DATA, true},
		{"RLIMIT_FSIZE", unix.RLIMIT_FSIZE, true},
		{"RLIMIT_LOCKS", unix.RLIMIT_LOCKS, true},
		{"RLIMIT_MEMLOCK", unix.RLIMIT_MEMLOCK, true},
		{"RLIMIT_MSGQUEUE", unix.RLIMIT_MSGQUEUE, true},
		{"RLIMIT_NICE", unix.RLIMIT_NICE, true},
		{"RLIMIT_NOFILE", 7, true},
		{"RLIMIT_NPROC", unix.RLIMIT_NPROC, true},
		{"RLIMIT_RSS", unix.RLIMIT_RSS, true},
		{"RLIMIT_RTPRIO", unix.RLIMIT_RTPRIO, true},
		{"RLIMIT_RTTIME", unix.RLIMIT_RTTIME, true},
		{"RLIMIT_SIGPENDING", unix.RLIMIT_SIGPENDING, true},
		{"RLIMIT_STACK", unix.RLIMIT_STACK, true},
		{"rlimit_nofile", 0, false},
		{"NOFILE", 0, false},
		{"RLIMIT_FOO", 0, false},
		{"", 0, false},
	}
	seen := map[int]string{}
	for _, tt := range tests {
		got, err := Rlimit(tt.name)
		if !tt.ok {
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(fmtErr(err), `"`+tt.name+`"`) {
				t.Errorf("Rlimit(%q) = %d, %v; want ErrInvalidArgument naming it", tt.name, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Rlimit(%q) = %d, %v; want %d", tt.name, got, err, tt.want)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("Rlimit(%q) and Rlimit(%q) are both %d", tt.name, other, got)
		}
		seen[got] = tt.name
	}
	if len(seen) != 16 {
		t.Errorf("tested %d rlimits, want all 16 of Linux", len(seen))
	}
}
