package spec

import (
	"errors"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestParseMountOptions(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want MountOptions
	}{
		{"none", nil, MountOptions{}},
		{"ro", []string{"ro"}, MountOptions{Flags: unix.MS_RDONLY}},
		{"rw clears ro", []string{"ro", "rw"}, MountOptions{ClearFlags: unix.MS_RDONLY}},
		{"later ro wins over rw", []string{"rw", "ro"}, MountOptions{Flags: unix.MS_RDONLY}},
		{
			"runc's /dev/shm", []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"},
			MountOptions{Flags: unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV, Data: "mode=1777,size=65536k"},
		},
		{
			"runc's /dev/pts", []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"},
			MountOptions{Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		},
		{
			"runc's /dev", []string{"nosuid", "strictatime", "mode=755", "size=65536k"},
			MountOptions{Flags: unix.MS_NOSUID | unix.MS_STRICTATIME, Data: "mode=755,size=65536k"},
		},
		{
			"runc's cgroup", []string{"nosuid", "noexec", "nodev", "relatime", "ro"},
			MountOptions{Flags: unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV | unix.MS_RELATIME | unix.MS_RDONLY},
		},
		{"bind", []string{"bind"}, MountOptions{Flags: unix.MS_BIND}},
		{"rbind", []string{"rbind", "ro"}, MountOptions{Flags: unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY}},
		{"remount", []string{"remount", "bind", "ro"}, MountOptions{Flags: unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY}},
		{
			"clearing counterparts",
			[]string{"suid", "dev", "exec", "async", "atime", "diratime", "norelatime", "nostrictatime", "nomand", "noiversion", "nolazytime", "loud", "symfollow"},
			MountOptions{ClearFlags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_SYNCHRONOUS | unix.MS_NOATIME |
				unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME | unix.MS_MANDLOCK | unix.MS_I_VERSION |
				unix.MS_LAZYTIME | unix.MS_SILENT | unix.MS_NOSYMFOLLOW},
		},
		{
			"setting flags",
			[]string{"sync", "dirsync", "mand", "noatime", "nodiratime", "iversion", "lazytime", "silent", "nosymfollow"},
			MountOptions{Flags: unix.MS_SYNCHRONOUS | unix.MS_DIRSYNC | unix.MS_MANDLOCK | unix.MS_NOATIME | unix.MS_NODIRATIME |
				unix.MS_I_VERSION | unix.MS_LAZYTIME | unix.MS_SILENT | unix.MS_NOSYMFOLLOW},
		},
		{"nosuid then suid", []string{"nosuid", "suid"}, MountOptions{ClearFlags: unix.MS_NOSUID}},
		{"defaults is dropped, not data", []string{"defaults", "size=1m"}, MountOptions{Data: "size=1m"}},
		{"empty options are skipped", []string{"", "ro", ""}, MountOptions{Flags: unix.MS_RDONLY}},
		{
			"propagation in order",
			[]string{"rbind", "rslave", "private", "shared", "rshared", "slave", "unbindable", "runbindable", "rprivate"},
			MountOptions{Flags: unix.MS_BIND | unix.MS_REC, Propagation: []uintptr{
				unix.MS_SLAVE | unix.MS_REC, unix.MS_PRIVATE, unix.MS_SHARED, unix.MS_SHARED | unix.MS_REC,
				unix.MS_SLAVE, unix.MS_UNBINDABLE, unix.MS_UNBINDABLE | unix.MS_REC, unix.MS_PRIVATE | unix.MS_REC,
			}},
		},
		{
			"recursive attributes",
			[]string{"rbind", "rro", "rnosuid", "rnodev", "rnoexec"},
			MountOptions{Flags: unix.MS_BIND | unix.MS_REC, RecursiveSet: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC},
		},
		{
			"recursive clear then set",
			[]string{"rrw", "rsuid", "rdev", "rexec", "rdiratime", "rsymfollow", "rro"},
			MountOptions{
				RecursiveSet:   unix.MOUNT_ATTR_RDONLY,
				RecursiveClear: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC | unix.MOUNT_ATTR_NODIRATIME | unix.MOUNT_ATTR_NOSYMFOLLOW,
			},
		},
		{"rnoatime clears the atime field", []string{"rnoatime"}, MountOptions{RecursiveSet: unix.MOUNT_ATTR_NOATIME, RecursiveClear: unix.MOUNT_ATTR__ATIME}},
		{"rstrictatime", []string{"rstrictatime"}, MountOptions{RecursiveSet: unix.MOUNT_ATTR_STRICTATIME, RecursiveClear: unix.MOUNT_ATTR__ATIME}},
		{"rrelatime (value 0)", []string{"rrelatime"}, MountOptions{RecursiveClear: unix.MOUNT_ATTR__ATIME}},
		{"ratime", []string{"ratime"}, MountOptions{RecursiveClear: unix.MOUNT_ATTR_NOATIME}},
		{"rnosymfollow", []string{"rnosymfollow"}, MountOptions{RecursiveSet: unix.MOUNT_ATTR_NOSYMFOLLOW}},
		{"tmpcopyup", []string{"tmpcopyup", "mode=755"}, MountOptions{TmpCopyUp: true, Data: "mode=755"}},
		{"idmap", []string{"bind", "idmap"}, MountOptions{Flags: unix.MS_BIND, IDMap: true}},
		{"ridmap", []string{"rbind", "ridmap"}, MountOptions{Flags: unix.MS_BIND | unix.MS_REC, IDMap: true, IDMapRecursive: true}},
		{
			"unknown options are data, in order; acl is runc's MS_POSIXACL",
			[]string{"lowerdir=/a:/b", "ro", "upperdir=/u", "acl", "workdir=/w"},
			MountOptions{Flags: unix.MS_RDONLY | unix.MS_POSIXACL, Data: "lowerdir=/a:/b,upperdir=/u,workdir=/w"},
		},
		{"noacl clears it", []string{"acl", "noacl"}, MountOptions{ClearFlags: unix.MS_POSIXACL}},
		{"an option holding a comma list stays whole", []string{"mode=755,size=1k"}, MountOptions{Data: "mode=755,size=1k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMountOptions(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseMountOptions(%q) =\n%+v\nwant\n%+v", tt.in, got, tt.want)
			}
			if got.Flags&got.ClearFlags != 0 {
				t.Errorf("Flags %#x and ClearFlags %#x overlap", got.Flags, got.ClearFlags)
			}
		})
	}
}

func TestParseMountOptionsNUL(t *testing.T) {
	_, err := ParseMountOptions([]string{"ro", "size=1\x00k"})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("ParseMountOptions with a NUL byte = %v, want ErrInvalidArgument", err)
	}
}

func TestPropagationFlag(t *testing.T) {
	tests := []struct {
		name string
		want uintptr
		ok   bool
	}{
		{"private", unix.MS_PRIVATE, true},
		{"rprivate", unix.MS_PRIVATE | unix.MS_REC, true},
		{"shared", unix.MS_SHARED, true},
		{"rshared", unix.MS_SHARED | unix.MS_REC, true},
		{"slave", unix.MS_SLAVE, true},
		{"rslave", unix.MS_SLAVE | unix.MS_REC, true},
		{"unbindable", unix.MS_UNBINDABLE, true},
		{"runbindable", unix.MS_UNBINDABLE | unix.MS_REC, true},
		{"", 0, false},
		{"Private", 0, false},
		{"ro", 0, false},
	}
	for _, tt := range tests {
		got, err := PropagationFlag(tt.name)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("PropagationFlag(%q) = %#x, %v; want %#x, ok=%v", tt.name, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("PropagationFlag(%q) error %v is not ErrInvalidArgument", tt.name, err)
		}
	}
}
