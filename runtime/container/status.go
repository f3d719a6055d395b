package container

import (
	"fmt"

	"github.com/skiff-containers/skiff/errdefs"
)

// Status is a container's place in the OCI lifecycle.
type Status string

// The OCI statuses, plus runc's paused.
const (
	Creating Status = "creating"
	Created  Status = "created"
	Running  Status = "running"
	Paused   Status = "paused"
	Stopped  Status = "stopped"
)

// Op is an operation that moves a container between statuses.
type Op string

// The operations of the lifecycle.
const (
	OpStart  Op = "start"
	OpKill   Op = "kill"
	OpDelete Op = "delete"
	OpPause  Op = "pause"
	OpResume Op = "resume"
	OpExec   Op = "exec"
)

// allowed lists, for each operation, the statuses it may start from. Delete
// of a running or paused container needs force, which the caller checks
// before asking (see Container.Delete).
var allowed = map[Op][]Status{
	OpStart:  {Created},
	OpKill:   {Created, Running, Paused},
	OpDelete: {Created, Stopped},
	OpPause:  {Running},
	OpResume: {Paused},
	OpExec:   {Created, Running},
}

// TransitionError is returned when an operation is not allowed from the
// container's current status. It is of the failed-precondition class.
type TransitionError struct {
	ID   string
	From Status
	Op   Op
}

func (e *TransitionError) Error() string {
	hint := ""
	switch {
	case e.Op == OpDelete && (e.From == Running || e.From == Paused):
		hint = "; stop it first or use delete --force"
	case e.Op == OpStart && e.From != Created:
		hint = "; only a created container can be started, create a new one"
	case e.From == Stopped:
		hint = "; the container is not running"
	}
	return fmt.Sprintf("cannot %s container %q: it is %s%s", e.Op, e.ID, e.From, hint)
}

// Unwrap classifies the error.
func (e *TransitionError) Unwrap() error { return errdefs.ErrFailedPrecondition }

// CheckTransition returns a *TransitionError unless op is allowed from s.
func CheckTransition(id string, s Status, op Op) error {
	for _, ok := range allowed[op] {
		if s == ok {
			return nil
		}
	}
	return &TransitionError{ID: id, From: s, Op: op}
}
