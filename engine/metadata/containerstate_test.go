package metadata

import (
	"reflect"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
)

// TestContainerEngineFields checks the fields the container service keeps:
// image id, the raw create config and the lifecycle state round-trip, are
// updated by their field paths alone, and a config that is not JSON is
// refused.
func TestContainerEngineFields(t *testing.T) {
	db, _ := openTest(t)
	c := testContainer("c1", "web")
	c.ImageID = "sha256:0123"
	c.Config = []byte(`{"tty":true}`)
	started := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	c.State = ContainerState{Status: "running", Pid: 42, StartedAt: started}
	got, err := db.CreateContainer("default", c)
	if err != nil {
		t.Fatal(err)
	}
	if got.ImageID != c.ImageID || string(got.Config) != string(c.Config) || !reflect.DeepEqual(got.State, c.State) {
		t.Fatalf("created %+v, want the engine fields of %+v", got, c)
	}

	exit := ContainerState{Status: "exited", ExitCode: 137, ExitKnown: true, StartedAt: started, FinishedAt: started.Add(time.Second)}
	upd := Container{ID: "c1", State: exit, Config: []byte(`{"ignored":1}`)}
	if _, err := db.UpdateContainer("default", upd, "state"); err != nil {
		t.Fatal(err)
	}
	got, err = db.GetContainer("default", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.State, exit) {
		t.Errorf("state after update = %+v, want %+v", got.State, exit)
	}
	if string(got.Config) != `{"tty":true}` || got.ImageID != "sha256:0123" || got.Name != "web" {
		t.Errorf("update of state alone changed other fields: %+v", got)
	}
	if _, err := db.UpdateContainer("default", Container{ID: "c1", Config: []byte(`{"tty":false}`), ImageID: "sha256:9"}, "config", "imageid"); err != nil {
		t.Fatal(err)
	}
	got, _ = db.GetContainer("default", "c1")
	if string(got.Config) != `{"tty":false}` || got.ImageID != "sha256:9" || got.State.Status != "exited" {
		t.Errorf("after config/imageid update: %+v", got)
	}
	if _, err := db.UpdateContainer("default", Container{ID: "c1", Config: []byte("{")}, "config"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("update with a config that is not JSON = %v, want invalid argument", err)
	}
	bad := testContainer("c2", "")
	bad.Config = []byte("nope")
	if _, err := db.CreateContainer("default", bad); !errdefs.IsInvalidArgument(err) {
		t.Errorf("create with a config that is not JSON = %v, want invalid argument", err)
	}
}
