// Package errgrpc maps skiff's error classes (package errdefs) to gRPC status
// codes and back. It is used only at the edges: by skiffd's servers on the
// way out and by the API's clients on the way in. The message of an error
// crosses unchanged, so the client shows what the daemon said.
//
// It must not carry any logic beyond the mapping.
package errgrpc

import (
	"context"
	"errors"

	"strconv"

	"github.com/skiff-containers/skiff/errdefs"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain names skiff in the ErrorInfo detail that carries an exit code.
const Domain = "skiff.dev"

// ToGRPC returns err as a gRPC status error whose code is err's class.
// nil stays nil; an error that already is a status passes through.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isClassified(err) {
		return err
	}
	st := status.New(Code(err), err.Error())
	if code, ok := errdefs.ExitCode(err); ok {
		if withInfo, derr := st.WithDetails(&errdetails.ErrorInfo{
			Reason:   "EXIT_CODE",
			Domain:   Domain,
			Metadata: map[string]string{"exit_code": strconv.Itoa(code)},
		}); derr == nil {
			st = withInfo
		}
	}
	return st.Err()
}

func isClassified(err error) bool {
	for _, class := range []error{errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument,
		errdefs.ErrFailedPrecondition, errdefs.ErrNotImplemented, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, class) {
			return true
		}
	}
	return false
}

// Code is the gRPC code of err's class.
func Code(err error) codes.Code {
	switch {
	case err == nil:
		return codes.OK
	case errors.Is(err, errdefs.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, errdefs.ErrAlreadyExists):
		return codes.AlreadyExists
	case errors.Is(err, errdefs.ErrInvalidArgument):
		return codes.InvalidArgument
	case errors.Is(err, errdefs.ErrFailedPrecondition):
		return codes.FailedPrecondition
	case errors.Is(err, errdefs.ErrNotImplemented):
		return codes.Unimplemented
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	return codes.Unknown
}

// FromGRPC turns a gRPC status error back into an error of its class, with
// the daemon's message as its text and any exit code re-attached. Errors
// that are not statuses pass through.
func FromGRPC(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var class error
	switch st.Code() {
	case codes.NotFound:
		class = errdefs.ErrNotFound
	case codes.AlreadyExists:
		class = errdefs.ErrAlreadyExists
	case codes.InvalidArgument:
		class = errdefs.ErrInvalidArgument
	case codes.FailedPrecondition:
		class = errdefs.ErrFailedPrecondition
	case codes.Unimplemented:
		class = errdefs.ErrNotImplemented
	case codes.Canceled:
		class = context.Canceled
	case codes.DeadlineExceeded:
		class = context.DeadlineExceeded
	}
	var out error
	if class == nil {
		out = errors.New(st.Message())
	} else {
		out = &classified{msg: st.Message(), class: class}
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain && info.GetReason() == "EXIT_CODE" {
			if code, err := strconv.Atoi(info.GetMetadata()["exit_code"]); err == nil {
				out = errdefs.WithExitCode(out, code)
			}
		}
	}
	return out
}

// classified is an error that prints the daemon's message and is of class.
type classified struct {
	msg   string
	class error
}

func (c *classified) Error() string { return c.msg }
func (c *classified) Unwrap() error { return c.class }
