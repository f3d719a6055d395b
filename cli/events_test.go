package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/errdefs"
)

func TestEventsTimestamp(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"", 0},
		{"10m", now.Add(-10 * time.Minute).UnixNano()},
		{"1700000000", 1_700_000_000 * int64(time.Second)},
		{"1700000000.5", 1_700_000_000*int64(time.Second) + 500_000_000},
		{"2026-11-23T09:00:00Z", now.Add(-time.Hour).UnixNano()},
		{"0", 1}, // docker's epoch; 0 means unset in the API, so 1 ns is sent
	} {
		got, err := eventsTimestamp("since", tc.in, now)
		if err != nil || got != tc.want {
			t.Errorf("eventsTimestamp(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"nonsense", "10x", "2026-13-01"} {
		if _, err := eventsTimestamp("until", bad, now); !errdefs.IsInvalidArgument(err) {
			t.Errorf("eventsTimestamp(%q) = %v, want invalid argument", bad, err)
		}
	}
}

func TestWriteEvent(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 5, time.Local)
	for _, tc := range []struct {
		name string
		ev   *skiffv1.Event
		line string
		json map[string]any
	}{
		{
			name: "container",
			ev: &skiffv1.Event{Time: at.UnixNano(), Type: "container", Action: "start",
				Actor: &skiffv1.EventActor{Id: "abc", Attributes: map[string]string{"name": "web", "image": "busybox"}}},
			line: at.Format("2006-01-02T15:04:05.000000000Z07:00") + " container start abc (image=busybox, name=web)\n",
			json: map[string]any{"status": "start", "id": "abc", "from": "busybox", "Type": "container", "Action": "start",
				"Actor": map[string]any{"ID": "abc", "Attributes": map[string]any{"name": "web", "image": "busybox"}},
				"scope": "local", "time": float64(at.Unix()), "timeNano": float64(at.UnixNano())},
		},
		{
			name: "network, no attributes",
			ev:   &skiffv1.Event{Time: at.UnixNano(), Type: "network", Action: "destroy", Actor: &skiffv1.EventActor{Id: "n1"}},
			line: at.Format("2006-01-02T15:04:05.000000000Z07:00") + " network destroy n1\n",
			json: map[string]any{"Type": "network", "Action": "destroy", "Actor": map[string]any{"ID": "n1", "Attributes": map[string]any{}},
				"scope": "local", "time": float64(at.Unix()), "timeNano": float64(at.UnixNano())},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := toEventMessage(tc.ev)
			var b bytes.Buffer
			if err := writeEvent(&b, m); err != nil || b.String() != tc.line {
				t.Errorf("line %q, %v; want %q", b.String(), err, tc.line)
			}
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(got, tc.json) {
				want, _ := json.Marshal(tc.json)
				t.Errorf("json %s, want %s", data, want)
			}
		})
	}
}

func jsonEqual(a, b map[string]any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return errors.Join(err1, err2) == nil && bytes.Equal(x, y)
}
