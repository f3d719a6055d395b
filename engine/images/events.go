package images

import (
	"context"
	"maps"
	"strings"

	digest "github.com/opencontainers/go-digest"

	"github.com/skiff-containers/skiff/engine/events"
	"github.com/skiff-containers/skiff/image/reference"
)

// EventPublisher receives the image service's events (the engine's event
// exchange, engine/events); a nil Config.Events publishes nothing.
type EventPublisher interface {
	Publish(ctx context.Context, e events.Event)
}

// familiar is docker's short form of a recorded name ("busybox:latest");
// an unnamed image's id stays as it is.
func familiar(name string) string {
	if strings.HasPrefix(name, "sha256:") {
		return name
	}
	r, err := reference.ParseDockerRef(name)
	if err != nil {
		return name
	}
	return r.Familiar()
}

// publish sends an image event of ns as docker's daemon does: the actor is
// id (the image's id; the reference for pull and push), its attributes
// the image's labels and name (a familiar reference).
func (s *Service) publish(ctx context.Context, ns, action, id, name string, labels map[string]string) {
	if s.events == nil {
		return
	}
	attrs := maps.Clone(labels)
	if attrs == nil {
		attrs = map[string]string{}
	}
	if name != "" {
		attrs["name"] = name
	}
	s.events.Publish(ctx, events.Event{Namespace: ns, Type: events.TypeImage, Action: action, Actor: events.Actor{ID: id, Attributes: attrs}})
}

// The actions the service publishes.
const (
	evPull   = events.ActionPull
	evPush   = events.ActionPush
	evTag    = events.ActionTag
	evUntag  = events.ActionUntag
	evDelete = events.ActionDelete
	evLoad   = events.ActionLoad
	evSave   = events.ActionSave
	evImport = events.ActionImport
)

// publishRemoved sends docker's untag event for each name removed from
// image id, then its delete event if no name of ns is left on it.
func (s *Service) publishRemoved(ctx context.Context, ns string, id digest.Digest, names []string, labels map[string]string) {
	if s.events == nil {
		return
	}
	for _, n := range names {
		s.publish(ctx, ns, evUntag, id.String(), familiar(n), labels)
	}
	if left, err := s.namesOfID(ctx, ns, id); err == nil && len(left) == 0 {
		s.publish(ctx, ns, evDelete, id.String(), id.String(), labels)
	}
}
