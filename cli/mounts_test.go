package cli

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/errdefs"
)

func fakeAbs(p string) (string, error) { return filepath.Join("/work", p), nil }

func TestParseVolumeFlag(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    *skiffv1.Mount
		wantErr string
	}{
		{in: "/data", want: &skiffv1.Mount{Type: "volume", Target: "/data"}},
		{in: "vol:/data", want: &skiffv1.Mount{Type: "volume", Source: "vol", Target: "/data"}},
		{in: "vol:/data:ro", want: &skiffv1.Mount{Type: "volume", Source: "vol", Target: "/data", ReadOnly: true}},
		{in: "vol:/data:nocopy,rw", want: &skiffv1.Mount{Type: "volume", Source: "vol", Target: "/data", Options: []string{"nocopy"}}},
		{in: "/srv:/srv", want: &skiffv1.Mount{Type: "bind", Source: "/srv", Target: "/srv", Options: []string{"create-host-path"}}},
		{in: "/srv:/srv:ro,z", want: &skiffv1.Mount{Type: "bind", Source: "/srv", Target: "/srv", ReadOnly: true, Options: []string{"create-host-path", "z"}}},
		{in: "/srv:/srv:rshared,Z", want: &skiffv1.Mount{Type: "bind", Source: "/srv", Target: "/srv", Options: []string{"create-host-path", "rshared", "Z"}}},
		{in: "./dir:/d", want: &skiffv1.Mount{Type: "bind", Source: "/work/dir", Target: "/d", Options: []string{"create-host-path"}}},
		{in: ".:/d:cached", want: &skiffv1.Mount{Type: "bind", Source: "/work", Target: "/d", Options: []string{"create-host-path"}}},
		{in: "/data:rw", wantErr: "invalid volume specification: '/data:rw'"},
		{in: ":/data", wantErr: "invalid volume specification"},
		{in: "a:b:c:d", wantErr: "invalid volume specification"},
		{in: "vol:/d:ro,rw", wantErr: "invalid mode: ro,rw"},
		{in: "vol:/d:rshared", wantErr: "invalid mode: rshared"},
		{in: "/s:/d:nocopy", wantErr: "invalid mode: nocopy"},
		{in: "/s:/d:z,Z", wantErr: "invalid mode"},
		{in: "/s:/d:bogus", wantErr: "invalid mode: bogus"},
	} {
		got, err := parseVolumeFlag(tc.in, fakeAbs)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("-v %s: err %v, want invalid argument containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !proto.Equal(got, tc.want) {
			t.Errorf("-v %s = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseMountFlag(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    *skiffv1.Mount
		wantErr string
	}{
		{in: "target=/d", want: &skiffv1.Mount{Type: "volume", Target: "/d"}},
		{in: "type=volume,src=v,dst=/d,readonly", want: &skiffv1.Mount{Type: "volume", Source: "v", Target: "/d", ReadOnly: true}},
		{in: "type=volume,source=v,target=/d,volume-nocopy,volume-driver=local", want: &skiffv1.Mount{Type: "volume", Source: "v", Target: "/d", Options: []string{"nocopy"}}},
		{in: "type=bind,source=/s,target=/d,ro=false", want: &skiffv1.Mount{Type: "bind", Source: "/s", Target: "/d"}},
		{in: "type=bind,source=/s,destination=/d,bind-propagation=rslave,bind-nonrecursive", want: &skiffv1.Mount{Type: "bind", Source: "/s", Target: "/d", Options: []string{"rslave", "nonrecursive"}}},
		{in: "type=bind,src=./x,dst=/d,bind-recursive=disabled", want: &skiffv1.Mount{Type: "bind", Source: "/work/x", Target: "/d", Options: []string{"nonrecursive"}}},
		{in: "type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770", want: &skiffv1.Mount{Type: "tmpfs", Target: "/t", Options: []string{"size=67108864", "mode=1770"}}},
		{in: `type=bind,"src=/a,b",dst=/d`, want: &skiffv1.Mount{Type: "bind", Source: "/a,b", Target: "/d"}},
		{in: "type=bind,src=/s", wantErr: "target is required"},
		{in: "type=bind,dst=/d", wantErr: "field Source must not be empty"},
		{in: "type=nfs,dst=/d", wantErr: "invalid mount type"},
		{in: "type=volume,dst=/d,bind-propagation=shared", wantErr: "cannot mix 'bind-*' options with mount type 'volume'"},
		{in: "type=bind,src=/s,dst=/d,tmpfs-size=1m", wantErr: "cannot mix 'tmpfs-*'"},
		{in: "type=bind,src=/s,dst=/d,bind-propagation=weird", wantErr: "invalid bind-propagation"},
		{in: "type=tmpfs,dst=/d,tmpfs-size=lots", wantErr: "invalid value for tmpfs-size"},
		{in: "type=tmpfs,dst=/d,tmpfs-mode=999", wantErr: "invalid value for tmpfs-mode"},
		{in: "type=volume,dst=/d,volume-driver=nfs", wantErr: "not supported"},
		{in: "type=volume,dst=/d,volume-opt=o=v", wantErr: "not supported"},
		{in: "type=volume,dst=/d,foo=bar", wantErr: "unexpected key 'foo'"},
		{in: "type=volume,dst=/d,readonly=maybe", wantErr: "invalid value for readonly"},
		{in: "type=volume,dst", wantErr: "must be a key=value pair"},
	} {
		got, err := parseMountFlag(tc.in, fakeAbs)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("--mount %s: err %v, want invalid argument containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !proto.Equal(got, tc.want) {
			t.Errorf("--mount %s = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseMountsOrderAndTmpfs(t *testing.T) {
	got, err := parseMounts([]string{"v:/a"}, []string{"type=tmpfs,dst=/b"}, []string{"/run:size=64m,mode=1777,exec", "/t"}, fakeAbs)
	if err != nil {
		t.Fatal(err)
	}
	want := []*skiffv1.Mount{
		{Type: "volume", Source: "v", Target: "/a"},
		{Type: "tmpfs", Target: "/b"},
		{Type: "tmpfs", Target: "/run", Options: []string{"size=64m", "mode=1777", "exec"}},
		{Type: "tmpfs", Target: "/t"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("mount %d = %v, want %v", i, got[i], want[i])
		}
	}
	if _, err := parseMounts(nil, nil, []string{":size=1m"}, fakeAbs); !errdefs.IsInvalidArgument(err) {
		t.Errorf("--tmpfs without target: %v", err)
	}
}

func TestRAMInBytes(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "64m": 64 << 20, "1g": 1 << 30, "1.5k": 1536, "2MiB": 2 << 20, "10b": 10} {
		if got, err := ramInBytes(in); err != nil || got != want {
			t.Errorf("ramInBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1q"} {
		if _, err := ramInBytes(in); err == nil {
			t.Errorf("ramInBytes(%q): no error", in)
		}
	}
}

func TestWriteVolumes(t *testing.T) {
	vols := []*skiffv1.Volume{
		{Name: "zeta", Driver: "local", Labels: map[string]string{"a": "1"}},
		{Name: "alpha", Driver: "local", UsedBy: []string{"c1"}},
	}
	for _, tc := range []struct {
		quiet   bool
		format  string
		filters []string
		want    string
	}{
		{want: "DRIVER    VOLUME NAME\nlocal     alpha\nlocal     zeta\n"},
		{quiet: true, want: "alpha\nzeta\n"},
		{quiet: true, filters: []string{"dangling=true"}, want: "zeta\n"},
		{quiet: true, filters: []string{"label=a=1"}, want: "zeta\n"},
		{quiet: true, filters: []string{"name=alp"}, want: "alpha\n"},
		{format: "{{.Name}} {{.Labels}}", want: "alpha \nzeta a=1\n"},
	} {
		var b bytes.Buffer
		if err := writeVolumes(&b, vols, tc.quiet, tc.format, tc.filters); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("writeVolumes(%+v) = %q, want %q", tc, b.String(), tc.want)
		}
	}
	var b bytes.Buffer
	var se *statusError
	if err := writeVolumes(&b, vols, false, "", []string{"bogus=1"}); !errors.As(err, &se) {
		t.Errorf("unknown filter: %v", err)
	}
}
