package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSplitter(t *testing.T) {
	long := strings.Repeat("a", 10)
	cases := []struct {
		name   string
		max    int
		writes []string
		want   []string // "<P|F> <line>" per entry
	}{
		{"one line", 10, []string{"hello\n"}, []string{"F hello"}},
		{"two lines in one write", 10, []string{"a\nb\n"}, []string{"F a", "F b"}},
		{"line across writes", 10, []string{"he", "llo", "\n"}, []string{"F hello"}},
		{"crlf", 10, []string{"tty\r\n"}, []string{"F tty"}},
		{"lone cr kept", 10, []string{"a\rb\n"}, []string{"F a\rb"}},
		{"empty line", 10, []string{"\n\n"}, []string{"F ", "F "}},
		{"unterminated at close", 10, []string{"tail"}, []string{"F tail"}},
		{"exactly max", 10, []string{long + "\n"}, []string{"F " + long}},
		{"split long line", 10, []string{long + "bcd\n"}, []string{"P " + long, "F bcd"}},
		{"split long line across writes", 4, []string{"abcde", "fghij\n"}, []string{"P abcd", "P efgh", "F ij"}},
		{"partial then newline at boundary", 4, []string{"abcd", "\n"}, []string{"P abcd", "F "}},
		{"long line in one write", 3, []string{"abcdefg\nx\n"}, []string{"P abc", "P def", "F g", "F x"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			ts := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
			l := &Log{W: &out, Now: func() (int64, int) { return ts.Unix(), ts.Nanosecond() }}
			s := &Splitter{Log: l, Stream: Stderr, Max: c.max}
			for _, w := range c.writes {
				if n, err := s.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			var want strings.Builder
			for _, w := range c.want {
				want.WriteString("2024-05-06T07:08:09.123456789Z stderr " + w + "\n")
			}
			if out.String() != want.String() {
				t.Errorf("log:\n%q\nwant:\n%q", out.String(), want.String())
			}
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestSplitterReportsLogErrors(t *testing.T) {
	s := &Splitter{Log: &Log{W: failingWriter{}}, Stream: Stdout, Max: 8}
	if _, err := s.Write([]byte("x\n")); err == nil {
		t.Fatal("Write succeeded although the log cannot be written")
	}
}
