package proto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
)

func TestFramesRoundTrip(t *testing.T) {
	frames := []struct {
		typ     byte
		payload []byte
	}{
		{FrameStdout, []byte("hello\n")},
		{FrameStdinEOF, nil},
		{FrameStderr, bytes.Repeat([]byte{0xff}, MaxFramePayload)},
		{FrameExit, []byte(`{"code":3}`)},
	}
	var buf bytes.Buffer
	for _, f := range frames {
		if err := WriteFrame(&buf, f.typ, f.payload); err != nil {
			t.Fatal(err)
		}
	}
	scratch := make([]byte, 0, 16)
	for _, f := range frames {
		typ, payload, err := ReadFrame(&buf, scratch)
		if err != nil {
			t.Fatal(err)
		}
		if typ != f.typ || !bytes.Equal(payload, f.payload) {
			t.Fatalf("read frame %d (%d bytes), want %d (%d bytes)", typ, len(payload), f.typ, len(f.payload))
		}
	}
	if _, _, err := ReadFrame(&buf, nil); err != io.EOF {
		t.Fatalf("ReadFrame at the end = %v, want io.EOF", err)
	}
}

func TestFrameErrors(t *testing.T) {
	if err := WriteFrame(io.Discard, FrameStdin, make([]byte, MaxFramePayload+1)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("WriteFrame of an oversized payload = %v, want invalid argument", err)
	}
	cases := []struct {
		name  string
		input []byte
		want  error
	}{
		{"oversized length", []byte{FrameStdin, 0xff, 0xff, 0xff, 0xff}, errdefs.ErrInvalidArgument},
		{"truncated header", []byte{FrameStdin, 0}, io.ErrUnexpectedEOF},
		{"truncated payload", []byte{FrameStdin, 0, 0, 0, 5, 'a'}, io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		if _, _, err := ReadFrame(bytes.NewReader(c.input), nil); !errors.Is(err, c.want) {
			t.Errorf("%s: ReadFrame = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestErrorClassesRoundTrip(t *testing.T) {
	for _, class := range []error{errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument, errdefs.ErrFailedPrecondition, errdefs.ErrNotImplemented} {
		orig := fmt.Errorf("container c1: %w: details", class)
		got := ErrorResponse(orig).Err()
		if !errors.Is(got, class) || got.Error() != orig.Error() {
			t.Errorf("round trip of %v = %v (class kept: %v)", orig, got, errors.Is(got, class))
		}
	}
	plain := ErrorResponse(errors.New("boom"))
	if plain.Class != ClassInternal || plain.Err() == nil || plain.Err().Error() != "boom" {
		t.Errorf("plain error response = %+v", plain)
	}
	if (Response{}).Err() != nil {
		t.Error("an empty response carries an error")
	}
}

func TestExitFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadExitFile(dir); !errdefs.IsNotFound(err) {
		t.Fatalf("ReadExitFile without a file = %v, want not found", err)
	}
	want := Exit{Code: 137, Signal: 9, ExitedAt: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)}
	if err := WriteExitFile(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadExitFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ExitedAt.Equal(want.ExitedAt) || got.Code != want.Code || got.Signal != want.Signal {
		t.Errorf("exit file = %+v, want %+v", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d entries after the write, want only the exit file (no temporaries)", len(entries))
	}
	if err := os.WriteFile(filepath.Join(dir, ExitFileName), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadExitFile(dir); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ReadExitFile of a corrupt file = %v, want invalid argument", err)
	}
	if err := WriteExitFile(filepath.Join(dir, "missing"), want); err == nil {
		t.Error("WriteExitFile into a missing directory succeeded")
	}
}
