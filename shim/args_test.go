package shim_test

import (
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/shim"
	"github.com/skiff-containers/skiff/shim/client"
)

// TestClientArgsRoundTrip checks that the command line the engine's client
// builds is the one the shim parses.
func TestClientArgsRoundTrip(t *testing.T) {
	o := client.Options{
		ID: "c1", Bundle: "/b", Runtime: "runc", RuntimeRoot: "/rr", RuntimeArgs: []string{"--debug"},
		StateDir: "/s", LogPath: "/l", Terminal: true, Stdin: true, Debug: true, ParkAfter: 250 * time.Millisecond,
	}
	got, err := shim.ParseArgs(o.Args(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := shim.Config{ID: "c1", Bundle: "/b", Runtime: "runc", RuntimeRoot: "/rr", RuntimeArgs: []string{"--debug"},
		StateDir: "/s", LogPath: "/l", Terminal: true, Stdin: true, Debug: true, ParkAfter: 250 * time.Millisecond}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseArgs(client args) = %+v, want %+v", got, want)
	}
}

// TestClientParkAfter checks the client's ParkAfter: 0 is the shim's
// default, a negative one never parks.
func TestClientParkAfter(t *testing.T) {
	for _, c := range []struct {
		in, want time.Duration
	}{{0, shim.DefaultParkAfter}, {-1, 0}, {time.Minute, time.Minute}} {
		o := client.Options{ID: "c1", Bundle: "/b", Runtime: "runc", StateDir: "/s", LogPath: "/l", ParkAfter: c.in}
		got, err := shim.ParseArgs(o.Args(), io.Discard)
		if err != nil || got.ParkAfter != c.want {
			t.Errorf("ParkAfter %v: the shim parsed %v, %v; want %v", c.in, got.ParkAfter, err, c.want)
		}
	}
}
