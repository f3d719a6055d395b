// Package spec owns an OCI bundle's configuration as skiff-runtime sees it:
// loading config.json (with errors that name the offending field), checking
// that it describes a container skiff-runtime can create, the small parsers
// other packages need for its fields (container ids, rlimit names, mount
// options), and the default spec that `runc spec` writes.
//
// It must not touch the kernel: no mounts, namespaces, cgroups or
// capability changes. The only system access is reading the bundle (the
// config file and a stat of the rootfs).
package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/skiff-containers/skiff/errdefs"
	"github.com/skiff-containers/skiff/runtime/internal/ljson"
)

// ConfigFile is the name of the configuration file inside a bundle.
const ConfigFile = "config.json"

// Load reads and decodes bundle/config.json. Fields the OCI spec does not
// define are ignored, as the spec requires, but a known field holding a value
// of the wrong JSON type is ErrInvalidArgument naming the field, e.g.
// `config.json: process.args: expected array of strings, got number`.
// A missing bundle directory or config.json is ErrNotFound; malformed JSON is
// ErrInvalidArgument with the line and column. Load does not validate the
// spec: call Validate for that.
func Load(bundle string) (*specs.Spec, error) {
	fi, err := os.Stat(bundle)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("bundle directory %q does not exist (pass the directory that holds config.json with --bundle): %w", bundle, errdefs.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("bundle %q: %w", bundle, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("bundle %q is not a directory (pass the directory that holds config.json, not the file): %w", bundle, errdefs.ErrInvalidArgument)
	}
	path := filepath.Join(bundle, ConfigFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("bundle %q has no %s (create one, e.g. with `skiff-runtime spec`): %w", bundle, ConfigFile, errdefs.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return decode(data)
}

// decode parses config.json's content into a Spec.
func decode(data []byte) (*specs.Spec, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s is empty: %w", ConfigFile, errdefs.ErrInvalidArgument)
	}
	var s specs.Spec
	err := ljson.Unmarshal(data, &s)
	if err == nil {
		return &s, nil
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line, col := position(data, syn.Offset)
		return nil, fmt.Errorf("%s: invalid JSON at line %d, column %d (byte %d): %s: %w",
			ConfigFile, line, col, syn.Offset, syn.Error(), errdefs.ErrInvalidArgument)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		// encoding/json names the field without array indices and
		// describes Go types; find the exact place and say it in JSON.
		var v any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if dec.Decode(&v) == nil {
			if m := mismatch(v, reflect.TypeOf(s), ""); m != nil {
				return nil, fmt.Errorf("%s: %s: expected %s, got %s: %w", ConfigFile, m.path, m.want, m.got, errdefs.ErrInvalidArgument)
			}
		}
		field := typ.Field
		if field == "" {
			field = "(top level)"
		}
		return nil, fmt.Errorf("%s: %s: expected %s, got %s: %w", ConfigFile, field, describe(typ.Type), typ.Value, errdefs.ErrInvalidArgument)
	}
	return nil, fmt.Errorf("%s: %v: %w", ConfigFile, err, errdefs.ErrInvalidArgument)
}

// position turns the offset of a json.SyntaxError (the number of bytes read
// when the error was found) into a 1-based line and column of the byte
// where it was found.
func position(data []byte, offset int64) (line, col int) {
	at := int(offset) - 1
	if at < 0 {
		at = 0
	}
	if at > len(data) {
		at = len(data)
	}
	before := data[:at]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = at - bytes.LastIndexByte(before, '\n')
	return line, col
}

type typeMismatch struct {
	path, want, got string
}

// mismatch walks the generic decoding v of a JSON document alongside the Go
// type t it was decoded into, as encoding/json matches them, and returns the
// first value whose JSON type cannot go into the Go type. path is the JSON
// path so far ("" at the top).
func mismatch(v any, t reflect.Type, path string) *typeMismatch {
	if v == nil { // null is accepted for anything and leaves it unset
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return nil // decodes itself; no such type in specs-go today
	}
	at := path
	if at == "" {
		at = "(top level)"
	}
	bad := func() *typeMismatch { return &typeMismatch{at, describe(t), jsonKind(v)} }
	switch t.Kind() {
	case reflect.Interface:
		return nil
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		for _, key := range sortedKeys(obj) {
			f, ok := fieldFor(t, key)
			if !ok {
				continue // unknown fields are ignored
			}
			if m := mismatch(obj[key], f.Type, join(path, key)); m != nil {
				return m
			}
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		for _, key := range sortedKeys(obj) {
			if m := mismatch(obj[key], t.Elem(), path+"["+strconv.Quote(key)+"]"); m != nil {
				return m
			}
		}
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			if _, ok := v.(string); ok { // []byte is base64 text
				return nil
			}
		}
		arr, ok := v.([]any)
		if !ok {
			return bad()
		}
		for i, e := range arr {
			if m := mismatch(e, t.Elem(), path+"["+strconv.Itoa(i)+"]"); m != nil {
				return m
			}
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			return bad()
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return bad()
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			return bad()
		}
		if _, err := strconv.ParseInt(n.String(), 10, t.Bits()); err != nil {
			return &typeMismatch{at, describe(t), "number " + n.String()}
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, ok := v.(json.Number)
		if !ok {
			return bad()
		}
		if _, err := strconv.ParseUint(n.String(), 10, t.Bits()); err != nil {
			return &typeMismatch{at, describe(t), "number " + n.String()}
		}
	case reflect.Float32, reflect.Float64:
		if _, ok := v.(json.Number); !ok {
			return bad()
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

// fieldFor finds the struct field encoding/json would fill from key: an
// exact match of the JSON name first, then a case-insensitive one.
func fieldFor(t reflect.Type, key string) (reflect.StructField, bool) {
	var fold reflect.StructField
	found := false
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			tagName, _, _ := strings.Cut(tag, ",")
			if tagName == "-" {
				continue
			}
			if tagName != "" {
				name = tagName
			}
		}
		if name == key {
			return f, true
		}
		if !found && strings.EqualFold(name, key) {
			fold, found = f, true
		}
	}
	return fold, found
}

// describe names a Go type the way a config.json author thinks of it.
func describe(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprintf("integer (%d-bit)", t.Bits())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return fmt.Sprintf("non-negative integer (%d-bit)", t.Bits())
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array of " + plural(t.Elem())
	case reflect.Map:
		return "object of " + plural(t.Elem())
	case reflect.Struct:
		return "object"
	}
	return t.String()
}

func plural(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "strings"
	case reflect.Bool:
		return "booleans"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integers"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "non-negative integers"
	case reflect.Float32, reflect.Float64:
		return "numbers"
	case reflect.Slice, reflect.Array:
		return "arrays"
	case reflect.Struct, reflect.Map:
		return "objects"
	}
	return t.String() + " values"
}

// jsonKind names the JSON type of a generically decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}

// RootfsPath returns the absolute, cleaned path of the container's root
// filesystem: root.path joined to the bundle unless it is absolute. The
// bundle is made absolute against the working directory if it is not.
// It returns "" when the spec has no root.path.
func RootfsPath(s *specs.Spec, bundle string) string {
	if s == nil || s.Root == nil || s.Root.Path == "" {
		return ""
	}
	p := s.Root.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(bundle, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}
