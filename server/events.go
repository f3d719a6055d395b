package server

import (
	"errors"
	"io"
	"maps"

	skiffv1 "github.com/skiff-containers/skiff/api/skiff/v1"
	"github.com/skiff-containers/skiff/engine/events"
)

// eventsServer adapts the engine's event exchange to skiff.v1 Events.
type eventsServer struct {
	skiffv1.UnimplementedEventsServer
	x *events.Exchange
}

// NewEvents returns the skiff.v1 Events service over x.
func NewEvents(x *events.Exchange) skiffv1.EventsServer {
	return &eventsServer{x: x}
}

// Subscribe streams the events of the call's namespace (and the
// networks') until the client goes away, until passes, or the exchange
// ends the subscription.
func (s *eventsServer) Subscribe(req *skiffv1.SubscribeEventsRequest, stream skiffv1.Events_SubscribeServer) error {
	ctx := stream.Context()
	ns, err := Namespace(ctx)
	if err != nil {
		return err
	}
	f, err := events.ParseFilters(req.GetFilters())
	if err != nil {
		return err
	}
	sub, err := s.x.Subscribe(ctx, events.SubscribeOptions{
		Namespace: ns, Since: req.GetSince(), Until: req.GetUntil(), Filters: f,
	})
	if err != nil {
		return err
	}
	defer sub.Close()
	// The response headers go now, so that the client knows it is
	// subscribed before the first event comes.
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	for {
		e, err := sub.Next(ctx)
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return err // ErrSlowSubscriber or ErrClosed: they say what to do
		}
		if err := stream.Send(apiEvent(e)); err != nil {
			return err
		}
	}
}

func apiEvent(e events.Event) *skiffv1.Event {
	return &skiffv1.Event{
		Time: e.Time, Type: string(e.Type), Action: e.Action, Namespace: e.Namespace,
		Actor: &skiffv1.EventActor{Id: e.Actor.ID, Attributes: maps.Clone(e.Actor.Attributes)},
	}
}
