package volumes

import (
	"context"

	"github.com/skiff-containers/skiff/engine/events"
)

// EventPublisher receives the volume service's events (the engine's event
// exchange, engine/events); a nil Config.Events publishes nothing.
type EventPublisher interface {
	Publish(ctx context.Context, e events.Event)
}

// publish sends a volume event of ns as docker's daemon does: the actor is
// the volume's name, its attribute the driver.
func (s *Service) publish(ctx context.Context, ns, action, name string) {
	if s.cfg.Events == nil {
		return
	}
	s.cfg.Events.Publish(ctx, events.Event{
		Namespace: ns, Type: events.TypeVolume, Action: action,
		Actor: events.Actor{ID: name, Attributes: map[string]string{"driver": DriverLocal}},
	})
}

// The actions the service publishes.
const (
	evCreate  = events.ActionCreate
	evDestroy = events.ActionDestroy
)
