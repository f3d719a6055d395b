package client

import (
	"testing"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestParseReadyLine(t *testing.T) {
	cases := []struct {
		line    string
		want    Ready
		isClass func(error) bool // nil: success
	}{
		{"ready 10 20\n", Ready{ShimPid: 10, Pid: 20}, nil},
		{"error not-found container c: bundle /b: not found", Ready{}, errdefs.IsNotFound},
		{"error failed-precondition runtime create failed: x", Ready{}, errdefs.IsFailedPrecondition},
		{"error internal boom", Ready{}, func(err error) bool { return err != nil && err.Error() == "boom" }},
		{"ready 10", Ready{}, func(err error) bool { return err != nil }},
		{"ready a b", Ready{}, func(err error) bool { return err != nil }},
		{"", Ready{}, func(err error) bool { return err != nil }},
	}
	for _, c := range cases {
		got, err := ParseReadyLine("c", c.line)
		switch {
		case c.isClass == nil && (err != nil || got != c.want):
			t.Errorf("ParseReadyLine(%q) = %+v, %v, want %+v", c.line, got, err, c.want)
		case c.isClass != nil && !c.isClass(err):
			t.Errorf("ParseReadyLine(%q) = %+v, %v: wrong error", c.line, got, err)
		}
	}
}
