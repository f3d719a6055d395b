package specgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiff-containers/skiff/errdefs"
)

// maxID is the largest uid or gid docker accepts (moby/sys/user: ids must
// fit a signed 32-bit int).
const maxID = math.MaxInt32

// maxUserFileSize bounds how much of the image's /etc/passwd or /etc/group
// is read; a larger file is refused rather than read into memory.
const maxUserFileSize = 16 << 20

// passwdEntry is one line of /etc/passwd.
type passwdEntry struct {
	name     string
	uid, gid int
}

// groupEntry is one line of /etc/group.
type groupEntry struct {
	name    string
	gid     int
	members []string
}

// readRootfsFile reads the file at name (absolute, inside the container)
// of the root filesystem rootfs, resolving every symlink inside rootfs, so
// that a link pointing out of it reaches nothing of the host's. It reports
// false without an error if the file does not exist there (including a
// dangling or looping link, or a path through a non-directory), and refuses
// anything but a regular file of at most maxUserFileSize bytes: an image
// could otherwise block the engine on a FIFO or feed it a device.
func readRootfsFile(rootfs, name string) ([]byte, bool, error) {
	handle, err := pathrs.OpenInRoot(rootfs, name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("open the image's %s: %w", name, err)
	}
	defer handle.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(handle.Fd()), &st); err != nil {
		return nil, false, fmt.Errorf("stat the image's %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, false, fmt.Errorf("the image's %s is not a regular file: %w", name, errdefs.ErrInvalidArgument)
	}
	f, err := pathrs.Reopen(handle, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, false, fmt.Errorf("open the image's %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxUserFileSize+1))
	if err != nil {
		return nil, false, fmt.Errorf("read the image's %s: %w", name, err)
	}
	if len(data) > maxUserFileSize {
		return nil, false, fmt.Errorf("the image's %s is larger than %d bytes: %w", name, maxUserFileSize, errdefs.ErrInvalidArgument)
	}
	return data, true, nil
}

// eachLine calls fn with the colon-separated fields of each line of /etc/passwd or /etc/group; lines
// are trimmed and blank or '#' lines skipped, as glibc and moby/sys/user
// do. Numeric fields that do not parse read as 0, as in moby/sys/user.
func eachLine(data []byte, fn func(fields []string)) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxUserFileSize)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
}

func field(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

func atoiOrZero(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	eachLine(data, func(f []string) {
		out = append(out, passwdEntry{name: field(f, 0), uid: atoiOrZero(field(f, 2)), gid: atoiOrZero(field(f, 3))})
	})
	return out
}

func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	eachLine(data, func(f []string) {
		g := groupEntry{name: field(f, 0), gid: atoiOrZero(field(f, 2))}
		if m := field(f, 3); m != "" {
			g.members = strings.Split(m, ",")
		}
		out = append(out, g)
	})
	return out
}

// parseID parses a numeric user or group argument: ok is false for a
// name; an out-of-range number is ErrInvalidArgument.
func parseID(what, s string) (id int, ok bool, err error) {
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, true, fmt.Errorf("%s %q is out of range 0-%d: %w", what, s, maxID, errdefs.ErrInvalidArgument)
		}
		return 0, false, nil
	}
	if n < 0 || n > maxID {
		return 0, true, fmt.Errorf("%s %q is out of range 0-%d: %w", what, s, maxID, errdefs.ErrInvalidArgument)
	}
	return n, true, nil
}

// resolveUser turns a docker user spec (name|uid[:group|gid], or "" for
// root) into process.user with the image's /etc/passwd and /etc/group,
// following docker (moby/sys/user GetExecUser and daemon getUser):
//
//   - a name must be in /etc/passwd; a number is a uid whether or not it is
//     there (an entry, if any, gives the primary gid, else gid 0);
//   - an explicit group (name or number) sets the gid the same way, and
//     then no supplementary groups are added;
//   - otherwise, when the user is in /etc/passwd (also for "" and a
//     numeric uid), every group of /etc/group that lists the user's name
//     as a member becomes a supplementary group;
//   - additionalGids is the primary gid followed by the supplementary ones.
//
// A missing /etc/passwd or /etc/group counts as empty.
func resolveUser(rootfs, spec, image string) (specs.User, error) {
	userArg, groupArg, _ := strings.Cut(spec, ":")
	// moby splits on every ':' and ignores what follows the second field.
	groupArg, _, _ = strings.Cut(groupArg, ":")
	var u specs.User
	if strings.ContainsAny(spec, "\x00\n") {
		return u, fmt.Errorf("user %q: contains a NUL or newline: %w", spec, errdefs.ErrInvalidArgument)
	}
	uidArg, isUID, err := parseID("user: uid", userArg)
	if err != nil {
		return u, err
	}
	gidArg, isGID, err := parseID("user: gid", groupArg)
	if err != nil {
		return u, err
	}

	passwdData, _, err := readRootfsFile(rootfs, "/etc/passwd")
	if err != nil {
		return u, fmt.Errorf("user %q: %w", spec, err)
	}
	uid, gid := 0, 0
	var matched *passwdEntry
	for _, e := range parsePasswd(passwdData) {
		var hit bool
		switch {
		case userArg == "":
			hit = e.uid == 0
		case isUID:
			hit = e.uid == uidArg
		default:
			hit = e.name == userArg
		}
		if hit {
			matched = &e
			break
		}
	}
	switch {
	case matched != nil:
		uid, gid = matched.uid, matched.gid
	case isUID:
		uid = uidArg
	case userArg != "":
		return u, fmt.Errorf("user %q: no user %q in the /etc/passwd of image %s (use a name the image defines, or a numeric uid): %w",
			spec, userArg, imageName(image), errdefs.ErrNotFound)
	}
	if uid < 0 || uid > maxID || gid < 0 || gid > maxID {
		return u, fmt.Errorf("user %q: the image's /etc/passwd gives uid %d gid %d, out of range 0-%d: %w", spec, uid, gid, maxID, errdefs.ErrInvalidArgument)
	}

	var sgids []int
	if groupArg != "" || matched != nil {
		groupData, _, err := readRootfsFile(rootfs, "/etc/group")
		if err != nil {
			return u, fmt.Errorf("user %q: %w", spec, err)
		}
		var found []groupEntry
		for _, g := range parseGroup(groupData) {
			switch {
			case groupArg == "":
				for _, m := range g.members {
					if m == matched.name {
						found = append(found, g)
						break
					}
				}
			case isGID:
				if g.gid == gidArg {
					found = append(found, g)
				}
			case g.name == groupArg:
				found = append(found, g)
			}
		}
		switch {
		case groupArg == "":
			for _, g := range found {
				sgids = append(sgids, g.gid)
			}
		case len(found) > 0:
			gid = found[0].gid
		case isGID:
			gid = gidArg
		default:
			return u, fmt.Errorf("user %q: no group %q in the /etc/group of image %s (use a group the image defines, or a numeric gid): %w",
				spec, groupArg, imageName(image), errdefs.ErrNotFound)
		}
	}
	u.UID, u.GID = uint32(uid), uint32(gid)
	u.AdditionalGids = []uint32{uint32(gid)}
	for _, g := range sgids {
		if g < 0 || g > maxID {
			return u, fmt.Errorf("user %q: the image's /etc/group gives gid %d, out of range 0-%d: %w", spec, g, maxID, errdefs.ErrInvalidArgument)
		}
		u.AdditionalGids = append(u.AdditionalGids, uint32(g))
	}
	return u, nil
}

// imageName names the image in messages.
func imageName(ref string) string {
	if ref == "" {
		return "(unnamed)"
	}
	return strconv.Quote(ref)
}

// ResolveUser resolves a docker --user value ("name", "uid", "uid:gid",
// "name:group", …) against the container's root filesystem rootfs as
// Generate does for process.user, for a process started later in the
// container (exec -u). image names the image in messages.
func ResolveUser(rootfs, user, image string) (specs.User, error) {
	return resolveUser(rootfs, user, image)
}
