package events

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/skiff-containers/skiff/errdefs"
)

// Defaults of Options.
const (
	// DefaultCapacity is how many recent events are kept for replay
	// (docker keeps 256).
	DefaultCapacity = 1024
	// DefaultBuffer is how many live events a subscriber may fall behind.
	DefaultBuffer = 1024
)

// Options configure New.
type Options struct {
	// Capacity is how many recent events the exchange keeps for Since
	// (DefaultCapacity if 0).
	Capacity int
	// Buffer is how many live events may wait for a subscriber that does
	// not read; one more ends it with ErrSlowSubscriber (DefaultBuffer if
	// 0). The replayed events come on top.
	Buffer int
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Exchange receives events and hands them to subscribers. It is safe for
// concurrent use; the zero value is not: use New.
type Exchange struct {
	opts Options

	mu sync.Mutex
	// ring holds the last events, oldest at ring[start].
	ring  []Event
	start int
	last  int64
	subs  map[*Subscription]struct{}
	// closed ends new subscriptions at once.
	closed bool
}

// New returns an empty exchange.
func New(o Options) *Exchange {
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Exchange{opts: o, ring: make([]Event, 0, o.Capacity), subs: map[*Subscription]struct{}{}}
}

// Publish records e, stamped with the current time (later than every
// earlier event's), and queues it for the subscribers it matches. It never
// blocks on a subscriber. ctx is not used: publishing cannot wait.
func (x *Exchange) Publish(ctx context.Context, e Event) {
	e = e.clone()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return
	}
	e.Time = x.opts.Now().UnixNano()
	if e.Time <= x.last {
		e.Time = x.last + 1
	}
	x.last = e.Time
	if len(x.ring) < cap(x.ring) {
		x.ring = append(x.ring, e)
	} else {
		x.ring[x.start] = e
		x.start = (x.start + 1) % len(x.ring)
	}
	for s := range x.subs {
		if s.until != 0 && e.Time > s.until {
			delete(x.subs, s)
			s.finish(io.EOF)
			continue
		}
		if !s.matches(e) {
			continue
		}
		if !s.push(e) {
			delete(x.subs, s)
			s.finish(fmt.Errorf("%w (it left more than %d events unread)", ErrSlowSubscriber, s.limit))
		}
	}
}

// SubscribeOptions select what a subscription receives.
type SubscribeOptions struct {
	// Namespace receives the events of that namespace (and those of no
	// namespace); "" receives every namespace's.
	Namespace string
	// Since, if not 0 (Unix ns), first replays the kept events from that
	// time on; Until, if not 0, replays only up to it and ends the
	// subscription (io.EOF) when that time comes: at once if it is past.
	// With neither, only live events come.
	Since, Until int64
	Filters      Filters
}

// Subscribe starts a subscription. It ends when ctx is done, on Close,
// when Until passes, when the subscriber falls too far behind, or when
// the exchange closes; nothing of it is left then. Since after Until is
// an errdefs.ErrInvalidArgument.
func (x *Exchange) Subscribe(ctx context.Context, o SubscribeOptions) (*Subscription, error) {
	if o.Until != 0 && o.Since > o.Until {
		return nil, fmt.Errorf("subscribe to events: since (%s) is after until (%s): %w",
			time.Unix(0, o.Since).UTC().Format(time.RFC3339Nano), time.Unix(0, o.Until).UTC().Format(time.RFC3339Nano), errdefs.ErrInvalidArgument)
	}
	s := &Subscription{x: x, ns: o.Namespace, filters: o.Filters, until: o.Until, wake: make(chan struct{}, 1)}
	x.mu.Lock()
	if o.Since != 0 || o.Until != 0 {
		for i := range x.ring {
			e := x.ring[(x.start+i)%len(x.ring)]
			if e.Time >= o.Since && (o.Until == 0 || e.Time <= o.Until) && s.matches(e) {
				s.queue = append(s.queue, e)
			}
		}
	}
	s.limit = len(s.queue) + x.opts.Buffer
	now := x.opts.Now().UnixNano()
	registered := false
	switch {
	case x.closed:
		s.err = ErrClosed
	case o.Until != 0 && o.Until <= now:
		s.err = io.EOF // only the replay
	default:
		x.subs[s] = struct{}{}
		registered = true
	}
	x.mu.Unlock()
	if !registered {
		return s, nil
	}
	stopCtx := context.AfterFunc(ctx, func() { x.end(s, ctx.Err()) })
	s.mu.Lock()
	s.stops = append(s.stops, stopCtx)
	if o.Until != 0 {
		t := time.AfterFunc(time.Duration(o.Until-now), func() { x.end(s, io.EOF) })
		s.stops = append(s.stops, t.Stop)
	}
	done := s.err != nil
	s.mu.Unlock()
	if done { // ended meanwhile: release what was just armed
		s.release()
	}
	return s, nil
}

// end removes s and ends it with err (if it has not ended yet).
func (x *Exchange) end(s *Subscription, err error) {
	x.mu.Lock()
	delete(x.subs, s)
	x.mu.Unlock()
	s.finish(err)
}

// Close ends every subscription with ErrClosed and drops later events and
// subscriptions.
func (x *Exchange) Close() {
	x.mu.Lock()
	x.closed = true
	subs := x.subs
	x.subs = map[*Subscription]struct{}{}
	x.mu.Unlock()
	for s := range subs {
		s.finish(ErrClosed)
	}
}

// Subscription is one subscriber's view of an exchange. Read it with Next
// from one goroutine.
type Subscription struct {
	x       *Exchange
	ns      string
	filters Filters
	until   int64
	limit   int

	mu sync.Mutex
	// queue holds the events not read yet.
	queue []Event
	// err is why the subscription ended; Next returns it once queue is
	// empty.
	err  error
	wake chan struct{}
	// stops disarm the context's and Until's callbacks.
	stops []func() bool
}

func (s *Subscription) matches(e Event) bool {
	if s.ns != "" && e.Namespace != "" && e.Namespace != s.ns {
		return false
	}
	return s.filters.Match(e)
}

// push queues e; false if the queue is full.
func (s *Subscription) push(e Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return true
	}
	if len(s.queue) >= s.limit {
		return false
	}
	s.queue = append(s.queue, e)
	s.signal()
	return true
}

// finish ends s with err unless it has ended already.
func (s *Subscription) finish(err error) {
	s.mu.Lock()
	first := s.err == nil
	if first {
		s.err = err
		s.signal()
	}
	s.mu.Unlock()
	if first {
		s.release()
	}
}

// release disarms the callbacks (outside s.mu: they take it).
func (s *Subscription) release() {
	s.mu.Lock()
	stops := s.stops
	s.stops = nil
	s.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Next returns the next event, waiting for one. Once the subscription has
// ended and its queued events are read it returns why: io.EOF when Until
// passed, ErrSlowSubscriber, ErrClosed, ErrSubscriptionClosed after
// Close, or the subscription's context's error. A ctx done while waiting
// returns ctx's error and leaves the subscription as it is.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			e := s.queue[0]
			s.queue[0] = Event{}
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return e, nil
		}
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return Event{}, err
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Close ends the subscription; events not read yet are dropped. It may be
// called more than once.
func (s *Subscription) Close() {
	s.x.end(s, ErrSubscriptionClosed)
	s.mu.Lock()
	s.queue = nil
	s.mu.Unlock()
}
