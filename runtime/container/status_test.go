package container

import (
	"errors"
	"testing"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestCheckTransition(t *testing.T) {
	tests := []struct {
		from Status
		op   Op
		ok   bool
	}{
		{Created, OpStart, true},
		{Running, OpStart, false},
		{Stopped, OpStart, false},
		{Creating, OpStart, false},
		{Created, OpKill, true},
		{Running, OpKill, true},
		{Stopped, OpKill, false},
		{Created, OpDelete, true},
		{Stopped, OpDelete, true},
		{Running, OpDelete, false},
		{Paused, OpDelete, false},
		{Running, OpPause, true},
		{Paused, OpPause, false},
		{Paused, OpResume, true},
		{Running, OpResume, false},
	}
	for _, tt := range tests {
		err := CheckTransition("c1", tt.from, tt.op)
		if tt.ok && err != nil {
			t.Errorf("%s from %s: unexpected error %v", tt.op, tt.from, err)
		}
		if !tt.ok {
			var te *TransitionError
			if !errors.As(err, &te) {
				t.Errorf("%s from %s: want *TransitionError, got %v", tt.op, tt.from, err)
				continue
			}
			if !errdefs.IsFailedPrecondition(err) {
				t.Errorf("%s from %s: error %v is not a failed precondition", tt.op, tt.from, err)
			}
		}
	}
}
