package images

import (
	"reflect"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestApplyChanges(t *testing.T) {
	base := ocispec.ImageConfig{
		Env:        []string{"PATH=/bin", "A=1"},
		Cmd:        []string{"sh"},
		Entrypoint: []string{"/init"},
		Labels:     map[string]string{"k": "v"},
	}
	for _, tc := range []struct {
		name    string
		changes []string
		want    ocispec.ImageConfig
	}{
		{"none", nil, base},
		{"CMD replaces", []string{`CMD ["echo","hi"]`}, ocispec.ImageConfig{
			Env: base.Env, Cmd: []string{"echo", "hi"}, Entrypoint: base.Entrypoint, Labels: base.Labels}},
		{"ENTRYPOINT drops the inherited CMD", []string{"ENTRYPOINT /x"}, ocispec.ImageConfig{
			Env: base.Env, Entrypoint: []string{"/bin/sh", "-c", "/x"}, Labels: base.Labels}},
		{"ENTRYPOINT keeps a CMD set before it", []string{`CMD ["a"]`, `ENTRYPOINT ["b"]`}, ocispec.ImageConfig{
			Env: base.Env, Cmd: []string{"a"}, Entrypoint: []string{"b"}, Labels: base.Labels}},
		{"ENV and LABEL add and replace", []string{"ENV A=2 B=3", "LABEL k=w l=x"}, ocispec.ImageConfig{
			Env: []string{"PATH=/bin", "A=2", "B=3"}, Cmd: base.Cmd, Entrypoint: base.Entrypoint,
			Labels: map[string]string{"k": "w", "l": "x"}}},
	} {
		got, err := ApplyChanges(base, tc.changes)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	if base.Env[1] != "A=1" || base.Labels["k"] != "v" || len(base.Cmd) != 1 {
		t.Errorf("ApplyChanges changed its base: %+v", base)
	}
}
