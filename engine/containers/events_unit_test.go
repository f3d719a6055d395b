package containers

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/engine/events"
	"github.com/skiff-containers/skiff/engine/metadata"
)

// recorder is an EventPublisher that keeps what it gets.
type recorder struct{ got []events.Event }

func (r *recorder) Publish(_ context.Context, e events.Event) { r.got = append(r.got, e) }

// TestPublishAttributes: container events carry docker's attributes: the
// container's labels, its image as given, its name, and each action's own.
func TestPublishAttributes(t *testing.T) {
	cfg, _ := json.Marshal(CreateConfig{Image: "busybox", Name: "web"})
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := metadata.Container{
		ID: "c0ffee", Name: "web", Image: "docker.io/library/busybox:latest", Config: cfg,
		Labels: map[string]string{"com.example": "x", "name": "a label cannot replace the name"},
		State:  metadata.ContainerState{StartedAt: started},
	}
	base := map[string]string{"com.example": "x", "image": "busybox", "name": "web"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name       string
		do         func(s *Service)
		action     string
		attributes map[string]string
	}{
		{"start", func(s *Service) { s.publish("default", rec.ID, evStart, rec, nil) }, "start", base},
		{"die", func(s *Service) {
			s.publishDie("default", rec.ID, rec, ExitStatus{Code: 3, At: started.Add(75 * time.Second)})
		}, "die", with("exitCode", "3", "execDuration", "75")},
		{"die without a start time", func(s *Service) {
			r := rec
			r.State.StartedAt = time.Time{}
			s.publishDie("default", rec.ID, r, ExitStatus{Code: 137, At: started})
		}, "die", with("exitCode", "137")},
		{"kill", func(s *Service) { s.publishKill("default", rec, syscall.SIGTERM) }, "kill", with("signal", "15")},
		{"rename", func(s *Service) {
			r := rec
			r.Name = "front"
			s.publish("default", rec.ID, evRename, r, map[string]string{"oldName": "web"})
		}, "rename", with("name", "front", "oldName", "web")},
		{"exec_start", func(s *Service) {
			s.publishExec("default", rec, evExecStart, "e1", []string{"sh", "-c", "date"}, nil)
		}, "exec_start: sh -c date", with("execID", "e1")},
		{"exec_die", func(s *Service) {
			s.publishExec("default", rec, evExecDie, "e1", nil, map[string]string{"exitCode": "4"})
		}, "exec_die", with("execID", "e1", "exitCode", "4")},
		{"gone", func(s *Service) { s.publish("default", "d00d", evDestroy, metadata.Container{}, nil) }, "destroy", map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			s := &Service{cfg: Config{Events: r}}
			tc.do(s)
			if len(r.got) != 1 {
				t.Fatalf("published %d events, want 1", len(r.got))
			}
			e := r.got[0]
			if e.Type != events.TypeContainer || e.Action != tc.action || e.Namespace != "default" {
				t.Errorf("event %s %s in %q, want container %s in default", e.Type, e.Action, e.Namespace, tc.action)
			}
			if fmt.Sprint(e.Actor.Attributes) != fmt.Sprint(tc.attributes) {
				t.Errorf("attributes %v, want %v", e.Actor.Attributes, tc.attributes)
			}
		})
	}
	// Without a publisher nothing happens (and nothing panics).
	(&Service{}).publishDie("default", rec.ID, rec, ExitStatus{Code: 1})
}
