package shim

import (
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestParseArgs(t *testing.T) {
	base := []string{"--id", "c1", "--bundle", "/b", "--state", "/s", "--log", "/l/c.log"}
	cases := []struct {
		name    string
		args    []string
		want    Config
		wantErr string // substring; "" for success
	}{
		{name: "minimal", args: base, want: Config{ID: "c1", Bundle: "/b", Runtime: "skiff-runtime", StateDir: "/s", LogPath: "/l/c.log", ParkAfter: DefaultParkAfter}},
		{name: "everything", args: append(append([]string{}, base...), "--runtime", "runc", "--runtime-root", "/rr", "--runtime-arg", "--debug", "--runtime-arg", "--systemd-cgroup=false", "--tty", "--stdin", "--debug", "--park-after", "1m30s"),
			want: Config{ID: "c1", Bundle: "/b", Runtime: "runc", RuntimeRoot: "/rr", RuntimeArgs: []string{"--debug", "--systemd-cgroup=false"}, StateDir: "/s", LogPath: "/l/c.log", Terminal: true, Stdin: true, Debug: true, ParkAfter: 90 * time.Second}},
		{name: "never park", args: append(append([]string{}, base...), "--park-after=0"), want: Config{ID: "c1", Bundle: "/b", Runtime: "skiff-runtime", StateDir: "/s", LogPath: "/l/c.log"}},
		{name: "bad park-after", args: append(append([]string{}, base...), "--park-after", "5"), wantErr: `--park-after "5" is not a duration`},
		{name: "negative park-after", args: append(append([]string{}, base...), "--park-after", "-1s"), wantErr: `--park-after "-1s" is not a duration`},
		{name: "no id", args: base[2:], wantErr: "--id is required"},
		{name: "slash in id", args: append([]string{"--id", "a/b"}, base[2:]...), wantErr: "must not contain '/'"},
		{name: "relative bundle", args: append(append([]string{}, base...), "--bundle", "rel"), wantErr: "--bundle \"rel\" must be an absolute path"},
		{name: "relative runtime root", args: append(append([]string{}, base...), "--runtime-root", "rr"), wantErr: "--runtime-root"},
		{name: "no log", args: base[:6], wantErr: "--log is required"},
		{name: "positional", args: append(append([]string{}, base...), "extra"), wantErr: "unexpected arguments"},
		{name: "unknown flag", args: append(append([]string{}, base...), "--nope"), wantErr: "flag provided but not defined"},
		{name: "socket path too long", args: append(append([]string{}, base...), "--state", "/"+strings.Repeat("d", 100)), wantErr: "longer than a unix socket address holds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseArgs(c.args, io.Discard)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("ParseArgs(%q) = %v, want an invalid argument saying %q", c.args, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", c.args, err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("ParseArgs(%q) = %+v, want %+v", c.args, got, c.want)
			}
		})
	}
}
