package rootfs

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/spec"
)

// mountOptions is the parsed form of an OCI mount's options list.
type mountOptions struct {
	flags       uintptr   // mount(2) flags
	propagation []uintptr // applied one by one after the mount
	recAttr     *unix.MountAttr
	data        string // filesystem-specific options, comma-joined
	tmpcopyup   bool
}

// parseMountOptions parses an OCI options list with runtime/spec's parser
// (runc's table), into the form the mount code uses. An option list that
// asks for an ID-mapped mount is refused: not supported yet.
func parseMountOptions(options []string) (mountOptions, error) {
	p, err := spec.ParseMountOptions(options)
	if err != nil {
		return mountOptions{}, err
	}
	if p.IDMap {
		return mountOptions{}, fmt.Errorf("%w: ID-mapped mounts (idmap, ridmap) are not supported by this skiff-runtime yet", errdefs.ErrNotImplemented)
	}
	o := mountOptions{flags: p.Flags, propagation: p.Propagation, data: p.Data, tmpcopyup: p.TmpCopyUp}
	if p.RecursiveSet != 0 || p.RecursiveClear != 0 {
		o.recAttr = &unix.MountAttr{Attr_set: p.RecursiveSet, Attr_clr: p.RecursiveClear}
	}
	return o, nil
}
