package jsonstr

import (
	"encoding/json"
	"testing"
)

func TestAppendMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and \ backslash`, "\b\f\n\r\t", "\x00\x01\x1f\x7f",
		"<html> & more", "é ü ✓ 🚀", "\u2028\u2029", "bad \xff utf-8 \xc3", "mixed\x00<\u2028\xfe>",
	} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := Append(nil, s); string(got) != string(want) {
			t.Errorf("Append(%q) = %s, encoding/json gives %s", s, got, want)
		}
	}
}

func FuzzAppend(f *testing.F) {
	f.Add("a\"b\\c\n\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := Append([]byte("x"), s); string(got[1:]) != string(want) {
			t.Errorf("Append(%q) = %s, encoding/json gives %s", s, got[1:], want)
		}
	})
}

// TestAppendUnescaped decodes escapes as encoding/json does, surrogates
// that are not a pair included.
func TestAppendUnescaped(t *testing.T) {
	for _, esc := range []string{
		`\n`, `\"`, `\/`, `\u00e9`, `\ud83d\ude00`, `\ud83d`, `\ude00`, `\ud83dx`,
		`\ud83d\u0041`, `\ud83d\ud83d\ude00`, `\ude00\ud83d`,
	} {
		var want string
		if err := json.Unmarshal([]byte(`"`+esc+`"`), &want); err != nil {
			t.Fatalf("encoding/json refuses %q: %v", esc, err)
		}
		var got []byte
		b := []byte(esc)
		for i := 0; i < len(b); {
			if b[i] != '\\' {
				got = append(got, b[i])
				i++
				continue
			}
			var ok bool
			if got, i, ok = AppendUnescaped(got, b, i+1); !ok {
				t.Fatalf("%q: refused at %d", esc, i)
			}
		}
		if string(got) != want {
			t.Errorf("%q: got %q, encoding/json %q", esc, got, want)
		}
	}
	for _, bad := range []string{`\`, `\x`, `\u12`, `\u12g4`} {
		if _, _, ok := AppendUnescaped(nil, []byte(bad), 1); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}
