// Package events is skiffd's event exchange: the engine's services
// publish what happens to containers, images, networks and volumes
// (docker's event types and action words), and subscribers — `skiff
// events` through the server — receive them, filtered by namespace and by
// docker's filters. It keeps a bounded ring of the most recent events so
// that a subscriber can ask for the events since a time (replayed, then
// live, without a gap) and until a time (the stream then ends).
//
// Publishing never blocks: each subscription has a bounded queue, and a
// subscriber that falls further behind than that is ended with
// ErrSlowSubscriber once it has read what was queued (never a silent gap:
// it may subscribe again with Since = the time of the last event it got).
//
// It owns no other state and must not know about containers, images or
// gRPC: publishers fill in the attributes, the server maps the types.
package events

import (
	"errors"
	"maps"
)

// Type is the kind of object an event is about, docker's words.
type Type string

// The types of events.
const (
	TypeContainer Type = "container"
	TypeImage     Type = "image"
	TypeNetwork   Type = "network"
	TypeVolume    Type = "volume"
)

// Actions, docker's words. Exec events carry the command after the
// action ("exec_create: sh -c date"), as docker's do.
const (
	// Containers.
	ActionCreate     = "create"
	ActionStart      = "start"
	ActionDie        = "die"
	ActionStop       = "stop"
	ActionKill       = "kill"
	ActionPause      = "pause"
	ActionUnpause    = "unpause"
	ActionRename     = "rename"
	ActionRestart    = "restart"
	ActionDestroy    = "destroy"
	ActionAttach     = "attach"
	ActionExecCreate = "exec_create"
	ActionExecStart  = "exec_start"
	ActionExecDie    = "exec_die"
	// Images.
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionTag    = "tag"
	ActionUntag  = "untag"
	ActionDelete = "delete"
	ActionLoad   = "load"
	ActionSave   = "save"
	ActionImport = "import"
	// Networks (create and destroy are shared).
	ActionConnect    = "connect"
	ActionDisconnect = "disconnect"
)

// Actor is the object an event is about: its id (a container's id, an
// image's id or reference, a network's id, a volume's name) and docker's
// attributes (name, image, exitCode, signal, the object's labels, …).
type Actor struct {
	ID         string
	Attributes map[string]string
}

// Event is one thing that happened.
type Event struct {
	// Time is when it was published, Unix nanoseconds; Publish sets it,
	// strictly increasing.
	Time int64
	// Namespace is the namespace of the object; "" for objects that
	// belong to none (networks), seen by the subscribers of every
	// namespace.
	Namespace string
	Type      Type
	Action    string
	Actor     Actor
}

// clone returns e with its own attributes map: publishers may reuse
// theirs, and subscribers share the copy read-only.
func (e Event) clone() Event {
	e.Actor.Attributes = maps.Clone(e.Actor.Attributes)
	return e
}

// Errors that end a subscription.
var (
	// ErrSlowSubscriber ends a subscription whose queue overflowed.
	ErrSlowSubscriber = errors.New("events: the subscriber fell too far behind and was dropped; subscribe again with since = the time of the last event received")
	// ErrClosed ends the subscriptions of an exchange that closed.
	ErrClosed = errors.New("events: the event stream ended: skiffd is stopping")
	// ErrSubscriptionClosed is what Next returns after Close.
	ErrSubscriptionClosed = errors.New("events: the subscription was closed")
)
