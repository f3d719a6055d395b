package metadata

import (
	"errors"
	"reflect"
	"testing"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestValidateVolumeName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"data", true},
		{"my_vol.1-x", true},
		{"0a", true},
		{"a", false}, // docker: at least two characters
		{"", false},
		{"-ab", false},
		{"_ab", false},
		{"a/b", false},
		{"/abs", false},
		{"a:b", false},
		{"a b", false},
		{string(make([]byte, MaxIDLen+1)), false},
	} {
		err := ValidateVolumeName(tc.name)
		if tc.ok && err != nil {
			t.Errorf("ValidateVolumeName(%q): %v", tc.name, err)
		}
		if !tc.ok && !errdefs.IsInvalidArgument(err) {
			t.Errorf("ValidateVolumeName(%q) = %v, want invalid argument", tc.name, err)
		}
	}
}

func TestVolumeCRUD(t *testing.T) {
	db, _ := openTest(t)
	v, err := db.CreateVolume("default", Volume{Name: "data", Driver: "local", Labels: map[string]string{"a": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.CreatedAt.IsZero() || v.UpdatedAt != v.CreatedAt {
		t.Errorf("times not set: %+v", v)
	}
	if _, err := db.CreateVolume("default", Volume{Name: "data", Driver: "local"}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second create: %v, want already exists", err)
	}
	// Namespaces partition volumes.
	if _, err := db.CreateVolume("other", Volume{Name: "data", Driver: "local"}); err != nil {
		t.Errorf("same name in another namespace: %v", err)
	}
	got, err := db.GetVolume("default", "data")
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Errorf("GetVolume = %+v, %v; want %+v", got, err, v)
	}
	if _, err := db.GetVolume("default", "nope"); !errdefs.IsNotFound(err) {
		t.Errorf("GetVolume(nope): %v, want not found", err)
	}
	if _, err := db.CreateVolume("default", Volume{Name: "anon0", Driver: "local", Anonymous: true}); err != nil {
		t.Fatal(err)
	}
	anon, err := db.ListVolumes("default", func(v Volume) bool { return v.Anonymous })
	if err != nil || len(anon) != 1 || anon[0].Name != "anon0" {
		t.Errorf("ListVolumes(anonymous) = %+v, %v", anon, err)
	}
	all, err := db.ListVolumes("default", nil)
	if err != nil || len(all) != 2 || all[0].Name != "anon0" || all[1].Name != "data" {
		t.Errorf("ListVolumes = %+v, %v; want anon0, data", all, err)
	}
	if err := db.DeleteVolume("default", "data"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteVolume("default", "data"); !errdefs.IsNotFound(err) {
		t.Errorf("second delete: %v, want not found", err)
	}
	// A namespace holding a volume cannot be deleted.
	if err := db.DeleteNamespace("other"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("DeleteNamespace with a volume: %v, want failed precondition", err)
	}
}

func TestVolumeBadRecords(t *testing.T) {
	db, _ := openTest(t)
	for _, v := range []Volume{
		{Name: "x", Driver: "local"},
		{Name: "a/b", Driver: "local"},
		{Name: "ok", Driver: ""},
		{Name: "ok", Driver: "local", Labels: map[string]string{"": "v"}},
	} {
		if _, err := db.CreateVolume("default", v); !errdefs.IsInvalidArgument(err) {
			t.Errorf("CreateVolume(%+v): %v, want invalid argument", v, err)
		}
	}
}

// TestVolumeInUse: a container's volume mounts make the volume in use;
// a container cannot be recorded with a volume that does not exist.
func TestVolumeInUse(t *testing.T) {
	db, _ := openTest(t)
	if _, err := db.CreateVolume("default", Volume{Name: "data", Driver: "local"}); err != nil {
		t.Fatal(err)
	}
	mounts := []Mount{
		{Type: MountVolume, Name: "data", Source: "/v/data/_data", Destination: "/data"},
		{Type: MountBind, Source: "/srv", Destination: "/srv", ReadOnly: true},
		{Type: MountTmpfs, Destination: "/run", Options: []string{"size=1m"}},
	}
	for _, id := range []string{"c2", "c1"} {
		c := testContainer(id, "")
		c.Mounts = mounts
		if _, err := db.CreateContainer("default", c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.GetContainer("default", "c1")
	if err != nil || !reflect.DeepEqual(got.Mounts, mounts) {
		t.Errorf("mounts round trip: %+v, %v", got.Mounts, err)
	}
	users, err := db.VolumeUsers("default")
	if err != nil || !reflect.DeepEqual(users, map[string][]string{"data": {"c1", "c2"}}) {
		t.Errorf("VolumeUsers = %v, %v", users, err)
	}
	err = db.DeleteVolume("default", "data")
	var iu *InUseError
	if !errdefs.IsFailedPrecondition(err) || !errors.As(err, &iu) || !reflect.DeepEqual(iu.Containers, []string{"c1", "c2"}) {
		t.Errorf("DeleteVolume in use: %v, want failed precondition naming c1, c2", err)
	}
	for _, id := range []string{"c1", "c2"} {
		if err := db.DeleteContainer("default", id); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteVolume("default", "data"); err != nil {
		t.Errorf("DeleteVolume after its containers: %v", err)
	}
	// The volume is gone: a container mounting it is refused.
	c := testContainer("c3", "")
	c.Mounts = mounts
	if _, err := db.CreateContainer("default", c); !errdefs.IsNotFound(err) {
		t.Errorf("CreateContainer with a removed volume: %v, want not found", err)
	}
	// Updating the mounts by field path.
	c.Mounts = nil
	if _, err := db.CreateContainer("default", c); err != nil {
		t.Fatal(err)
	}
	c.Mounts = mounts[1:]
	if up, err := db.UpdateContainer("default", c, "mounts"); err != nil || len(up.Mounts) != 2 {
		t.Errorf("UpdateContainer(mounts) = %+v, %v", up.Mounts, err)
	}
}

func TestContainerBadMounts(t *testing.T) {
	db, _ := openTest(t)
	for _, m := range []Mount{
		{Type: MountBind, Source: "rel", Destination: "/x"},
		{Type: MountBind, Source: "/x", Destination: "rel"},
		{Type: MountVolume, Name: "a/b", Destination: "/x"},
		{Type: "nfs", Destination: "/x"},
	} {
		c := testContainer("c", "")
		c.Mounts = []Mount{m}
		if _, err := db.CreateContainer("default", c); !errdefs.IsInvalidArgument(err) {
			t.Errorf("CreateContainer with mount %+v: %v, want invalid argument", m, err)
		}
	}
}
