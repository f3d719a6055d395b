package containers

import (
	"fmt"

	"github.com/skiff-containers/skiff/errdefs"
)

// Operations checked against a container's status.
const (
	opStart  = "start"
	opStop   = "stop"
	opKill   = "kill"
	opAttach = "attach"
	opResize = "resize"
	opRemove = "remove"
)

// StateError is an operation that the container's status does not allow.
// It is of class errdefs.ErrFailedPrecondition.
type StateError struct {
	ID     string // the name the caller used
	Op     string
	Status string
	Hint   string
}

func (e *StateError) Error() string {
	if msg, ok := e.processMessage(); ok {
		return msg
	}
	msg := fmt.Sprintf("cannot %s container %s: it is %s", e.Op, e.ID, e.Status)
	switch e.Status {
	case StatusCreated, StatusExited, StatusDead:
		if e.Op == opKill || e.Op == opAttach || e.Op == opResize {
			msg = fmt.Sprintf("cannot %s container %s: container %s is not running (%s)", e.Op, e.ID, e.ID, e.Status)
		}
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// Unwrap makes a StateError a failed precondition.
func (e *StateError) Unwrap() error { return errdefs.ErrFailedPrecondition }

// allowed is the lifecycle as a table: the statuses from which each
// operation may proceed. Operations that are no-ops in some statuses
// (start of a running container, stop of a stopped one) handle those before
// asking.
func allowed(op, status string) (ok bool, hint string) {
	switch op {
	case opStart:
		switch status {
		case StatusCreated, StatusExited, StatusRestarting:
			return true, ""
		case StatusPaused:
			return false, "unpause it instead"
		case StatusDead:
			return false, "remove it and create a new one"
		}
	case opStop, opKill, opResize:
		switch status {
		case StatusRunning:
			return true, ""
		case StatusPaused:
			return op == opKill, "unpause it first"
		case StatusCreated, StatusExited, StatusDead:
			return false, "start it first"
		}
	case opAttach:
		switch status {
		case StatusRunning, StatusCreated:
			return true, ""
		case StatusExited, StatusDead:
			return false, "start it first"
		}
	case opExec, opPause, opUnpause:
		return allowedProcess(op, status)
	case opRemove:
		switch status {
		case StatusCreated, StatusExited, StatusDead, StatusRemoving:
			return true, ""
		case StatusRunning, StatusPaused, StatusRestarting:
			return false, "stop it first, or remove it with force"
		}
	}
	return false, ""
}

// check returns a *StateError if op is not allowed in status.
func check(ref, op, status string) error {
	if ok, hint := allowed(op, status); !ok {
		return &StateError{ID: ref, Op: op, Status: status, Hint: hint}
	}
	return nil
}
