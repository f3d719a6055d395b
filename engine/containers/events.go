package containers

import (
	"context"
	"maps"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skiff-containers/skiff/engine/events"
	"github.com/skiff-containers/skiff/engine/metadata"
)

// EventPublisher receives the container service's events (the engine's
// event exchange, engine/events); a nil Config.Events publishes nothing.
type EventPublisher interface {
	Publish(ctx context.Context, e events.Event)
}

// publish sends a container event of ns about container id (rec is its
// record, zero if it is gone) with docker's attributes: the container's
// labels, its image as it was given, its name, and extra.
func (s *Service) publish(ns, id, action string, rec metadata.Container, extra map[string]string) {
	if s.cfg.Events == nil {
		return
	}
	attrs := maps.Clone(rec.Labels)
	if attrs == nil {
		attrs = map[string]string{}
	}
	image := decodeConfig(rec).Image
	if image == "" {
		image = rec.Image
	}
	if image != "" {
		attrs["image"] = image
	}
	if rec.Name != "" {
		attrs["name"] = rec.Name
	}
	maps.Copy(attrs, extra)
	s.cfg.Events.Publish(context.Background(), events.Event{
		Namespace: ns, Type: events.TypeContainer, Action: action,
		Actor: events.Actor{ID: id, Attributes: attrs},
	})
}

// publishDie sends docker's die event: the exit code and how many seconds
// the container ran.
func (s *Service) publishDie(ns, id string, rec metadata.Container, e ExitStatus) {
	extra := map[string]string{"exitCode": strconv.Itoa(e.Code)}
	if st := rec.State.StartedAt; !st.IsZero() && !e.At.Before(st) {
		extra["execDuration"] = strconv.Itoa(int(e.At.Sub(st) / time.Second))
	}
	s.publish(ns, id, events.ActionDie, rec, extra)
}

// publishKill sends docker's kill event with the signal's number.
func (s *Service) publishKill(ns string, rec metadata.Container, sig syscall.Signal) {
	s.publish(ns, rec.ID, events.ActionKill, rec, map[string]string{"signal": strconv.Itoa(int(sig))})
}

// publishExec sends an exec event: docker's action carries the command
// ("exec_start: sh -c date"), execID names the exec.
func (s *Service) publishExec(ns string, rec metadata.Container, action, execID string, cmd []string, extra map[string]string) {
	attrs := map[string]string{"execID": execID}
	maps.Copy(attrs, extra)
	if len(cmd) > 0 {
		action += ": " + strings.Join(cmd, " ")
	}
	s.publish(ns, rec.ID, action, rec, attrs)
}

// The actions the service publishes, so that its files need not import
// engine/events.
const (
	evCreate     = events.ActionCreate
	evStart      = events.ActionStart
	evStop       = events.ActionStop
	evRename     = events.ActionRename
	evRestart    = events.ActionRestart
	evDestroy    = events.ActionDestroy
	evAttach     = events.ActionAttach
	evExecCreate = events.ActionExecCreate
	evExecStart  = events.ActionExecStart
	evExecDie    = events.ActionExecDie
)
