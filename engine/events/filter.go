package events

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/skiff-containers/skiff/errdefs"
)

// filterKeys are the filter keys an exchange knows (docker's, for the
// objects skiff has), space-separated.
const filterKeys = "container event image label network type volume"

// Filters are docker's event filters: key → values. Values of one key
// match if any does; different keys must all match (labels: all of them).
// The zero value matches everything. Build them with ParseFilters.
type Filters map[string][]string

// ParseFilters parses docker's --filter values ("key=value"): keys
// container, event, image, label, network, type and volume; type values
// container, image, network and volume. A malformed filter or an unknown
// key is an errdefs.ErrInvalidArgument.
func ParseFilters(args []string) (Filters, error) {
	f := Filters{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			return nil, fmt.Errorf("bad format of filter %q (expected name=value): %w", a, errdefs.ErrInvalidArgument)
		}
		if !slices.Contains(strings.Fields(filterKeys), k) {
			return nil, fmt.Errorf("invalid filter '%s' (known: %s): %w", k, strings.Join(strings.Fields(filterKeys), ", "), errdefs.ErrInvalidArgument)
		}
		if k == "type" {
			switch Type(v) {
			case TypeContainer, TypeImage, TypeNetwork, TypeVolume:
			default:
				return nil, fmt.Errorf("invalid filter 'type=%s' (want container, image, network or volume): %w", v, errdefs.ErrInvalidArgument)
			}
		}
		if !slices.Contains(f[k], v) {
			f[k] = append(f[k], v)
		}
	}
	for k := range f {
		sort.Strings(f[k])
	}
	return f, nil
}

// Match reports whether e passes every filter, as docker's daemon decides
// (daemon/events/filter.go): event and type exactly (an exec_create or
// exec_start filter also matches by prefix, since those actions carry
// the command); container, network and volume by the actor's id or name,
// either exactly or as a prefix; image by the image's id or name (an image
// event's own, a container event's image attribute), with or without its
// tag; label by the attributes ("key" or "key=value").
func (f Filters) Match(e Event) bool {
	if len(f) == 0 {
		return true
	}
	return f.matchEvent(e.Action) &&
		f.exact("type", string(e.Type)) &&
		f.byName("container", e) &&
		f.byName("network", e) &&
		f.byName("volume", e) &&
		f.matchImage(e) &&
		f.matchLabels(e.Actor.Attributes)
}

// exact: no values for key, or one equal to s.
func (f Filters) exact(key, s string) bool {
	vs, ok := f[key]
	return !ok || slices.Contains(vs, s)
}

// fuzzy: no values for key, or one equal to s or a prefix of it.
func (f Filters) fuzzy(key, s string) bool {
	vs, ok := f[key]
	if !ok {
		return true
	}
	for _, v := range vs {
		if s == v || strings.HasPrefix(s, v) {
			return true
		}
	}
	return false
}

func (f Filters) matchEvent(action string) bool {
	for _, v := range f["event"] {
		if v == ActionExecCreate || v == ActionExecStart {
			return f.fuzzy("event", action)
		}
	}
	return f.exact("event", action)
}

// byName is docker's fuzzyMatchName: it constrains every event (a
// container filter drops image events), matching the actor's id or name.
func (f Filters) byName(key string, e Event) bool {
	return f.fuzzy(key, e.Actor.ID) || f.fuzzy(key, e.Actor.Attributes["name"])
}

func (f Filters) matchImage(e Event) bool {
	if _, ok := f["image"]; !ok {
		return true
	}
	attr := "image"
	if e.Type == TypeImage {
		attr = "name"
	}
	name := e.Actor.Attributes[attr]
	for _, s := range []string{e.Actor.ID, name, stripTag(e.Actor.ID), stripTag(name)} {
		if s != "" && slices.Contains(f["image"], s) {
			return true
		}
	}
	return false
}

// stripTag drops the tag (and digest) of an image reference: "busybox:1"
// → "busybox", "host:5000/a/b:t" → "host:5000/a/b"; an id stays.
func stripTag(ref string) string {
	if strings.HasPrefix(ref, "sha256:") {
		return ref
	}
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.Contains(ref[i:], "/") {
		ref = ref[:i]
	}
	return ref
}

func (f Filters) matchLabels(attrs map[string]string) bool {
	for _, l := range f["label"] {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := attrs[k]
		if !ok || hasV && got != v {
			return false
		}
	}
	return true
}
