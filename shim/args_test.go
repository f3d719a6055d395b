package shim_test

import (
	"io"
	"reflect"
	"testing"

	"github.com/skiff-containers/skiff/shim"
	"github.com/skiff-containers/skiff/shim/client"
)

// TestClientArgsRoundTrip checks that the command line the engine's client
// builds is the one the shim parses.
func TestClientArgsRoundTrip(t *testing.T) {
	o := client.Options{
		ID: "c1", Bundle: "/b", Runtime: "runc", RuntimeRoot: "/rr", RuntimeArgs: []string{"--debug"},
		StateDir: "/s", LogPath: "/l", Terminal: true, Stdin: true, Debug: true,
	}
	got, err := shim.ParseArgs(o.Args(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := shim.Config{ID: "c1", Bundle: "/b", Runtime: "runc", RuntimeRoot: "/rr", RuntimeArgs: []string{"--debug"},
		StateDir: "/s", LogPath: "/l", Terminal: true, Stdin: true, Debug: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseArgs(client args) = %+v, want %+v", got, want)
	}
}
