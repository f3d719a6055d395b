package enginebench

import (
	"strings"
	"testing"
	"time"
)

func TestQuantile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		in     []time.Duration
		q      float64
		expect time.Duration
	}{
		{nil, 0.5, 0},
		{ms(5), 0.5, 5 * time.Millisecond},
		{ms(9, 1, 5), 0.5, 5 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9 * time.Millisecond},
	} {
		if got := quantile(tc.in, tc.q); got != tc.expect {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.in, tc.q, got, tc.expect)
		}
	}
}

func TestMarkdownRatios(t *testing.T) {
	r := &Report{
		Versions: map[string]string{"skiff": "x"},
		Run: []Timing{
			{Engine: "skiff", Samples: []time.Duration{50 * time.Millisecond}},
			{Engine: "containerd (ctr run --rm)", Samples: []time.Duration{200 * time.Millisecond}},
			{Engine: "podman (run --rm)", Samples: []time.Duration{400 * time.Millisecond}},
		},
	}
	md := r.Markdown()
	if !strings.Contains(md, "| skiff | 50 ms | 50 ms | 0.25× |") {
		t.Errorf("skiff's ratio to the fastest peer is wrong:\n%s", md)
	}
	if !strings.Contains(md, "vs fastest peer (containerd (ctr run --rm))") {
		t.Errorf("fastest peer not named:\n%s", md)
	}
}
