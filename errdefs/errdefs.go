// Package errdefs defines the small set of error classes shared by every layer
// of skiff: not found, already exists, invalid argument and failed
// precondition. Errors are wrapped with %w and the object's id where they
// happen, classified with errors.Is, and mapped to exit codes or gRPC codes
// only at the edge (the cmd/ mains and the servers).
//
// It must not import anything of skiff's: every layer may depend on it.
package errdefs

import "errors"

var (
	// ErrNotFound: the named object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: an object with that name or id exists already.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalidArgument: the input (a flag, a config field, an id) is malformed
	// or out of range.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrFailedPrecondition: the object is not in a state that allows the
	// operation (deleting a running container, starting a stopped one).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrNotImplemented: the request is well formed but this build cannot
	// honour it (a feature that is not there yet, or not on this kernel).
	ErrNotImplemented = errors.New("not implemented")
)

// IsNotFound reports whether err is of the not-found class.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err is of the already-exists class.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsInvalidArgument reports whether err is of the invalid-argument class.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// IsFailedPrecondition reports whether err is of the failed-precondition class.
func IsFailedPrecondition(err error) bool { return errors.Is(err, ErrFailedPrecondition) }

// IsNotImplemented reports whether err is of the not-implemented class.
func IsNotImplemented(err error) bool { return errors.Is(err, ErrNotImplemented) }
