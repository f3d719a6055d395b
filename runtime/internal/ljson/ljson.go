// Package ljson ("light JSON") encodes and decodes the runtime's JSON (the
// runtime-spec types, the state record, the init's config) by plain
// reflection, without encoding/json's per-type caches. Those caches are
// built the first time a type is seen and cost about 230 KiB and 3,500
// allocations for specs.Spec alone, in every process, even to decode `{}`:
// on a short-lived runtime process that starts twice per container, that is
// some 60 fresh pages, each a page fault.
//
// The output and the results are encoding/json's (Marshal and Unmarshal are
// drop-ins for the types they are used on). Whatever this package does not
// handle exactly as encoding/json would (interface values, floats, arrays,
// embedded fields, ",string" tags, TextMarshalers, non-ASCII keys, invalid
// UTF-8, unpaired surrogates, ...) is handed to encoding/json, and so is any
// input it cannot decode: errors, their messages and partial results are
// always encoding/json's own.
//
// It must stay a subset of encoding/json: never accept what encoding/json
// refuses, never decode differently.
package ljson

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/skiff-containers/skiff/internal/jsonstr"
)

// errFallback means: let encoding/json do it.
var errFallback = errors.New("ljson: not handled")

var (
	marshalerType       = reflect.TypeFor[json.Marshaler]()
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	numberType          = reflect.TypeFor[json.Number]()
)

// field is one JSON field of a struct.
type field struct {
	name      string
	index     int
	omitEmpty bool
}

type structInfo struct {
	fields []field
	// unsupported: the struct has something encoding/json treats in ways
	// this package does not copy (embedded fields, ",string", ...).
	unsupported bool
}

var (
	infoMu sync.Mutex
	infos  = map[reflect.Type]*structInfo{}
)

func infoFor(t reflect.Type) *structInfo {
	infoMu.Lock()
	defer infoMu.Unlock()
	if si, ok := infos[t]; ok {
		return si
	}
	si := &structInfo{}
	infos[t] = si
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous {
			si.unsupported = true
			break
		}
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if !plainName(name) {
			si.unsupported = true
			break
		}
		if name == "" {
			name = sf.Name
		}
		f := field{name: name, index: i}
		for opts != "" {
			var o string
			o, opts, _ = strings.Cut(opts, ",")
			if o == "omitempty" {
				f.omitEmpty = true
			} else {
				si.unsupported = true
			}
		}
		for _, g := range si.fields {
			if strings.EqualFold(g.name, name) {
				// encoding/json's rules for clashing names are
				// its own.
				si.unsupported = true
			}
		}
		si.fields = append(si.fields, f)
	}
	return si
}

// plainName: a tag name made of characters that need no thought.
func plainName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// find returns the field for key: an exact match first, then one equal
// under ASCII case folding, as encoding/json matches.
func (si *structInfo) find(key []byte) *field {
	for i := range si.fields {
		if si.fields[i].name == string(key) {
			return &si.fields[i]
		}
	}
	for i := range si.fields {
		if asciiEqualFold(si.fields[i].name, key) {
			return &si.fields[i]
		}
	}
	return nil
}

func asciiEqualFold(s string, b []byte) bool {
	if len(s) != len(b) {
		return false
	}
	for i := 0; i < len(s); i++ {
		x, y := s[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Unmarshal is json.Unmarshal for v pointing to a zero value. Anything it
// does not decode itself (see the package doc), including every error, is
// decoded by json.Unmarshal into the untouched v.
func Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || !rv.Elem().IsZero() {
		return json.Unmarshal(data, v)
	}
	fresh := reflect.New(rv.Type().Elem())
	d := decoder{data: data}
	if d.top(fresh.Elem()) == nil {
		rv.Elem().Set(fresh.Elem())
		return nil
	}
	return json.Unmarshal(data, v)
}

type decoder struct {
	data  []byte
	i     int
	depth int
	buf   []byte // scratch for unescaping
}

func (d *decoder) ws() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) peek() byte {
	if d.i < len(d.data) {
		return d.data[d.i]
	}
	return 0
}

func (d *decoder) top(v reflect.Value) error {
	d.ws()
	if err := d.value(v); err != nil {
		return err
	}
	d.ws()
	if d.i != len(d.data) {
		return errFallback
	}
	return nil
}

func (d *decoder) literal(lit string) error {
	if !bytes.HasPrefix(d.data[d.i:], []byte(lit)) {
		return errFallback
	}
	d.i += len(lit)
	return nil
}

// value decodes one JSON value into v, which is settable.
func (d *decoder) value(v reflect.Value) error {
	if d.depth++; d.depth > 10000 {
		return errFallback
	}
	defer func() { d.depth-- }()
	t := v.Type()
	c := d.peek()
	if c == 'n' {
		if err := d.literal("null"); err != nil {
			return err
		}
		switch t.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice:
			v.SetZero()
			return nil
		case reflect.Interface:
			return errFallback
		}
		if t.Name() != "" && reflect.PointerTo(t).Implements(unmarshalerType) {
			return errFallback
		}
		return nil // null leaves anything else as it is
	}
	if t.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return d.value(v.Elem())
	}
	if t.Name() != "" {
		pt := reflect.PointerTo(t)
		if pt.Implements(unmarshalerType) {
			start := d.i
			if err := d.skip(); err != nil {
				return err
			}
			return v.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(d.data[start:d.i])
		}
		if pt.Implements(textUnmarshalerType) || t == numberType {
			return errFallback
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		return d.object(v, t)
	case reflect.Map:
		return d.mapObject(v, t)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && c == '"' {
			return d.byteSlice(v, t)
		}
		return d.array(v, t)
	case reflect.String:
		if c != '"' {
			return errFallback
		}
		s, err := d.str()
		if err != nil {
			return err
		}
		v.SetString(string(s))
		return nil
	case reflect.Bool:
		switch c {
		case 't':
			v.SetBool(true)
			return d.literal("true")
		case 'f':
			v.SetBool(false)
			return d.literal("false")
		}
		return errFallback
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		lit, err := d.number()
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(string(lit), 10, 64)
		if err != nil || v.OverflowInt(n) {
			return errFallback
		}
		v.SetInt(n)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		lit, err := d.number()
		if err != nil {
			return err
		}
		n, err := strconv.ParseUint(string(lit), 10, 64)
		if err != nil || v.OverflowUint(n) {
			return errFallback
		}
		v.SetUint(n)
		return nil
	case reflect.Float32, reflect.Float64:
		lit, err := d.number()
		if err != nil {
			return err
		}
		n, err := strconv.ParseFloat(string(lit), t.Bits())
		if err != nil || v.OverflowFloat(n) {
			return errFallback
		}
		v.SetFloat(n)
		return nil
	}
	return errFallback
}

// members calls fn for each member of the object at d.i, with d.i at its
// value; fn must consume the value.
func (d *decoder) members(fn func(key []byte) error) error {
	if d.peek() != '{' {
		return errFallback
	}
	d.i++
	d.ws()
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		d.ws()
		if d.peek() != '"' {
			return errFallback
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		d.ws()
		if d.peek() != ':' {
			return errFallback
		}
		d.i++
		d.ws()
		if err := fn(key); err != nil {
			return err
		}
		d.ws()
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return errFallback
		}
	}
}

func (d *decoder) object(v reflect.Value, t reflect.Type) error {
	si := infoFor(t)
	if si.unsupported {
		return errFallback
	}
	return d.members(func(key []byte) error {
		for _, c := range key {
			if c >= utf8.RuneSelf {
				return errFallback // encoding/json folds Unicode too
			}
		}
		f := si.find(key)
		if f == nil {
			return d.skip()
		}
		return d.value(v.Field(f.index))
	})
}

func (d *decoder) mapObject(v reflect.Value, t reflect.Type) error {
	kt := t.Key()
	if kt.Kind() != reflect.String || (kt.Name() != "" && reflect.PointerTo(kt).Implements(textUnmarshalerType)) {
		return errFallback
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	var elem reflect.Value
	return d.members(func(keyb []byte) error {
		key := string(keyb) // before the value: keyb may alias d.buf
		if !elem.IsValid() {
			elem = reflect.New(t.Elem()).Elem()
		} else {
			elem.SetZero()
		}
		if err := d.value(elem); err != nil {
			return err
		}
		k := reflect.New(kt).Elem()
		k.SetString(key)
		v.SetMapIndex(k, elem)
		return nil
	})
}

func (d *decoder) array(v reflect.Value, t reflect.Type) error {
	if d.peek() != '[' {
		return errFallback
	}
	d.i++
	d.ws()
	i := 0
	if d.peek() == ']' {
		d.i++
	} else {
		for {
			d.ws()
			if i >= v.Cap() {
				v.Grow(1)
			}
			if i >= v.Len() {
				v.SetLen(i + 1)
			}
			if err := d.value(v.Index(i)); err != nil {
				return err
			}
			i++
			d.ws()
			if d.peek() == ',' {
				d.i++
				continue
			}
			if d.peek() == ']' {
				d.i++
				break
			}
			return errFallback
		}
	}
	if i < v.Len() {
		v.SetLen(i)
	}
	if i == 0 {
		v.Set(reflect.MakeSlice(t, 0, 0))
	}
	return nil
}

func (d *decoder) byteSlice(v reflect.Value, t reflect.Type) error {
	s, err := d.str()
	if err != nil {
		return err
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, s)
	if err != nil {
		return errFallback
	}
	v.SetBytes(b[:n])
	return nil
}

// str reads the string at d.i. The result may alias the input or the
// decoder's scratch buffer: copy it to keep it.
func (d *decoder) str() ([]byte, error) {
	d.i++ // the opening quote
	start := d.i
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			d.i++
			return d.data[start : d.i-1], nil
		case c == '\\':
			return d.strEscaped(start)
		case c < 0x20:
			return nil, errFallback
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.data[d.i:])
			if r == utf8.RuneError && size == 1 {
				return nil, errFallback // encoding/json substitutes U+FFFD
			}
			d.i += size
		default:
			d.i++
		}
	}
	return nil, errFallback
}

func (d *decoder) strEscaped(start int) ([]byte, error) {
	out := append(d.buf[:0], d.data[start:d.i]...)
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			d.i++
			d.buf = out
			return out, nil
		case c == '\\':
			var ok bool
			if out, d.i, ok = jsonstr.AppendUnescaped(out, d.data, d.i+1); !ok {
				return nil, errFallback
			}
		case c < 0x20:
			return nil, errFallback
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.data[d.i:])
			if r == utf8.RuneError && size == 1 {
				return nil, errFallback
			}
			out = append(out, d.data[d.i:d.i+size]...)
			d.i += size
		default:
			out = append(out, c)
			d.i++
		}
	}
	return nil, errFallback
}

// number reads a number literal, checking JSON's grammar.
func (d *decoder) number() ([]byte, error) {
	start := d.i
	digits := func() bool {
		s := d.i
		for d.i < len(d.data) && '0' <= d.data[d.i] && d.data[d.i] <= '9' {
			d.i++
		}
		return d.i > s
	}
	if d.peek() == '-' {
		d.i++
	}
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case '1' <= c && c <= '9':
		digits()
	default:
		return nil, errFallback
	}
	if d.peek() == '.' {
		d.i++
		if !digits() {
			return nil, errFallback
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if !digits() {
			return nil, errFallback
		}
	}
	return d.data[start:d.i], nil
}

// skip consumes one value, checking its syntax.
func (d *decoder) skip() error {
	if d.depth++; d.depth > 10000 {
		return errFallback
	}
	defer func() { d.depth-- }()
	switch c := d.peek(); {
	case c == '{':
		return d.members(func([]byte) error { return d.skip() })
	case c == '[':
		d.i++
		d.ws()
		if d.peek() == ']' {
			d.i++
			return nil
		}
		for {
			d.ws()
			if err := d.skip(); err != nil {
				return err
			}
			d.ws()
			switch d.peek() {
			case ',':
				d.i++
			case ']':
				d.i++
				return nil
			default:
				return errFallback
			}
		}
	case c == '"':
		_, err := d.str()
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		_, err := d.number()
		return err
	}
	return errFallback
}

// Marshal is json.Marshal; what it does not encode itself (see the package
// doc) is encoded by json.Marshal.
func Marshal(v any) ([]byte, error) {
	e := encoder{buf: make([]byte, 0, 512)}
	if err := e.value(reflect.ValueOf(v)); err != nil {
		return json.Marshal(v)
	}
	return e.buf, nil
}

type encoder struct {
	buf   []byte
	depth int
}

func (e *encoder) value(v reflect.Value) error {
	if !v.IsValid() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	if e.depth++; e.depth > 1000 {
		return errFallback // encoding/json reports cycles
	}
	defer func() { e.depth-- }()
	t := v.Type()
	if t.Name() != "" || t.Kind() == reflect.Pointer {
		if t.Implements(marshalerType) {
			if t.Kind() == reflect.Pointer && v.IsNil() {
				e.buf = append(e.buf, "null"...)
				return nil
			}
			out, err := v.Interface().(json.Marshaler).MarshalJSON()
			if err != nil {
				return errFallback
			}
			var compact, escaped bytes.Buffer
			if json.Compact(&compact, out) != nil {
				return errFallback
			}
			json.HTMLEscape(&escaped, compact.Bytes())
			e.buf = append(e.buf, escaped.Bytes()...)
			return nil
		}
		if t.Implements(textMarshalerType) {
			return errFallback
		}
		if t.Kind() != reflect.Pointer {
			pt := reflect.PointerTo(t)
			if pt.Implements(marshalerType) || pt.Implements(textMarshalerType) {
				return errFallback
			}
		}
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.value(v.Elem())
	case reflect.Interface:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		return e.value(v.Elem())
	case reflect.Struct:
		si := infoFor(t)
		if si.unsupported {
			return errFallback
		}
		e.buf = append(e.buf, '{')
		first := true
		for _, f := range si.fields {
			fv := v.Field(f.index)
			if f.omitEmpty && isEmpty(fv) {
				continue
			}
			if !first {
				e.buf = append(e.buf, ',')
			}
			first = false
			e.str(f.name)
			e.buf = append(e.buf, ':')
			if err := e.value(fv); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, '}')
		return nil
	case reflect.Map:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		kt := t.Key()
		if kt.Kind() != reflect.String || (kt.Name() != "" && (kt.Implements(textMarshalerType) || reflect.PointerTo(kt).Implements(textMarshalerType))) {
			return errFallback
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.str(k.String())
			e.buf = append(e.buf, ':')
			if err := e.value(v.MapIndex(k)); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, '}')
		return nil
	case reflect.Slice:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if et := t.Elem(); et.Kind() == reflect.Uint8 {
			if et.Name() != "uint8" || et.PkgPath() != "" {
				return errFallback // a named byte type may marshal itself
			}
			b := v.Bytes()
			e.buf = append(e.buf, '"')
			e.buf = base64.StdEncoding.AppendEncode(e.buf, b)
			e.buf = append(e.buf, '"')
			return nil
		}
		e.buf = append(e.buf, '[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.value(v.Index(i)); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
		return nil
	case reflect.String:
		e.str(v.String())
		return nil
	case reflect.Bool:
		e.buf = strconv.AppendBool(e.buf, v.Bool())
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf = strconv.AppendInt(e.buf, v.Int(), 10)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.buf = strconv.AppendUint(e.buf, v.Uint(), 10)
		return nil
	}
	return errFallback // floats, arrays, channels, ...
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}

// str appends s quoted as encoding/json quotes it (HTML-safe).
func (e *encoder) str(s string) {
	e.buf = jsonstr.Append(e.buf, s)
}
