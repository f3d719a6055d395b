package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// maxSymlinks bounds symlink expansion like the kernel's 40-link limit does,
// with room for deep but legitimate chains.
const maxSymlinks = 255

// pathComponent is one name still to resolve; via names the relative symlink
// whose target it came from ("" for the caller's own path and for absolute
// symlink targets, which are resolved from the rootfs's top).
type pathComponent struct {
	name string
	via  string
}

func splitComponents(p, via string) []pathComponent {
	var out []pathComponent
	for _, n := range strings.Split(p, "/") {
		if n != "" && n != "." {
			out = append(out, pathComponent{name: n, via: via})
		}
	}
	return out
}

// resolveInRoot resolves unsafePath (a path inside the container) against the
// host directory root the way the kernel would with root as "/", and returns
// the resolved path inside the container, absolute and symlink-free for the
// part that exists. Absolute symlinks are resolved from root. A relative
// symlink whose ".." components climb above root is refused with
// ErrInvalidArgument naming the symlink: such a rootfs is trying to redirect
// the path out of the container, and scoping it silently would hide that.
// ".." in unsafePath itself stops at the top, as it does at "/".
//
// This is a check and a normalisation, not the protection against races: the
// callers open the returned path with pathrs-lite, which stays inside root
// even if the tree changes underneath.
func resolveInRoot(root, unsafePath string) (string, error) {
	var (
		resolved []string
		queue    = splitComponents(unsafePath, "")
		links    int
		missing  bool // a component did not exist: the rest will be created
	)
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c.name == ".." {
			if len(resolved) == 0 {
				if c.via != "" {
					return "", fmt.Errorf("%w: symlink %s resolves outside the rootfs", errdefs.ErrInvalidArgument, c.via)
				}
				continue
			}
			resolved = resolved[:len(resolved)-1]
			continue
		}
		next := append(resolved[:len(resolved):len(resolved)], c.name)
		if missing {
			resolved = next
			continue
		}
		hostPath := filepath.Join(root, filepath.Join(next...))
		fi, err := os.Lstat(hostPath)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				missing = true
				resolved = next
				continue
			}
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		links++
		if links > maxSymlinks {
			return "", fmt.Errorf("%w: too many levels of symbolic links resolving %q: %w", errdefs.ErrInvalidArgument, unsafePath, unix.ELOOP)
		}
		target, err := os.Readlink(hostPath)
		if err != nil {
			return "", err
		}
		via := ""
		if filepath.IsAbs(target) {
			resolved = nil
		} else {
			via = fmt.Sprintf("%q -> %q", "/"+strings.Join(next, "/"), target)
		}
		queue = append(splitComponents(target, via), queue...)
	}
	return "/" + strings.Join(resolved, "/"), nil
}
