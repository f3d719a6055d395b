package errgrpc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/skiff-containers/skiff/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		code  codes.Code
		class error
	}{
		{"not found", fmt.Errorf("image %q: %w", "x", errdefs.ErrNotFound), codes.NotFound, errdefs.ErrNotFound},
		{"already exists", fmt.Errorf("name web: %w", errdefs.ErrAlreadyExists), codes.AlreadyExists, errdefs.ErrAlreadyExists},
		{"invalid", fmt.Errorf("ref: %w", errdefs.ErrInvalidArgument), codes.InvalidArgument, errdefs.ErrInvalidArgument},
		{"precondition", fmt.Errorf("running: %w", errdefs.ErrFailedPrecondition), codes.FailedPrecondition, errdefs.ErrFailedPrecondition},
		{"not implemented", fmt.Errorf("exec: %w", errdefs.ErrNotImplemented), codes.Unimplemented, errdefs.ErrNotImplemented},
		{"canceled", fmt.Errorf("pull: %w", context.Canceled), codes.Canceled, context.Canceled},
		{"plain", errors.New("disk on fire"), codes.Unknown, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := ToGRPC(tc.err)
			st, ok := status.FromError(g)
			if !ok || st.Code() != tc.code || st.Message() != tc.err.Error() {
				t.Fatalf("ToGRPC = %v (code %v), want code %v and message %q", g, st.Code(), tc.code, tc.err.Error())
			}
			back := FromGRPC(g)
			if back.Error() != tc.err.Error() {
				t.Errorf("FromGRPC message %q, want %q", back.Error(), tc.err.Error())
			}
			if tc.class != nil && !errors.Is(back, tc.class) {
				t.Errorf("FromGRPC lost the class %v", tc.class)
			}
		})
	}
}

func TestExitCodeCrosses(t *testing.T) {
	err := errdefs.WithExitCode(fmt.Errorf("start: exec \"nosuch\": %w", errdefs.ErrNotFound), 127)
	back := FromGRPC(ToGRPC(err))
	if code, ok := errdefs.ExitCode(back); !ok || code != 127 {
		t.Errorf("exit code after the round trip: %d, %v; want 127", code, ok)
	}
	if !errdefs.IsNotFound(back) {
		t.Errorf("class lost: %v", back)
	}
	if _, ok := errdefs.ExitCode(FromGRPC(ToGRPC(errors.New("x")))); ok {
		t.Errorf("an exit code appeared from nowhere")
	}
	if ToGRPC(nil) != nil || FromGRPC(nil) != nil {
		t.Errorf("nil must stay nil")
	}
}
