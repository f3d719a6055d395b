package runtimebench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func samples(ms ...int) []Sample {
	var out []Sample
	for _, m := range ms {
		out = append(out, Sample{Wall: time.Duration(m) * time.Millisecond})
	}
	return out
}

func TestPercentile(t *testing.T) {
	for _, c := range []struct {
		in   []Sample
		p    int
		want time.Duration
	}{
		{nil, 50, 0},
		{samples(5), 50, 5 * time.Millisecond},
		{samples(3, 1, 2), 50, 2 * time.Millisecond},
		{samples(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{samples(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 90, 9 * time.Millisecond},
		{samples(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 100, 10 * time.Millisecond},
	} {
		if got := Percentile(c.in, c.p); got != c.want {
			t.Errorf("Percentile(%v, %d) = %v, want %v", c.in, c.p, got, c.want)
		}
	}
}

func testReport() *Report {
	return &Report{
		Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Rounds: 3,
		Machine:  Machine{NProc: 2, Kernel: "6.18 x86_64", CPU: "cpu", MemKiB: 2048 * 1024, Go: "go1.26"},
		Versions: map[string]string{"runc": "runc 1.1.5", "crun": "crun 1.8.1", "skiff-runtime": "dev"},
		Variants: []string{VariantPlain},
		Results: []Result{
			{Runtime: "skiff-runtime", Variant: VariantPlain, Median: 50 * time.Millisecond, P90: 60 * time.Millisecond, PeakRSS: 8192},
			{Runtime: "runc", Variant: VariantPlain, Median: 100 * time.Millisecond, P90: 110 * time.Millisecond, PeakRSS: 10240},
			{Runtime: "crun", Variant: VariantPlain, Median: 25 * time.Millisecond, P90: 30 * time.Millisecond, PeakRSS: 4096},
		},
	}
}

func TestMarkdown(t *testing.T) {
	md := testReport().Markdown()
	for _, want := range []string{
		"| plain | skiff-runtime | 50.0 ms | 60.0 ms | 0.50× | 2.00× | 8.0 MiB |",
		"| plain | runc | 100.0 ms | 110.0 ms | 1.00× | 4.00× | 10.0 MiB |",
		"2026-01-02 03:04 UTC", "2 CPUs", "runc 1.1.5",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestWriteFileKeepsSurroundingText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	rep := testReport()
	if err := rep.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	edited := "# Benchmarks\n\nhand-written intro\n\n" + string(data[strings.Index(string(data), BeginMarker):]) + "\nhand-written outro\n"
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	rep.Results[0].Median = 70 * time.Millisecond
	if err := rep.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	got := string(data)
	for _, want := range []string{"hand-written intro", "hand-written outro", "| plain | skiff-runtime | 70.0 ms"} {
		if !strings.Contains(got, want) {
			t.Errorf("updated file lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, BeginMarker) != 1 || strings.Contains(got, "50.0 ms | 60.0 ms") {
		t.Errorf("the old section was not replaced:\n%s", got)
	}
}

func TestMain(m *testing.M) {
	// The test binary doubles as the spawner (see SpawnEnv).
	SpawnerMain()
	os.Exit(m.Run())
}

// TestRunSmoke runs the whole measurement once with runc and crun (no
// assertion on the numbers, only that every part of the report is filled).
func TestRunSmoke(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(t.Context(), Config{
		Runtimes: []Runtime{{Name: "runc", Bin: "runc"}, {Name: "crun", Bin: "crun", Wrapper: CrunHybridWrapper}},
		Rounds:   2, Batch: 2, Spawner: self, WorkDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("results: %+v", rep.Results)
	}
	for _, r := range rep.Results {
		if len(r.Samples) != 2 || r.Median <= 0 || r.P90 < r.Median || r.PeakRSS <= 0 || r.BatchN != 2 || r.Batch <= 0 {
			t.Errorf("incomplete result %+v", r)
		}
	}
	if rep.WrapperOverhead <= 0 || rep.RSSFloor <= 0 || rep.Machine.NProc <= 0 || !strings.Contains(rep.Versions["runc"], "runc") {
		t.Errorf("incomplete report %+v", rep)
	}
}
