package rootfs

import (
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/runtime/spec"
)

// mountOptions is the parsed form of an OCI mount's options list.
type mountOptions struct {
	flags       uintptr   // mount(2) flags
	propagation []uintptr // applied one by one after the mount
	recAttr     *unix.MountAttr
	data        string // filesystem-specific options, comma-joined
	tmpcopyup   bool
	// idmap and idmapRecursive are "idmap" and "ridmap": see
	// mountEntry.idmap.
	idmap, idmapRecursive bool
}

// parseMountOptions parses an OCI options list with runtime/spec's parser
// (runc's table), into the form the mount code uses. Whether an "idmap" or
// "ridmap" can be honoured is decided per mount (newMountEntry, Prepare).
func parseMountOptions(options []string) (mountOptions, error) {
	p, err := spec.ParseMountOptions(options)
	if err != nil {
		return mountOptions{}, err
	}
	o := mountOptions{flags: p.Flags, propagation: p.Propagation, data: p.Data, tmpcopyup: p.TmpCopyUp,
		idmap: p.IDMap, idmapRecursive: p.IDMapRecursive}
	if p.RecursiveSet != 0 || p.RecursiveClear != 0 {
		o.recAttr = &unix.MountAttr{Attr_set: p.RecursiveSet, Attr_clr: p.RecursiveClear}
	}
	return o, nil
}
