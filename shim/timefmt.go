package shim

import "time"

// after returns a channel that is closed after d: time.After without its
// chan time.Time, which (passed to the runtime as an interface) would link
// time's formatting and time zone code into the shim (see wire.go). The
// timer is not stopped; it only closes a channel.
func after(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	time.AfterFunc(d, func() { close(ch) })
	return ch
}
