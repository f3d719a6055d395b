package container

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestProcessEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string
		bad  bool
	}{
		{name: "plain", in: []string{"A=1", "B=two words"}, want: []string{"A=1", "B=two words"}},
		{name: "last value wins at the first place", in: []string{"A=1", "B=2", "A=3"}, want: []string{"A=3", "B=2"}},
		{name: "no equals sign", in: []string{"A"}, want: []string{"A="}},
		{name: "value with equals", in: []string{"A=b=c"}, want: []string{"A=b=c"}},
		{name: "empty name", in: []string{"=x"}, bad: true},
		{name: "NUL", in: []string{"A=b\x00c"}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := processEnv(tc.in)
			if tc.bad {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("processEnv(%q) = %q, %v; want ErrInvalidArgument", tc.in, got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("processEnv(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("prog", 0o755)
	write("data", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	for _, tc := range []struct {
		file, path, want string
		bad              bool
	}{
		{file: "prog", path: other + ":" + dir, want: filepath.Join(dir, "prog")},
		{file: filepath.Join(dir, "prog"), path: "", want: filepath.Join(dir, "prog")},
		{file: "prog", path: other, bad: true},
		{file: "prog", path: "", bad: true},
		{file: "data", path: dir, bad: true},
		{file: "sub", path: dir, bad: true},
		{file: filepath.Join(dir, "data"), path: dir, bad: true},
		// Found through a relative PATH entry: refused, as exec.LookPath's
		// ErrDot is.
		{file: "prog", path: "relative-dir:" + dir, want: filepath.Join(dir, "prog")},
	} {
		got, err := lookPath(tc.file, tc.path)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("lookPath(%q, %q) = %q, %v; want %q (error %v)", tc.file, tc.path, got, err, tc.want, tc.bad)
		}
	}
	t.Run("dot", func(t *testing.T) {
		t.Chdir(dir)
		if got, err := lookPath("prog", ":"+other); err == nil {
			t.Errorf("lookPath found %q through an empty PATH entry (the cwd)", got)
		}
	})
}

func TestReleaseAtLeast(t *testing.T) {
	for _, tc := range []struct {
		rel  string
		want bool
	}{
		{"6.18.44-fc-v782", true}, {"6.18", true}, {"6.19.0", true}, {"7.0.1", true},
		{"6.17.9", false}, {"5.19.0", false}, {"6.18-rc1", true}, {"", false}, {"x.y", false},
	} {
		if got := releaseAtLeast(tc.rel, 6, 18); got != tc.want {
			t.Errorf("releaseAtLeast(%q, 6, 18) = %v, want %v", tc.rel, got, tc.want)
		}
	}
}
