package shimbench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	s := Summarize([]Mem{
		{RSS: 300, PSS: 30, Anon: 3},
		{RSS: 100, PSS: 10, Anon: 1},
		{RSS: 400, PSS: 40, Anon: 4},
		{RSS: 200, PSS: 20, Anon: 2},
	})
	want := Summary{N: 4, MedianRSS: 200, MedianPSS: 20, MedianAnon: 2, TotalRSS: 1000, TotalPSS: 100, TotalAnon: 10}
	if s != want {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
	if s := Summarize(nil); s != (Summary{}) {
		t.Errorf("Summarize(nil) = %+v", s)
	}
}

func TestReadMemSelf(t *testing.T) {
	m, err := ReadMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.PSS <= 0 || m.PSS > m.RSS || m.Anon <= 0 || m.Anon > m.RSS {
		t.Errorf("implausible memory of this process: %+v", m)
	}
	if _, err := ReadMem(-1); err == nil {
		t.Error("ReadMem(-1) succeeded")
	}
}

func TestWriteFile(t *testing.T) {
	rep := &Report{Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), N: 2, Settle: 150 * time.Second,
		Versions: map[string]string{"conmon": "conmon version 2"},
		Results: []Result{
			{Monitor: "skiff-shim", Runtime: "runc", Summary: Summary{N: 2, MedianRSS: 3072, MedianPSS: 1024, MedianAnon: 512, TotalRSS: 6144, TotalPSS: 2048}},
			{Monitor: "conmon", Runtime: "runc", Summary: Summary{N: 2, MedianRSS: 2048, MedianPSS: 512, MedianAnon: 256, TotalRSS: 4096, TotalPSS: 1024}},
		}}
	md := rep.Markdown()
	for _, want := range []string{"| skiff-shim | runc | 3.0 MiB | 1.0 MiB | 0.5 MiB | 1.50× | 6.0 MiB | 2.0 MiB |", "| conmon | conmon version 2 |", "skiffd"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	old := "# Benchmarks\n\nintro\n\n" + BeginMarker + "\nstale\n" + EndMarker + "\n\n## After\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\nintro\n\n" + BeginMarker + "\n" + md + EndMarker + "\n\n## After\n"
	if string(got) != want {
		t.Errorf("WriteFile wrote\n%s\nwant\n%s", got, want)
	}
}
