package network

import (
	"context"

	"github.com/skiff-containers/skiff/engine/events"
)

// EventPublisher receives the manager's events (the engine's event
// exchange, engine/events); a nil Config.Events publishes nothing.
type EventPublisher interface {
	Publish(ctx context.Context, e events.Event)
}

// publish sends a network event as docker's daemon does: the actor is the
// network's id, its attributes its name, its driver ("type") and, for
// connect and disconnect, the container's id. Networks belong to no
// namespace: create and destroy go to every namespace's subscribers,
// connect and disconnect to the container's (ns).
func (m *Manager) publish(ctx context.Context, ns, action, netID, netName, container string) {
	if m.cfg.Events == nil {
		return
	}
	if netID == "" {
		netID = netName
	}
	attrs := map[string]string{"name": netName, "type": DriverBridge}
	if container != "" {
		attrs["container"] = container
	}
	m.cfg.Events.Publish(ctx, events.Event{Namespace: ns, Type: events.TypeNetwork, Action: action, Actor: events.Actor{ID: netID, Attributes: attrs}})
}

// The actions the manager publishes.
const (
	evCreate     = events.ActionCreate
	evDestroy    = events.ActionDestroy
	evConnect    = events.ActionConnect
	evDisconnect = events.ActionDisconnect
)
