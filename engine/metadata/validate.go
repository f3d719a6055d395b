package metadata

import (
	"encoding/json"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/skiff-containers/skiff/errdefs"
)

const (
	// MaxNamespaceLen bounds namespace names (as containerd does).
	MaxNamespaceLen = 76
	// MaxIDLen bounds container ids, container names and lease ids.
	MaxIDLen = 255
	// MaxImageNameLen bounds normalised image references.
	MaxImageNameLen = 1024
	// MaxLabelLen bounds len(key)+len(value) of one label.
	MaxLabelLen = 4096
)

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// checkName checks s: 1..max bytes, first an ASCII letter or digit, then
// letters, digits and the bytes of extra.
func checkName(what, s string, max int, extra string) error {
	if s == "" {
		return fmt.Errorf("%s: empty: %w", what, errdefs.ErrInvalidArgument)
	}
	if len(s) > max {
		return fmt.Errorf("%s %.40q…: longer than %d bytes: %w", what, s, max, errdefs.ErrInvalidArgument)
	}
	if !isAlnum(s[0]) {
		return fmt.Errorf("%s %q: must start with a letter or digit: %w", what, s, errdefs.ErrInvalidArgument)
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && strings.IndexByte(extra, c) < 0 {
			return fmt.Errorf("%s %q: invalid character %q (allowed: letters, digits and %q): %w", what, s, c, extra, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// ValidateNamespace reports, as ErrInvalidArgument, a namespace name that is
// empty, longer than MaxNamespaceLen, or not made of letters, digits and
// "._-" starting with a letter or digit.
func ValidateNamespace(ns string) error {
	return checkName("namespace", ns, MaxNamespaceLen, "._-")
}

// ValidateID checks a container id, container name or lease id the same way
// as ValidateNamespace, with MaxIDLen.
func ValidateID(kind, id string) error {
	return checkName(kind+" id", id, MaxIDLen, "._-")
}

// ValidateImageName checks a normalised image reference such as
// "docker.io/library/busybox:latest" or "host:5000/a/b@sha256:…": letters,
// digits and "._-/:@", starting with a letter or digit, at most
// MaxImageNameLen bytes. Normalisation itself is the caller's job.
func ValidateImageName(name string) error {
	return checkName("image name", name, MaxImageNameLen, "._-/:@")
}

func validateLabels(what string, labels map[string]string) error {
	for k, v := range labels {
		if k == "" {
			return fmt.Errorf("%s: empty label key: %w", what, errdefs.ErrInvalidArgument)
		}
		if len(k)+len(v) > MaxLabelLen {
			return fmt.Errorf("%s: label %.40q…: key and value longer than %d bytes: %w", what, k, MaxLabelLen, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// recordErr formats `namespace "ns": kind "id": msg: err`.
func recordErr(ns, kind, id string, err error) error {
	return fmt.Errorf("namespace %q: %s %q: %w", ns, kind, id, err)
}

// getRecord decodes the record at key of b into v; found is false when b is
// nil or has no such key.
func getRecord(b *bolt.Bucket, key string, v any) (found bool, err error) {
	if b == nil {
		return false, nil
	}
	data := b.Get([]byte(key))
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return true, fmt.Errorf("decode: %w", err)
	}
	return true, nil
}

// putRecord encodes v and stores it at key of b, returning the encoding.
func putRecord(b *bolt.Bucket, key string, v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	if err := b.Put([]byte(key), data); err != nil {
		return nil, err
	}
	return data, nil
}

// roundTrip returns what Get would return for v: a deep copy through JSON.
func roundTrip[T any](data []byte) (T, error) {
	var out T
	err := json.Unmarshal(data, &out)
	return out, err
}

// listRecords decodes every record of b in key order, keeping those filter
// accepts (all when filter is nil).
func listRecords[T any](b *bolt.Bucket, filter func(T) bool) ([]T, error) {
	var out []T
	if b == nil {
		return out, nil
	}
	err := b.ForEach(func(k, data []byte) error {
		var v T
		if err := json.Unmarshal(data, &v); err != nil {
			return fmt.Errorf("%q: decode: %w", k, err)
		}
		if filter == nil || filter(v) {
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// applyLabelPaths applies a "labels" or "labels.<key>" field path from src
// to dst and reports whether path was a label path. "labels.<key>" with no
// (or an empty) value in src deletes the key.
func applyLabelPaths(path string, dst *map[string]string, src map[string]string) bool {
	if path == "labels" {
		*dst = copyLabels(src)
		return true
	}
	key, ok := strings.CutPrefix(path, "labels.")
	if !ok {
		return false
	}
	if v := src[key]; v != "" {
		if *dst == nil {
			*dst = map[string]string{}
		}
		(*dst)[key] = v
	} else {
		delete(*dst, key)
	}
	return true
}

func copyLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
