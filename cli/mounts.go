package cli

import (
	"encoding/csv"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
)

// Mount options the daemon knows besides the kernel's (engine/containers).
const (
	optCreateHostPath = "create-host-path"
	optNonRecursive   = "nonrecursive"
	optNoCopy         = "nocopy"
)

var propagationModes = []string{"shared", "rshared", "slave", "rslave", "private", "rprivate"}

// parseMounts turns -v, --mount and --tmpfs values into the request's
// mounts (in that order). abs makes a relative host path absolute.
func parseMounts(vols, mounts, tmpfs []string, abs func(string) (string, error)) ([]*skiffv1.Mount, error) {
	var out []*skiffv1.Mount
	for _, v := range vols {
		m, err := parseVolumeFlag(v, abs)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	for _, v := range mounts {
		m, err := parseMountFlag(v, abs)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	for _, v := range tmpfs {
		m, err := parseTmpfsFlag(v)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// hostPath makes docker's relative bind sources ("." and "./x", and here
// "../x" too) absolute, as docker's CLI does since 23.0.
func hostPath(src string, abs func(string) (string, error)) (string, error) {
	if src == "." || src == ".." || strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") {
		return abs(src)
	}
	return src, nil
}

// parseVolumeFlag parses -v [SOURCE:]TARGET[:OPTIONS]: an absolute SOURCE
// is a bind (its directory made if missing, as docker's -v does), any
// other a volume name; no SOURCE is an anonymous volume.
func parseVolumeFlag(spec string, abs func(string) (string, error)) (*skiffv1.Mount, error) {
	bad := func(format string, a ...any) error {
		return invalid("invalid volume specification: '%s': "+format, append([]any{spec}, a...)...)
	}
	parts := strings.Split(spec, ":")
	m := &skiffv1.Mount{}
	var mode string
	switch len(parts) {
	case 1:
		m.Target = parts[0]
	case 2:
		if validVolumeMode(parts[1]) {
			// docker: "/foo:rw" is a target with a mode and no source.
			return nil, invalid("invalid volume specification: '%s'", spec)
		}
		m.Source, m.Target = parts[0], parts[1]
	case 3:
		m.Source, m.Target, mode = parts[0], parts[1], parts[2]
	default:
		return nil, invalid("invalid volume specification: '%s'", spec)
	}
	if m.Target == "" || (len(parts) > 1 && m.Source == "") {
		return nil, invalid("invalid volume specification: '%s'", spec)
	}
	src, err := hostPath(m.Source, abs)
	if err != nil {
		return nil, bad("%v", err)
	}
	m.Source = src
	m.Type = "volume"
	if filepath.IsAbs(m.Source) {
		m.Type = "bind"
		m.Options = append(m.Options, optCreateHostPath)
	}
	if mode == "" {
		return m, nil
	}
	rw, label, prop, nocopy := false, false, false, false
	for _, o := range strings.Split(mode, ",") {
		switch {
		case o == "ro" || o == "rw":
			if rw {
				return nil, bad("invalid mode: %s", mode)
			}
			rw, m.ReadOnly = true, o == "ro"
		case o == "z" || o == "Z":
			if label {
				return nil, bad("invalid mode: %s", mode)
			}
			label = true
			m.Options = append(m.Options, o)
		case slices.Contains(propagationModes, o):
			if prop || m.Type != "bind" {
				return nil, bad("invalid mode: %s", mode)
			}
			prop = true
			m.Options = append(m.Options, o)
		case o == "nocopy":
			if nocopy || m.Type != "volume" {
				return nil, bad("invalid mode: %s", mode)
			}
			nocopy = true
			m.Options = append(m.Options, optNoCopy)
		case o == "consistent" || o == "cached" || o == "delegated":
			// macOS-only consistency modes: accepted and ignored, as docker does.
		default:
			return nil, bad("invalid mode: %s", mode)
		}
	}
	return m, nil
}

func validVolumeMode(mode string) bool {
	for _, o := range strings.Split(mode, ",") {
		switch {
		case o == "ro" || o == "rw" || o == "z" || o == "Z" || o == "nocopy":
		case slices.Contains(propagationModes, o):
		default:
			return false
		}
	}
	return true
}

// parseMountFlag parses --mount's CSV: type=bind|volume|tmpfs (default
// volume), source|src, target|destination|dst, readonly|ro[=bool],
// bind-propagation, bind-nonrecursive[=bool], bind-recursive=enabled|
// disabled, volume-nocopy[=bool], volume-driver=local, tmpfs-size,
// tmpfs-mode, consistency. Unlike -v, a bind's missing source is an error.
func parseMountFlag(value string, abs func(string) (string, error)) (*skiffv1.Mount, error) {
	r := csv.NewReader(strings.NewReader(value))
	fields, err := r.Read()
	if err != nil {
		return nil, invalid("invalid argument %q for \"--mount\" flag: %v", value, err)
	}
	m := &skiffv1.Mount{Type: "volume"}
	var bindOpts, volumeOpts, tmpfsOpts []string // keys given, for the mix check
	var options []string
	for _, field := range fields {
		key, val, hasVal := strings.Cut(field, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		boolVal := func() (bool, error) {
			if !hasVal {
				return true, nil
			}
			b, err := strconv.ParseBool(val)
			if err != nil {
				return false, invalid("invalid value for %s: %s", key, val)
			}
			return b, nil
		}
		if !hasVal && key != "readonly" && key != "ro" && key != "bind-nonrecursive" && key != "volume-nocopy" {
			return nil, invalid("invalid field '%s' must be a key=value pair", field)
		}
		switch key {
		case "type":
			switch val {
			case "bind", "volume", "tmpfs":
				m.Type = val
			default:
				return nil, invalid("invalid mount type %q: skiff supports bind, volume and tmpfs", val)
			}
		case "source", "src":
			m.Source = val
		case "target", "destination", "dst":
			m.Target = val
		case "readonly", "ro":
			b, err := boolVal()
			if err != nil {
				return nil, err
			}
			m.ReadOnly = b
		case "consistency":
		case "bind-propagation":
			if !slices.Contains(propagationModes, val) {
				return nil, invalid("invalid bind-propagation value %q (want one of %s)", val, strings.Join(propagationModes, ", "))
			}
			bindOpts = append(bindOpts, key)
			options = append(options, val)
		case "bind-nonrecursive":
			b, err := boolVal()
			if err != nil {
				return nil, err
			}
			bindOpts = append(bindOpts, key)
			if b {
				options = append(options, optNonRecursive)
			}
		case "bind-recursive":
			bindOpts = append(bindOpts, key)
			switch val {
			case "enabled":
			case "disabled":
				options = append(options, optNonRecursive)
			default:
				return nil, invalid("bind-recursive=%s is not supported (use enabled or disabled)", val)
			}
		case "volume-nocopy":
			b, err := boolVal()
			if err != nil {
				return nil, err
			}
			volumeOpts = append(volumeOpts, key)
			if b {
				options = append(options, optNoCopy)
			}
		case "volume-driver":
			volumeOpts = append(volumeOpts, key)
			if val != "local" {
				return nil, invalid("volume driver %q is not supported: skiff has the local driver only", val)
			}
		case "volume-label", "volume-opt", "volume-subpath":
			return nil, invalid("--mount %s is not supported by skiff", key)
		case "tmpfs-size":
			n, err := ramInBytes(val)
			if err != nil {
				return nil, invalid("invalid value for %s: %s", key, val)
			}
			tmpfsOpts = append(tmpfsOpts, key)
			options = append(options, "size="+strconv.FormatInt(n, 10))
		case "tmpfs-mode":
			n, err := strconv.ParseUint(val, 8, 32)
			if err != nil || n > 0o7777 {
				return nil, invalid("invalid value for %s: %s", key, val)
			}
			tmpfsOpts = append(tmpfsOpts, key)
			options = append(options, "mode="+strconv.FormatUint(n, 8))
		default:
			return nil, invalid("unexpected key '%s' in '%s'", key, field)
		}
	}
	if m.Target == "" {
		return nil, invalid("target is required")
	}
	for kind, keys := range map[string][]string{"bind": bindOpts, "volume": volumeOpts, "tmpfs": tmpfsOpts} {
		if len(keys) > 0 && m.Type != kind {
			return nil, invalid("cannot mix '%s-*' options with mount type '%s'", kind, m.Type)
		}
	}
	if m.Type == "bind" {
		if m.Source == "" {
			return nil, invalid("invalid mount config for type \"bind\": field Source must not be empty")
		}
		if m.Source, err = hostPath(m.Source, abs); err != nil {
			return nil, invalid("--mount source %s: %v", m.Source, err)
		}
	}
	m.Options = options
	return m, nil
}

var ramSize = regexp.MustCompile(`^(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)[iI]?[bB]?$`)

// ramInBytes is docker's units.RAMInBytes: binary multiples ("64m").
func ramInBytes(s string) (int64, error) {
	sub := ramSize.FindStringSubmatch(strings.TrimSpace(s))
	if sub == nil {
		return 0, fmt.Errorf("invalid size: %q", s)
	}
	f, err := strconv.ParseFloat(sub[1], 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]float64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[strings.ToLower(sub[2])]
	return int64(f * mult), nil
}

// parseTmpfsFlag parses --tmpfs TARGET[:OPTIONS] (OPTIONS as mount(8)'s:
// size=64m,mode=1777,exec …).
func parseTmpfsFlag(value string) (*skiffv1.Mount, error) {
	target, opts, _ := strings.Cut(value, ":")
	if target == "" {
		return nil, invalid("invalid tmpfs specification: '%s': no target", value)
	}
	m := &skiffv1.Mount{Type: "tmpfs", Target: target}
	if opts != "" {
		m.Options = strings.Split(opts, ",")
	}
	return m, nil
}
