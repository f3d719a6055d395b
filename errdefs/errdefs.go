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

// exitCodeError carries the exit code docker gives a failure to start a
// container's process: 126 (found but cannot be invoked) or 127 (not found).
type exitCodeError struct {
	err  error
	code int
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// WithExitCode attaches a process exit code to err (which keeps its class),
// so that the CLI can exit with it: 127 for a program that does not exist,
// 126 for one that cannot be run. A nil err stays nil.
func WithExitCode(err error, code int) error {
	if err == nil {
		return nil
	}
	return &exitCodeError{err: err, code: code}
}

// ExitCode returns the exit code attached by WithExitCode anywhere in err's
// chain.
func ExitCode(err error) (int, bool) {
	var e *exitCodeError
	if errors.As(err, &e) {
		return e.code, true
	}
	return 0, false
}
