package rootfs

import (
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOptions is the parsed form of an OCI mount's options list.
type mountOptions struct {
	flags       uintptr   // mount(2) flags
	propagation []uintptr // applied one by one after the mount
	recAttr     *unix.MountAttr
	data        string // filesystem-specific options, comma-joined
	tmpcopyup   bool
}

type flagOpt struct {
	clear bool
	flag  uintptr
}

// mountFlagOptions maps an option to the mount(2) flag it sets or clears; the
// same table as mount(8) and runc use.
func mountFlagOptions() map[string]flagOpt {
	return map[string]flagOpt{
		"acl":           {false, unix.MS_POSIXACL},
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
		"noacl":         {true, unix.MS_POSIXACL},
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
}

func propagationOptions() map[string]uintptr {
	return map[string]uintptr{
		"private":     unix.MS_PRIVATE,
		"shared":      unix.MS_SHARED,
		"slave":       unix.MS_SLAVE,
		"unbindable":  unix.MS_UNBINDABLE,
		"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
		"rshared":     unix.MS_SHARED | unix.MS_REC,
		"rslave":      unix.MS_SLAVE | unix.MS_REC,
		"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
	}
}

type attrOpt struct {
	clear bool
	attr  uint64
}

// recursiveAttrOptions are the "r"-prefixed options applied with
// mount_setattr(2) and AT_RECURSIVE to the whole mount tree.
func recursiveAttrOptions() map[string]attrOpt {
	return map[string]attrOpt{
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
}

// MountOptions lists every mount option this package understands (besides
// filesystem data, which is passed through), sorted: for `features`.
func MountOptions() []string {
	var names []string
	for k := range mountFlagOptions() {
		names = append(names, k)
	}
	for k := range propagationOptions() {
		names = append(names, k)
	}
	for k := range recursiveAttrOptions() {
		names = append(names, k)
	}
	names = append(names, "tmpcopyup")
	sort.Strings(names)
	return names
}

// parseMountOptions splits an OCI options list into mount flags, propagation
// flags, recursive attributes and the data string, as runc does: options it
// does not know are passed to the filesystem in data, in order.
func parseMountOptions(options []string) mountOptions {
	var (
		o     mountOptions
		data  []string
		flags = mountFlagOptions()
		props = propagationOptions()
		attrs = recursiveAttrOptions()
	)
	for _, opt := range options {
		if f, ok := flags[opt]; ok {
			if f.clear {
				o.flags &^= f.flag
			} else {
				o.flags |= f.flag
			}
			continue
		}
		if p, ok := props[opt]; ok {
			o.propagation = append(o.propagation, p)
			continue
		}
		if a, ok := attrs[opt]; ok {
			if o.recAttr == nil {
				o.recAttr = &unix.MountAttr{}
			}
			if a.clear {
				o.recAttr.Attr_clr |= a.attr
				o.recAttr.Attr_set &^= a.attr
			} else {
				o.recAttr.Attr_set |= a.attr
				o.recAttr.Attr_clr &^= a.attr
				if a.attr&unix.MOUNT_ATTR__ATIME == a.attr {
					// Atime modes are a field, not bits: the kernel wants the
					// whole field cleared to set one of them.
					o.recAttr.Attr_set &^= unix.MOUNT_ATTR__ATIME
					o.recAttr.Attr_set |= a.attr
					o.recAttr.Attr_clr |= unix.MOUNT_ATTR__ATIME
				}
			}
			continue
		}
		if opt == "tmpcopyup" {
			o.tmpcopyup = true
			continue
		}
		data = append(data, opt)
	}
	o.data = strings.Join(data, ",")
	return o
}
