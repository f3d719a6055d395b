package spec

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// MountOptions is a mount's options list split the way runc splits it.
type MountOptions struct {
	// Flags are the MS_* flags for mount(2): MS_RDONLY, MS_NOSUID,
	// MS_BIND (and MS_REC for "rbind"), MS_REMOUNT, ...
	Flags uintptr
	// ClearFlags are the MS_* flags an option explicitly turned off: "rw"
	// clears MS_RDONLY, "suid" MS_NOSUID, "dev" MS_NODEV, "exec" MS_NOEXEC,
	// "async" MS_SYNCHRONOUS, "atime" MS_NOATIME, "diratime" MS_NODIRATIME,
	// "norelatime" MS_RELATIME, "nostrictatime" MS_STRICTATIME, "nomand"
	// MS_MANDLOCK, "noiversion" MS_I_VERSION, "nolazytime" MS_LAZYTIME,
	// "loud" MS_SILENT, "symfollow" MS_NOSYMFOLLOW. A later option wins over
	// an earlier one, so Flags and ClearFlags never share a bit. The rootfs
	// code uses it when remounting a bind mount: a flag neither set nor
	// cleared keeps the source mount's value (runc's "cleared flags").
	ClearFlags uintptr
	// Propagation holds one mount(2) flag value per propagation option, in
	// the order given: MS_PRIVATE, MS_SHARED, MS_SLAVE or MS_UNBINDABLE, with
	// MS_REC for the "r" forms (rprivate, rshared, rslave, runbindable).
	Propagation []uintptr
	// RecursiveSet and RecursiveClear are the MOUNT_ATTR_* bits for
	// mount_setattr(2) with AT_RECURSIVE, from the recursive options "rro",
	// "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec",
	// "rnodiratime", "rdiratime", "rrelatime", "rnorelatime", "rnoatime",
	// "ratime", "rstrictatime", "rnostrictatime", "rnosymfollow" and
	// "rsymfollow". Setting an access-time mode also puts MOUNT_ATTR__ATIME in
	// RecursiveClear, as mount_setattr(2) requires. Both are zero when no
	// recursive option was given, and then no mount_setattr call is needed.
	RecursiveSet, RecursiveClear uint64
	// TmpCopyUp is runc's "tmpcopyup" extension: after mounting a tmpfs,
	// copy into it what the rootfs had at the mount's destination.
	TmpCopyUp bool
	// IDMap is set by "idmap" and "ridmap": make this an ID-mapped bind
	// mount (with the mount's uidMappings/gidMappings, or the container's
	// user namespace); IDMapRecursive is set by "ridmap" only.
	IDMap, IDMapRecursive bool
	// Data is every other option, comma-joined in the order given: the
	// filesystem's own options, such as "mode=755,size=65536k".
	Data string
}

type flagOption struct {
	clear bool
	flag  uintptr
}

// mountFlags is runc's table of mount(2) flag options. "defaults" sets
// nothing. Never mutated.
var mountFlags = map[string]flagOption{
	"acl":           {false, unix.MS_POSIXACL},
	"noacl":         {true, unix.MS_POSIXACL},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"iversion":      {false, unix.MS_I_VERSION},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"loud":          {true, unix.MS_SILENT},
	"mand":          {false, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"noiversion":    {true, unix.MS_I_VERSION},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"nosymfollow":   {false, unix.MS_NOSYMFOLLOW},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"silent":        {false, unix.MS_SILENT},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"symfollow":     {true, unix.MS_NOSYMFOLLOW},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

// propagationFlags maps propagation options to mount(2) flags; it also
// serves linux.rootfsPropagation. Never mutated.
var propagationFlags = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

type attrOption struct {
	clear bool
	attr  uint64
}

// recursiveAttrs maps the recursive options to MOUNT_ATTR_* bits. Never
// mutated.
var recursiveAttrs = map[string]attrOption{
	"rro":            {false, unix.MOUNT_ATTR_RDONLY},
	"rrw":            {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid":        {false, unix.MOUNT_ATTR_NOSUID},
	"rsuid":          {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev":         {false, unix.MOUNT_ATTR_NODEV},
	"rdev":           {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec":        {false, unix.MOUNT_ATTR_NOEXEC},
	"rexec":          {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":    {false, unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":      {true, unix.MOUNT_ATTR_NODIRATIME},
	"rrelatime":      {false, unix.MOUNT_ATTR_RELATIME},
	"rnorelatime":    {true, unix.MOUNT_ATTR_RELATIME},
	"rnoatime":       {false, unix.MOUNT_ATTR_NOATIME},
	"ratime":         {true, unix.MOUNT_ATTR_NOATIME},
	"rstrictatime":   {false, unix.MOUNT_ATTR_STRICTATIME},
	"rnostrictatime": {true, unix.MOUNT_ATTR_STRICTATIME},
	"rnosymfollow":   {false, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":     {true, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// PropagationFlag returns the mount(2) flags for a propagation name
// ("rprivate", "shared", ...), as used in mount options and in
// linux.rootfsPropagation. An unknown name is ErrInvalidArgument.
func PropagationFlag(name string) (uintptr, error) {
	if f, ok := propagationFlags[name]; ok {
		return f, nil
	}
	return 0, fmt.Errorf("unknown mount propagation %q (use private, rprivate, shared, rshared, slave, rslave, unbindable or runbindable): %w", name, errdefs.ErrInvalidArgument)
}

// MountOptionNames lists the mount options this package parses (besides
// filesystem data, which is passed through), sorted: for `features`.
func MountOptionNames() []string {
	names := []string{"tmpcopyup", "idmap", "ridmap"}
	for k := range mountFlags {
		names = append(names, k)
	}
	for k := range propagationFlags {
		names = append(names, k)
	}
	for k := range recursiveAttrs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// ParseMountOptions splits a mount's options as runc does: mount(2) flags
// (set or cleared), propagation changes, recursive mount_setattr(2)
// attributes, runc's extensions (tmpcopyup, idmap, ridmap), and everything
// else as filesystem data. Empty options are skipped. It differs from runc
// in one way: "defaults" is dropped, where runc passes it on in the data
// string (making e.g. a tmpfs mount fail with "Unknown parameter").
// An option containing a NUL byte is ErrInvalidArgument.
func ParseMountOptions(options []string) (MountOptions, error) {
	var (
		m    MountOptions
		data []string
	)
	for _, o := range options {
		if strings.IndexByte(o, 0) >= 0 {
			return MountOptions{}, fmt.Errorf("mount option %q contains a NUL byte: %w", o, errdefs.ErrInvalidArgument)
		}
		if o == "" {
			continue
		}
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				m.Flags &^= f.flag
				m.ClearFlags |= f.flag
			} else {
				m.Flags |= f.flag
				m.ClearFlags &^= f.flag
			}
			continue
		}
		if f, ok := propagationFlags[o]; ok {
			m.Propagation = append(m.Propagation, f)
			continue
		}
		if a, ok := recursiveAttrs[o]; ok {
			if a.clear {
				m.RecursiveClear |= a.attr
				m.RecursiveSet &^= a.attr
			} else {
				if a.attr&unix.MOUNT_ATTR__ATIME == a.attr {
					// An access-time mode is an enum, not a bit: a later
					// mode replaces an earlier one, and mount_setattr(2)
					// wants the whole field cleared when setting one.
					m.RecursiveSet &^= unix.MOUNT_ATTR__ATIME
					m.RecursiveClear |= unix.MOUNT_ATTR__ATIME
				} else {
					m.RecursiveClear &^= a.attr
				}
				m.RecursiveSet |= a.attr
			}
			continue
		}
		switch o {
		case "tmpcopyup":
			m.TmpCopyUp = true
		case "idmap":
			m.IDMap = true
		case "ridmap":
			m.IDMap, m.IDMapRecursive = true, true
		default:
			data = append(data, o)
		}
	}
	m.Data = strings.Join(data, ",")
	return m, nil
}
