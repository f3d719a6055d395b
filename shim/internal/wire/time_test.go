package wire

import (
	"testing"
	"time"
)

func TestAppendRFC3339(t *testing.T) {
	times := []time.Time{
		time.Unix(0, 0),
		time.Date(2024, 2, 29, 23, 59, 59, 999999999, time.UTC),
		time.Date(2026, 11, 23, 18, 31, 0, 120000000, time.UTC),
		time.Date(2000, 3, 1, 0, 0, 0, 1, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 500, time.UTC),
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2100, 2, 28, 12, 0, 0, 0, time.FixedZone("x", 3600)),
		time.Now(),
	}
	for d := int64(0); d < 800; d++ {
		times = append(times, time.Unix(d*86400*53+d*7919, d*1234567))
	}
	for _, tm := range times {
		if got, want := string(AppendRFC3339(nil, tm.Unix(), tm.Nanosecond(), false)), tm.UTC().Format(time.RFC3339Nano); got != want {
			t.Errorf("AppendRFC3339(%v) = %s, want %s", tm, got, want)
		}
		if got, want := string(AppendRFC3339(nil, tm.Unix(), tm.Nanosecond(), true)), tm.UTC().Format("2006-01-02T15:04:05.000Z07:00"); got != want {
			t.Errorf("AppendRFC3339(%v, millis) = %s, want %s", tm, got, want)
		}
	}
}

func TestNow(t *testing.T) {
	before := time.Now()
	sec, nsec := Now()
	after := time.Now()
	got := time.Unix(sec, int64(nsec))
	if got.Before(before.Truncate(time.Microsecond)) || got.After(after) {
		t.Errorf("Now() = %v, not between %v and %v", got, before, after)
	}
}
