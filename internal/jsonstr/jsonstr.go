// Package jsonstr appends a Go string as a JSON string escaped exactly as
// encoding/json escapes it (HTML-safe, invalid UTF-8 as U+FFFD, U+2028 and
// U+2029 escaped), and decodes a JSON string's escape sequences as
// encoding/json does. It is shared by the hand-written JSON encoders of the
// runtime (runtime/internal/ljson) and the shim (shim/wire.go), which avoid
// encoding/json to stay small; it must stay free of reflection and of any
// package heavier than unicode/utf8.
package jsonstr

import "unicode/utf8"

const hex = "0123456789abcdef"

// Append appends s to b as a quoted, escaped JSON string.
func Append(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendUnescaped decodes the escape sequence of a JSON string that starts
// at b[i], just after its backslash, as encoding/json does, and appends
// its character to out: a \u surrogate that is not half of a pair becomes
// U+FFFD. It returns the index after the sequence, and ok false for a
// malformed one.
func AppendUnescaped(out, b []byte, i int) (_ []byte, next int, ok bool) {
	if i >= len(b) {
		return out, i, false
	}
	e := b[i]
	i++
	switch e {
	case '"', '\\', '/':
		return append(out, e), i, true
	case 'b':
		return append(out, '\b'), i, true
	case 'f':
		return append(out, '\f'), i, true
	case 'n':
		return append(out, '\n'), i, true
	case 'r':
		return append(out, '\r'), i, true
	case 't':
		return append(out, '\t'), i, true
	case 'u':
		r, ok := hex4(b, i)
		if !ok {
			return out, i, false
		}
		i += 4
		if r >= 0xd800 && r < 0xe000 {
			// A surrogate: only a high one followed by a \u low one
			// makes a character; anything else is U+FFFD.
			r2, ok := rune(0), false
			if r < 0xdc00 && i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
				r2, ok = hex4(b, i+2)
			}
			if ok && r2 >= 0xdc00 && r2 < 0xe000 {
				r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
				i += 6
			} else {
				r = utf8.RuneError
			}
		}
		return utf8.AppendRune(out, r), i, true
	}
	return out, i, false
}

// hex4 reads the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}
