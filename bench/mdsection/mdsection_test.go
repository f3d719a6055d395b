package mdsection

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	const b, e = "<!-- x:begin -->", "<!-- x:end -->"
	tests := []struct {
		name, old string
		exists    bool
		want      string
		err       bool
	}{
		{"new file", "", false, "# Benchmarks\n\nNumbers from this machine; rerun with `make bench`.\n\n" + b + "\nBODY\n" + e + "\n", false},
		{"replaces, keeps the text around", "intro\n" + b + "\nold\n" + e + "\noutro\n", true, "intro\n" + b + "\nBODY\n" + e + "\noutro\n", false},
		{"appends without markers", "intro\n\n\n", true, "intro\n\n" + b + "\nBODY\n" + e + "\n", false},
		{"markers out of order", e + "\n" + b + "\n", true, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "B.md")
			if tt.exists {
				if err := os.WriteFile(p, []byte(tt.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := Write(p, b, e, "BODY\n")
			if tt.err {
				if err == nil || !strings.Contains(err.Error(), "comes before") {
					t.Fatalf("err %v, want the markers refused", err)
				}
				return
			}
			got, _ := os.ReadFile(p)
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
