package containers

import (
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestValidateMounts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       []Mount
		want     []Mount
		warnings int
		wantErr  string
	}{
		{name: "clean paths", in: []Mount{
			{Type: MountBind, Source: "/srv//x/", Target: "/data/"},
			{Type: MountVolume, Source: "vol", Target: "/v/../w", Options: []string{"ro", "nocopy"}},
			{Type: MountVolume, Target: "/anon"},
			{Type: MountTmpfs, Target: "/t", Options: []string{"size=64m", "mode=1777", "exec", "nr_inodes=1k", "uid=1"}},
		}, want: []Mount{
			{Type: MountBind, Source: "/srv/x", Target: "/data"},
			{Type: MountVolume, Source: "vol", Target: "/w", ReadOnly: true, Options: []string{"ro", "nocopy"}},
			{Type: MountVolume, Target: "/anon"},
			{Type: MountTmpfs, Target: "/t", Options: []string{"size=64m", "mode=1777", "exec", "nr_inodes=1k", "uid=1"}},
		}},
		{name: "z warns once per mount", in: []Mount{
			{Type: MountBind, Source: "/s", Target: "/a", Options: []string{"z", "rshared", OptCreateHostPath}},
			{Type: MountVolume, Source: "vv", Target: "/b", Options: []string{"Z"}},
		}, warnings: 2},
		{name: "no type", in: []Mount{{Target: "/x"}}, wantErr: "no type"},
		{name: "bad type", in: []Mount{{Type: "nfs", Target: "/x"}}, wantErr: `mount type "nfs" is not supported`},
		{name: "no target", in: []Mount{{Type: MountTmpfs}}, wantErr: "field Target must not be empty"},
		{name: "relative target", in: []Mount{{Type: MountTmpfs, Target: "x"}}, wantErr: "must be absolute"},
		{name: "root target", in: []Mount{{Type: MountTmpfs, Target: "/"}}, wantErr: "destination can't be '/'"},
		{name: "duplicate", in: []Mount{{Type: MountTmpfs, Target: "/x"}, {Type: MountVolume, Target: "/x/"}}, wantErr: "duplicate mount point: /x"},
		{name: "relative bind", in: []Mount{{Type: MountBind, Source: "srv", Target: "/x"}}, wantErr: "'srv' mount path must be absolute"},
		{name: "bind no source", in: []Mount{{Type: MountBind, Target: "/x"}}, wantErr: "field Source must not be empty"},
		{name: "bad volume name", in: []Mount{{Type: MountVolume, Source: "a/b", Target: "/x"}}, wantErr: "volume name"},
		{name: "short volume name", in: []Mount{{Type: MountVolume, Source: "a", Target: "/x"}}, wantErr: "too short"},
		{name: "tmpfs source", in: []Mount{{Type: MountTmpfs, Source: "x", Target: "/x"}}, wantErr: "Source must be empty"},
		{name: "two propagations", in: []Mount{{Type: MountBind, Source: "/s", Target: "/x", Options: []string{"shared", "slave"}}}, wantErr: "more than one propagation"},
		{name: "propagation on a volume", in: []Mount{{Type: MountVolume, Target: "/x", Options: []string{"shared"}}}, wantErr: `invalid option "shared"`},
		{name: "nocopy on a bind", in: []Mount{{Type: MountBind, Source: "/s", Target: "/x", Options: []string{"nocopy"}}}, wantErr: `invalid option "nocopy"`},
		{name: "tmpfs size", in: []Mount{{Type: MountTmpfs, Target: "/x", Options: []string{"size=big"}}}, wantErr: `invalid tmpfs option "size=big"`},
		{name: "tmpfs mode", in: []Mount{{Type: MountTmpfs, Target: "/x", Options: []string{"mode=999"}}}, wantErr: "invalid tmpfs option"},
		{name: "tmpfs unknown", in: []Mount{{Type: MountTmpfs, Target: "/x", Options: []string{"huge=always"}}}, wantErr: "unknown tmpfs option"},
		{name: "tmpfs bad flag", in: []Mount{{Type: MountTmpfs, Target: "/x", Options: []string{"bogus"}}}, wantErr: `invalid option "bogus"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]Mount(nil), tc.in...)
			got, warnings, err := validateMounts(tc.in)
			if tc.wantErr != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err %v, want invalid argument containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			if len(warnings) != tc.warnings {
				t.Errorf("warnings %q, want %d", warnings, tc.warnings)
			}
			if !reflect.DeepEqual(tc.in, in) {
				t.Errorf("the caller's mounts were changed: %+v", tc.in)
			}
		})
	}
}

func TestTmpfsOptions(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{nil, []string{"noexec", "nosuid", "nodev"}},
		{[]string{"exec"}, []string{"nosuid", "nodev", "exec"}},
		{[]string{"size=1m", "mode=1777", "size=2m"}, []string{"noexec", "nosuid", "nodev", "mode=1777", "size=2m"}},
		{[]string{"suid", "z", "ro"}, []string{"noexec", "nodev", "suid", "ro"}},
	} {
		if got := tmpfsOptions(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("tmpfsOptions(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExtraMountsReplaceEtcFiles(t *testing.T) {
	etc := []specs.Mount{{Destination: "/etc/hosts"}, {Destination: "/etc/resolv.conf"}, {Destination: "/etc/hostname"}}
	mm := &madeMounts{spec: []specs.Mount{{Destination: "/etc/hosts", Source: "/mine"}, {Destination: "/data"}}}
	got := mm.extraMounts(etc)
	var dests []string
	for _, m := range got {
		dests = append(dests, m.Destination+"="+m.Source)
	}
	want := []string{"/etc/resolv.conf=", "/etc/hostname=", "/etc/hosts=/mine", "/data="}
	if !reflect.DeepEqual(dests, want) {
		t.Errorf("extraMounts = %q, want %q", dests, want)
	}
}
